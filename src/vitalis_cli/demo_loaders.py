"""The demo data ``vitalis seed`` loads, and the RPC that loads each kind.

Every loader goes through a service's public contract with the demo user's token, exactly as a
client would, and relies on the contract's idempotency (natural keys, content hashes) so that
seeding twice adds nothing.
"""

from __future__ import annotations

import asyncio
import functools
import io
import uuid
import zipfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import grpc
from google.api import httpbody_pb2  # type: ignore[import-untyped]
from google.protobuf import timestamp_pb2

from vitalis.biomarkers.v1 import (
    dictionary_service_pb2,
    dictionary_service_pb2_grpc,
    panel_pb2,
    panel_service_pb2,
    panel_service_pb2_grpc,
)
from vitalis.ingestion.v1 import (
    import_job_pb2,
    import_service_pb2,
    import_service_pb2_grpc,
    sample_service_pb2,
    sample_service_pb2_grpc,
    source_pb2,
    source_service_pb2,
    source_service_pb2_grpc,
)
from vitalis_cli.demo_fixtures import (
    GARMIN_RUN_RECORDS,
    PHENOAGE_REFERENCE,
    heart_rate_samples,
    phenoage_panel,
)

CALL_TIMEOUT_SECONDS = 30.0
IMPORT_WAIT_SECONDS = 120.0
IMPORT_POLL_SECONDS = 0.5
DEMO_GARMIN_SOURCE_ID = "demo-garmin-fenix-5"
DEMO_PANEL_COLLECTED = datetime(2024, 3, 4, 8, 15, tzinfo=timezone(timedelta(hours=-8)))
APPLE_HEALTH_XML = Path("apple-health") / "export-small.xml"
APPLE_HEALTH_ZIP_LAYOUT = Path("apple-health") / "zip-layout"
GARMIN_FIT_FILES = tuple(
    Path("fit") / name for name in ("Activity.fit", "MonitoringFile.fit", "WeightScaleSingleUser.fit")
)
_TERMINAL_STATES = frozenset(
    {
        import_job_pb2.IMPORT_JOB_STATE_SUCCEEDED,
        import_job_pb2.IMPORT_JOB_STATE_FAILED,
        import_job_pb2.IMPORT_JOB_STATE_CANCELLED,
    }
)


class LoadFailedError(Exception):
    """A service accepted the data but could not load it (an import job failed)."""


@dataclass(frozen=True)
class SeedContext:
    """What a loader needs: whose data, the caller's token, the fixtures and a channel per service."""

    user: str
    access_token: str
    fixtures: Path
    channels: Mapping[str, grpc.aio.Channel]

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The call metadata carrying the access token."""
        return (("authorization", f"Bearer {self.access_token}"),)


Loader = Callable[[SeedContext], Awaitable[str]]


@dataclass(frozen=True)
class FixtureKind:
    """One kind of demo data: the fixture files it comes from and how it is loaded.

    ``load`` is ``None`` while no contract accepts the kind; ``missing_contract`` then says so.
    """

    description: str
    files: tuple[Path, ...]
    load: Loader | None
    missing_contract: str = ""


async def _demo_garmin_source(context: SeedContext) -> str:
    sources = source_service_pb2_grpc.SourceServiceStub(context.channels["ingestion"])
    request = source_service_pb2.CreateSourceRequest(
        parent=context.user,
        source=source_pb2.Source(
            display_name="Garmin Fenix 5 (demo)", platform=source_pb2.SOURCE_PLATFORM_GARMIN
        ),
        source_id=DEMO_GARMIN_SOURCE_ID,
    )
    try:
        created = await sources.CreateSource(request, metadata=context.metadata, timeout=CALL_TIMEOUT_SECONDS)
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
        return f"{context.user}/sources/{DEMO_GARMIN_SOURCE_ID}"
    return created.name


async def load_garmin_heart_rate(context: SeedContext) -> str:
    """Heart-rate samples of a Garmin run, through ``SampleService.BatchCreateSamples``."""
    source = await _demo_garmin_source(context)
    samples = heart_rate_samples(context.fixtures / GARMIN_RUN_RECORDS, source=source)
    stub = sample_service_pb2_grpc.SampleServiceStub(context.channels["ingestion"])
    reply = await stub.BatchCreateSamples(
        sample_service_pb2.BatchCreateSamplesRequest(parent=context.user, samples=samples),
        metadata=context.metadata,
        timeout=CALL_TIMEOUT_SECONDS,
    )
    counts = reply.counts
    return (
        f"{counts.received_count} samples: {counts.new_count} new, {counts.duplicate_count} already there, "
        f"{counts.rejected_count} rejected"
    )


def zip_folder(folder: Path) -> bytes:
    """The folder's files as a zip archive (paths relative to ``folder``), as a phone would share it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


async def _wait_for_import(
    stub: import_service_pb2_grpc.ImportServiceAsyncStub, job: import_job_pb2.ImportJob, context: SeedContext
) -> import_job_pb2.ImportJob:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + IMPORT_WAIT_SECONDS
    while job.state not in _TERMINAL_STATES and loop.time() < deadline:
        await asyncio.sleep(IMPORT_POLL_SECONDS)
        job = await stub.GetImportJob(
            import_service_pb2.GetImportJobRequest(name=job.name),
            metadata=context.metadata,
            timeout=CALL_TIMEOUT_SECONDS,
        )
    return job


def describe_import(job: import_job_pb2.ImportJob) -> str:
    """One line about a job: its state and counts, or why it failed."""
    if job.state == import_job_pb2.IMPORT_JOB_STATE_FAILED:
        raise LoadFailedError(f"import {job.name} failed: {job.error.message}")
    counts = job.counts
    state = import_job_pb2.ImportJobState.Name(job.state).removeprefix("IMPORT_JOB_STATE_").lower()
    if job.state not in _TERMINAL_STATES:
        state = f"still {state} after {IMPORT_WAIT_SECONDS:g}s, continuing in the background"
    return (
        f"{state}: {counts.received_count} records, {counts.new_count} new, "
        f"{counts.duplicate_count} already there, {counts.rejected_count} rejected ({job.name})"
    )


async def import_files(
    context: SeedContext,
    *,
    files: tuple[Path, ...],
    import_format: import_job_pb2.ImportFormat.ValueType,
    content_type: str,
    as_zip: bool = False,
) -> str:
    """Upload each file (a folder is zipped) with ``ImportService.UploadImportFile``; wait for its job."""
    stub = import_service_pb2_grpc.ImportServiceStub(context.channels["ingestion"])
    lines = []
    for relative in files:
        path = context.fixtures / relative
        data = zip_folder(path) if as_zip else path.read_bytes()
        job = await stub.UploadImportFile(
            import_service_pb2.UploadImportFileRequest(
                parent=context.user,
                format=import_format,
                file_name=f"{path.name}.zip" if as_zip else path.name,
                http_body=httpbody_pb2.HttpBody(content_type=content_type, data=data),
            ),
            metadata=context.metadata,
            timeout=CALL_TIMEOUT_SECONDS,
        )
        job = await _wait_for_import(stub, job, context)
        lines.append(f"{relative.name}: {describe_import(job)}" if len(files) > 1 else describe_import(job))
    return "; ".join(lines)


async def _biomarker_for(loinc_code: str, context: SeedContext) -> str | None:
    dictionary = dictionary_service_pb2_grpc.DictionaryServiceStub(context.channels["biomarkers"])
    found = await dictionary.SearchBiomarkers(
        dictionary_service_pb2.SearchBiomarkersRequest(query=loinc_code, page_size=5),
        metadata=context.metadata,
        timeout=CALL_TIMEOUT_SECONDS,
    )
    for result in found.results:
        definition = result.biomarker
        if loinc_code == definition.loinc_code or loinc_code in definition.additional_loinc_codes:
            return definition.name
    return None


async def load_demo_panel(context: SeedContext) -> str:
    """The PhenoAge test vector as a fasting blood panel, through ``PanelService.CreatePanel``.

    Biomarkers are found in the dictionary by LOINC code; the request id is derived from the user,
    so seeding again returns the panel created the first time.
    """
    markers = []
    unknown = []
    for demo in phenoage_panel(context.fixtures / PHENOAGE_REFERENCE):
        biomarker = await _biomarker_for(demo.loinc_code, context)
        if biomarker is None:
            unknown.append(f"{demo.reported_name} (LOINC {demo.loinc_code})")
            continue
        markers.append(
            panel_pb2.Marker(
                biomarker=biomarker,
                reported_name=demo.reported_name,
                value=demo.value,
                reported_unit=demo.unit,
            )
        )
    if not markers:
        raise LoadFailedError(f"the biomarker dictionary knows none of {', '.join(unknown)}")
    collected = timestamp_pb2.Timestamp()
    collected.FromDatetime(DEMO_PANEL_COLLECTED)
    panels = panel_service_pb2_grpc.PanelServiceStub(context.channels["biomarkers"])
    panel = await panels.CreatePanel(
        panel_service_pb2.CreatePanelRequest(
            parent=context.user,
            panel=panel_pb2.Panel(
                display_name="Demo blood panel (PhenoAge test vector)",
                collection_time=collected,
                fasting=panel_pb2.FASTING_STATUS_FASTING,
                provenance=panel_pb2.Provenance(kind=panel_pb2.PROVENANCE_KIND_MANUAL),
                markers=markers,
            ),
            request_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"vitalis-seed:{context.user}:demo-panel")),
        ),
        metadata=context.metadata,
        timeout=CALL_TIMEOUT_SECONDS,
    )
    skipped = f"; not in the dictionary: {', '.join(unknown)}" if unknown else ""
    return f"{len(panel.markers)} markers in {panel.name}{skipped}"


DEMO_KINDS: tuple[FixtureKind, ...] = (
    FixtureKind("heart rate of a Garmin run", (GARMIN_RUN_RECORDS,), load_garmin_heart_rate),
    FixtureKind(
        "Apple Health export.xml",
        (APPLE_HEALTH_XML,),
        functools.partial(
            import_files,
            files=(APPLE_HEALTH_XML,),
            import_format=import_job_pb2.IMPORT_FORMAT_APPLE_HEALTH_XML,
            content_type="application/xml",
        ),
    ),
    FixtureKind(
        "Apple Health export.zip",
        (APPLE_HEALTH_ZIP_LAYOUT / "apple_health_export" / "export.xml",),
        functools.partial(
            import_files,
            files=(APPLE_HEALTH_ZIP_LAYOUT,),
            import_format=import_job_pb2.IMPORT_FORMAT_APPLE_HEALTH_ZIP,
            content_type="application/zip",
            as_zip=True,
        ),
    ),
    FixtureKind(
        "Garmin FIT files (activity, daily monitoring, weight scale)",
        GARMIN_FIT_FILES,
        functools.partial(
            import_files,
            files=GARMIN_FIT_FILES,
            import_format=import_job_pb2.IMPORT_FORMAT_GARMIN_FIT,
            content_type="application/octet-stream",
        ),
    ),
    FixtureKind("blood panel (the PhenoAge test vector)", (PHENOAGE_REFERENCE,), load_demo_panel),
)
