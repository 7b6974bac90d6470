"""Reading the demo fixtures (``../shared/fixtures``) into the messages the services accept.

Pure functions of the files: no network, so they are tested on their own.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path

from google.protobuf import duration_pb2, timestamp_pb2

from vitalis.ingestion.v1 import metric_pb2, sample_pb2

GARMIN_RUN_RECORDS = Path("fit") / "garmin-fenix-5-run-records.csv"
HEART_RATE_UNIT = "/min"
# The fixture's timestamps carry North American zone abbreviations, which strptime cannot resolve.
_ZONE_OFFSETS: Mapping[str, timedelta] = {
    "UTC": timedelta(0),
    "GMT": timedelta(0),
    "PST": timedelta(hours=-8),
    "PDT": timedelta(hours=-7),
    "MST": timedelta(hours=-7),
    "MDT": timedelta(hours=-6),
    "CST": timedelta(hours=-6),
    "CDT": timedelta(hours=-5),
    "EST": timedelta(hours=-5),
    "EDT": timedelta(hours=-4),
}


class FixtureFormatError(ValueError):
    """A fixture file does not look the way its reader expects."""


def default_fixtures_root(project_root: Path) -> Path:
    """``../shared/fixtures`` beside the checkout."""
    return project_root.parent / "shared" / "fixtures"


def parse_record_time(text: str) -> datetime:
    """``Sun Jun 11 07:34:09 PDT 2017`` as an aware datetime keeping its offset."""
    parts = text.split()
    if len(parts) != 6 or parts[4] not in _ZONE_OFFSETS:
        raise FixtureFormatError(f"unrecognised record time {text!r}")
    local = datetime.strptime(" ".join(parts[:4] + parts[5:]), "%a %b %d %H:%M:%S %Y")
    return local.replace(tzinfo=timezone(_ZONE_OFFSETS[parts[4]]))


def heart_rate_samples(records_csv: Path, *, source: str) -> list[sample_pb2.Sample]:
    """One heart-rate sample per record of a FIT run's ``record`` messages that carries a heart rate."""
    samples: list[sample_pb2.Sample] = []
    with records_csv.open(newline="", encoding="utf-8") as handle:
        for row_number, row in enumerate(csv.DictReader(handle), start=2):
            beats = (row.get("heart_rate") or "").strip()
            if not beats:
                continue
            try:
                value = float(beats)
                at = parse_record_time(row["timestamp"])
            except (KeyError, ValueError) as error:
                raise FixtureFormatError(f"{records_csv}:{row_number}: {error}") from None
            start = timestamp_pb2.Timestamp()
            start.FromDatetime(at)
            offset = at.utcoffset() or timedelta(0)
            samples.append(
                sample_pb2.Sample(
                    source=source,
                    metric_type=metric_pb2.METRIC_TYPE_HEART_RATE,
                    value=value,
                    unit=HEART_RATE_UNIT,
                    start_time=start,
                    utc_offset=duration_pb2.Duration(seconds=int(offset.total_seconds())),
                )
            )
    return samples
