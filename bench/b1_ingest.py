"""B1: bulk sample ingest against the physical floor, raw COPY of the same rows into the same table.

Arms (each repetition writes for a new user to a new source, so no row is ever a replay and no
repetition adds to a day another one filled):

- ``raw COPY`` (reference): asyncpg ``copy_records_to_table`` into ``ingestion.samples``, 5,000 rows
  per transaction, as the table's owner: PostgreSQL refuses COPY FROM where row-level security
  applies, which is why the service copies into a staging table and merges from there.
- ``grpc stream``: ``SampleService/StreamSamples`` on ingestion's port, 5 chunks of 1,000 samples per call.
- ``rest batch + jwt``: ``POST /v1/users/{id}/samples:batchCreate`` through the gateway, 5,000 per request.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import grpc

from bench.report import ArmOutcome, Target
from bench.runner import DriverArm, Log, Probe, Settings, describe_rpc_error, measure_arms
from bench.stack import BenchUser, Stack
from vitalis.ingestion.v1 import (
    sample_pb2,
    sample_service_pb2,
    sample_service_pb2_grpc,
    source_pb2,
    source_service_pb2,
    source_service_pb2_grpc,
)

BASE_TIME = "2026-01-01T00:00:00+00:00"
ROWS_PER_CALL = 5_000
CHUNK_ROWS = 1_000
INGEST_CONCURRENCY = 4
COPY, STREAM, REST = "B1 raw COPY", "B1 grpc stream", "B1 rest batch + jwt"
WHY_SLOWER_THAN_COPY = (
    "RLS forbids COPY into the table and idempotency needs the natural key, so rows are copied to "
    "staging and merged with ON CONFLICT (PostgreSQL writes each twice), after ~11 µs of decoding, "
    "validation and keying per row in Python"
)

TARGETS = (
    Target(
        "B1",
        "(a) gRPC client stream vs raw COPY (rows/s)",
        arm=STREAM,
        reference=COPY,
        value=0.7,
        why_missed=WHY_SLOWER_THAN_COPY,
    ),
    Target(
        "B1",
        "(b) REST batch through Envoy + JWT vs raw COPY (rows/s)",
        arm=REST,
        reference=COPY,
        value=0.45,
        why_missed=WHY_SLOWER_THAN_COPY,
    ),
)


async def create_source(stack: Stack, user: BenchUser) -> str:
    """A new source of the user through ingestion's SourceService; its resource name."""
    async with grpc.aio.insecure_channel(stack.target("ingestion")) as channel:
        stub = source_service_pb2_grpc.SourceServiceStub(channel)
        source = await stub.CreateSource(
            source_service_pb2.CreateSourceRequest(
                parent=user.name,
                source=source_pb2.Source(display_name="bench", platform=source_pb2.SOURCE_PLATFORM_API),
                source_id=f"bench-{uuid.uuid4().hex[:12]}",
            ),
            metadata=tuple((k, v) for k, v in user.metadata),
            timeout=30,
        )
    return str(source.name)


def one_sample(source: str) -> sample_pb2.Sample:
    """A single heart-rate sample (for probing)."""
    sample = sample_pb2.Sample(source=source, metric_type=1, value=60.0, unit="count/min")
    sample.start_time.FromJsonString("2025-12-31T00:00:00Z")
    sample.end_time.FromJsonString("2025-12-31T00:00:00Z")
    return sample


def write_probe(stack: Stack, user: BenchUser, *, streamed: bool) -> Probe:
    """One real write (a source and one sample): UNIMPLEMENTED or a failure makes the arm unmeasurable."""
    method = "StreamSamples" if streamed else "BatchCreateSamples"

    async def probe() -> str | None:
        try:
            source = await create_source(stack, user)
        except grpc.aio.AioRpcError as error:
            return describe_rpc_error(error, service="ingestion", method="SourceService/CreateSource")
        metadata = tuple((k, v) for k, v in user.metadata)
        async with grpc.aio.insecure_channel(stack.target("ingestion")) as channel:
            stub = sample_service_pb2_grpc.SampleServiceStub(channel)
            try:
                if streamed:

                    async def chunks() -> AsyncIterator[sample_service_pb2.StreamSamplesRequest]:
                        yield sample_service_pb2.StreamSamplesRequest(
                            parent=user.name, samples=[one_sample(source)]
                        )

                    await stub.StreamSamples(chunks(), metadata=metadata, timeout=30)
                else:
                    await stub.BatchCreateSamples(
                        sample_service_pb2.BatchCreateSamplesRequest(
                            parent=user.name, samples=[one_sample(source)]
                        ),
                        metadata=metadata,
                        timeout=30,
                    )
            except grpc.aio.AioRpcError as error:
                return describe_rpc_error(error, service="ingestion", method=f"SampleService/{method}")
        return None

    return probe


async def samples_table_probe(stack: Stack) -> str | None:
    """The reference needs ingestion's samples table and its partition function."""
    connection = await asyncpg.connect(stack.database_url)
    try:
        exists = await connection.fetchval("SELECT to_regclass('ingestion.samples') IS NOT NULL")
        if not exists:
            return "ingestion.samples does not exist (ingestion's migrations define no samples table)"
        await connection.execute(
            "SET search_path = ingestion; SELECT ensure_sample_partitions(ARRAY['2026-01-01'::date])"
        )
    finally:
        await connection.close()
    return None


def fresh_writer(stack: Stack, *, rest: bool = False) -> Callable[[], Awaitable[dict[str, Any]]]:
    """Before each service repetition: a new user with a new source to write to.

    Each repetition writes for a user of its own, as the floor does, so no repetition's rows (nor
    the work they cause downstream, such as insights re-reading a day's summary) land on a day
    an earlier arm or repetition already filled.
    """

    async def prepare() -> dict[str, Any]:
        user = await stack.sign_up()
        fresh: dict[str, Any] = {"source": await create_source(stack, user)}
        if rest:
            fresh |= {
                "url": f"{stack.gateway_url}/v1/{user.name}/samples:batchCreate",
                "headers": user.bearer,
            }
        else:
            fresh |= {"parent": user.name, "metadata": user.metadata}
        return fresh

    return prepare


async def fresh_copy_writer() -> dict[str, Any]:
    """Before each reference repetition: a new user and source id (the table has no foreign keys)."""
    return {"user_id": str(uuid.uuid4()), "source_id": f"bench-copy-{uuid.uuid4().hex[:12]}"}


def copy_spec(stack: Stack) -> dict[str, Any]:
    """The load generator's spec for the raw COPY floor (user and source id added per repetition)."""
    return {
        "kind": "copy_samples",
        "database_url": stack.database_url,
        "schema": "ingestion",
        "rows_per_call": ROWS_PER_CALL,
    }


def stream_spec(stack: Stack) -> dict[str, Any]:
    """The load generator's spec for ``StreamSamples`` (user and source added per repetition)."""
    return {
        "kind": "samples_stream",
        "target": stack.target("ingestion"),
        "rows_per_chunk": CHUNK_ROWS,
        "chunks_per_call": ROWS_PER_CALL // CHUNK_ROWS,
    }


async def run(stack: Stack, settings: Settings, log: Log) -> dict[str, ArmOutcome]:
    """Measure the three arms interleaved."""
    prober = await stack.sign_up()
    common = {"base_time": BASE_TIME, "concurrency": INGEST_CONCURRENCY}
    arms = [
        DriverArm(
            COPY,
            "row",
            {**common, **copy_spec(stack)},
            stack,
            lambda: samples_table_probe(stack),
            fresh_copy_writer,
        ),
        DriverArm(
            STREAM,
            "row",
            {**common, **stream_spec(stack)},
            stack,
            write_probe(stack, prober, streamed=True),
            fresh_writer(stack),
        ),
        DriverArm(
            REST,
            "row",
            {**common, "kind": "samples_rest_batch", "rows_per_call": ROWS_PER_CALL},
            stack,
            write_probe(stack, prober, streamed=False),
            fresh_writer(stack, rest=True),
        ),
    ]
    return await measure_arms(arms, settings, log)
