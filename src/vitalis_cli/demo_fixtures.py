"""Reading the demo fixtures (the project's ``fixtures/``) into the messages the services accept.

Pure functions of the files: no network, so they are tested on their own.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
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


PHENOAGE_REFERENCE = Path("reference") / "phenoage.md"
# LOINC codes (from reference/biomarkers-and-wearables.md) of the test vector's inputs, by row label.
_PHENOAGE_LOINC: Mapping[str, str] = {
    "albumin": "1751-7",
    "creatinine": "2160-0",
    "glucose": "2345-7",
    "ln(CRP mg/dL)": "1988-5",
    "lymphocytes": "736-9",
    "MCV": "787-2",
    "RDW": "788-0",
    "ALP": "6768-6",
    "WBC": "6690-2",
}
# The file's units as UCUM codes.
_UCUM: Mapping[str, str] = {
    "g/L": "g/L",
    "µmol/L": "umol/L",
    "mmol/L": "mmol/L",
    "%": "%",
    "fL": "fL",
    "U/L": "U/L",
    "10^3/µL": "10*3/uL",
}
_TABLE_ROW = re.compile(r"^\|\s*(?P<label>[^|]+?)\s*\|\s*(?P<value>-?\d+(?:\.\d+)?)\s*(?P<unit>[^|]*?)\s*\|$")


@dataclass(frozen=True)
class DemoMarker:
    """One measured value of the demo panel, identified by its LOINC code."""

    loinc_code: str
    reported_name: str
    value: float
    unit: str


class FixtureFormatError(ValueError):
    """A fixture file does not look the way its reader expects."""


def default_fixtures_root(project_root: Path) -> Path:
    """The project's ``fixtures/`` folder."""
    return project_root / "fixtures"


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


def phenoage_panel(reference: Path) -> list[DemoMarker]:
    """The blood values of the published PhenoAge test vector, as a lab would report them.

    The vector gives CRP as ln(mg/dL); a lab reports mg/L, so it is converted back. Age is not a
    marker and is left out.
    """
    markers: list[DemoMarker] = []
    found: set[str] = set()
    for line in reference.read_text(encoding="utf-8").splitlines():
        row = _TABLE_ROW.match(line.strip())
        if row is None or row["label"] not in _PHENOAGE_LOINC:
            continue
        label, value, unit = row["label"], float(row["value"]), row["unit"]
        found.add(label)
        if label == "ln(CRP mg/dL)":
            markers.append(DemoMarker(_PHENOAGE_LOINC[label], "CRP", round(math.exp(value) * 10, 4), "mg/L"))
            continue
        if unit not in _UCUM:
            raise FixtureFormatError(f"{reference}: unit {unit!r} of {label} is not one the demo panel knows")
        markers.append(DemoMarker(_PHENOAGE_LOINC[label], label, value, _UCUM[unit]))
    missing = sorted(set(_PHENOAGE_LOINC) - found)
    if missing:
        raise FixtureFormatError(f"{reference}: the test vector has no row for {', '.join(missing)}")
    return markers
