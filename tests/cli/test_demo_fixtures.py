"""Reading the demo fixtures into the messages the services accept."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vitalis.ingestion.v1 import metric_pb2
from vitalis_cli.demo_fixtures import (
    DemoMarker,
    FixtureFormatError,
    heart_rate_samples,
    parse_record_time,
    phenoage_panel,
)
from vitalis_cli.demo_loaders import zip_folder

RECORDS = """timestamp,heart_rate,cadence
Sun Jun 11 07:34:09 PDT 2017,61,0
Sun Jun 11 07:34:10 PDT 2017,,0
Sun Jun 11 07:34:12 PDT 2017,64,80
"""


def test_record_time_keeps_its_zone_offset() -> None:
    at = parse_record_time("Sun Jun 11 07:34:09 PDT 2017")

    assert at.utcoffset() == timedelta(hours=-7)
    assert at.astimezone(UTC) == datetime(2017, 6, 11, 14, 34, 9, tzinfo=UTC)


def test_record_time_with_an_unknown_zone_is_refused() -> None:
    with pytest.raises(FixtureFormatError, match="XYZ"):
        parse_record_time("Sun Jun 11 07:34:09 XYZ 2017")


def test_each_record_with_a_heart_rate_becomes_one_sample(tmp_path: Path) -> None:
    records = tmp_path / "records.csv"
    records.write_text(RECORDS)

    samples = heart_rate_samples(records, source="users/u/sources/s")

    assert [s.value for s in samples] == [61, 64]
    first = samples[0]
    assert first.metric_type == metric_pb2.METRIC_TYPE_HEART_RATE
    assert first.unit == "/min"
    assert first.source == "users/u/sources/s"
    assert first.start_time.ToDatetime(tzinfo=UTC) == datetime(2017, 6, 11, 14, 34, 9, tzinfo=UTC)
    assert first.utc_offset.seconds == -7 * 3600


def test_a_malformed_row_names_its_line(tmp_path: Path) -> None:
    records = tmp_path / "records.csv"
    records.write_text("timestamp,heart_rate\nyesterday,61\n")

    with pytest.raises(FixtureFormatError, match=r"records\.csv:2"):
        heart_rate_samples(records, source="users/u/sources/s")


def test_the_garmin_run_fixture_gives_a_sample_per_record() -> None:
    records = Path(__file__).resolve().parents[2] / "fixtures" / "fit" / "garmin-fenix-5-run-records.csv"

    samples = heart_rate_samples(records, source="users/u/sources/s")

    assert len(samples) == 21
    assert all(40 <= s.value <= 220 for s in samples)


def test_a_folder_is_zipped_with_paths_relative_to_it(tmp_path: Path) -> None:
    folder = tmp_path / "zip-layout"
    (folder / "apple_health_export" / "workout-routes").mkdir(parents=True)
    (folder / "apple_health_export" / "export.xml").write_text("<HealthData/>")
    (folder / "apple_health_export" / "workout-routes" / "route.gpx").write_text("<gpx/>")

    with zipfile.ZipFile(io.BytesIO(zip_folder(folder))) as archive:
        assert sorted(archive.namelist()) == [
            "apple_health_export/export.xml",
            "apple_health_export/workout-routes/route.gpx",
        ]
        assert archive.read("apple_health_export/export.xml") == b"<HealthData/>"


PHENOAGE_TABLE = """Published test vector:

| input | value |
|---|---|
| albumin | 50 g/L |
| creatinine | 75.14 µmol/L |
| glucose | 4.44 mmol/L |
| ln(CRP mg/dL) | -4.20 |
| lymphocytes | 40 % |
| MCV | 88 fL |
| RDW | 12 % |
| ALP | 45 U/L |
| WBC | 4.2 10^3/µL |
| age | 47 years |
"""


def test_the_phenoage_vector_becomes_a_panel_in_ucum_units(tmp_path: Path) -> None:
    reference = tmp_path / "phenoage.md"
    reference.write_text(PHENOAGE_TABLE)

    markers = {m.reported_name: m for m in phenoage_panel(reference)}

    assert len(markers) == 9
    assert "age" not in markers
    assert markers["creatinine"] == DemoMarker("2160-0", "creatinine", 75.14, "umol/L")
    assert markers["WBC"].unit == "10*3/uL"
    # ln(0.015 mg/dL) = -4.20, and labs report CRP in mg/L.
    assert markers["CRP"] == DemoMarker("1988-5", "CRP", 0.15, "mg/L")


def test_a_vector_missing_an_input_is_refused(tmp_path: Path) -> None:
    reference = tmp_path / "phenoage.md"
    reference.write_text(PHENOAGE_TABLE.replace("| MCV | 88 fL |\n", ""))

    with pytest.raises(FixtureFormatError, match="no row for MCV"):
        phenoage_panel(reference)
