"""A bad day: real Redis and PostgreSQL servers stopped under load, slow queries cut by deadlines.

The servers stopped here are embedded ones the tests start and own; the shared ones are never
touched. Each test prints its figure in the summary table.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import grpc
import grpc.aio
import pytest
import redis.asyncio
from google.protobuf.wrappers_pb2 import StringValue

from vitalis_runtime.consumer import EventConsumer
from vitalis_runtime.db import Database
from vitalis_runtime.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from vitalis_runtime.events import Event, StreamNames
from vitalis_runtime.outbox import add_to_outbox
from vitalis_runtime.relay import OutboxRelay
from vitalis_runtime.testing_auth import LocalSigningKey
from vitalis_runtime.testing_grpc import generic_service, running_server

if TYPE_CHECKING:
    from conftest import MigratedSchema

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

Figure = Callable[[str, object, str, bool], None]
REDIS_OUTAGE_SECONDS = 30.0
WRITE_INTERVAL_SECONDS = 0.05
UNAVAILABLE_WITHIN_SECONDS = 3.0


async def emit(db: Database, user_id: uuid.UUID, text: str) -> None:
    async with db.transaction(user_id=user_id) as conn:
        await conn.execute("INSERT INTO app.notes (user_id, body) VALUES ($1, $2)", user_id, text)
        await add_to_outbox(
            conn, schema="app", producer="chaos", message=StringValue(value=text), user_id=user_id
        )


async def note_effect(conn: asyncpg.Connection, event: Event) -> None:
    await conn.execute(
        "INSERT INTO app.notes (user_id, body) VALUES ($1, $2)",
        event.user_id,
        "seen " + event.unpack(StringValue).value,
    )


async def effects(admin_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(admin_url)
    try:
        rows = await conn.fetch(
            "SELECT body, count(*) AS n FROM app.notes WHERE body LIKE 'seen %' GROUP BY body"
        )
    finally:
        await conn.close()
    return {row["body"].removeprefix("seen "): int(row["n"]) for row in rows}


async def test_redis_down_for_thirty_seconds_while_writes_continue_loses_nothing(
    migrated: MigratedSchema, app_db: Database, tmp_path: Path, figure: Figure
) -> None:
    port = free_port()
    server = EmbeddedRedis(tmp_path / "redis", port=port)
    url = server.start()
    client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=2)
    streams = StreamNames("chaos", shard_count=4, prefix=f"chaos:{uuid.uuid4().hex[:8]}")
    relay = OutboxRelay(app_db, client, schema="app", streams=streams, poll_interval=0.05, max_backoff=0.5)
    consumer = EventConsumer(
        app_db,
        client,
        schema="app",
        group="chaos-effects",
        consumer="c1",
        streams=streams.all(),
        handler=note_effect,
        block_ms=200,
        max_backoff=0.5,
    )
    users = [uuid.uuid4() for _ in range(5)]
    written: list[str] = []
    writes_failed = 0
    stop_writing = asyncio.Event()

    async def write() -> None:
        nonlocal writes_failed
        while not stop_writing.is_set():
            text = f"event-{len(written)}"
            try:
                await emit(app_db, users[len(written) % len(users)], text)
                written.append(text)
            except Exception:
                writes_failed += 1
            await asyncio.sleep(WRITE_INTERVAL_SECONDS)

    stop = asyncio.Event()
    tasks = [asyncio.create_task(relay.run(stop)), asyncio.create_task(consumer.run(stop))]
    writer = asyncio.create_task(write())
    try:
        await asyncio.sleep(2)
        server.stop()
        before_outage = len(written)
        await asyncio.sleep(REDIS_OUTAGE_SECONDS)
        during_outage = len(written) - before_outage
        server = EmbeddedRedis(tmp_path / "redis", port=port)
        server.start()
        await asyncio.sleep(2)
        stop_writing.set()
        await writer
        deadline = time.monotonic() + 60
        applied = await effects(migrated.admin_url)
        while len(applied) < len(written) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            applied = await effects(migrated.admin_url)
    finally:
        stop_writing.set()
        stop.set()
        async with asyncio.timeout(15):
            await asyncio.gather(writer, *tasks, return_exceptions=True)
        await client.aclose()
        server.stop()
    lost = len(set(written) - set(applied))
    duplicated = sum(1 for count in applied.values() if count > 1)
    figure(f"events lost after {REDIS_OUTAGE_SECONDS:.0f} s without Redis", lost, "0", lost == 0)
    figure("events applied twice after the outage", duplicated, "0", duplicated == 0)
    assert during_outage > 0
    assert writes_failed == 0
    assert lost == 0
    assert duplicated == 0


QUERY_SERVICE = "vitalis.test.v1.ClockService"


@pytest.fixture
async def own_postgres(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedPostgres, str]]:
    server = EmbeddedPostgres(tmp_path / "postgres")
    url = server.start()
    try:
        yield server, url
    finally:
        server.stop()


async def test_postgres_restart_gives_unavailable_quickly_and_recovers_without_restarting_the_service(
    own_postgres: tuple[EmbeddedPostgres, str], tmp_path: Path, figure: Figure
) -> None:
    server, url = own_postgres
    db = await Database.connect(url, max_size=4, acquire_timeout=2.0, statement_timeout_ms=2000)

    async def now(request: StringValue, context: Any) -> StringValue:
        async with db.transaction(user_id=None, readonly=True) as conn:
            return StringValue(value=str(await conn.fetchval("SELECT now()")))

    handlers = {
        "Now": grpc.unary_unary_rpc_method_handler(now, StringValue.FromString, StringValue.SerializeToString)
    }
    key = LocalSigningKey.generate()
    metadata = (("authorization", f"Bearer {key.mint()}"),)
    async with (
        running_server(
            service_name="clock",
            register=generic_service(QUERY_SERVICE, handlers),
            service_names=[QUERY_SERVICE],
            verifier=key.verifier(),
        ) as running,
        grpc.aio.insecure_channel(running.target) as channel,
    ):
        call = channel.unary_unary(
            f"/{QUERY_SERVICE}/Now", StringValue.SerializeToString, StringValue.FromString
        )
        for _ in range(20):
            await call(StringValue(), metadata=metadata, timeout=5)
        server.stop()
        slowest_failure = 0.0
        codes: set[grpc.StatusCode] = set()
        for _ in range(10):
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call(StringValue(), metadata=metadata, timeout=10)
            slowest_failure = max(slowest_failure, time.monotonic() - started)
            codes.add(raised.value.code())
        restarted = EmbeddedPostgres(tmp_path / "postgres")
        assert restarted.start() == url
        started = time.monotonic()
        recovered_after: float | None = None
        while time.monotonic() - started < 30:
            try:
                await call(StringValue(), metadata=metadata, timeout=5)
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.2)
                continue
            recovered_after = time.monotonic() - started
            break
        await db.close()
    figure(
        "slowest refusal while PostgreSQL is down (s)", f"{slowest_failure:.2f}", "< 3", slowest_failure < 3
    )
    figure(
        "recovery after PostgreSQL returns (s)",
        f"{recovered_after:.2f}" if recovered_after else "-",
        "< 30",
        recovered_after is not None,
    )
    assert codes == {grpc.StatusCode.UNAVAILABLE}
    assert slowest_failure < UNAVAILABLE_WITHIN_SECONDS
    assert recovered_after is not None


async def test_a_deadline_cancels_the_database_work_it_started(
    admin_database_url: str, figure: Figure
) -> None:
    db = await Database.connect(admin_database_url, application_name="deadline-probe")
    marker = f"deadline-{uuid.uuid4().hex[:8]}"

    async def slow(request: StringValue, context: Any) -> StringValue:
        async with db.transaction(user_id=None) as conn:
            await conn.execute(f"SELECT pg_sleep(20) /* {marker} */")
        return StringValue(value="finished")

    handlers = {
        "Slow": grpc.unary_unary_rpc_method_handler(
            slow, StringValue.FromString, StringValue.SerializeToString
        )
    }
    key = LocalSigningKey.generate()
    try:
        async with (
            running_server(
                service_name="slow",
                register=generic_service(QUERY_SERVICE, handlers),
                service_names=[QUERY_SERVICE],
                verifier=key.verifier(),
            ) as running,
            grpc.aio.insecure_channel(running.target) as channel,
        ):
            call = channel.unary_unary(
                f"/{QUERY_SERVICE}/Slow", StringValue.SerializeToString, StringValue.FromString
            )
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call(StringValue(), metadata=(("authorization", f"Bearer {key.mint()}"),), timeout=0.5)
            assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            cut_after: float | None = None
            started = time.monotonic()
            admin = await asyncpg.connect(admin_database_url)
            try:
                while time.monotonic() - started < 10:
                    running_queries = await admin.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1",
                        f"%{marker}%",
                    )
                    if running_queries == 0:
                        cut_after = time.monotonic() - started
                        break
                    await asyncio.sleep(0.1)
            finally:
                await admin.close()
    finally:
        await db.close()
    figure(
        "database work left running after the deadline (s)",
        f"{cut_after:.2f}" if cut_after else "-",
        "< 10",
        cut_after is not None,
    )
    assert cut_after is not None
