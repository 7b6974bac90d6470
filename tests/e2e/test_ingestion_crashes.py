"""A bad day for ingestion: killed with SIGKILL twenty times in the middle of an import.

After each kill the service is started again; the import resumes from the file the replica holds,
and the stored samples must equal the file's records exactly, none lost and none twice.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import grpc
import grpc.aio
import httpx
import pytest

from vitalis.ingestion.v1 import import_job_pb2, import_service_pb2, import_service_pb2_grpc
from vitalis_cli.platform import Platform
from vitalis_cli.testing import SignedUpUser, running_platform, sign_up
from vitalis_ingestion.testing import write_export

if TYPE_CHECKING:
    from vitalis_runtime.testing import TestServers

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600)]

RECORDS_PER_IMPORT = 20_000
UNFINISHED = (import_job_pb2.IMPORT_JOB_STATE_PENDING, import_job_pb2.IMPORT_JOB_STATE_RUNNING)
KILLS = 20
CHUNK_BYTES = 256 * 1024
STALL_SECONDS = 2
Figure = Callable[[str, object, str, bool], None]


async def chunks(parent: str, export: bytes) -> AsyncIterator[import_service_pb2.StreamImportFileRequest]:
    yield import_service_pb2.StreamImportFileRequest(
        parent=parent,
        metadata=import_service_pb2.ImportFileMetadata(
            format=import_job_pb2.IMPORT_FORMAT_APPLE_HEALTH_XML,
            file_name="export.xml",
            size_bytes=len(export),
        ),
    )
    for offset in range(0, len(export), CHUNK_BYTES):
        chunk = export[offset : offset + CHUNK_BYTES]
        yield import_service_pb2.StreamImportFileRequest(parent=parent, chunk=chunk)


async def jobs_of(platform: Platform, user: SignedUpUser, names: list[str]) -> list[import_job_pb2.ImportJob]:
    async with grpc.aio.insecure_channel(platform.service_target("ingestion")) as channel:
        stub = import_service_pb2_grpc.ImportServiceStub(channel)
        return [
            await stub.GetImportJob(
                import_service_pb2.GetImportJobRequest(name=name), metadata=user.metadata, timeout=10
            )
            for name in names
        ]


async def test_killing_ingestion_mid_import_twenty_times_loses_and_duplicates_nothing(
    test_servers: TestServers, tmp_path: Path, figure: Figure
) -> None:
    async with running_platform(
        test_servers,
        tmp_path / "platform",
        database_prefix="vitalis_crash",
        extra_env={"VITALIS_IMPORT_STALL_SECONDS": str(STALL_SECONDS)},
    ) as platform:
        async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=15) as gateway:
            user = await sign_up(gateway)
        rng = random.Random(20)
        names: list[str] = []
        kills_mid_import = 0
        for round_number in range(KILLS):
            path = tmp_path / f"export-{round_number}.xml"
            write_export(
                path, RECORDS_PER_IMPORT, start=datetime(2024, 1, 1) + timedelta(days=30 * round_number)
            )
            export = path.read_bytes()
            async with grpc.aio.insecure_channel(platform.service_target("ingestion")) as channel:
                job = await import_service_pb2_grpc.ImportServiceStub(channel).StreamImportFile(
                    chunks(user.name, export), metadata=user.metadata, timeout=60
                )
            names.append(job.name)
            await asyncio.sleep(rng.uniform(0.0, 0.5))
            (current,) = await jobs_of(platform, user, [job.name])
            if current.state in UNFINISHED:
                kills_mid_import += 1
            await platform.kill_and_restart("ingestion")
        deadline = time.monotonic() + 300
        while unfinished := [j for j in await jobs_of(platform, user, names) if j.state in UNFINISHED]:
            assert time.monotonic() < deadline, (
                f"an import never finished after the restarts: {unfinished[0]}"
            )
            await asyncio.sleep(1)
        final = await jobs_of(platform, user, names)
        admin = await asyncpg.connect(platform.config.database_url)
        try:
            stored, distinct = await admin.fetchrow(
                "SELECT count(*), count(DISTINCT (metric, start_time)) FROM ingestion.samples"
                " WHERE user_id = $1",
                uuid.UUID(user.user_id),
            )
        finally:
            await admin.close()
    expected = KILLS * RECORDS_PER_IMPORT
    duplicated = stored - distinct
    lost = expected - distinct
    figure(f"kills of ingestion mid-import (of {KILLS})", kills_mid_import, ">= 15", kills_mid_import >= 15)
    figure(f"records lost of {expected:,} after the kills", lost, "0", lost == 0)
    figure("records stored twice after the kills", duplicated, "0", duplicated == 0)
    assert {job.state for job in final} == {import_job_pb2.IMPORT_JOB_STATE_SUCCEEDED}
    assert kills_mid_import >= 15
    assert (lost, duplicated) == (0, 0)
