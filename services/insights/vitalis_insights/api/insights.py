"""vitalis.insights.v1.InsightService: the feed, its watch, and the rule catalogue."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Final

import asyncpg
import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from vitalis.insights.v1 import common_pb2, insight_pb2, insight_service_pb2, insight_service_pb2_grpc
from vitalis_insights.api.names import ReadAccess, not_found, resolve_uuid_child
from vitalis_insights.domain.rules import RULES, RuleSpec
from vitalis_insights.filters import FilterField, filter_to_sql, matches, parse_filter
from vitalis_insights.notifier import ChangeNotifier
from vitalis_insights.store import feed
from vitalis_insights.store.insights import insight_to_proto
from vitalis_runtime.db import Database
from vitalis_runtime.errors import Aborted, FailedPrecondition, InvalidArgument
from vitalis_runtime.pagination import PageTokens, resolve_page_size

ORDERS: Final = ("create_time desc", "create_time", "severity desc, create_time desc")
FALLBACK_POLL_SECONDS: Final = 5.0

Context = grpc.aio.ServicerContext[object, object]


def rule_to_proto(rule: RuleSpec) -> insight_pb2.Rule:
    """The Rule message of a rule."""
    return insight_pb2.Rule(
        name=rule.name,
        display_name=rule.display_name,
        description=rule.description,
        version=rule.version,
        category=rule.category,  # type: ignore[arg-type]
        max_severity=rule.max_severity,  # type: ignore[arg-type]
        parameters={key: f"{value:g}" for key, value in rule.parameters.items()},
        trigger_event_types=list(rule.trigger_event_types),
        enabled=rule.enabled,
    )


def _now_stamp() -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(UTC))
    return stamp


class InsightServicer(insight_service_pb2_grpc.InsightServiceServicer):
    """A user's insight feed."""

    def __init__(
        self,
        db: Database,
        tokens: PageTokens,
        notifier: ChangeNotifier,
        access: ReadAccess,
        *,
        heartbeat_seconds: float = 15.0,
    ) -> None:
        self._db = db
        self._access = access
        self._tokens = tokens
        self._notifier = notifier
        self._heartbeat = heartbeat_seconds

    async def ListInsights(
        self, request: insight_service_pb2.ListInsightsRequest, context: Context
    ) -> insight_service_pb2.ListInsightsResponse:
        """A page of the feed, newest first by default."""
        user_id = await self._access.parent(request.parent)
        order = " ".join(request.order_by.split()).lower() or "create_time desc"
        if order not in ORDERS:
            raise InvalidArgument.for_field("order_by", f"must be one of: {', '.join(ORDERS)}")
        size = resolve_page_size(request.page_size)
        fingerprint = {"parent": str(user_id), "filter": request.filter, "order_by": order}
        cursor = self._tokens.decode(request.page_token, request=fingerprint)
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            rows = await feed.list_insights(
                conn, user_id, filter_text=request.filter, order=order, cursor=cursor, limit=size
            )
            unread = await feed.unread_count(conn, user_id)
        response = insight_service_pb2.ListInsightsResponse(
            insights=[insight_to_proto(row) for row in rows[:size]], unread_count=unread
        )
        if len(rows) > size:
            offset = int(cursor.get("offset", 0)) + size
            response.next_page_token = self._tokens.encode({"offset": offset}, request=fingerprint)
        return response

    async def GetInsight(
        self, request: insight_service_pb2.GetInsightRequest, context: Context
    ) -> insight_pb2.Insight:
        """One insight."""
        user_id, insight_id = await self._access.child(request.name, "insights")
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            row = await feed.get_insight(conn, user_id, insight_id)
        if row is None:
            raise not_found(request.name)
        return insight_to_proto(row)

    async def MarkInsightRead(
        self, request: insight_service_pb2.MarkInsightReadRequest, context: Context
    ) -> insight_pb2.Insight:
        """Mark read; a read or dismissed insight stays as it is."""
        return await self._change(request.name, request.etag, dismiss=False)

    async def DismissInsight(
        self, request: insight_service_pb2.DismissInsightRequest, context: Context
    ) -> insight_pb2.Insight:
        """Dismiss; the finding is remembered so it does not come back."""
        return await self._change(request.name, request.etag, dismiss=True)

    async def _change(self, name: str, etag: str, *, dismiss: bool) -> insight_pb2.Insight:
        user_id, insight_id = resolve_uuid_child(name, "insights")
        async with self._db.transaction(user_id=user_id) as conn:
            row = await feed.get_insight(conn, user_id, insight_id)
            if row is None:
                raise not_found(name)
            if etag and etag != str(row["version"]):
                raise Aborted("the insight changed since it was read; fetch it again", reason="ETAG_MISMATCH")
            target_state = insight_pb2.INSIGHT_STATE_DISMISSED if dismiss else insight_pb2.INSIGHT_STATE_READ
            if row["state"] == insight_pb2.INSIGHT_STATE_DISMISSED or row["state"] == target_state:
                return insight_to_proto(row)
            row = await feed.change_state(conn, user_id, insight_id, dismiss=dismiss)
        return insight_to_proto(row)

    async def WatchInsights(
        self, request: insight_service_pb2.WatchInsightsRequest, context: Context
    ) -> AsyncIterator[insight_service_pb2.WatchInsightsResponse]:
        """Changes after the resume token (or from now), then live ones, with heartbeats."""
        user_id = await self._access.parent(request.parent)
        condition, parameters = filter_to_sql(request.filter, feed.INSIGHT_FILTERS, first_parameter=1)
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        async with self._notifier.subscribe(user_id) as woken:
            async with self._db.transaction(user_id=user_id, readonly=True) as conn:
                last = await self._start_position(conn, user_id, request.resume_token)
            # Headers go out now, so a client (and the gateway) knows the watch is open before
            # the first change or heartbeat.
            await context.send_initial_metadata(())
            while True:
                async with self._db.transaction(user_id=user_id, readonly=True) as conn:
                    woken.clear()
                    changes = await feed.changes_after(conn, user_id, last)
                    matching = await feed.matching_insights(
                        conn, [change["insight_id"] for change in changes], condition, parameters
                    )
                for change in changes:
                    last = change["change_seq"]
                    if change["insight_id"] not in matching:
                        continue
                    stamp = Timestamp()
                    stamp.FromDatetime(change["change_time"])
                    yield insight_service_pb2.WatchInsightsResponse(
                        event_type=change["change_kind"],
                        insight=insight_to_proto(change),
                        resume_token=str(last),
                        event_time=stamp,
                    )
                    sent_at = loop.time()
                if len(changes) == 100:
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(self._heartbeat, FALLBACK_POLL_SECONDS)):
                        await woken.wait()
                if loop.time() - sent_at >= self._heartbeat:
                    sent_at = loop.time()
                    yield insight_service_pb2.WatchInsightsResponse(
                        event_type=insight_service_pb2.WATCH_EVENT_TYPE_HEARTBEAT,
                        resume_token=str(last),
                        event_time=_now_stamp(),
                    )

    async def _start_position(self, conn: asyncpg.Connection, user_id: uuid.UUID, resume_token: str) -> int:
        latest = await feed.latest_change(conn, user_id)
        if not resume_token:
            return latest
        try:
            position = int(resume_token)
        except ValueError:
            raise InvalidArgument.for_field("resume_token", "is not a token this service issued") from None
        if position < 0 or position > latest:
            raise InvalidArgument.for_field("resume_token", "is not a token this service issued")
        oldest = await feed.oldest_change(conn, user_id)
        if oldest is not None and position < oldest - 1:
            raise FailedPrecondition(
                "the resume token is too old; list the insights, then watch again",
                reason="RESUME_TOKEN_EXPIRED",
            )
        return position

    async def ListRules(
        self, request: insight_service_pb2.ListRulesRequest, context: Context
    ) -> insight_service_pb2.ListRulesResponse:
        """The rules, by name."""
        size = resolve_page_size(request.page_size)
        fingerprint = {"filter": request.filter}
        cursor = self._tokens.decode(request.page_token, request=fingerprint)
        terms = parse_filter(request.filter, RULE_FILTERS)
        rules = [
            rule
            for rule in sorted(RULES, key=lambda rule: rule.name)
            if matches(terms, {"category": rule.category, "enabled": rule.enabled})
        ]
        offset = int(cursor.get("offset", 0))
        page = rules[offset : offset + size]
        response = insight_service_pb2.ListRulesResponse(rules=[rule_to_proto(rule) for rule in page])
        if offset + size < len(rules):
            response.next_page_token = self._tokens.encode({"offset": offset + size}, request=fingerprint)
        return response

    async def GetRule(
        self, request: insight_service_pb2.GetRuleRequest, context: Context
    ) -> insight_pb2.Rule:
        """One rule."""
        for rule in RULES:
            if rule.name == request.name:
                return rule_to_proto(rule)
        if not request.name.startswith("rules/"):
            raise InvalidArgument.for_field("name", "must be a name like rules/biomarker-out-of-range")
        raise not_found(request.name)


RULE_FILTERS: Final = {
    "category": FilterField("category", "enum", common_pb2.InsightCategory.Value),
    "enabled": FilterField("enabled", "bool"),
}
