"""The event pipeline's metrics, read from a registry while a real relay and consumer run.

PostgreSQL and Redis are the real servers; each test counts into a registry of its own.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
import redis.asyncio
from google.protobuf.wrappers_pb2 import StringValue
from prometheus_client import CollectorRegistry

from vitalis_runtime import errors
from vitalis_runtime.consumer import EventConsumer
from vitalis_runtime.db import Database
from vitalis_runtime.events import Event, StreamNames
from vitalis_runtime.metrics import EventMetrics, event_metrics
from vitalis_runtime.outbox import add_to_outbox
from vitalis_runtime.relay import OutboxRelay

if TYPE_CHECKING:
    from conftest import MigratedSchema

PRODUCER = "metricsproducer"
GROUP = "notes-metrics"
RELAY_LABELS = {"schema": "app", "producer": PRODUCER}


@pytest.fixture
def streams(key_prefix: str) -> StreamNames:
    return StreamNames(PRODUCER, shard_count=2, prefix=key_prefix)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> EventMetrics:
    return event_metrics(registry)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A sample's value; 0 for a labelled child that was never touched."""
    return registry.get_sample_value(name, labels) or 0.0


async def emit(db: Database, user_id: uuid.UUID, text: str) -> Event:
    async with db.transaction(user_id=user_id) as conn:
        return await add_to_outbox(
            conn, schema="app", producer=PRODUCER, message=StringValue(value=text), user_id=user_id
        )


def relay_for(
    db: Database, client: redis.asyncio.Redis, streams: StreamNames, metrics: EventMetrics, **options: Any
) -> OutboxRelay:
    return OutboxRelay(
        db,
        client,
        schema="app",
        streams=streams,
        metrics=metrics.relay,
        **{"backlog_interval": 0.0, **options},
    )


class Handler:
    """Writes nothing; refuses events whose text is ``poison`` and, while ``failing``, every event."""

    def __init__(self) -> None:
        self.failing = False
        self.seen: list[str] = []

    async def __call__(self, conn: asyncpg.Connection, event: Event) -> None:
        text = event.unpack(StringValue).value
        if self.failing or text == "poison":
            raise RuntimeError(f"cannot handle {text}")
        self.seen.append(text)


def consumer_for(
    db: Database,
    client: redis.asyncio.Redis,
    streams: StreamNames,
    metrics: EventMetrics,
    handler: Handler,
    **options: Any,
) -> EventConsumer:
    return EventConsumer(
        db,
        client,
        schema="app",
        group=GROUP,
        consumer="c1",
        streams=streams.all(),
        handler=handler,
        metrics=metrics.consumer,
        **options,
    )


async def settle(consumer: EventConsumer, count: int) -> None:
    done = 0
    async with asyncio.timeout(10):
        while done < count:
            done += await consumer.consume_once()


async def test_relay_reports_its_backlog_each_poll_and_counts_what_it_publishes(
    app_db: Database,
    redis_client: redis.asyncio.Redis,
    streams: StreamNames,
    metrics: EventMetrics,
    registry: CollectorRegistry,
) -> None:
    for text in ("a", "b", "c"):
        await emit(app_db, uuid.uuid4(), text)
    await asyncio.sleep(0.05)
    relay = relay_for(app_db, redis_client, streams, metrics, batch_size=2)

    assert await relay.relay_once() == 2
    assert value(registry, "vitalis_outbox_unpublished_events", **RELAY_LABELS) == 1
    assert value(registry, "vitalis_outbox_oldest_unpublished_seconds", **RELAY_LABELS) >= 0.05
    assert value(registry, "vitalis_outbox_published_events_total", **RELAY_LABELS) == 2

    assert await relay.relay_once() == 1
    assert await relay.relay_once() == 0
    assert value(registry, "vitalis_outbox_unpublished_events", **RELAY_LABELS) == 0
    assert value(registry, "vitalis_outbox_oldest_unpublished_seconds", **RELAY_LABELS) == 0
    assert value(registry, "vitalis_outbox_published_events_total", **RELAY_LABELS) == 3


async def test_a_large_backlog_is_counted_at_most_once_per_interval_and_zeroed_when_drained(
    app_db: Database,
    redis_client: redis.asyncio.Redis,
    streams: StreamNames,
    metrics: EventMetrics,
    registry: CollectorRegistry,
) -> None:
    for text in ("a", "b", "c"):
        await emit(app_db, uuid.uuid4(), text)
    relay = relay_for(app_db, redis_client, streams, metrics, batch_size=1, backlog_interval=60.0)

    assert await relay.relay_once() == 1
    assert value(registry, "vitalis_outbox_unpublished_events", **RELAY_LABELS) == 2
    assert await relay.relay_once() == 1
    assert await relay.relay_once() == 1
    # Not counted again within the interval ...
    assert value(registry, "vitalis_outbox_unpublished_events", **RELAY_LABELS) == 2
    # ... but a poll that finds the outbox empty says so at once.
    assert await relay.relay_once() == 0
    assert value(registry, "vitalis_outbox_unpublished_events", **RELAY_LABELS) == 0
    assert value(registry, "vitalis_outbox_published_events_total", **RELAY_LABELS) == 3


async def test_relay_waiting_for_the_lock_reports_the_backlog_it_does_not_publish(
    migrated: MigratedSchema,
    app_db: Database,
    redis_client: redis.asyncio.Redis,
    streams: StreamNames,
    metrics: EventMetrics,
    registry: CollectorRegistry,
) -> None:
    await emit(app_db, uuid.uuid4(), "a")
    await emit(app_db, uuid.uuid4(), "b")
    publishing_elsewhere = await asyncpg.connect(migrated.admin_url)
    try:
        await publishing_elsewhere.execute(
            "SELECT pg_advisory_lock(hashtextextended('vitalis.relay.app', 0))"
        )

        assert await relay_for(app_db, redis_client, streams, metrics).relay_once() == 0
    finally:
        await publishing_elsewhere.close()

    assert value(registry, "vitalis_outbox_unpublished_events", **RELAY_LABELS) == 2
    assert value(registry, "vitalis_outbox_oldest_unpublished_seconds", **RELAY_LABELS) > 0
    assert value(registry, "vitalis_outbox_published_events_total", **RELAY_LABELS) == 0


async def test_backlog_is_reported_growing_while_redis_is_unreachable(
    app_db: Database, streams: StreamNames, metrics: EventMetrics, registry: CollectorRegistry
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    unreachable = redis.asyncio.Redis(host="127.0.0.1", port=closed_port, socket_connect_timeout=1)
    relay = relay_for(app_db, unreachable, streams, metrics)
    try:
        for expected in (1, 2):
            await emit(app_db, uuid.uuid4(), f"event {expected}")
            with pytest.raises(errors.Unavailable):
                await relay.relay_once()
            assert value(registry, "vitalis_outbox_unpublished_events", **RELAY_LABELS) == expected
    finally:
        await unreachable.aclose()
    assert value(registry, "vitalis_outbox_published_events_total", **RELAY_LABELS) == 0


async def test_consumer_counts_applied_duplicate_and_parked_events_and_failures(
    migrated: MigratedSchema,
    app_db: Database,
    redis_client: redis.asyncio.Redis,
    streams: StreamNames,
    metrics: EventMetrics,
    registry: CollectorRegistry,
) -> None:
    replayed = [await emit(app_db, uuid.uuid4(), text) for text in ("first", "second")]
    await emit(app_db, uuid.uuid4(), "poison")
    relay = relay_for(app_db, redis_client, streams, metrics)
    handler = Handler()
    consumer = consumer_for(app_db, redis_client, streams, metrics, handler, max_deliveries=1)

    await relay.relay_once()
    await settle(consumer, 3)
    # The relay sends two events again, as after dying between publishing and marking.
    admin = await asyncpg.connect(migrated.admin_url)
    try:
        await admin.execute(
            "UPDATE app.outbox SET published_at = NULL WHERE event_id = ANY($1::uuid[])",
            [event.id for event in replayed],
        )
    finally:
        await admin.close()
    await relay.relay_once()
    await settle(consumer, 2)

    assert sorted(handler.seen) == ["first", "second"]
    handled = "vitalis_consumer_events_handled_total"
    assert value(registry, handled, consumer_group=GROUP, outcome="applied") == 2
    assert value(registry, handled, consumer_group=GROUP, outcome="duplicate") == 2
    assert value(registry, handled, consumer_group=GROUP, outcome="parked") == 1
    assert value(registry, "vitalis_consumer_handler_failures_total", consumer_group=GROUP) == 1
    assert value(registry, "vitalis_consumer_dead_lettered_events_total", consumer_group=GROUP) == 1
    assert value(registry, "vitalis_outbox_published_events_total", **RELAY_LABELS) == 5


async def test_entry_that_is_not_an_event_counts_as_dead_lettered_without_a_handler_failure(
    redis_client: redis.asyncio.Redis,
    app_db: Database,
    streams: StreamNames,
    metrics: EventMetrics,
    registry: CollectorRegistry,
) -> None:
    consumer = consumer_for(app_db, redis_client, streams, metrics, Handler())
    await consumer.consume_once()
    await redis_client.xadd(streams.shard(1), {b"garbage": b"1"})

    await settle(consumer, 1)

    assert value(registry, "vitalis_consumer_dead_lettered_events_total", consumer_group=GROUP) == 1
    assert (
        value(registry, "vitalis_consumer_events_handled_total", consumer_group=GROUP, outcome="parked") == 1
    )
    assert value(registry, "vitalis_consumer_handler_failures_total", consumer_group=GROUP) == 0


async def test_consumer_reports_its_groups_pending_entries_and_lag(
    app_db: Database,
    redis_client: redis.asyncio.Redis,
    streams: StreamNames,
    metrics: EventMetrics,
    registry: CollectorRegistry,
) -> None:
    handler = Handler()
    consumer = consumer_for(
        app_db, redis_client, streams, metrics, handler, claim_idle_ms=0, backlog_interval=0.0, batch_size=10
    )
    await consumer.consume_once()
    assert value(registry, "vitalis_consumer_pending_entries", consumer_group=GROUP) == 0
    assert value(registry, "vitalis_consumer_lag_seconds", consumer_group=GROUP) == 0

    for text in ("a", "b", "c"):
        await emit(app_db, uuid.uuid4(), text)
    await relay_for(app_db, redis_client, streams, metrics).relay_once()
    await asyncio.sleep(0.2)
    await consumer.observe_backlog()
    # Published, not yet read: the group lags by the age of the oldest entry.
    assert value(registry, "vitalis_consumer_lag_seconds", consumer_group=GROUP) >= 0.2
    assert value(registry, "vitalis_consumer_pending_entries", consumer_group=GROUP) == 0

    handler.failing = True
    assert await consumer.consume_once() == 0
    await consumer.observe_backlog()
    # Read and failed: no longer lagging, but pending until handled.
    assert value(registry, "vitalis_consumer_lag_seconds", consumer_group=GROUP) == 0
    assert value(registry, "vitalis_consumer_pending_entries", consumer_group=GROUP) == 3
    assert value(registry, "vitalis_consumer_handler_failures_total", consumer_group=GROUP) == 3

    handler.failing = False
    await settle(consumer, 3)
    # consume_once refreshes the gauges itself when they are due (every call, here).
    await consumer.consume_once()
    assert value(registry, "vitalis_consumer_pending_entries", consumer_group=GROUP) == 0
    assert (
        value(registry, "vitalis_consumer_events_handled_total", consumer_group=GROUP, outcome="applied") == 3
    )


async def test_event_metrics_are_labelled_by_schema_producer_consumer_group_and_outcome_only(
    app_db: Database,
    redis_client: redis.asyncio.Redis,
    streams: StreamNames,
    metrics: EventMetrics,
    registry: CollectorRegistry,
) -> None:
    await emit(app_db, uuid.uuid4(), "poison")
    await emit(app_db, uuid.uuid4(), "fine")
    await relay_for(app_db, redis_client, streams, metrics).relay_once()
    consumer = consumer_for(app_db, redis_client, streams, metrics, Handler(), max_deliveries=1)
    await settle(consumer, 2)

    label_names = {
        label for family in registry.collect() for sample in family.samples for label in sample.labels
    }
    families = {family.name for family in registry.collect()}

    assert label_names == {"schema", "producer", "consumer_group", "outcome"}
    assert event_metrics(registry) is metrics
    assert len(families) == 8


async def test_pending_entries_and_lag_are_read_over_resp3_too(
    app_db: Database,
    redis_client: redis.asyncio.Redis,
    redis_url: str,
    streams: StreamNames,
    metrics: EventMetrics,
    registry: CollectorRegistry,
) -> None:
    resp3 = redis.asyncio.Redis.from_url(redis_url, protocol=3)
    try:
        handler = Handler()
        handler.failing = True
        consumer = consumer_for(app_db, resp3, streams, metrics, handler)
        await consumer.consume_once()
        await emit(app_db, uuid.uuid4(), "a")
        await emit(app_db, uuid.uuid4(), "b")
        await relay_for(app_db, redis_client, streams, metrics).relay_once()
        await asyncio.sleep(0.1)

        await consumer.observe_backlog()
        assert value(registry, "vitalis_consumer_lag_seconds", consumer_group=GROUP) >= 0.1

        assert await consumer.consume_once() == 0
        await consumer.observe_backlog()
        assert value(registry, "vitalis_consumer_pending_entries", consumer_group=GROUP) == 2
        assert value(registry, "vitalis_consumer_lag_seconds", consumer_group=GROUP) == 0
    finally:
        await resp3.aclose()
