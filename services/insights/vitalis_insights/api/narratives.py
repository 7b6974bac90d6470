"""vitalis.insights.v1.NarrativeService: written summaries grounded in the user's numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

import asyncpg
import grpc
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from vitalis.insights.v1 import narrative_pb2, narrative_service_pb2, narrative_service_pb2_grpc
from vitalis_insights.adapters.allowance import DailyAllowance
from vitalis_insights.api.names import ReadAccess, not_found, parse_request_id, resolve_parent
from vitalis_insights.facts import gather_facts, gather_panel_facts
from vitalis_insights.filters import FilterField, filter_to_sql
from vitalis_insights.narrator import Narrator
from vitalis_runtime.auth import current_principal
from vitalis_runtime.db import Database
from vitalis_runtime.errors import FailedPrecondition, InvalidArgument
from vitalis_runtime.pagination import PageTokens, resolve_page_size

NARRATIVE_FILTERS: Final = {
    "kind": FilterField("kind", "enum", narrative_pb2.NarrativeKind.Value),
    "create_time": FilterField("create_time", "time"),
}

Context = grpc.aio.ServicerContext[object, object]


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def narrative_to_proto(row: asyncpg.Record) -> narrative_pb2.Narrative:
    """The Narrative message of a stored row."""
    narrative = narrative_pb2.Narrative(
        name=f"users/{row['user_id']}/narratives/{row['narrative_id']}",
        kind=row["kind"],
        title=row["title"],
        body=row["body"],
        language_code=row["language_code"],
        create_time=_stamp(row["create_time"]),
    )
    if row["period_start"] is not None:
        narrative.period.start_time.CopyFrom(_stamp(row["period_start"]))
        narrative.period.end_time.CopyFrom(_stamp(row["period_end"]))
    for fact in row["facts"]:
        json_format.ParseDict(fact, narrative.facts.add())
    json_format.ParseDict(row["generator"], narrative.generator)
    return narrative


class NarrativeServicer(narrative_service_pb2_grpc.NarrativeServiceServicer):
    """Summaries of a user's data."""

    def __init__(
        self,
        db: Database,
        tokens: PageTokens,
        narrator: Narrator,
        access: ReadAccess,
        allowance: DailyAllowance,
    ) -> None:
        self._db = db
        self._allowance = allowance
        self._narrator = narrator
        self._access = access
        self._tokens = tokens

    async def GenerateNarrative(
        self, request: narrative_service_pb2.GenerateNarrativeRequest, context: Context
    ) -> narrative_pb2.Narrative:
        """Gather the period's facts, then word them."""
        user_id = resolve_parent(request.parent)
        if request.kind == narrative_pb2.NARRATIVE_KIND_UNSPECIFIED:
            raise InvalidArgument.for_field("kind", "is required")
        if request.kind == narrative_pb2.NARRATIVE_KIND_PANEL_SUMMARY and not request.panel:
            raise InvalidArgument.for_field("panel", "is required for a panel summary")
        request_id = parse_request_id(request.request_id)
        now = datetime.now(UTC)
        if request.HasField("period"):
            start = request.period.start_time.ToDatetime(UTC)
            end = request.period.end_time.ToDatetime(UTC) if request.period.HasField("end_time") else now
            if start > now:
                raise InvalidArgument.for_field("period", "must not lie in the future")
        else:
            days = 30 if request.kind == narrative_pb2.NARRATIVE_KIND_MONTHLY_SUMMARY else 7
            end = datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC)
            start = end - timedelta(days=days)
        if request_id is not None:
            async with self._db.transaction(user_id=user_id, readonly=True) as conn:
                earlier = await conn.fetchrow(
                    "SELECT * FROM narratives WHERE user_id = $1 AND request_id = $2", user_id, request_id
                )
            if earlier is not None:
                return narrative_to_proto(earlier)
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            await self._allowance.check(conn, user_id, current_principal().account_id)
            if request.kind == narrative_pb2.NARRATIVE_KIND_PANEL_SUMMARY:
                facts = await gather_panel_facts(conn, user_id, request.panel)
            else:
                facts = await gather_facts(conn, user_id, start, end)
        if not facts:
            raise FailedPrecondition(
                "the period holds no data to summarise",
                reason="INSUFFICIENT_DATA",
                metadata={"sample_count": "0", "min_sample_count": "1"},
            )
        text = await self._narrator.compose(user_id, request.kind, start, end, facts)
        async with self._db.transaction(user_id=user_id) as conn:
            row = await self._narrator.store(
                conn,
                user_id,
                kind=request.kind,
                start=start,
                end=end,
                text=text,
                facts=facts,
                request_id=request_id,
            )
            if row is None:
                row = await conn.fetchrow(
                    "SELECT * FROM narratives WHERE user_id = $1 AND request_id = $2", user_id, request_id
                )
        return narrative_to_proto(row)

    async def GetNarrative(
        self, request: narrative_service_pb2.GetNarrativeRequest, context: Context
    ) -> narrative_pb2.Narrative:
        """One narrative."""
        user_id, narrative_id = await self._access.child(request.name, "narratives")
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            row = await conn.fetchrow(
                "SELECT * FROM narratives WHERE user_id = $1 AND narrative_id = $2", user_id, narrative_id
            )
        if row is None:
            raise not_found(request.name)
        return narrative_to_proto(row)

    async def ListNarratives(
        self, request: narrative_service_pb2.ListNarrativesRequest, context: Context
    ) -> narrative_service_pb2.ListNarrativesResponse:
        """Narratives, newest first."""
        user_id = await self._access.parent(request.parent)
        size = resolve_page_size(request.page_size, default=20, maximum=100)
        fingerprint = {"parent": str(user_id), "filter": request.filter}
        offset = int(self._tokens.decode(request.page_token, request=fingerprint).get("offset", 0))
        condition, parameters = filter_to_sql(request.filter, NARRATIVE_FILTERS, first_parameter=3)
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            rows = await conn.fetch(
                f"""SELECT * FROM narratives WHERE user_id = $1 AND {condition}
                    ORDER BY create_time DESC, narrative_id LIMIT $2 OFFSET {offset}""",  # noqa: S608
                user_id,
                size + 1,
                *parameters,
            )
        response = narrative_service_pb2.ListNarrativesResponse(
            narratives=[narrative_to_proto(row) for row in rows[:size]]
        )
        if len(rows) > size:
            response.next_page_token = self._tokens.encode({"offset": offset + size}, request=fingerprint)
        return response
