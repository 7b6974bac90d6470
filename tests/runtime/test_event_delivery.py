"""The transactional outbox, the relay and consumers, against the real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
import redis.asyncio
import redis.exceptions
from google.protobuf.wrappers_pb2 import StringValue
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from vitalis_runtime import errors
from vitalis_runtime.consumer import EventConsumer
from vitalis_runtime.db import Database
from vitalis_runtime.events import Event, StreamNames
from vitalis_runtime.leases import StreamLeases
from vitalis_runtime.outbox import add_to_outbox
from vitalis_runtime.relay import OutboxRelay

if TYPE_CHECKING:
    from conftest import MigratedSchema

Handler = Callable[[asyncpg.Connection, Event], Awaitable[None]]


@pytest.fixture
def streams(key_prefix: str) -> StreamNames:
    return StreamNames("testproducer", shard_count=4, prefix=key_prefix)


async def emit(db: Database, user_id: uuid.UUID | None, text: str, **headers: str) -> Event:
    """Commit a note and its event in one transaction, as a service would."""
    async with db.transaction(user_id=user_id) as conn:
        if user_id is not None:
            await conn.execute("INSERT INTO app.notes (user_id, body) VALUES ($1, $2)", user_id, text)
        return await add_to_outbox(
            conn,
            schema="app",
            producer="testproducer",
            message=StringValue(value=text),
            user_id=user_id,
            headers=headers,
        )


async def note_effect(conn: asyncpg.Connection, event: Event) -> None:
    """A handler whose effect is countable: it writes a note as the event's user."""
    await conn.execute(
        "INSERT INTO app.notes (user_id, body) VALUES ($1, $2)",
        event.user_id,
        "seen " + event.unpack(StringValue).value,
    )


async def count_effects(admin_url: str, text: str) -> int:
    conn = await asyncpg.connect(admin_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM app.notes WHERE body = $1", "seen " + text))
    finally:
        await conn.close()


async def unpublished(admin_url: str) -> int:
    conn = await asyncpg.connect(admin_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM app.outbox WHERE published_at IS NULL"))
    finally:
        await conn.close()


async def drain(relay: OutboxRelay) -> int:
    total = 0
    async with asyncio.timeout(10):
        while published := await relay.relay_once():
            total += published
    return total


async def consume_until(consumer: EventConsumer, settled: int, *, pause: float = 0.0) -> None:
    done = 0
    async with asyncio.timeout(15):
        while done < settled:
            done += await consumer.consume_once()
            await asyncio.sleep(pause)


async def pending_count(client: redis.asyncio.Redis, streams: StreamNames, group: str) -> int:
    total = 0
    for stream in streams.all():
        with contextlib.suppress(redis.exceptions.ResponseError):
            total += int((await client.xpending(stream, group))["pending"])
    return total


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def consumer_for(
    db: Database,
    client: redis.asyncio.Redis,
    streams: StreamNames,
    handler: Handler = note_effect,
    *,
    name: str = "c1",
    group: str = "notes-effects",
    **options: Any,
) -> EventConsumer:
    return EventConsumer(
        db,
        client,
        schema="app",
        group=group,
        consumer=name,
        streams=streams.all(),
        handler=handler,
        **options,
    )


class DiesAfterPublishing:
    """A Redis client whose pipelines, once executed, kill the relay's database session.

    That is the relay process dying after its events reached Redis but before the outbox rows
    were marked published.
    """

    def __init__(self, client: redis.asyncio.Redis, admin_url: str, application_name: str) -> None:
        self.connection_pool = client.connection_pool
        self._client = client
        self._admin_url = admin_url
        self._application_name = application_name

    def pipeline(self, transaction: bool = True) -> DiesAfterPublishing.Pipeline:
        return self.Pipeline(self._client.pipeline(transaction=transaction), self)

    async def kill_relay_session(self) -> None:
        admin = await asyncpg.connect(self._admin_url)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                self._application_name,
            )
        finally:
            await admin.close()

    class Pipeline:
        def __init__(self, pipe: Any, owner: DiesAfterPublishing) -> None:
            self._pipe = pipe
            self._owner = owner

        async def __aenter__(self) -> DiesAfterPublishing.Pipeline:
            await self._pipe.__aenter__()
            return self

        async def __aexit__(self, *exc_info: object) -> None:
            await self._pipe.__aexit__(*exc_info)

        def xadd(self, *args: Any, **kwargs: Any) -> None:
            self._pipe.xadd(*args, **kwargs)

        async def execute(self) -> list[Any]:
            replies: list[Any] = await self._pipe.execute()
            await self._owner.kill_relay_session()
            return replies


@pytest.mark.chaos
async def test_event_is_applied_once_when_the_relay_dies_between_publishing_and_marking(
    migrated: MigratedSchema, app_db: Database, redis_client: redis.asyncio.Redis, streams: StreamNames
) -> None:
    alice = uuid.uuid4()
    await emit(app_db, alice, "first")
    doomed_db = await Database.connect(
        migrated.admin_url, role=migrated.app_role, application_name="doomed-relay"
    )
    doomed_redis = DiesAfterPublishing(redis_client, migrated.admin_url, "doomed-relay")
    try:
        with pytest.raises(errors.Unavailable):
            await OutboxRelay(doomed_db, doomed_redis, schema="app", streams=streams).relay_once()  # type: ignore[arg-type]
    finally:
        await doomed_db.close()
    assert await redis_client.xlen(streams.for_user(alice)) == 1
    assert await unpublished(migrated.admin_url) == 1

    assert await drain(OutboxRelay(app_db, redis_client, schema="app", streams=streams)) == 1
    assert await redis_client.xlen(streams.for_user(alice)) == 2
    await consume_until(consumer_for(app_db, redis_client, streams), settled=2)

    assert await count_effects(migrated.admin_url, "first") == 1
    assert await pending_count(redis_client, streams, "notes-effects") == 0
    assert await unpublished(migrated.admin_url) == 0


async def test_rolled_back_transaction_publishes_nothing(
    migrated: MigratedSchema, app_db: Database, redis_client: redis.asyncio.Redis, streams: StreamNames
) -> None:
    alice = uuid.uuid4()

    async def change_then_fail() -> None:
        async with app_db.transaction(user_id=alice) as conn:
            await add_to_outbox(
                conn, schema="app", producer="testproducer", message=StringValue(value="x"), user_id=alice
            )
            raise RuntimeError("validation failed after the event was written")

    with pytest.raises(RuntimeError):
        await change_then_fail()

    assert await OutboxRelay(app_db, redis_client, schema="app", streams=streams).relay_once() == 0
    assert await redis_client.exists(*streams.all()) == 0


async def test_add_to_outbox_outside_a_transaction_is_refused(app_db: Database) -> None:
    async with app_db.pool.acquire() as conn:
        with pytest.raises(RuntimeError, match="inside the transaction"):
            await add_to_outbox(conn, schema="app", producer="p", message=StringValue(), user_id=None)


async def test_trace_context_and_headers_travel_with_the_event(
    app_db: Database, redis_client: redis.asyncio.Redis, streams: StreamNames
) -> None:
    alice = uuid.uuid4()
    with TracerProvider().get_tracer("test").start_as_current_span("request") as span:
        sent = await emit(app_db, alice, "traced", **{"x-request-id": "req-42"})
    producer_trace = span.get_span_context().trace_id
    await drain(OutboxRelay(app_db, redis_client, schema="app", streams=streams))
    seen: list[tuple[Event, int]] = []

    async def record(conn: asyncpg.Connection, event: Event) -> None:
        seen.append((event, trace.get_current_span().get_span_context().trace_id))

    await consume_until(consumer_for(app_db, redis_client, streams, record), settled=1)

    [(received, consumer_trace)] = seen
    assert received == sent
    assert received.headers["x-request-id"] == "req-42"
    assert "traceparent" in received.headers
    assert consumer_trace == producer_trace


@pytest.mark.chaos
async def test_stuck_entry_of_a_dead_consumer_is_claimed_by_another(
    migrated: MigratedSchema, app_db: Database, redis_client: redis.asyncio.Redis, streams: StreamNames
) -> None:
    alice = uuid.uuid4()
    await emit(app_db, alice, "stuck")
    await drain(OutboxRelay(app_db, redis_client, schema="app", streams=streams))
    stream = streams.for_user(alice)
    await redis_client.xgroup_create(stream, "notes-effects", id="0", mkstream=True)
    taken = await redis_client.xreadgroup("notes-effects", "dead", {stream: ">"}, count=10)
    assert len(taken[0][1]) == 1
    live = consumer_for(app_db, redis_client, streams, name="live", claim_idle_ms=300, exclusive=False)

    assert await live.consume_once() == 0
    assert await count_effects(migrated.admin_url, "stuck") == 0
    await asyncio.sleep(0.4)
    assert await live.consume_once() == 1

    assert await count_effects(migrated.admin_url, "stuck") == 1
    assert await pending_count(redis_client, streams, "notes-effects") == 0


@pytest.mark.chaos
async def test_shards_of_a_consumer_that_died_are_taken_over_with_its_pending_entries(
    migrated: MigratedSchema, app_db: Database, redis_client: redis.asyncio.Redis, streams: StreamNames
) -> None:
    alice = uuid.uuid4()
    await emit(app_db, alice, "orphan")
    await drain(OutboxRelay(app_db, redis_client, schema="app", streams=streams))
    in_handler = asyncio.Event()

    async def hang(conn: asyncpg.Connection, event: Event) -> None:
        in_handler.set()
        await asyncio.Event().wait()

    dying = consumer_for(app_db, redis_client, streams, hang, name="dying", lease_ms=500)
    survivor = consumer_for(
        app_db, redis_client, streams, name="survivor", lease_ms=500, claim_idle_ms=60_000
    )
    crashed = asyncio.create_task(dying.consume_once())
    async with asyncio.timeout(5):
        await in_handler.wait()
    crashed.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await crashed

    assert await survivor.consume_once() == 0
    await asyncio.sleep(0.6)
    assert await survivor.consume_once() == 1

    assert await count_effects(migrated.admin_url, "orphan") == 1
    assert await pending_count(redis_client, streams, "notes-effects") == 0


@pytest.mark.chaos
async def test_poison_event_is_parked_on_the_dead_letter_stream_after_max_deliveries(
    migrated: MigratedSchema, app_db: Database, redis_client: redis.asyncio.Redis, streams: StreamNames
) -> None:
    alice = uuid.uuid4()
    poison = await emit(app_db, alice, "poison")
    await emit(app_db, uuid.uuid4(), "healthy")
    await drain(OutboxRelay(app_db, redis_client, schema="app", streams=streams))
    attempts: list[uuid.UUID] = []

    async def fail_on_poison(conn: asyncpg.Connection, event: Event) -> None:
        if event.unpack(StringValue).value == "poison":
            attempts.append(event.id)
            raise ValueError("cannot apply this event")
        await note_effect(conn, event)

    consumer = consumer_for(app_db, redis_client, streams, fail_on_poison, claim_idle_ms=50, max_deliveries=3)
    await consume_until(consumer, settled=2, pause=0.06)

    dead_letter = streams.dead_letter(streams.for_user(alice))
    [(_, parked)] = await redis_client.xrange(dead_letter)
    assert attempts == [poison.id] * 3
    assert Event.from_fields(parked) == poison
    assert b"ValueError: cannot apply this event" in parked[b"error"]
    assert parked[b"deliveries"] == b"3"
    assert parked[b"consumer_group"] == b"notes-effects"
    assert await count_effects(migrated.admin_url, "healthy") == 1
    assert await pending_count(redis_client, streams, "notes-effects") == 0


async def test_entry_that_is_not_an_event_is_parked_at_once(
    app_db: Database, redis_client: redis.asyncio.Redis, streams: StreamNames
) -> None:
    stream = streams.shard(2)
    await redis_client.xadd(stream, {b"garbage": b"1"})
    handled: list[Event] = []

    async def record(conn: asyncpg.Connection, event: Event) -> None:
        handled.append(event)

    await consume_until(consumer_for(app_db, redis_client, streams, record), settled=1)

    [(_, parked)] = await redis_client.xrange(streams.dead_letter(stream))
    assert handled == []
    assert b"not an event" in parked[b"error"]
    assert parked[b"deliveries"] == b"1"


async def test_nothing_is_lost_while_redis_is_unreachable(
    migrated: MigratedSchema, app_db: Database, redis_client: redis.asyncio.Redis, streams: StreamNames
) -> None:
    users = [uuid.uuid4() for _ in range(3)]
    texts = [f"outage-{index}" for index in range(12)]
    for index, text in enumerate(texts):
        await emit(app_db, users[index % 3], text)
    unreachable = redis.asyncio.Redis(
        host="127.0.0.1", port=closed_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    try:
        relay_without_redis = OutboxRelay(app_db, unreachable, schema="app", streams=streams, max_backoff=0.1)
        with pytest.raises(errors.Unavailable):
            await relay_without_redis.relay_once()
        stop = asyncio.Event()
        running = asyncio.create_task(relay_without_redis.run(stop))
        await asyncio.sleep(0.5)
        assert not running.done()
        stop.set()
        async with asyncio.timeout(5):
            await running
    finally:
        await unreachable.aclose()
    assert await unpublished(migrated.admin_url) == len(texts)

    stop = asyncio.Event()
    relay = OutboxRelay(app_db, redis_client, schema="app", streams=streams, poll_interval=0.05)
    relaying = asyncio.create_task(relay.run(stop))
    try:
        await consume_until(consumer_for(app_db, redis_client, streams), settled=len(texts), pause=0.05)
    finally:
        stop.set()
        async with asyncio.timeout(5):
            await relaying

    assert [await count_effects(migrated.admin_url, text) for text in texts] == [1] * len(texts)
    assert await unpublished(migrated.admin_url) == 0


async def test_each_users_events_are_handled_in_order_by_competing_consumers(
    app_db: Database, redis_client: redis.asyncio.Redis, streams: StreamNames
) -> None:
    users = [uuid.uuid4() for _ in range(4)]
    per_user = 12
    for sequence in range(per_user):
        for user in users:
            await emit(app_db, user, f"{user}:{sequence}")
    await drain(OutboxRelay(app_db, redis_client, schema="app", streams=streams, batch_size=5))
    handled: dict[uuid.UUID, list[int]] = {user: [] for user in users}
    everything_handled = asyncio.Event()

    async def record(conn: asyncpg.Connection, event: Event) -> None:
        await asyncio.sleep(random.uniform(0, 0.01))
        assert event.user_id is not None
        handled[event.user_id].append(int(event.unpack(StringValue).value.rsplit(":", 1)[1]))
        if sum(map(len, handled.values())) == len(users) * per_user:
            everything_handled.set()

    stop = asyncio.Event()
    consumers = [
        consumer_for(
            app_db, redis_client, streams, record, name=f"replica-{index}", block_ms=50, batch_size=3
        )
        for index in range(2)
    ]
    running = [asyncio.create_task(consumer.run(stop)) for consumer in consumers]
    try:
        async with asyncio.timeout(20):
            await everything_handled.wait()
    finally:
        stop.set()
        async with asyncio.timeout(5):
            await asyncio.gather(*running)

    assert handled == {user: list(range(per_user)) for user in users}


async def test_old_published_outbox_rows_and_inbox_rows_are_purged(
    migrated: MigratedSchema, app_db: Database, redis_client: redis.asyncio.Redis, streams: StreamNames
) -> None:
    await emit(app_db, uuid.uuid4(), "published")
    relay = OutboxRelay(app_db, redis_client, schema="app", streams=streams)
    await drain(relay)
    await emit(app_db, uuid.uuid4(), "waiting")
    consumer = consumer_for(app_db, redis_client, streams)
    await consume_until(consumer, settled=1)

    assert await relay.purge_published(older_than=timedelta(hours=1)) == 0
    assert await relay.purge_published(older_than=timedelta(0)) == 1
    assert await unpublished(migrated.admin_url) == 1
    assert await consumer.purge_processed(older_than=timedelta(hours=1)) == 0
    assert await consumer.purge_processed(older_than=timedelta(0)) == 1


async def test_leases_are_renewed_while_a_long_batch_is_handled(
    app_db: Database, redis_client: redis.asyncio.Redis, streams: StreamNames
) -> None:
    alice = uuid.uuid4()
    for index in range(4):
        await emit(app_db, alice, f"slow-{index}")
    await drain(OutboxRelay(app_db, redis_client, schema="app", streams=streams))

    async def slow(conn: asyncpg.Connection, event: Event) -> None:
        await asyncio.sleep(0.15)

    worker = consumer_for(app_db, redis_client, streams, slow, name="worker", lease_ms=300)
    rival = StreamLeases(
        redis_client, group="notes-effects", consumer="rival", streams=streams.all(), lease_ms=300
    )
    working = asyncio.create_task(worker.consume_once())
    await asyncio.sleep(0.45)
    rival_holds = (await rival.refresh()).held
    async with asyncio.timeout(5):
        settled = await working

    assert settled == 4
    assert streams.for_user(alice) not in rival_holds


async def test_competing_relays_publish_each_event_once(
    app_db: Database, redis_client: redis.asyncio.Redis, streams: StreamNames
) -> None:
    for index in range(30):
        await emit(app_db, uuid.uuid4(), f"competing-{index}")
    relays = [
        OutboxRelay(app_db, redis_client, schema="app", streams=streams, batch_size=4) for _ in range(3)
    ]

    published = 0
    async with asyncio.timeout(10):
        while counts := await asyncio.gather(*(relay.relay_once() for relay in relays)):
            if not any(counts):
                break
            published += sum(counts)

    entries = [entry for stream in streams.all() for entry in await redis_client.xrange(stream)]
    assert published == 30
    assert sorted(fields[b"id"] for _, fields in entries) == sorted({fields[b"id"] for _, fields in entries})
    assert len(entries) == 30


async def test_order_survives_a_takeover_with_many_pending_entries(
    app_db: Database, redis_client: redis.asyncio.Redis, streams: StreamNames
) -> None:
    alice = uuid.uuid4()
    for index in range(5):
        await emit(app_db, alice, str(index))
    await drain(OutboxRelay(app_db, redis_client, schema="app", streams=streams))
    in_handler = asyncio.Event()

    async def hang(conn: asyncpg.Connection, event: Event) -> None:
        in_handler.set()
        await asyncio.Event().wait()

    dying = consumer_for(app_db, redis_client, streams, hang, name="dying", lease_ms=300)
    crashed = asyncio.create_task(dying.consume_once())
    async with asyncio.timeout(5):
        await in_handler.wait()
    crashed.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await crashed
    for index in range(5, 8):
        await emit(app_db, alice, str(index))
    await drain(OutboxRelay(app_db, redis_client, schema="app", streams=streams))
    seen: list[int] = []

    async def record(conn: asyncpg.Connection, event: Event) -> None:
        seen.append(int(event.unpack(StringValue).value))

    await asyncio.sleep(0.4)
    heir = consumer_for(app_db, redis_client, streams, record, name="heir", lease_ms=300, batch_size=2)
    await consume_until(heir, settled=8)

    assert seen == list(range(8))


async def test_a_user_with_a_slow_event_does_not_hold_back_another_users_events(
    migrated: MigratedSchema, app_db: Database, redis_client: redis.asyncio.Redis, key_prefix: str
) -> None:
    one_shard = StreamNames("testproducer", shard_count=1, prefix=key_prefix)
    alice, bob = uuid.uuid4(), uuid.uuid4()
    await emit(app_db, alice, "alice-slow")
    await emit(app_db, alice, "alice-after")
    await emit(app_db, bob, "bob")
    await drain(OutboxRelay(app_db, redis_client, schema="app", streams=one_shard))
    release_alice, bob_handled = asyncio.Event(), asyncio.Event()
    handled: list[str] = []

    async def handler(conn: asyncpg.Connection, event: Event) -> None:
        text = event.unpack(StringValue).value
        if text == "alice-slow":
            await release_alice.wait()
        handled.append(text)
        if text == "bob":
            bob_handled.set()
        await note_effect(conn, event)

    consumer = consumer_for(app_db, redis_client, one_shard, handler)
    working = asyncio.create_task(consumer.consume_once())
    async with asyncio.timeout(5):
        await bob_handled.wait()
    assert handled == ["bob"]
    release_alice.set()
    async with asyncio.timeout(5):
        assert await working == 3

    assert handled == ["bob", "alice-slow", "alice-after"]
    assert await count_effects(migrated.admin_url, "alice-after") == 1


async def test_an_event_superseded_within_a_batch_is_recorded_but_not_handled(
    migrated: MigratedSchema, app_db: Database, redis_client: redis.asyncio.Redis, streams: StreamNames
) -> None:
    alice = uuid.uuid4()
    texts = ["day-1:a", "day-2:a", "day-1:b", "day-1:c", "other"]
    for text in texts:
        await emit(app_db, alice, text)
    await drain(OutboxRelay(app_db, redis_client, schema="app", streams=streams))

    def day_of(event: Event) -> str | None:
        text = event.unpack(StringValue).value
        return text.split(":")[0] if ":" in text else None

    consumer = consumer_for(app_db, redis_client, streams, supersede_key=day_of)
    await consume_until(consumer, settled=len(texts))

    effects = {text: await count_effects(migrated.admin_url, text) for text in texts}
    assert effects == {"day-1:a": 0, "day-2:a": 1, "day-1:b": 0, "day-1:c": 1, "other": 1}
    conn = await asyncpg.connect(migrated.admin_url)
    try:
        recorded = await conn.fetchval(
            "SELECT count(*) FROM app.inbox WHERE consumer_group = 'notes-effects'"
        )
    finally:
        await conn.close()
    assert recorded == len(texts)
    assert await pending_count(redis_client, streams, "notes-effects") == 0
