"""CSV files of samples, in the column format documented on ``IMPORT_FORMAT_CSV``."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Final

from vitalis_ingestion.domain.metrics import METRICS
from vitalis_ingestion.domain.samples import SampleDraft
from vitalis_ingestion.importers.items import (
    UNPARSEABLE,
    UNSUPPORTED,
    ImportFailure,
    ImportItem,
    SourceHint,
    rejected,
)

CSV_PLATFORM: Final = 13
REQUIRED: Final = ("metric_type", "value", "start_time")
KNOWN: Final = frozenset({*REQUIRED, "end_time", "unit", "hrv_method", "hrv_window_seconds"})
METRIC_NAMES: Final = {metric.slug.upper().replace("-", "_"): metric.number for metric in METRICS}
HRV_METHODS: Final = {"RMSSD": 1, "SDNN": 2}


def _time(text: str, column: str) -> datetime:
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{column} {text!r} has no UTC offset")
    return moment


def parse_csv(stream: io.RawIOBase, *, source: SourceHint) -> Iterator[ImportItem]:
    """One item per data row, located as ``line N``."""
    text = io.TextIOWrapper(io.BufferedReader(stream), encoding="utf-8-sig", newline="")
    try:
        reader = csv.DictReader(text)
        header = reader.fieldnames or []
        missing = [column for column in REQUIRED if column not in header]
        if missing:
            raise ImportFailure(
                "UNSUPPORTED_FORMAT",
                f"the CSV header lacks the column(s) {', '.join(missing)}; see IMPORT_FORMAT_CSV",
            )
        for row in reader:
            location = f"line {reader.line_num}"
            yield _row(row, location, source)
    except UnicodeDecodeError as error:
        raise ImportFailure("FILE_CORRUPT", f"the CSV file is not UTF-8 ({error})") from error
    except csv.Error as error:
        raise ImportFailure("FILE_CORRUPT", f"the CSV file is malformed ({error})") from error
    finally:
        text.detach()


def _row(row: dict[str, str], location: str, source: SourceHint) -> ImportItem:
    name = (row.get("metric_type") or "").strip().upper().removeprefix("METRIC_TYPE_")
    metric = METRIC_NAMES.get(name)
    if metric is None:
        return rejected(
            name or "?", location, UNSUPPORTED, f"{location}: {row.get('metric_type')!r} is not a metric type"
        )
    try:
        start = _time(row["start_time"], "start_time")
        end = _time(row["end_time"], "end_time") if (row.get("end_time") or "").strip() else None
        method_text = (row.get("hrv_method") or "").strip().upper()
        window_text = (row.get("hrv_window_seconds") or "").strip()
        draft = SampleDraft(
            source_id=source.source_id,
            metric=metric,
            value=float(row["value"]),
            start_time=start,
            end_time=end,
            unit=(row.get("unit") or "").strip(),
            hrv_method=HRV_METHODS.get(method_text, 0),
            hrv_window_s=int(window_text) if window_text else 0,
            has_hrv=bool(method_text or window_text),
            utc_offset_s=int(start.utcoffset().total_seconds()),  # type: ignore[union-attr]
        )
    except (ValueError, TypeError, KeyError) as error:
        return rejected(name, location, UNPARSEABLE, f"{location}: {error}")
    return ImportItem(name, location, source=source, samples=[draft])
