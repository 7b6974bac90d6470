"""Create, get, list, update and delete for every record type, shared by their servicers."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from google.protobuf.message import Message

from vitalis_ingestion.api.access import Access, parse_name, parse_parent, short_source_id
from vitalis_ingestion.api.convert import from_timestamp, request_key, update_paths
from vitalis_ingestion.api.record_types import RecordType
from vitalis_ingestion.domain.records import SLEEP_SESSIONS, RecordDraft, StoredRecord, local_date
from vitalis_ingestion.domain.time_zones import TimeZoneLookup
from vitalis_ingestion.store.records import RecordStore
from vitalis_ingestion.store.sources import SourceStore
from vitalis_runtime.db import Database
from vitalis_runtime.errors import Aborted, InvalidArgument, NotFound
from vitalis_runtime.pagination import PageTokens, resolve_page_size

MANUAL_SOURCE = "manual"
MANUAL_PLATFORM = 12
ChangeHook = Callable[[asyncpg.Connection, StoredRecord, str], Awaitable[None]]


async def _no_hook(conn: asyncpg.Connection, record: StoredRecord, change: str) -> None:  # noqa: ARG001
    return None


def draft_of(record_type: RecordType, message: Any, *, source_id: str, where: str, zone: Any) -> RecordDraft:
    """A RecordDraft from a valid message (``check`` raises INVALID_ARGUMENT otherwise)."""
    if not message.HasField(record_type.start_field):
        raise InvalidArgument.for_field(f"{where}.{record_type.start_field}", "is required")
    record_type.check(message, where)
    start = from_timestamp(getattr(message, record_type.start_field))
    end = start
    if record_type.end_field and message.HasField(record_type.end_field):
        end = from_timestamp(getattr(message, record_type.end_field))
    offset = int(message.utc_offset.seconds) if message.HasField("utc_offset") else None
    if offset is not None and abs(offset) > 18 * 3600:
        raise InvalidArgument.for_field(f"{where}.utc_offset", "must be between -18 and +18 hours")
    day = local_date(end if record_type.collection == SLEEP_SESSIONS else start, offset, zone)
    return RecordDraft(
        collection=record_type.collection,
        source_id=source_id,
        start_time=start,
        end_time=end,
        body=record_type.body(message),
        kind=record_type.kind_of(message),
        utc_offset_s=offset,
        local_day=day,
    )


class RecordOperations:
    """The standard methods over the ``records`` table for one record type at a time."""

    def __init__(
        self,
        *,
        db: Database,
        store: RecordStore,
        sources: SourceStore,
        access: Access,
        tokens: PageTokens,
        time_zones: TimeZoneLookup,
        on_change: ChangeHook = _no_hook,
    ) -> None:
        self._db = db
        self._store = store
        self._sources = sources
        self._access = access
        self._tokens = tokens
        self._time_zones = time_zones
        self._on_change = on_change

    async def _zone(self, user_id: uuid.UUID) -> ZoneInfo:
        return ZoneInfo(await self._time_zones.time_zone_of(user_id))

    async def _source_id(
        self, conn: asyncpg.Connection, record_type: RecordType, user_id: uuid.UUID, message: Any, field: str
    ) -> str:
        if record_type.manual_source:
            await self._sources.ensure_source(
                conn,
                user_id,
                source_id=MANUAL_SOURCE,
                display_name="Manual entries",
                platform=MANUAL_PLATFORM,
                app_id="",
            )
            return MANUAL_SOURCE
        if not message.source:
            raise InvalidArgument.for_field(f"{field}.source", "is required")
        source_id = short_source_id(message.source, user_id, field=f"{field}.source")
        if not await self._sources.existing_source_ids(conn, user_id, [source_id]):
            raise NotFound(f"source {message.source!r} does not exist", reason="SOURCE_NOT_FOUND")
        return source_id

    async def create(
        self, record_type: RecordType, parent: str, message: Any, request_id: str, field: str
    ) -> Message:
        """Create a record; a repeated ``request_id`` returns the first result."""
        user_id = Access.owned(parse_parent(parent))
        zone = await self._zone(user_id)
        async with self._db.transaction(user_id=user_id) as conn:
            source_id = await self._source_id(conn, record_type, user_id, message, field)
            draft = draft_of(record_type, message, source_id=source_id, where=field, zone=zone)
            stored, created = await self._store.create(conn, user_id, draft, request_id=request_id or None)
            if created:
                await self._on_change(conn, stored, "created")
        return record_type.present(stored)  # type: ignore[no-any-return]

    async def load(self, record_type: RecordType, name: str, *, write: bool) -> StoredRecord:
        """The stored record a name refers to, for reading (share grants count) or writing (owner only)."""
        parsed = parse_name(name, record_type.collection)
        user_id = Access.owned(parsed.user_id) if write else await self._access.readable(parsed.user_id)
        try:
            record_id = uuid.UUID(parsed.resource_id)
        except ValueError:
            record_id = None
        found = None
        if record_id is not None:
            async with self._db.transaction(user_id=user_id, readonly=True) as conn:
                found = await self._store.get(conn, user_id, record_type.collection, record_id)
        if found is None:
            raise NotFound(f"{record_type.singular} {name!r} does not exist", reason="RECORD_NOT_FOUND")
        return found

    async def get(self, record_type: RecordType, name: str) -> Message:
        """One record."""
        return record_type.present(await self.load(record_type, name, write=False))  # type: ignore[no-any-return]

    async def find(
        self,
        record_type: RecordType,
        request: Any,
        *,
        default_desc: bool,
        order_field: str,
        filters: dict[str, Any],
    ) -> tuple[list[Any], str]:
        """A page of records and the next page token."""
        user_id = await self._access.readable(parse_parent(request.parent))
        order_by = getattr(request, "order_by", "")
        if order_by not in ("", order_field, f"{order_field} desc", f"{order_field} asc"):
            raise InvalidArgument.for_field("order_by", f"must be {order_field} or {order_field} desc")
        descending = order_by == f"{order_field} desc" or (default_desc and order_by == "")
        size = resolve_page_size(request.page_size, default=filters.pop("default_size", 50), maximum=1000)
        fingerprint = {"op": record_type.collection, "user": str(user_id), "req": request_key(request)}
        cursor = self._tokens.decode(request.page_token, request=fingerprint)
        after = (datetime.fromisoformat(cursor["t"]), uuid.UUID(cursor["r"])) if cursor else None
        if filters.get("source"):
            filters["source_id"] = short_source_id(filters.pop("source"), user_id, field="source")
        filters.pop("source", None)
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            found = await self._store.find(
                conn,
                user_id,
                record_type.collection,
                descending=descending,
                after=after,
                limit=size + 1,
                **filters,
            )
        page = found[:size]
        token = ""
        if len(found) > size:
            token = self._tokens.encode(
                {"t": page[-1].start_time.isoformat(), "r": str(page[-1].record_id)}, request=fingerprint
            )
        return [record_type.present(record) for record in page], token

    async def update(self, record_type: RecordType, message: Any, mask: list[str], field: str) -> Message:
        """Change the fields named by the mask (all populated mutable fields without one)."""
        current = await self.load(record_type, message.name, write=True)
        if message.etag and message.etag != current.etag:
            raise Aborted(
                f"the {record_type.singular} changed since it was read; read it again", reason="ETAG_MISMATCH"
            )
        populated = [f.name for f, _ in message.ListFields() if f.name not in ("name", "etag")]
        paths = update_paths(mask, populated, field)
        immutable = [path for path in paths if path.split(".")[0] not in record_type.mutable]
        if immutable:
            raise InvalidArgument.for_field("update_mask", f"{', '.join(immutable)} cannot be changed")
        merged = record_type.present(current)
        for path in {path.split(".")[0] for path in paths}:
            descriptor = merged.DESCRIPTOR.fields_by_name[path]
            is_map = descriptor.message_type is not None and descriptor.message_type.GetOptions().map_entry
            if is_map:
                merged.ClearField(path)
                getattr(merged, path).update(getattr(message, path))
            elif descriptor.is_repeated:
                merged.ClearField(path)
                getattr(merged, path).extend(getattr(message, path))
            elif descriptor.message_type is not None:
                merged.ClearField(path)
                if message.HasField(path):
                    getattr(merged, path).CopyFrom(getattr(message, path))
            else:
                setattr(merged, path, getattr(message, path))
        if record_type.manual_source and record_type.kind_of(merged) != current.kind:
            raise InvalidArgument.for_field(f"{field}.payload", "the kind of a manual entry cannot change")
        zone = await self._zone(current.user_id)
        draft = draft_of(record_type, merged, source_id=current.source_id, where=field, zone=zone)
        async with self._db.transaction(user_id=current.user_id) as conn:
            updated = await self._store.update(
                conn,
                current,
                end_time=draft.end_time,
                utc_offset_s=draft.utc_offset_s,
                body=draft.body,
                kind=draft.kind,
                local_day=draft.day(),
                start_time=draft.start_time,
            )
            await self._on_change(conn, updated, "updated")
        return record_type.present(updated)  # type: ignore[no-any-return]

    async def delete(self, record_type: RecordType, name: str, etag: str) -> None:
        """Delete one record."""
        current = await self.load(record_type, name, write=True)
        if etag and etag != current.etag:
            raise Aborted(
                f"the {record_type.singular} changed since it was read; read it again", reason="ETAG_MISMATCH"
            )
        async with self._db.transaction(user_id=current.user_id) as conn:
            await self._store.delete(conn, current)
            await self._on_change(conn, current, "deleted")
