"""ImportService against a real PostgreSQL: Apple Health, Garmin FIT and CSV files as jobs."""

from __future__ import annotations

import csv
import io
import uuid
import zipfile
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import grpc
import pytest

from vitalis.ingestion.v1 import import_job_pb2, import_service_pb2, import_service_pb2_grpc
from vitalis_cli.demo_loaders import zip_folder
from vitalis_ingestion.importers.fit import semicircles_to_degrees
from vitalis_ingestion.testing import write_export

from .conftest import FIXTURES
from .importing_helpers import finished, import_file, stored_records, stored_samples, upload

pytestmark = pytest.mark.timeout(90)
SUCCEEDED = import_job_pb2.IMPORT_JOB_STATE_SUCCEEDED
FAILED = import_job_pb2.IMPORT_JOB_STATE_FAILED
APPLE_XML = (FIXTURES / "apple-health" / "export-small.xml").read_bytes()


async def test_apple_health_xml_and_zip_give_identical_rows_and_account_for_every_record(
    service: Any,
) -> None:
    xml_user, zip_user = uuid.uuid4(), uuid.uuid4()
    from_xml = await import_file(service, APPLE_XML, user_id=xml_user, file_name="export.xml")
    from_zip = await import_file(
        service,
        zip_folder(FIXTURES / "apple-health" / "zip-layout"),
        user_id=zip_user,
        file_name="export.zip",
    )

    for job in (from_xml, from_zip):
        assert job.state == SUCCEEDED, job.error
        counts = job.counts
        # Two records, one workout, two activity summaries (not imported: they are derived data).
        assert counts.received_count == 5
        assert (counts.new_count, counts.duplicate_count, counts.rejected_count) == (3, 0, 2)
        assert [(r.reason, r.count) for r in counts.rejections] == [("UNSUPPORTED_RECORD_TYPE", 2)]
        assert sum(t.counts.received_count for t in job.record_type_counts) == 5
        assert job.progress_percent == 100
    assert from_xml.format == import_job_pb2.IMPORT_FORMAT_APPLE_HEALTH_XML
    assert from_zip.format == import_job_pb2.IMPORT_FORMAT_APPLE_HEALTH_ZIP

    xml_samples = await stored_samples(service, xml_user)
    assert xml_samples == await stored_samples(service, zip_user)
    heart = [row for row in xml_samples if row[0] == 1]
    assert heart[0][3] == datetime(2018, 9, 10, 9, 28, 55, tzinfo=UTC)
    assert heart[0][5] == 72
    assert heart[0][6] == -7 * 3600
    bmi = [row for row in xml_samples if row[0] == 17]
    assert bmi[0][5] == pytest.approx(22.5312)

    def without_route(records: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return [(*row[:5], {k: v for k, v in row[5].items() if k != "route"}) for row in records]

    xml_records, zip_records = (
        await stored_records(service, xml_user),
        await stored_records(service, zip_user),
    )
    # The zip's route lives in a GPX file with other points than the XML's inline route.
    assert without_route(xml_records) == without_route(zip_records)
    [workout] = xml_records
    assert workout[5]["activityType"] == "ACTIVITY_TYPE_RUNNING"
    assert workout[5]["distanceMeters"] == pytest.approx(0.4971749504535062 * 1609.344)
    assert len(workout[5]["route"]) == 2
    assert len(zip_records[0][5]["route"]) > 0


async def test_the_same_file_twice_is_one_job_and_adds_nothing(service: Any) -> None:
    first = await import_file(service, APPLE_XML)
    again = await upload(service, APPLE_XML)
    assert again.name == first.name
    assert again.state == SUCCEEDED
    jobs = await import_service_pb2_grpc.ImportServiceStub(service.channel).ListImportJobs(
        import_service_pb2.ListImportJobsRequest(parent="users/me"), metadata=service.me
    )
    assert [job.name for job in jobs.import_jobs] == [first.name]
    before = await stored_samples(service, service.user_id)
    # The same records in a different file (a zip) are all duplicates.
    zipped = await import_file(service, zip_folder(FIXTURES / "apple-health" / "zip-layout"))
    assert zipped.name != first.name
    assert (zipped.counts.new_count, zipped.counts.duplicate_count) == (0, 3)
    assert await stored_samples(service, service.user_id) == before


def _expected_records() -> list[dict[str, Any]]:
    rows = []
    with (FIXTURES / "fit" / "garmin-fenix-5-run-records.csv").open() as handle:
        for row in csv.DictReader(handle):
            text = row["timestamp"].replace("PDT", "-0700")
            row["time"] = datetime.strptime(text, "%a %b %d %H:%M:%S %z %Y").astimezone(UTC)
            rows.append(row)
    return rows


async def test_garmin_fit_samples_equal_the_reference_records_row_for_row(service: Any) -> None:
    job = await import_file(service, (FIXTURES / "fit" / "garmin-fenix-5-run.fit").read_bytes())
    assert job.state == SUCCEEDED, job.error
    assert job.format == import_job_pb2.IMPORT_FORMAT_GARMIN_FIT
    expected = _expected_records()
    samples = await stored_samples(service, service.user_id)
    heart = [(row[3], row[5]) for row in samples if row[0] == 1]
    speed = [(row[3], row[5]) for row in samples if row[0] == 24]
    assert heart == [(row["time"], float(row["heart_rate"])) for row in expected]
    assert speed == [(row["time"], float(row["speed"])) for row in expected]
    [workout] = await stored_records(service, service.user_id)
    route = workout[5]["route"]
    assert [datetime.fromisoformat(p["time"]) for p in route] == [row["time"] for row in expected]
    for point, row in zip(route, expected, strict=True):
        assert point["position"]["latitude"] == semicircles_to_degrees(int(row["position_lat"]))
        assert point["position"]["longitude"] == semicircles_to_degrees(int(row["position_long"]))
    assert workout[5]["activityType"] == "ACTIVITY_TYPE_RUNNING"
    assert job.counts.received_count == len(expected) + 1


async def test_truncated_fit_fails_with_a_clear_reason_and_keeps_earlier_data(service: Any) -> None:
    good = await import_file(service, (FIXTURES / "fit" / "WeightScaleSingleUser.fit").read_bytes())
    assert good.state == SUCCEEDED
    before = await stored_samples(service, service.user_id)
    job = await import_file(service, (FIXTURES / "fit" / "activity-unexpected-eof.fit").read_bytes())
    assert job.state == FAILED
    assert job.error.message.startswith("the FIT file ends before its last message")
    assert "FILE_TRUNCATED" in str(job.error.details[0])
    after = await stored_samples(service, service.user_id)
    assert set(before) <= set(after)


async def test_monitoring_and_weight_scale_fit_files(service: Any) -> None:
    weight = await import_file(service, (FIXTURES / "fit" / "WeightScaleSingleUser.fit").read_bytes())
    assert (weight.counts.received_count, weight.counts.new_count) == (2, 2)
    samples = await stored_samples(service, service.user_id)
    assert [(row[0], row[5]) for row in samples] == [(14, 75.8), (14, 76.09), (15, 22.3), (15, 25.1)]
    monitoring = await import_file(service, (FIXTURES / "fit" / "MonitoringFile.fit").read_bytes())
    counts = monitoring.counts
    assert counts.received_count == counts.new_count + counts.duplicate_count + counts.rejected_count == 337
    # The day's walking and running totals are one steps sample and one energy sample.
    assert counts.new_count == 2
    daily = [(row[0], row[5]) for row in await stored_samples(service, service.user_id) if row[0] in (4, 7)]
    assert daily == [(4, 3142 + 31), (7, 68 + 1)]


def _apple(body: str, doctype: str = "") -> bytes:
    prolog = '<?xml version="1.0" encoding="UTF-8"?>'
    return f'{prolog}{doctype}<HealthData locale="en_US">{body}</HealthData>'.encode()


async def test_entity_expanding_xml_is_refused(service: Any) -> None:
    doctype = '<!DOCTYPE HealthData [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    job = await import_file(service, _apple('<Record type="&b;"/>', doctype))
    assert job.state == FAILED
    assert "XML_ENTITY_FORBIDDEN" in str(job.error.details[0])


async def test_truncated_xml_fails_and_keeps_records_before_the_cut(service: Any) -> None:
    job = await import_file(service, APPLE_XML[: APPLE_XML.index(b"<Workout") + 40])
    assert job.state == FAILED
    assert "FILE_TRUNCATED" in str(job.error.details[0])
    assert len(await stored_samples(service, service.user_id)) == 2


async def test_zip_bomb_is_refused(service: Any) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("apple_health_export/export.xml", _apple(" " * (40 * 1024**2)))
    job = await import_file(service, buffer.getvalue())
    assert job.state == FAILED
    assert "ARCHIVE_TOO_LARGE" in str(job.error.details[0])


async def test_blood_pressure_correlations_are_split_and_sleep_stages_mapped(service: Any) -> None:
    def record(kind: str, start: str, end: str, value: str, source: str = "Watch", unit: str = "") -> str:
        unit_attribute = f' unit="{unit}"' if unit else ""
        return (
            f'<Record type="{kind}" sourceName="{source}"{unit_attribute} startDate="2024-{start} +0200" '
            f'endDate="2024-{end} +0200" value="{value}"/>'
        )

    sleep = "HKCategoryTypeIdentifierSleepAnalysis"
    stage = "HKCategoryValueSleepAnalysis"
    body = "".join(
        [
            '<Correlation type="HKCorrelationTypeIdentifierBloodPressure" sourceName="Omron" '
            'startDate="2024-05-01 07:30:00 +0200" endDate="2024-05-01 07:30:00 +0200">',
            record(
                "HKQuantityTypeIdentifierBloodPressureSystolic",
                "05-01 07:30:00",
                "05-01 07:30:00",
                "121",
                "Omron",
                "mmHg",
            ),
            record(
                "HKQuantityTypeIdentifierBloodPressureDiastolic",
                "05-01 07:30:00",
                "05-01 07:30:00",
                "79",
                "Omron",
                "mmHg",
            ),
            "</Correlation>",
            record(sleep, "04-30 23:10:00", "05-01 01:00:00", f"{stage}AsleepCore"),
            record(sleep, "05-01 01:00:00", "05-01 02:00:00", f"{stage}AsleepDeep"),
            record(sleep, "05-01 02:00:00", "05-01 02:30:00", f"{stage}AsleepREM"),
            record(sleep, "05-01 14:00:00", "05-01 14:30:00", f"{stage}AsleepCore"),
            record(
                "HKQuantityTypeIdentifierHeartRateVariabilitySDNN",
                "05-01 06:00:00",
                "05-01 06:01:00",
                "48",
                unit="ms",
            ),
            record(
                "HKQuantityTypeIdentifierOxygenSaturation",
                "05-01 06:00:00",
                "05-01 06:00:00",
                "0.97",
                unit="%",
            ),
        ]
    )
    job = await import_file(service, _apple(body))
    assert job.state == SUCCEEDED, job.error
    assert (job.counts.received_count, job.counts.new_count) == (7, 7)
    samples = await stored_samples(service, service.user_id)
    pressure = [row for row in samples if row[0] in (19, 20)]
    assert [(row[0], row[5]) for row in pressure] == [(19, 121), (20, 79)]
    assert pressure[0][7] == pressure[1][7]
    assert pressure[0][7]
    assert pressure[0][6] == 7200
    [hrv] = [row for row in samples if row[0] == 3]
    assert (hrv[1], hrv[2], hrv[5]) == (2, 60, 48)
    [spo2] = [row for row in samples if row[0] == 10]
    assert spo2[5] == pytest.approx(97)
    night, nap = await stored_records(service, service.user_id)
    assert [s["stage"] for s in night[5]["stages"]] == [
        "SLEEP_STAGE_TYPE_LIGHT",
        "SLEEP_STAGE_TYPE_DEEP",
        "SLEEP_STAGE_TYPE_REM",
    ]
    assert night[2] == datetime(2024, 4, 30, 23, 10, tzinfo=timezone(timedelta(hours=2)))
    assert night[4] == 7200
    assert len(nap[5]["stages"]) == 1


async def test_csv_rows_are_imported_with_reasons_for_bad_lines(service: Any, make_source: Any) -> None:
    source = await make_source("spreadsheet", platform=13)
    text = (
        "metric_type,value,start_time,end_time,unit,hrv_method,hrv_window_seconds\n"
        "HEART_RATE,61,2024-05-31T07:12:00+02:00,,,,\n"
        "METRIC_TYPE_BODY_WEIGHT,154,2024-05-31T07:15:00+02:00,,[lb_av],,\n"
        "HEART_RATE_VARIABILITY,42,2024-05-31T03:00:00+02:00,,,RMSSD,300\n"
        "HEART_RATE_VARIABILITY,42,2024-05-31T04:00:00+02:00,,,,\n"
        "HEART_RATE,abc,2024-05-31T07:12:00+02:00,,,,\n"
        "HEART_RATE,900,2024-05-31T07:13:00+02:00,,,,\n"
        "GRAVITY,1,2024-05-31T07:13:00+02:00,,,,\n"
    )
    job = await import_file(service, text.encode(), source=source, format=import_job_pb2.IMPORT_FORMAT_CSV)
    assert job.state == SUCCEEDED, job.error
    counts = job.counts
    assert (counts.received_count, counts.new_count, counts.rejected_count) == (7, 3, 4)
    reasons = {r.reason: r.first_location for r in counts.rejections}
    assert reasons == {
        "INVALID_RECORD": "line 5",
        "UNPARSEABLE_VALUE": "line 6",
        "VALUE_OUT_OF_RANGE": "line 7",
        "UNSUPPORTED_RECORD_TYPE": "line 8",
    }
    samples = await stored_samples(service, service.user_id)
    weight = [row for row in samples if row[0] == 14]
    assert weight[0][5] == pytest.approx(154 * 0.45359237)
    assert weight[0][6] == 7200


async def test_watch_streams_progress_until_the_end_and_cancel_refuses_a_finished_job(service: Any) -> None:
    job = await upload(service, APPLE_XML)
    snapshots = await finished(service, job)
    assert snapshots[0].name == job.name
    assert snapshots[-1].state == SUCCEEDED
    stub = import_service_pb2_grpc.ImportServiceStub(service.channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.CancelImportJob(
            import_service_pb2.CancelImportJobRequest(name=job.name), metadata=service.me
        )
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetImportJob(
            import_service_pb2.GetImportJobRequest(name=job.name), metadata=service.as_user(uuid.uuid4())
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_streamed_upload_in_chunks_is_one_job(service: Any) -> None:
    stub = import_service_pb2_grpc.ImportServiceStub(service.channel)
    data = (FIXTURES / "fit" / "garmin-fenix-5-run.fit").read_bytes()

    def messages() -> Any:
        yield import_service_pb2.StreamImportFileRequest(
            parent="users/me",
            metadata=import_service_pb2.ImportFileMetadata(file_name="run.fit", size_bytes=len(data)),
        )
        for offset in range(0, len(data), 1000):
            yield import_service_pb2.StreamImportFileRequest(
                parent="users/me", chunk=data[offset : offset + 1000]
            )

    job = await stub.StreamImportFile(messages(), metadata=service.me)
    assert job.size_bytes == len(data)
    assert job.file_name == "run.fit"
    done = (await finished(service, job))[-1]
    assert done.state == SUCCEEDED
    again = await upload(service, data)
    assert again.name == job.name


async def test_upload_validates_format_and_size(service: Any) -> None:
    for fields, code in (
        ({"format": import_job_pb2.IMPORT_FORMAT_GARMIN_FIT}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"source": "users/me/sources/missing"}, grpc.StatusCode.NOT_FOUND),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await upload(service, APPLE_XML, **fields)
        assert raised.value.code() == code
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await upload(service, b"")
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_cancelling_a_running_import_stops_it_and_keeps_what_was_written(
    service: Any, tmp_path: Any
) -> None:
    export = tmp_path / "export.xml"
    # Large enough to be still running when the cancel arrives, small enough for one unary upload.
    write_export(export, 20_000)
    job = await upload(service, export.read_bytes())
    stub = import_service_pb2_grpc.ImportServiceStub(service.channel)
    cancelled = await stub.CancelImportJob(
        import_service_pb2.CancelImportJobRequest(name=job.name), metadata=service.me
    )
    assert cancelled.cancel_requested
    final = (await finished(service, job))[-1]
    assert final.state == import_job_pb2.IMPORT_JOB_STATE_CANCELLED
    assert final.counts.received_count < 20_000
    stored = await stored_samples(service, service.user_id)
    assert len(stored) == final.counts.new_count
    again = await stub.CancelImportJob(
        import_service_pb2.CancelImportJobRequest(name=job.name), metadata=service.me
    )
    assert again.state == import_job_pb2.IMPORT_JOB_STATE_CANCELLED
    # A cancelled job does not hold its bytes: uploading them again starts a new job.
    retried = await upload(service, export.read_bytes())
    assert retried.name != job.name
    await finished(service, retried)


async def test_a_stalled_job_is_resumed_from_its_file(service: Any) -> None:
    user_id = service.user_id
    data = (FIXTURES / "fit" / "WeightScaleSingleUser.fit").read_bytes()
    runner = service.app.runner
    async with service.app.db.transaction(user_id=user_id) as conn:
        job, _ = await service.app.jobs.create(
            conn,
            user_id,
            format=3,
            source_id=None,
            document="",
            file_name="scale.fit",
            size_bytes=len(data),
            content_sha256="0" * 64,
            request_id=None,
        )
        # As a process that died mid-import would leave it: running, with no progress for a while.
        await conn.execute(
            "UPDATE import_jobs SET state = 2, update_time = now() - interval '1 hour' WHERE job_id = $1",
            job.job_id,
        )
    runner.path_of(job.job_id).write_bytes(data)

    assert await runner.resume_stalled() == 1
    final = (await finished(service, import_job_pb2.ImportJob(name=job.name)))[-1]
    assert final.state == SUCCEEDED
    assert final.counts.new_count == 2
    assert await runner.resume_stalled() == 0


async def test_importing_a_stored_document_checks_the_reference(service: Any) -> None:
    stub = import_service_pb2_grpc.ImportServiceStub(service.channel)
    cases = [
        ("files/report.xml", grpc.StatusCode.INVALID_ARGUMENT),
        (f"users/{uuid.uuid4()}/documents/abc", grpc.StatusCode.NOT_FOUND),
        # This deployment has no documents service configured: the job cannot read the bytes.
        ("users/me/documents/abc", grpc.StatusCode.UNAVAILABLE),
    ]
    for document, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.CreateImportJob(
                import_service_pb2.CreateImportJobRequest(
                    parent="users/me", import_job=import_job_pb2.ImportJob(document=document)
                ),
                metadata=service.me,
            )
        assert raised.value.code() == code
    listed = await stub.ListImportJobs(
        import_service_pb2.ListImportJobsRequest(parent="users/me"), metadata=service.me
    )
    assert not listed.import_jobs
