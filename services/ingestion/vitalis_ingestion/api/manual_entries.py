"""vitalis.ingestion.v1.ManualEntryService: manual entries and the menstrual cycles derived from them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc
from google.protobuf import empty_pb2

from vitalis.ingestion.v1 import (
    manual_entry_pb2,
    manual_entry_service_pb2,
    manual_entry_service_pb2_grpc,
)
from vitalis_ingestion.api.access import Access, parse_name, parse_parent
from vitalis_ingestion.api.convert import from_proto_date, interval_filter, proto_date
from vitalis_ingestion.api.record_operations import RecordOperations
from vitalis_ingestion.api.record_types import MANUAL
from vitalis_ingestion.domain.cycles import menstrual_cycles
from vitalis_ingestion.store.records import RecordStore
from vitalis_runtime.db import Database
from vitalis_runtime.errors import NotFound
from vitalis_runtime.pagination import PageTokens, resolve_page_size

Context = grpc.aio.ServicerContext[object, object]


class ManualEntryServicer(manual_entry_service_pb2_grpc.ManualEntryServiceServicer):
    """Supplements, mood, journal, measurements and menstruation, and the cycles derived from them."""

    def __init__(
        self,
        operations: RecordOperations,
        db: Database,
        store: RecordStore,
        access: Access,
        tokens: PageTokens,
    ) -> None:
        self._ops = operations
        self._db = db
        self._store = store
        self._access = access
        self._tokens = tokens

    async def CreateManualEntry(
        self, request: manual_entry_service_pb2.CreateManualEntryRequest, context: Context
    ) -> manual_entry_pb2.ManualEntry:
        """Record an entry."""
        return await self._ops.create(
            MANUAL, request.parent, request.manual_entry, request.request_id, "manual_entry"
        )  # type: ignore[return-value]

    async def GetManualEntry(
        self, request: manual_entry_service_pb2.GetManualEntryRequest, context: Context
    ) -> manual_entry_pb2.ManualEntry:
        """One entry."""
        return await self._ops.get(MANUAL, request.name)  # type: ignore[return-value]

    async def ListManualEntries(
        self, request: manual_entry_service_pb2.ListManualEntriesRequest, context: Context
    ) -> manual_entry_service_pb2.ListManualEntriesResponse:
        """Entries, newest first."""
        filters: dict[str, Any] = {**interval_filter(request), "kinds": list(request.kinds)}
        found, token = await self._ops.find(
            MANUAL, request, default_desc=True, order_field="entry_time", filters=filters
        )
        return manual_entry_service_pb2.ListManualEntriesResponse(manual_entries=found, next_page_token=token)

    async def UpdateManualEntry(
        self, request: manual_entry_service_pb2.UpdateManualEntryRequest, context: Context
    ) -> manual_entry_pb2.ManualEntry:
        """Change an entry (its kind stays)."""
        return await self._ops.update(
            MANUAL, request.manual_entry, list(request.update_mask.paths), "manual_entry"
        )  # type: ignore[return-value]

    async def DeleteManualEntry(
        self, request: manual_entry_service_pb2.DeleteManualEntryRequest, context: Context
    ) -> empty_pb2.Empty:
        """Delete an entry."""
        await self._ops.delete(MANUAL, request.name, request.etag)
        return empty_pb2.Empty()

    async def _cycles(self, user_id: Any) -> list[manual_entry_pb2.MenstrualCycle]:
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            entries = await self._store.find(
                conn,
                user_id,
                MANUAL.collection,
                kinds=[manual_entry_pb2.MANUAL_ENTRY_KIND_MENSTRUATION],
                descending=False,
                after=None,
                limit=100_000,
            )
        days = []
        for entry in entries:
            message = MANUAL.present(entry).menstruation
            days.append((from_proto_date(message.date, "date"), message.flow, message.cycle_start))
        result = []
        for cycle in menstrual_cycles([d for d in days if d[0] is not None]):  # type: ignore[misc]
            message = manual_entry_pb2.MenstrualCycle(
                name=f"users/{user_id}/menstrualCycles/{cycle.start.isoformat()}",
                start_date=proto_date(cycle.start),
                period_length_days=cycle.period_days,
            )
            if cycle.end is not None:
                message.end_date.CopyFrom(proto_date(cycle.end))
                message.cycle_length_days = (cycle.end - cycle.start + timedelta(days=1)).days
            result.append(message)
        return result

    async def GetMenstrualCycle(
        self, request: manual_entry_service_pb2.GetMenstrualCycleRequest, context: Context
    ) -> manual_entry_pb2.MenstrualCycle:
        """One cycle, named by its start date."""
        parsed = parse_name(request.name, "menstrualCycles")
        user_id = await self._access.readable(parsed.user_id)
        for cycle in await self._cycles(user_id):
            if cycle.name.rsplit("/", 1)[-1] == parsed.resource_id:
                return cycle
        raise NotFound(f"menstrual cycle {request.name!r} does not exist", reason="CYCLE_NOT_FOUND")

    async def ListMenstrualCycles(
        self, request: manual_entry_service_pb2.ListMenstrualCyclesRequest, context: Context
    ) -> manual_entry_service_pb2.ListMenstrualCyclesResponse:
        """Cycles, newest first."""
        user_id = await self._access.readable(parse_parent(request.parent))
        first = from_proto_date(request.start_date, "start_date")
        size = resolve_page_size(request.page_size, default=12, maximum=100)
        fingerprint = {"op": "ListMenstrualCycles", "user": str(user_id), "first": str(first)}
        offset = int(self._tokens.decode(request.page_token, request=fingerprint).get("o", 0))
        cycles = [
            c
            for c in reversed(await self._cycles(user_id))
            if first is None or c.name.rsplit("/", 1)[-1] >= first.isoformat()
        ]
        page = cycles[offset : offset + size]
        token = (
            self._tokens.encode({"o": offset + size}, request=fingerprint)
            if len(cycles) > offset + size
            else ""
        )
        return manual_entry_service_pb2.ListMenstrualCyclesResponse(
            menstrual_cycles=page, next_page_token=token
        )
