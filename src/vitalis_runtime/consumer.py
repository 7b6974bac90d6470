"""Consuming events: Redis consumer groups in front, an inbox table behind, so each event applies once.

For every entry the consumer opens one database transaction (acting for the event's user) that
records ``(consumer group, event id)`` in ``<schema>.inbox`` and runs the handler; only after it
commits is the entry acknowledged. A redelivered entry (the relay published twice, or this
consumer died before acknowledging) finds its inbox row and is acknowledged without running the
handler again.

Each shard stream is read by one consumer of the group at a time (see
:mod:`vitalis_runtime.leases`), so one user's events are handled in order even with several
replicas. A failed entry stays pending and is retried when it has been idle for ``claim_idle_ms`` (by this
or any other consumer of the group: entries of a dead consumer are claimed the same way). Later
entries of the same user in the same batch wait behind it, to keep that user's order. An entry
whose handler has failed on its ``max_deliveries``-th delivery, or that is not an event at all,
is parked on the shard's dead-letter stream with the error, and acknowledged. A database outage
is not the handler's fault: the batch stops, and its entries are retried (once idle for
``claim_idle_ms``), never parked for it.

Every settled entry is counted by outcome (see :mod:`vitalis_runtime.metrics`), and every
``backlog_interval`` seconds each consumer refreshes its group's pending entries and lag over all
shards, the ones other replicas read included, so any pod's gauges describe the whole group.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import redis.asyncio
import redis.exceptions
from opentelemetry import propagate, trace
from redis.typing import EncodableT, FieldT

from vitalis_runtime import errors
from vitalis_runtime.background import run_until_stopped
from vitalis_runtime.db import Database, sql_identifier
from vitalis_runtime.events import Event, MalformedEventError, StreamNames, translate_redis_errors
from vitalis_runtime.leases import StreamLeases
from vitalis_runtime.metrics import ConsumerMetrics, event_metrics

EventHandler = Callable[[asyncpg.Connection, Event], Awaitable[None]]

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


@dataclass(frozen=True)
class _Delivery:
    stream: str
    entry_id: bytes
    fields: Mapping[bytes, bytes]
    deliveries: int


class EventConsumer:
    """One member (``consumer``) of a consumer group (``group``) reading ``streams``."""

    def __init__(
        self,
        db: Database,
        redis_client: redis.asyncio.Redis,
        *,
        schema: str,
        group: str,
        consumer: str,
        streams: Sequence[str],
        handler: EventHandler,
        claim_idle_ms: int = 30000,
        max_deliveries: int = 5,
        batch_size: int = 100,
        block_ms: int = 1000,
        max_backoff: float = 5.0,
        inbox_retention: timedelta = timedelta(days=30),
        purge_interval: float = 3600.0,
        dead_letter_max_length: int = 100_000,
        exclusive: bool = True,
        lease_ms: int = 15000,
        metrics: ConsumerMetrics | None = None,
        backlog_interval: float = 15.0,
        concurrency: int = 4,
        supersede_key: Callable[[Event], Hashable | None] | None = None,
    ) -> None:
        """Configure a consumer; ``redis_client`` must return bytes (``decode_responses=False``).

        ``group`` names what is done with the events (``insights-goal-progress``): each group
        sees every event once, and its inbox rows are kept for ``inbox_retention``, which must
        exceed the time an entry can stay in a stream. ``block_ms`` is how long :meth:`run`
        waits for new entries in one call. With ``exclusive`` (the default) each stream is leased
        to one consumer of the group at a time, for ``lease_ms`` unless renewed; ``consumer``
        must then be unique among the group's live consumers. ``metrics`` defaults to the process
        registry's; the group's backlog gauges are refreshed every ``backlog_interval`` seconds.

        Up to ``concurrency`` users' entries of a batch are handled at once (each user's in order,
        so a user with a long backlog does not hold back the others). ``supersede_key`` lets a
        handler declare events that only the latest of matters: within one user's entries of a
        batch, an event is recorded in the inbox without running the handler when a later one
        has the same (non-``None``) key, as when the handler re-reads the current state anyway.
        """
        if redis_client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("the consumer needs a Redis client with decode_responses=False")
        if max_deliveries < 1:
            raise ValueError("max_deliveries must be at least 1")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._db = db
        self._redis = redis_client
        self._inbox = f"{sql_identifier(schema)}.inbox"
        self._group = group
        self._consumer = consumer
        self._streams = list(streams)
        self._handler = handler
        self._claim_idle_ms = claim_idle_ms
        self._max_deliveries = max_deliveries
        self._batch_size = batch_size
        self._block_ms = block_ms
        self._max_backoff = max_backoff
        self._inbox_retention = inbox_retention
        self._purge_interval = purge_interval
        self._dead_letter_max_length = dead_letter_max_length
        self._groups_ready = False
        self._lease_ms = lease_ms
        self._leases = (
            StreamLeases(redis_client, group=group, consumer=consumer, streams=streams, lease_ms=lease_ms)
            if exclusive
            else None
        )
        self._taking_over: set[str] = set()
        self._metrics = metrics or event_metrics().consumer
        self._backlog_interval = backlog_interval
        self._concurrency = concurrency
        self._supersede_key = supersede_key
        self._next_backlog_refresh = 0.0

    async def consume_once(self, *, block_ms: int | None = None) -> int:
        """Claim stuck entries, read new ones, and process them; return how many were settled.

        Settled means acknowledged: handled, skipped as already handled, or parked. With
        ``block_ms`` the read waits that long for new entries when there are none.
        """
        try:
            with translate_redis_errors():
                await self._ensure_groups()
                if asyncio.get_running_loop().time() >= self._next_backlog_refresh:
                    await self._observe_backlog_safely()
                streams = await self._streams_to_read()
                if not streams:
                    # Every shard is leased to other consumers: wait as a blocking read would.
                    await asyncio.sleep((block_ms or 0) / 1000)
                    return 0
                deliveries = await self._claim_stuck(streams)
                # While a taken-over stream still has older pending entries, newer ones wait.
                caught_up = [stream for stream in streams if stream not in self._taking_over]
                if caught_up:
                    deliveries += await self._read_new(caught_up, None if deliveries else block_ms)
        except redis.exceptions.ResponseError as error:
            if "NOGROUP" in str(error):
                # The stream or group vanished (Redis restarted without persistence): recreate next time.
                self._groups_ready = False
            raise
        return await self._process(deliveries)

    async def _ensure_groups(self) -> None:
        if self._groups_ready:
            return
        for stream in self._streams:
            try:
                await self._redis.xgroup_create(stream, self._group, id="0", mkstream=True)
            except redis.exceptions.ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise
        self._groups_ready = True

    async def _streams_to_read(self) -> list[str]:
        if self._leases is None:
            return self._streams
        changes = await self._leases.refresh()
        self._taking_over = (self._taking_over & set(changes.held)) | set(changes.acquired)
        return changes.held

    async def _claim_stuck(self, streams: Sequence[str]) -> list[_Delivery]:
        claimed: list[_Delivery] = []
        for stream in streams:
            # A stream just taken over may hold entries its previous reader left pending: claim
            # them at once, before any newer entry, so its users' order survives the handover.
            taking_over = stream in self._taking_over
            response = await self._redis.xautoclaim(
                stream,
                self._group,
                self._consumer,
                min_idle_time=0 if taking_over else self._claim_idle_ms,
                start_id="0-0",
                count=self._batch_size,
            )
            if taking_over and _as_bytes(response[0]) == b"0-0":
                self._taking_over.discard(stream)
            entries = [(entry_id, fields) for entry_id, fields in response[1] if fields is not None]
            if not entries:
                continue
            async with self._redis.pipeline(transaction=False) as pipe:
                for entry_id, _ in entries:
                    pipe.xpending_range(stream, self._group, min=entry_id, max=entry_id, count=1)
                pending = await pipe.execute()
            claimed += [
                _Delivery(stream, _as_bytes(entry_id), fields, int(info[0]["times_delivered"]) if info else 1)
                for (entry_id, fields), info in zip(entries, pending, strict=True)
            ]
        return claimed

    async def _read_new(self, streams: Sequence[str], block_ms: int | None) -> list[_Delivery]:
        response: Any = await self._redis.xreadgroup(
            self._group,
            self._consumer,
            dict.fromkeys(streams, ">"),
            count=self._batch_size,
            block=block_ms if block_ms else None,
        )
        return [
            _Delivery(_as_text(stream), _as_bytes(entry_id), fields, 1)
            for stream, entries in _stream_batches(response)
            for entry_id, fields in entries
            if fields is not None
        ]

    async def _process(self, deliveries: list[_Delivery]) -> int:
        """Settle a batch: each user's entries in order, up to ``concurrency`` users at once."""
        lanes: dict[tuple[str, uuid.UUID | None], list[tuple[_Delivery, Event | str]]] = {}
        for delivery in deliveries:
            try:
                event: Event | str = Event.from_fields(delivery.fields)
            except MalformedEventError as error:
                event = str(error)
            user_id = event.user_id if isinstance(event, Event) else None
            lanes.setdefault((delivery.stream, user_id), []).append((delivery, event))
        settled = 0
        slots = asyncio.Semaphore(self._concurrency)
        renewal = _LeaseRenewal(
            self._leases, self._streams, self._lease_ms, asyncio.get_running_loop().time()
        )

        async def run_lane(lane: list[tuple[_Delivery, Event | str]]) -> None:
            nonlocal settled
            async with slots:
                superseded = self._superseded(lane)
                for index, (delivery, event) in enumerate(lane):
                    if delivery.stream in await renewal.lost_streams():
                        return
                    if not await self._settle(delivery, event, run_handler=index not in superseded):
                        # Later entries of this user wait behind the failed one, to keep its order.
                        return
                    settled += 1

        try:
            async with asyncio.TaskGroup() as group:
                for lane in lanes.values():
                    group.create_task(run_lane(lane))
        except BaseExceptionGroup as failure:
            # The first failure (a database or Redis outage) stops the batch; what was not
            # acknowledged stays pending and is delivered again.
            raise failure.exceptions[0] from None
        return settled

    def _superseded(self, lane: Sequence[tuple[_Delivery, Event | str]]) -> set[int]:
        """Positions in ``lane`` whose handling a later entry of the same lane makes redundant."""
        if self._supersede_key is None:
            return set()
        latest: dict[Hashable, int] = {}
        superseded: set[int] = set()
        for index, (delivery, event) in enumerate(lane):
            if isinstance(event, str) or delivery.deliveries > 1:
                continue
            key = self._supersede_key(event)
            if key is None:
                continue
            if key in latest:
                superseded.add(latest[key])
            latest[key] = index
        return superseded

    async def _settle(self, delivery: _Delivery, event: Event | str, *, run_handler: bool = True) -> bool:
        """Handle, skip or park one entry and acknowledge it; False when it stays pending.

        ``event`` is the entry's event, or why it is not one (it is parked at once).
        """
        if isinstance(event, str):
            await self._park(delivery, event)
            return True
        try:
            applied = await self._handle(event, run_handler=run_handler)
        except errors.Unavailable:
            raise
        except Exception as error:
            self._metrics.handler_failures.labels(self._group).inc()
            if delivery.deliveries >= self._max_deliveries:
                logger.exception(
                    "parking event %s (%s) after %d deliveries", event.id, event.type, delivery.deliveries
                )
                await self._park(delivery, f"{type(error).__name__}: {error}")
                return True
            logger.warning(
                "handler of %s failed for event %s (%s), delivery %d of %d: %r",
                self._group,
                event.id,
                event.type,
                delivery.deliveries,
                self._max_deliveries,
                error,
            )
            return False
        with translate_redis_errors():
            await self._redis.xack(delivery.stream, self._group, delivery.entry_id)
        outcome = ("applied" if run_handler else "superseded") if applied else "duplicate"
        self._metrics.handled.labels(self._group, outcome).inc()
        return True

    async def _handle(self, event: Event, *, run_handler: bool = True) -> bool:
        """Record ``event`` in the inbox and apply it unless it was there already; whether it was new.

        Without ``run_handler`` (a later entry supersedes it) the event is only recorded.
        """
        context = propagate.extract(dict(event.headers))
        with tracer.start_as_current_span(
            f"{event.type} process",
            context=context,
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "redis",
                "messaging.operation.type": "process",
                "messaging.consumer.group.name": self._group,
                "messaging.message.id": str(event.id),
            },
        ):
            async with self._db.transaction(user_id=event.user_id) as conn:
                first_time = await conn.fetchval(
                    f"""INSERT INTO {self._inbox} (consumer_group, event_id) VALUES ($1, $2)
                        ON CONFLICT DO NOTHING RETURNING true""",  # noqa: S608
                    self._group,
                    event.id,
                )
                if first_time and run_handler:
                    await self._handler(conn, event)
        return bool(first_time)

    async def _park(self, delivery: _Delivery, error: str) -> None:
        fields: dict[FieldT, EncodableT] = dict(delivery.fields.items())
        fields.update(
            {
                b"error": error.encode(),
                b"source_stream": delivery.stream.encode(),
                b"source_id": delivery.entry_id,
                b"consumer_group": self._group.encode(),
                b"deliveries": str(delivery.deliveries).encode(),
                b"parked_at": datetime.now(UTC).isoformat().encode(),
            }
        )
        with translate_redis_errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xadd(
                    StreamNames.dead_letter(delivery.stream),
                    fields,
                    maxlen=self._dead_letter_max_length,
                    approximate=True,
                )
                pipe.xack(delivery.stream, self._group, delivery.entry_id)
                await pipe.execute()
        self._metrics.dead_lettered.labels(self._group).inc()
        self._metrics.handled.labels(self._group, "parked").inc()

    async def _observe_backlog_safely(self) -> None:
        """Refresh the gauges; a reply this code cannot read must not stop the events flowing."""
        try:
            await self.observe_backlog()
        except (redis.exceptions.ResponseError, KeyError, ValueError, TypeError):
            logger.exception("could not refresh the backlog gauges of %s", self._group)
            self._next_backlog_refresh = asyncio.get_running_loop().time() + self._backlog_interval

    async def observe_backlog(self) -> None:
        """Refresh the group's pending-entries and lag gauges from every shard stream.

        Raises ``errors.Unavailable`` when Redis cannot be reached.
        """
        with translate_redis_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.time()
                for stream in self._streams:
                    pipe.xinfo_groups(stream)
                (seconds, microseconds), *infos = await pipe.execute(raise_on_error=False)
            pending = 0
            last_delivered: dict[str, bytes] = {}
            for stream, groups in zip(self._streams, infos, strict=True):
                if isinstance(groups, Exception):
                    continue  # the stream is not there yet: nothing is waiting in it
                for info in groups:
                    if _as_text(_reply_field(info, "name")) == self._group:
                        pending += int(_reply_field(info, "pending"))
                        last_delivered[stream] = _as_bytes(_reply_field(info, "last-delivered-id"))
            async with self._redis.pipeline(transaction=False) as pipe:
                for stream, entry_id in last_delivered.items():
                    pipe.xrange(stream, min=b"(" + entry_id, max="+", count=1)
                first_undelivered = await pipe.execute()
        # Entry ids start with the Redis clock's milliseconds, so both ages come from the same clock.
        now_ms = int(seconds) * 1000 + int(microseconds) // 1000
        oldest_ms = max(
            (
                now_ms - int(_as_bytes(entries[0][0]).split(b"-")[0])
                for entries in first_undelivered
                if entries
            ),
            default=0,
        )
        self._metrics.pending.labels(self._group).set(pending)
        self._metrics.lag.labels(self._group).set(max(0, oldest_ms) / 1000)
        self._next_backlog_refresh = asyncio.get_running_loop().time() + self._backlog_interval

    async def purge_processed(self, *, older_than: timedelta, limit: int = 10_000) -> int:
        """Forget up to ``limit`` of this group's inbox rows older than ``older_than``."""
        async with self._db.transaction(user_id=None) as conn:
            status: str = await conn.execute(
                f"""DELETE FROM {self._inbox} WHERE (consumer_group, event_id) IN (
                        SELECT consumer_group, event_id FROM {self._inbox}
                        WHERE consumer_group = $1 AND processed_at < now() - $2::interval LIMIT $3)""",  # noqa: S608
                self._group,
                older_than,
                limit,
            )
        return int(status.rsplit(" ", 1)[-1])

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, backing off (and logging, never crashing) during outages."""

        async def step() -> bool:
            return await self.consume_once(block_ms=self._block_ms) > 0

        async def purge() -> None:
            await self.purge_processed(older_than=self._inbox_retention)

        try:
            await run_until_stopped(
                step,
                stop,
                name=f"event consumer {self._group}/{self._consumer}",
                idle_delay=0.0,
                max_backoff=self._max_backoff,
                housekeeping=purge,
                housekeeping_interval=self._purge_interval,
            )
        finally:
            await self.release_streams()

    async def release_streams(self) -> None:
        """Hand this consumer's streams back to the group now (they would otherwise expire)."""
        if self._leases is None:
            return
        try:
            with translate_redis_errors():
                await self._leases.release_all()
        except errors.Unavailable:
            logger.warning("could not release the stream leases of %s/%s", self._group, self._consumer)


class _LeaseRenewal:
    """Renews a consumer's leases while a batch is handled, at most every third of their lifetime."""

    def __init__(
        self, leases: StreamLeases | None, streams: Sequence[str], lease_ms: int, now: float
    ) -> None:
        self._leases = leases
        self._streams = set(streams)
        self._renew_after = lease_ms / 3000
        self._renewed_at = now
        self._lost: set[str] = set()
        self._lock = asyncio.Lock()

    async def lost_streams(self) -> set[str]:
        """The streams no longer held; renews the leases first when they are due."""
        if self._leases is None:
            return self._lost
        async with self._lock:
            loop = asyncio.get_running_loop()
            if loop.time() - self._renewed_at > self._renew_after:
                # A long batch must not outlive the leases it was read under.
                with translate_redis_errors():
                    self._lost = self._streams - set(await self._leases.renew())
                self._renewed_at = loop.time()
        return self._lost


def _stream_batches(response: Any) -> list[tuple[bytes | str, list[Any]]]:
    """XREADGROUP's reply as (stream, entries) pairs, whichever protocol version parsed it."""
    if not response:
        return []
    pairs = response.items() if isinstance(response, dict) else response
    batches: list[tuple[bytes | str, list[Any]]] = []
    for stream, entries in pairs:
        # RESP3 wraps each stream's entries in one more list.
        unwrapped = entries[0] if entries and isinstance(entries[0], list) else entries
        batches.append((stream, unwrapped))
    return batches


def _reply_field(reply: Mapping[Any, Any], name: str) -> Any:
    """A field of a parsed Redis map, whose keys are text (RESP2) or bytes (RESP3)."""
    return reply[name] if name in reply else reply[name.encode()]


def _entry_millis(entry_id: bytes | str) -> int:
    """The Redis clock time (ms) at which the entry with this id was added."""
    return int(_as_bytes(entry_id).split(b"-")[0])


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
