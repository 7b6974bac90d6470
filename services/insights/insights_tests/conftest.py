"""Fixtures of the insights tests: a migrated database, the service in-process, producers' outboxes.

Events are published the way ingestion and biomarkers publish them: written to the producer's
outbox table (the runtime's migrations give every schema one) inside a transaction, then moved to
the producer's Redis streams by the runtime's :class:`OutboxRelay`. Values those events announce
are served by a stand-in for ingestion that speaks ingestion's own DailySummaryService contract
and accepts only service tokens.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import grpc
import pytest
import redis.asyncio
from google.protobuf.message import Message

from vitalis.ingestion.v1 import (
    daily_summary_pb2,
    daily_summary_service_pb2,
    daily_summary_service_pb2_grpc,
    events_pb2,
    metric_pb2,
)
from vitalis_client import create_channel
from vitalis_insights.server import create_insights_server
from vitalis_insights.settings import InsightsSettings
from vitalis_runtime.bootstrap import Dependencies, ServiceParts, open_dependencies
from vitalis_runtime.db import Database
from vitalis_runtime.errors import NotFound
from vitalis_runtime.events import StreamNames
from vitalis_runtime.migrations import load_migrations, migrate
from vitalis_runtime.outbox import add_to_outbox
from vitalis_runtime.relay import OutboxRelay
from vitalis_runtime.service_auth import ServiceTokenVerifier
from vitalis_runtime.testing_auth import LocalSigningKey
from vitalis_runtime.testing_grpc import running_server

SERVICE_SECRET = "a-service-token-secret-of-at-least-32-characters"
PAGE_SECRET = "a-page-token-secret-of-at-least-32-characters!"
SHARDS = 2


@dataclass
class Platform:
    """What an insights test runs against."""

    admin_url: str
    app_role: str
    redis_url: str
    prefix: str
    key: LocalSigningKey
    ingestion_target: str
    summaries: dict[str, daily_summary_pb2.DailySummary]
    producer_db: Database
    redis: redis.asyncio.Redis
    relays: dict[str, OutboxRelay] = field(default_factory=dict)

    def settings(self, consumer_name: str = "replica-a", **overrides: Any) -> InsightsSettings:
        """Settings of one insights replica."""
        values: dict[str, Any] = {
            "database_url": self.admin_url,
            "database_role": self.app_role,
            "redis_url": self.redis_url,
            "page_token_secret": PAGE_SECRET,
            "service_token_secret": SERVICE_SECRET,
            "ingestion_target": self.ingestion_target,
            "grpc_host": "127.0.0.1",
            "grpc_port": 0,
            "event_shards": SHARDS,
            "event_stream_prefix": self.prefix,
            "consumer_name": consumer_name,
            "event_lease_ms": 2000,
            "log_format": "console",
        }
        values.update(overrides)
        return InsightsSettings(**values)

    async def publish(self, producer: str, user_id: uuid.UUID, message: Message) -> None:
        """Commit an event to the producer's outbox and relay it to its streams."""
        async with self.producer_db.transaction(user_id=user_id) as conn:
            await add_to_outbox(conn, schema=producer, producer=producer, message=message, user_id=user_id)
        relay = self.relays.setdefault(
            producer,
            OutboxRelay(
                self.producer_db,
                self.redis,
                schema=producer,
                streams=StreamNames(producer, SHARDS, self.prefix),
            ),
        )
        while await relay.relay_once():
            pass

    def add_night(
        self, user_id: uuid.UUID, day: date, *, resting_hr: float, asleep_minutes: float = 480
    ) -> str:
        """Store a merged daily summary in the ingestion stand-in; return its name."""
        name = f"users/{user_id}/dailySummaries/{day.isoformat()}"
        summary = daily_summary_pb2.DailySummary(name=name)
        summary.date.year, summary.date.month, summary.date.day = day.year, day.month, day.day
        summary.metrics.add(
            metric_type=metric_pb2.METRIC_TYPE_RESTING_HEART_RATE,
            unit="/min",
            count=1,
            min=resting_hr,
            avg=resting_hr,
            max=resting_hr,
        )
        summary.sleep.session_count = 1
        summary.sleep.asleep_duration.FromSeconds(int(asleep_minutes * 60))
        summary.sleep.in_bed_duration.FromSeconds(int(asleep_minutes * 60) + 1800)
        self.summaries[name] = summary
        return name

    async def publish_night(self, user_id: uuid.UUID, day: date, *, resting_hr: float) -> None:
        """A night as ingestion announces it: the summary stored, then DailySummaryUpdated."""
        name = self.add_night(user_id, day, resting_hr=resting_hr)
        event = events_pb2.DailySummaryUpdated(
            user=f"users/{user_id}",
            daily_summary=name,
            changed_metric_types=[metric_pb2.METRIC_TYPE_RESTING_HEART_RATE],
            sleep_changed=True,
        )
        event.date.year, event.date.month, event.date.day = day.year, day.month, day.day
        event.occur_time.FromDatetime(datetime.now(UTC))
        await self.publish("ingestion", user_id, event)

    async def admin_fetchval(self, query: str, *args: Any) -> Any:
        """A value read as the superuser (to observe state, bypassing RLS)."""
        conn = await asyncpg.connect(self.admin_url)
        try:
            return await conn.fetchval(query, *args)
        finally:
            await conn.close()


class StandInDailySummaries(daily_summary_service_pb2_grpc.DailySummaryServiceServicer):
    """Ingestion's DailySummaryService contract over summaries a test stores."""

    def __init__(self, summaries: dict[str, daily_summary_pb2.DailySummary]) -> None:
        self._summaries = summaries

    async def GetDailySummary(
        self, request: daily_summary_service_pb2.GetDailySummaryRequest, context: object
    ) -> daily_summary_pb2.DailySummary:
        """The stored summary, if the caller acts for its user."""
        from vitalis_runtime.auth import current_principal

        summary = self._summaries.get(request.name)
        if summary is None or not request.name.startswith(f"users/{current_principal().user_id}/"):
            raise NotFound(f"{request.name!r} was not found")
        return summary

    async def ListDailySummaries(
        self, request: daily_summary_service_pb2.ListDailySummariesRequest, context: object
    ) -> daily_summary_service_pb2.ListDailySummariesResponse:
        """The caller's summaries within the dates, oldest first, in one page."""
        from vitalis_runtime.auth import current_principal

        prefix = f"users/{current_principal().user_id}/dailySummaries/"
        start = date(request.start_date.year, request.start_date.month, request.start_date.day)
        end = date(request.end_date.year, request.end_date.month, request.end_date.day)
        found = [
            summary
            for name, summary in sorted(self._summaries.items())
            if name.startswith(prefix) and start <= date.fromisoformat(name.removeprefix(prefix)) <= end
        ]
        return daily_summary_service_pb2.ListDailySummariesResponse(daily_summaries=found)


@pytest.fixture
async def platform(admin_database_url: str, redis_url: str, key_prefix: str) -> AsyncIterator[Platform]:
    """A migrated insights schema, producers' outboxes, Redis, and the ingestion stand-in."""
    app_role = f"vitalis_t_insights_{uuid.uuid4().hex[:10]}"
    await migrate(
        admin_database_url,
        schema="insights",
        app_role=app_role,
        migrations=load_migrations("vitalis_insights"),
    )
    for producer in ("ingestion", "biomarkers"):
        await migrate(
            admin_database_url, schema=producer, app_role=f"{app_role}_{producer[:3]}", migrations=[]
        )
    producer_db = await Database.connect(admin_database_url, max_size=2)
    redis_client = redis.asyncio.Redis.from_url(redis_url)
    summaries: dict[str, daily_summary_pb2.DailySummary] = {}

    def register(server: grpc.aio.Server) -> None:
        daily_summary_service_pb2_grpc.add_DailySummaryServiceServicer_to_server(
            StandInDailySummaries(summaries), server
        )

    try:
        async with running_server(
            service_name="ingestion",
            register=register,
            service_names=["vitalis.ingestion.v1.DailySummaryService"],
            verifier=ServiceTokenVerifier(SERVICE_SECRET),
        ) as ingestion:
            yield Platform(
                admin_url=admin_database_url,
                app_role=app_role,
                redis_url=redis_url,
                prefix=key_prefix.replace("vitalis-test:", "vt-"),
                key=LocalSigningKey.generate(),
                ingestion_target=ingestion.target,
                summaries=summaries,
                producer_db=producer_db,
                redis=redis_client,
            )
    finally:
        await producer_db.close()
        keys = [
            key
            async for key in redis_client.scan_iter(match=f"{key_prefix.replace('vitalis-test:', 'vt-')}*")
        ]
        if keys:
            await redis_client.delete(*keys)
        await redis_client.aclose()
        admin = await asyncpg.connect(admin_database_url)
        try:
            for role in (app_role, f"{app_role}_ing", f"{app_role}_bio"):
                if await admin.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", role):
                    await admin.execute(f'DROP OWNED BY "{role}"')
                    await admin.execute(f'DROP ROLE "{role}"')
        finally:
            await admin.close()


@dataclass
class RunningInsights:
    """An insights replica running in-process, and a channel to it."""

    parts: ServiceParts
    deps: Dependencies
    channel: grpc.aio.Channel
    stop: asyncio.Event
    tasks: list[asyncio.Task[None]]

    @property
    def target(self) -> str:
        """``host:port`` of its gRPC server."""
        return f"127.0.0.1:{self.parts.port}"


@asynccontextmanager
async def running_insights(platform: Platform, settings: InsightsSettings) -> AsyncIterator[RunningInsights]:
    """Start a replica with its consumer and relay; stop it (as SIGTERM would) on exit."""
    async with open_dependencies(settings) as deps:
        parts = await create_insights_server(settings, deps, verifier=platform.key.verifier())
        await parts.server.start()
        await parts.health.start()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(job(stop)) for job in parts.background]
        channel = create_channel(f"127.0.0.1:{parts.port}")
        running = RunningInsights(parts, deps, channel, stop, tasks)
        try:
            yield running
        finally:
            stop.set()
            await channel.close()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=10)
            await parts.server.stop(None)
            for closer in parts.on_stop:
                await closer()


def bearer(platform: Platform, user_id: uuid.UUID) -> tuple[tuple[str, str], ...]:
    """Call metadata with the user's access token."""
    return (("authorization", f"Bearer {platform.key.mint(user_id)}"),)


async def eventually(check: Callable[[], Any], *, within: float = 10.0) -> Any:
    """Poll an async ``check`` until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)
