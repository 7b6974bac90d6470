"""Workloads of ingestion and its table: sample writes, the COPY floor, the import, the parse floor."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import grpc
from lxml import etree

from bench.http1 import Http1Pool, http1_request
from bench.processes import cpu_seconds
from bench.workload import Call, Close, grpc_metadata
from vitalis.ingestion.v1 import (
    import_job_pb2,
    import_service_pb2,
    import_service_pb2_grpc,
    sample_pb2,
    sample_service_pb2,
    sample_service_pb2_grpc,
)

HEART_RATE = 1
SAMPLE_COLUMNS = ("user_id", "metric", "source_id", "start_time", "end_time", "sample_uid", "value")
MIB = 2**20


def sample_times(spec: dict[str, Any], call: int, count: int) -> list[datetime]:
    """Start times of the rows of one call: one second apart, disjoint between calls."""
    base = datetime.fromisoformat(spec["base_time"]) + timedelta(seconds=call * count)
    return [base + timedelta(seconds=i) for i in range(count)]


def heart_rate(i: int) -> float:
    """A plausible heart rate that varies from row to row."""
    return 55.0 + (i * 7919) % 60


def _samples(spec: dict[str, Any], call: int, count: int) -> list[sample_pb2.Sample]:
    samples = []
    for i, start in enumerate(sample_times(spec, call, count)):
        sample = sample_pb2.Sample(
            source=spec["source"], metric_type=HEART_RATE, value=heart_rate(i), unit="count/min"
        )
        sample.start_time.FromDatetime(start)
        sample.end_time.FromDatetime(start)
        samples.append(sample)
    return samples


async def samples_stream(spec: dict[str, Any]) -> tuple[Call, Close]:
    channel = grpc.aio.insecure_channel(spec["target"])
    stub = sample_service_pb2_grpc.SampleServiceStub(channel)
    metadata = grpc_metadata(spec)
    chunk, chunks = spec["rows_per_chunk"], spec["chunks_per_call"]

    async def call(n: int) -> float:
        async def requests() -> AsyncIterator[sample_service_pb2.StreamSamplesRequest]:
            for c in range(chunks):
                yield sample_service_pb2.StreamSamplesRequest(
                    parent=spec["parent"], samples=_samples(spec, n * chunks + c, chunk)
                )

        response = await stub.StreamSamples(requests(), metadata=metadata, timeout=120)
        return float(response.counts.new_count)

    return call, channel.close


async def samples_rest_batch(spec: dict[str, Any]) -> tuple[Call, Close]:
    host, port, _ = http1_request("POST", spec["url"], {}, b"")
    pool = Http1Pool(host, port)
    count = spec["rows_per_call"]
    headers = {**spec.get("headers", {}), "content-type": "application/json"}

    async def call(n: int) -> float:
        samples = []
        for i, start in enumerate(sample_times(spec, n, count)):
            at = start.isoformat().replace("+00:00", "Z")
            samples.append(
                {
                    "source": spec["source"],
                    "metricType": "METRIC_TYPE_HEART_RATE",
                    "value": heart_rate(i),
                    "unit": "count/min",
                    "startTime": at,
                    "endTime": at,
                }
            )
        body = json.dumps({"samples": samples}).encode()
        await pool.send(http1_request("POST", spec["url"], headers, body)[2])
        return float(count)

    return call, pool.close


async def copy_samples(spec: dict[str, Any]) -> tuple[Call, Close]:
    """The physical floor of B1: asyncpg COPY of the same rows into the same table.

    PostgreSQL refuses COPY FROM into a table whose row-level security applies to the writer, so the
    floor is written as the table's owner (a superuser here), which RLS does not restrict.
    """
    backends: dict[int, float] = {}

    async def remember_backend(connection: asyncpg.Connection) -> None:
        pid = connection.get_server_pid()
        backends[pid] = cpu_seconds(pid) or 0.0

    pool = await asyncpg.create_pool(
        spec["database_url"], min_size=1, max_size=spec["concurrency"], init=remember_backend
    )
    user_id = uuid.UUID(spec["user_id"])
    count = spec["rows_per_call"]

    async def call(n: int) -> float:
        records = [
            (user_id, HEART_RATE, spec["source_id"], start, start, uuid.uuid4(), heart_rate(i))
            for i, start in enumerate(sample_times(spec, n, count))
        ]
        async with pool.acquire() as connection, connection.transaction():
            await connection.copy_records_to_table(
                "samples", schema_name=spec["schema"], columns=SAMPLE_COLUMNS, records=records
            )
        return float(count)

    async def close() -> dict[str, float]:
        # The backends exit with the pool, before the harness could read them.
        spent = sum((cpu_seconds(pid) or before) - before for pid, before in backends.items())
        await pool.close()
        return {"cpu": {"postgres": spent}}

    return call, close


async def iterparse(spec: dict[str, Any]) -> tuple[Call, Close]:
    """B2's parse floor: lxml ``iterparse`` over the export, clearing each record, nothing else."""
    deadline = time.perf_counter() + spec["duration"]

    async def call(_: int) -> float:
        parsed = 0
        for _event, element in etree.iterparse(spec["path"], events=("end",), tag="Record"):
            parsed += 1
            element.clear(keep_tail=False)
            while element.getprevious() is not None:
                del element.getparent()[0]
            if parsed % 10_000 == 0 and time.perf_counter() > deadline:
                break
        return float(parsed)

    async def close() -> None:
        return None

    return call, close


def import_messages(spec: dict[str, Any], path: Path) -> Iterator[import_service_pb2.StreamImportFileRequest]:
    """The metadata, then the file in chunks just under the 4 MiB a message may carry."""
    yield import_service_pb2.StreamImportFileRequest(
        parent=spec["parent"],
        metadata=import_service_pb2.ImportFileMetadata(
            format=import_job_pb2.IMPORT_FORMAT_APPLE_HEALTH_XML,
            source=spec["source"],
            file_name=path.name,
            size_bytes=path.stat().st_size,
        ),
    )
    with path.open("rb") as file:
        while chunk := file.read(4 * MIB - 1024):
            yield import_service_pb2.StreamImportFileRequest(parent=spec["parent"], chunk=chunk)


async def import_file(spec: dict[str, Any]) -> tuple[Call, Close]:
    """B2's arm: stream the export to ImportService, then watch the job until it finishes."""
    channel = grpc.aio.insecure_channel(spec["target"])
    stub = import_service_pb2_grpc.ImportServiceStub(channel)
    metadata = grpc_metadata(spec)
    path = Path(spec["path"])

    async def call(_: int) -> float:
        job = await stub.StreamImportFile(
            import_messages(spec, path), metadata=metadata, timeout=spec["duration"]
        )
        terminal = {
            import_job_pb2.IMPORT_JOB_STATE_SUCCEEDED,
            import_job_pb2.IMPORT_JOB_STATE_FAILED,
            import_job_pb2.IMPORT_JOB_STATE_CANCELLED,
        }
        if job.state not in terminal:
            watch = stub.WatchImportJob(
                import_service_pb2.WatchImportJobRequest(name=job.name),
                metadata=metadata,
                timeout=spec["duration"],
            )
            async for update in watch:
                job = update
                if job.state in terminal:
                    break
        if job.state != import_job_pb2.IMPORT_JOB_STATE_SUCCEEDED:
            raise RuntimeError(
                f"import ended {import_job_pb2.ImportJobState.Name(job.state)}: {job.error.message}"
            )
        return float(job.counts.new_count)

    return call, channel.close
