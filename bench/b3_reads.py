"""B3: REST reads through Envoy + JWT against the FastAPI + uvicorn + asyncpg + PyJWT peer.

The 30-day daily aggregate: one user's heart rate, one sample every five minutes for 30 days (8,640
rows, a watch's background rate, written by raw COPY before the arms run), read as day buckets — ingestion's
``GET /v1/users/{id}/samples:queryBuckets`` through the gateway vs the peer's same route running
ingestion's own bucket SQL (see :mod:`bench.peer`). The biomarker history: 60 panels written
through biomarkers' ``CreatePanel`` (glucose, HbA1c and LDL, a week apart), then glucose's history,
``GET /v1/users/{id}/panels/-/markers?biomarker=biomarkers/glucose`` (biomarkers' ``ListMarkers``)
vs the peer's same route running biomarkers' marker query.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import httpx

from bench.report import ArmOutcome, Bound, Metric, Target, Unmeasurable
from bench.runner import DriverArm, Log, Settings, measure_arms, rpc_probe
from bench.stack import BenchUser, Stack
from vitalis.biomarkers.v1 import panel_pb2, panel_service_pb2, panel_service_pb2_grpc
from vitalis.ingestion.v1 import sample_pb2, sample_service_pb2
from vitalis_runtime.embedded import free_port

WINDOW_START = datetime(2025, 11, 1, tzinfo=UTC)
DAYS = 30
HEART_RATE_CODE = 1
READ_CONCURRENCY = 4
SAMPLE_EVERY_MINUTES = 5
HISTORY_PANELS = 60
DAILY_VITALIS, DAILY_PEER = "B3 daily aggregate: vitalis", "B3 daily aggregate: fastapi peer"
HISTORY_VITALIS, HISTORY_PEER = "B3 biomarker history: vitalis", "B3 biomarker history: fastapi peer"
QUERY_BUCKETS = "/vitalis.ingestion.v1.SampleService/QuerySampleBuckets"
LIST_MARKERS = "/vitalis.biomarkers.v1.PanelService/ListMarkers"

TARGETS = (
    Target(
        "B3",
        "30-day daily aggregate: throughput vs FastAPI peer",
        arm=DAILY_VITALIS,
        reference=DAILY_PEER,
        value=1.0,
        why_missed=(
            "both sides spend ~90 % of their CPU in the same PostgreSQL query, so the ratio sits at "
            "parity within the run-to-run noise"
        ),
    ),
    Target(
        "B3",
        "30-day daily aggregate: p99 vs FastAPI peer",
        arm=DAILY_VITALIS,
        reference=DAILY_PEER,
        metric=Metric.P99,
        bound=Bound.AT_MOST,
        value=1.2,
    ),
    Target(
        "B3",
        "biomarker history: throughput vs FastAPI peer",
        arm=HISTORY_VITALIS,
        reference=HISTORY_PEER,
        value=1.0,
        why_missed=(
            "a cheap query: the fixed cost per call dominates, REST transcoding in Envoy plus grpc.aio "
            "and protobuf in the service against one uvicorn process answering JSON directly"
        ),
    ),
    Target(
        "B3",
        "biomarker history: p99 vs FastAPI peer",
        arm=HISTORY_VITALIS,
        reference=HISTORY_PEER,
        metric=Metric.P99,
        bound=Bound.AT_MOST,
        value=1.2,
    ),
)


async def seed_heart_rate(stack: Stack, user: BenchUser) -> None:
    """A sample every five minutes over the window, COPY'd as the table owner (the read is measured)."""
    readings = DAYS * 24 * 60 // SAMPLE_EVERY_MINUTES
    records = [
        (
            user.user_id,
            HEART_RATE_CODE,
            "bench-seed",
            WINDOW_START + timedelta(minutes=i * SAMPLE_EVERY_MINUTES),
            WINDOW_START + timedelta(minutes=i * SAMPLE_EVERY_MINUTES),
            uuid.uuid4(),
            55.0 + (i * 7919) % 60,
        )
        for i in range(readings)
    ]
    connection = await asyncpg.connect(stack.database_url)
    try:
        await connection.execute("SET search_path = ingestion")
        await connection.execute(
            "SELECT ensure_sample_partitions($1::date[])",
            [WINDOW_START.date(), (WINDOW_START + timedelta(days=DAYS)).date()],
        )
        await connection.copy_records_to_table(
            "samples",
            schema_name="ingestion",
            columns=("user_id", "metric", "source_id", "start_time", "end_time", "sample_uid", "value"),
            records=records,
        )
        await connection.execute("ANALYZE ingestion.samples")
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def running_peer(stack: Stack) -> AsyncIterator[tuple[str, int]]:
    """The FastAPI peer on a free loopback port: its base URL and pid."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.peer",
        "--port",
        str(port),
        "--database-url",
        stack.database_url,
        "--jwks-url",
        f"{stack.gateway_url}/.well-known/jwks.json",
        stdin=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            for _ in range(150):
                with contextlib.suppress(httpx.TransportError):
                    await client.get(f"{url}/docs")
                    break
                if process.returncode is not None:
                    raise RuntimeError(f"the FastAPI peer exited with status {process.returncode}")
                await asyncio.sleep(0.2)
        yield url, process.pid
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


class WithPeer:
    """The stack's processes plus the peer's."""

    def __init__(self, stack: Stack, peer_pid: int) -> None:
        self._stack, self._peer_pid = stack, peer_pid

    async def all_processes(self) -> dict[str, list[int]]:
        """Every process that does work, the peer included."""
        return {**await self._stack.all_processes(), "fastapi peer": [self._peer_pid]}


def bucket_query(user: BenchUser) -> str:
    """The query string of the 30-day read (REST names of QuerySampleBucketsRequest)."""
    end = WINDOW_START + timedelta(days=DAYS)
    return (
        f"/v1/{user.name}/samples:queryBuckets?metricType=METRIC_TYPE_HEART_RATE&width=BUCKET_WIDTH_DAY"
        f"&interval.startTime={WINDOW_START.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        f"&interval.endTime={end.strftime('%Y-%m-%dT%H:%M:%SZ')}&timeZone=UTC"
    )


async def run(stack: Stack, settings: Settings, log: Log) -> dict[str, ArmOutcome]:
    """Seed, start the peer, measure the arms interleaved."""
    user = await stack.sign_up()
    await seed_heart_rate(stack, user)
    request = sample_service_pb2.QuerySampleBucketsRequest(
        parent=user.name, metric_type=HEART_RATE_CODE, width=sample_pb2.BUCKET_WIDTH_DAY, time_zone="UTC"
    )
    request.interval.start_time.FromDatetime(WINDOW_START)
    request.interval.end_time.FromDatetime(WINDOW_START + timedelta(days=DAYS))
    daily_probe = rpc_probe(
        stack.target("ingestion"),
        QUERY_BUCKETS,
        request.SerializeToString(),
        user.metadata,
        service="ingestion",
    )
    history_request = panel_service_pb2.ListMarkersRequest(
        parent=f"{user.name}/panels/-", biomarker="biomarkers/glucose"
    )
    history_probe = rpc_probe(
        stack.target("biomarkers"),
        LIST_MARKERS,
        history_request.SerializeToString(),
        user.metadata,
        service="biomarkers",
    )
    outcomes: dict[str, ArmOutcome] = {}
    async with running_peer(stack) as (peer_url, peer_pid):
        processes = WithPeer(stack, peer_pid)
        path = bucket_query(user)
        read = {"kind": "http", "method": "GET", "headers": user.bearer, "concurrency": READ_CONCURRENCY}
        arms = [
            DriverArm(
                DAILY_VITALIS,
                "req",
                {**read, "url": stack.gateway_url + path},
                processes,
                daily_probe,
            ),
            DriverArm(
                DAILY_PEER,
                "req",
                {**read, "url": peer_url + path},
                processes,
            ),
        ]
        outcomes.update(await measure_arms(arms, settings, log))
        reason = await history_probe()
        if reason is not None:
            outcomes[HISTORY_VITALIS] = Unmeasurable(HISTORY_VITALIS, reason)
            outcomes[HISTORY_PEER] = Unmeasurable(HISTORY_PEER, reason)
            return outcomes
        await seed_panels(stack, user)
        history = f"/v1/{user.name}/panels/-/markers?biomarker=biomarkers/glucose"
        arms = [
            DriverArm(HISTORY_VITALIS, "req", {**read, "url": stack.gateway_url + history}, processes),
            DriverArm(HISTORY_PEER, "req", {**read, "url": peer_url + history}, processes),
        ]
        outcomes.update(await measure_arms(arms, settings, log))
    return outcomes


async def seed_panels(stack: Stack, user: BenchUser) -> None:
    """Weekly panels through biomarkers' own CreatePanel, so the history is what the service wrote."""
    async with grpc.aio.insecure_channel(stack.target("biomarkers")) as channel:
        stub = panel_service_pb2_grpc.PanelServiceStub(channel)
        metadata = tuple((k, v) for k, v in user.metadata)

        async def create(week: int) -> None:
            panel = panel_pb2.Panel(
                markers=[
                    panel_pb2.Marker(
                        biomarker="biomarkers/glucose", value=80 + week % 30, reported_unit="mg/dL"
                    ),
                    panel_pb2.Marker(biomarker="biomarkers/hemoglobin-a1c", value=5.2, reported_unit="%"),
                    panel_pb2.Marker(
                        biomarker="biomarkers/ldl-cholesterol-direct",
                        value=100 + week % 20,
                        reported_unit="mg/dL",
                    ),
                ]
            )
            panel.collection_time.FromDatetime(WINDOW_START - timedelta(weeks=week))
            await stub.CreatePanel(
                panel_service_pb2.CreatePanelRequest(parent=user.name, panel=panel),
                metadata=metadata,
                timeout=30,
            )

        for start in range(0, HISTORY_PANELS, 10):
            await asyncio.gather(*(create(week) for week in range(start, start + 10)))
