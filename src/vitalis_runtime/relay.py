"""Publishing the outbox: committed events go to their Redis stream shard, in outbox order.

Delivery is at least once. A batch is locked, sent to Redis in one pipeline and only then marked
published, in one database transaction: if the relay dies between sending and marking, the next
run sends the batch again and consumers drop the duplicates through their inbox. While Redis is
down nothing is marked, so the outbox keeps everything until Redis is back.

Only one relay per schema publishes at a time (a transaction-level advisory lock): replicas can
all run a relay for availability without reordering one user's events between them. Every relay,
publishing or not, refreshes the backlog gauges (see :mod:`vitalis_runtime.metrics`): on each poll
that finds the outbox empty, and by counting at most every ``backlog_interval`` seconds otherwise, so
a large backlog is not counted again after every batch by every replica.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta

import asyncpg
import redis.asyncio

from vitalis_runtime import errors
from vitalis_runtime.background import run_until_stopped
from vitalis_runtime.db import Database, sql_identifier
from vitalis_runtime.events import Event, StreamNames, translate_redis_errors
from vitalis_runtime.metrics import RelayMetrics, event_metrics

logger = logging.getLogger(__name__)


class OutboxRelay:
    """Moves events from ``<schema>.outbox`` to the producer's Redis streams."""

    def __init__(
        self,
        db: Database,
        redis_client: redis.asyncio.Redis,
        *,
        schema: str,
        streams: StreamNames,
        batch_size: int = 500,
        poll_interval: float = 0.2,
        max_stream_length: int = 1_000_000,
        max_backoff: float = 5.0,
        retention: timedelta = timedelta(days=7),
        purge_interval: float = 3600.0,
        metrics: RelayMetrics | None = None,
        backlog_interval: float = 5.0,
    ) -> None:
        """Configure a relay; ``redis_client`` must return bytes (``decode_responses=False``).

        Published rows are kept for ``retention`` (for inspection and replays), then purged.
        ``metrics`` defaults to the process registry's; the backlog is counted at most every
        ``backlog_interval`` seconds.
        """
        if redis_client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("the relay needs a Redis client with decode_responses=False")
        self._db = db
        self._redis = redis_client
        self._table = f"{sql_identifier(schema)}.outbox"
        self._lock_key = f"vitalis.relay.{schema}"
        self._streams = streams
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._max_stream_length = max_stream_length
        self._max_backoff = max_backoff
        self._retention = retention
        self._purge_interval = purge_interval
        self._metrics = metrics or event_metrics().relay
        self._schema = schema
        self._backlog_interval = backlog_interval
        self._next_backlog_count = 0.0

    async def relay_once(self) -> int:
        """Publish the oldest unpublished batch; return how many events it held.

        Raises ``errors.Unavailable`` when PostgreSQL or Redis cannot be reached; nothing is
        marked published then.
        """
        async with self._db.transaction(user_id=None) as conn:
            if not await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))", self._lock_key
            ):
                # Another replica publishes; report the backlog it is working through.
                await self._observe_backlog(conn)
                return 0
            rows = await conn.fetch(
                f"""SELECT position, event_id, event_type, producer, event_user_id, payload,
                           headers::text AS headers, occur_time
                    FROM {self._table}
                    WHERE published_at IS NULL
                    ORDER BY position
                    LIMIT $1
                    FOR UPDATE SKIP LOCKED""",  # noqa: S608
                self._batch_size,
            )
            if not rows:
                self._metrics.observe_backlog(self._schema, self._streams.producer, 0, 0.0)
                return 0
            try:
                await self._publish([_event_from_row(row) for row in rows])
            except errors.Unavailable:
                # While Redis is away the backlog only grows: keep the gauges telling so.
                await self._observe_backlog(conn)
                raise
            await conn.execute(
                f"UPDATE {self._table} SET published_at = now() WHERE position = ANY($1::bigint[])",  # noqa: S608
                [row["position"] for row in rows],
            )
            await self._observe_backlog(conn)
        self._metrics.published.labels(self._schema, self._streams.producer).inc(len(rows))
        return len(rows)

    async def _observe_backlog(self, conn: asyncpg.Connection) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() < self._next_backlog_count:
            return
        self._next_backlog_count = loop.time() + self._backlog_interval
        (row,) = await conn.fetch(
            f"""SELECT (SELECT count(*) FROM {self._table} WHERE published_at IS NULL) AS backlog,
                       (SELECT extract(epoch FROM clock_timestamp() - occur_time)::float8
                        FROM {self._table} WHERE published_at IS NULL
                        ORDER BY position LIMIT 1) AS oldest_seconds"""  # noqa: S608
        )
        self._metrics.observe_backlog(
            self._schema, self._streams.producer, int(row["backlog"]), max(0.0, row["oldest_seconds"] or 0.0)
        )

    async def _publish(self, events: list[Event]) -> None:
        with translate_redis_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                for event in events:
                    pipe.xadd(
                        self._streams.for_user(event.user_id),
                        event.to_fields(),
                        maxlen=self._max_stream_length,
                        approximate=True,
                    )
                await pipe.execute()

    async def purge_published(self, *, older_than: timedelta, limit: int = 10_000) -> int:
        """Delete up to ``limit`` rows published more than ``older_than`` ago; return how many."""
        async with self._db.transaction(user_id=None) as conn:
            status: str = await conn.execute(
                f"""DELETE FROM {self._table} WHERE position IN (
                        SELECT position FROM {self._table}
                        WHERE published_at < now() - $1::interval LIMIT $2)""",  # noqa: S608
                older_than,
                limit,
            )
        return int(status.rsplit(" ", 1)[-1])

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set, backing off (and logging, never crashing) during outages."""

        async def step() -> bool:
            return await self.relay_once() == self._batch_size

        async def purge() -> None:
            await self.purge_published(older_than=self._retention)

        await run_until_stopped(
            step,
            stop,
            name=f"outbox relay {self._table}",
            idle_delay=self._poll_interval,
            max_backoff=self._max_backoff,
            housekeeping=purge,
            housekeeping_interval=self._purge_interval,
        )


def _event_from_row(row: asyncpg.Record) -> Event:
    return Event(
        id=row["event_id"],
        type=row["event_type"],
        producer=row["producer"],
        user_id=row["event_user_id"],
        payload=bytes(row["payload"]),
        occur_time=row["occur_time"],
        headers=json.loads(row["headers"]),
    )
