"""Panels: create, read, update and delete, with canonical values, flags, scores and events."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg

from vitalis_biomarkers.app import events
from vitalis_biomarkers.app.people import PersonDirectory
from vitalis_biomarkers.app.scores import ScoreEngine
from vitalis_biomarkers.dictionary.model import Dictionary
from vitalis_biomarkers.domain.flags import Flag
from vitalis_biomarkers.domain.panels import (
    Marker,
    MarkerDraft,
    Panel,
    PanelFields,
    Provenance,
    evaluate_markers,
    validate_fields,
)
from vitalis_biomarkers.domain.people import PersonProfile
from vitalis_biomarkers.domain.scores import ScoreTrigger
from vitalis_biomarkers.store.panels import PanelStore, TimeInterval, lock_user
from vitalis_biomarkers.store.requests import RequestStore
from vitalis_biomarkers.store.scores import ScoreStore
from vitalis_runtime.db import Database
from vitalis_runtime.errors import Aborted, NotFound
from vitalis_runtime.mailbox import KeyedMailbox

CREATE_METHOD = "CreatePanel"
T = TypeVar("T")
PANEL_FIELDS = ("display_name", "collection_time", "utc_offset", "report_time", "fasting", "lab_name", "note")


def panel_not_found() -> NotFound:
    """The error for a panel that does not exist or is not visible."""
    return NotFound("the panel does not exist", reason="PANEL_NOT_FOUND")


class PanelBook:
    """The use cases of panels and markers."""

    def __init__(
        self,
        db: Database,
        dictionary: Dictionary,
        people: PersonDirectory,
        *,
        panels: PanelStore | None = None,
        scores: ScoreStore | None = None,
        requests: RequestStore | None = None,
    ) -> None:
        """Work against ``db`` with ``dictionary``; look people up in ``people``."""
        self._db = db
        self._dictionary = dictionary
        self._people = people
        self._panels = panels or PanelStore()
        self._requests = requests or RequestStore()
        self._scores = scores or ScoreStore()
        self._engine = ScoreEngine(dictionary, self._panels, self._scores)
        self._mailbox: KeyedMailbox[uuid.UUID] = KeyedMailbox()

    @property
    def dictionary(self) -> Dictionary:
        """The dictionary markers are evaluated with."""
        return self._dictionary

    @property
    def store(self) -> PanelStore:
        """The panel store (for other use cases sharing a transaction)."""
        return self._panels

    @property
    def engine(self) -> ScoreEngine:
        """The score engine."""
        return self._engine

    async def write(self, user_id: uuid.UUID, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run ``work`` in a transaction of ``user_id``'s, after the user's earlier writes.

        In this process the user's writes queue in a mailbox; across replicas the user's advisory
        lock orders them.
        """

        async def transact() -> T:
            async with self._db.transaction(user_id=user_id) as conn:
                await lock_user(conn, user_id)
                return await work(conn)

        # The mailbox's worker outlives one request; the work keeps its own request's context
        # (request id, trace) so that its logs and events name the right request.
        context = contextvars.copy_context()

        async def run() -> T:
            return await asyncio.create_task(transact(), context=context)

        return await self._mailbox.submit(user_id, run)

    async def close(self) -> None:
        """Finish queued writes and stop taking new ones."""
        await self._mailbox.close()

    async def person(self, user_id: uuid.UUID) -> PersonProfile:
        """The person's profile, for flags and scores."""
        return await self._people.profile(user_id)

    async def create(
        self,
        user_id: uuid.UUID,
        fields: PanelFields,
        provenance: Provenance,
        drafts: Sequence[MarkerDraft],
        *,
        request_id: str = "",
        source_key: str | None = None,
    ) -> tuple[Panel, bool]:
        """Create a panel (or return the one a request id or source already made); say whether it is new."""
        now = datetime.now(UTC)
        validate_fields(fields, now=now)
        person = await self._people.profile(user_id)
        markers = evaluate_markers(
            self._dictionary, drafts, person=person, collection_time=fields.collection_time
        )

        async def work(conn: asyncpg.Connection) -> tuple[Panel, bool]:
            existing = await self._existing(conn, user_id, request_id, source_key)
            if existing is not None:
                return existing, False
            panel = Panel(
                user_id=user_id,
                id=uuid.uuid4(),
                fields=fields,
                provenance=provenance,
                markers=tuple(markers),
                create_time=now,
                update_time=now,
                version=1,
            )
            await self.insert_in(conn, panel, source_key=source_key, person=person, now=now)
            if request_id:
                await self._requests.remember(
                    conn, user_id, CREATE_METHOD, request_id, resource=str(panel.id)
                )
            return panel, True

        return await self.write(user_id, work)

    async def insert_in(
        self,
        conn: asyncpg.Connection,
        panel: Panel,
        *,
        source_key: str | None,
        person: PersonProfile,
        now: datetime,
    ) -> None:
        """Store a new panel, compute its scores and announce it, in the caller's transaction."""
        await self._panels.insert_panel(conn, panel, source_key=source_key)
        await events.panel_created(conn, panel, now)
        await self._engine.refresh_panel(
            conn,
            panel.user_id,
            panel_id=panel.id,
            collection_time=panel.fields.collection_time,
            biomarker_ids=[marker.biomarker_id for marker in panel.markers],
            person=person,
            trigger=ScoreTrigger.PANEL_CREATED,
        )

    async def _existing(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, request_id: str, source_key: str | None
    ) -> Panel | None:
        if request_id:
            earlier = await self._requests.find(conn, user_id, CREATE_METHOD, request_id)
            if earlier is not None:
                panel = await self._panels.get_panel(conn, user_id, uuid.UUID(earlier.resource))
                if panel is not None:
                    return panel
        if source_key is not None:
            return await self._panels.find_by_source(conn, user_id, source_key)
        return None

    async def get(self, user_id: uuid.UUID, panel_id: uuid.UUID) -> Panel:
        """One panel; NotFound when it does not exist."""
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            panel = await self._panels.get_panel(conn, user_id, panel_id)
        if panel is None:
            raise panel_not_found()
        return panel

    async def list_panels(
        self,
        user_id: uuid.UUID,
        *,
        interval: TimeInterval,
        ascending: bool,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
        panel_ids: Sequence[uuid.UUID] | None = None,
    ) -> list[Panel]:
        """Panels in collection-time order."""
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            return await self._panels.list_panels(
                conn,
                user_id,
                interval=interval,
                ascending=ascending,
                after=after,
                limit=limit,
                panel_ids=panel_ids,
            )

    async def update(
        self,
        user_id: uuid.UUID,
        panel_id: uuid.UUID,
        changes: Mapping[str, Any],
        drafts: Sequence[MarkerDraft] | None,
        paths: Sequence[str],
        *,
        etag: str,
    ) -> Panel:
        """Apply the masked fields (and, with ``markers`` in the mask, the new set of markers)."""
        now = datetime.now(UTC)
        person = await self._people.profile(user_id)

        async def work(conn: asyncpg.Connection) -> Panel:
            current = await self._panels.get_panel(conn, user_id, panel_id, for_update=True)
            if current is None:
                raise panel_not_found()
            if etag and etag != current.etag:
                raise Aborted(
                    "the panel changed since it was read; read it again and retry", reason="STALE_ETAG"
                )
            fields = dataclasses.replace(
                current.fields, **{path: changes[path] for path in paths if path in changes}
            )
            validate_fields(fields, now=now)
            if "markers" in paths and drafts is not None:
                markers = evaluate_markers(
                    self._dictionary,
                    drafts,
                    person=person,
                    collection_time=fields.collection_time,
                    existing_ids=frozenset(marker.id for marker in current.markers),
                )
            else:
                markers = evaluate_markers(
                    self._dictionary,
                    [_draft_of(marker) for marker in current.markers],
                    person=person,
                    collection_time=fields.collection_time,
                    existing_ids=frozenset(marker.id for marker in current.markers),
                )
            updated = dataclasses.replace(
                current, fields=fields, markers=tuple(markers), update_time=now, version=current.version + 1
            )
            await self.store_update_in(conn, updated, list(paths), person=person, now=now)
            return updated

        return await self.write(user_id, work)

    async def store_update_in(
        self,
        conn: asyncpg.Connection,
        panel: Panel,
        changed: list[str],
        *,
        person: PersonProfile,
        now: datetime,
    ) -> None:
        """Store a changed panel, recompute its scores and announce it, in the caller's transaction."""
        await self._panels.update_panel(conn, panel)
        await events.panel_updated(conn, panel, changed, now)
        await self._engine.refresh_panel(
            conn,
            panel.user_id,
            panel_id=panel.id,
            collection_time=panel.fields.collection_time,
            biomarker_ids=[marker.biomarker_id for marker in panel.markers],
            person=person,
            trigger=ScoreTrigger.INPUT_CHANGED,
        )

    async def delete(self, user_id: uuid.UUID, panel_id: uuid.UUID, *, etag: str) -> None:
        """Delete a panel; its scores are kept and marked outdated."""
        person = await self._people.profile(user_id)

        async def work(conn: asyncpg.Connection) -> None:
            current = await self._panels.get_panel(conn, user_id, panel_id, for_update=True)
            if current is None:
                raise panel_not_found()
            if etag and etag != current.etag:
                raise Aborted(
                    "the panel changed since it was read; read it again and retry", reason="STALE_ETAG"
                )
            await self.delete_in(conn, current, person=person)

        await self.write(user_id, work)

    async def delete_in(self, conn: asyncpg.Connection, panel: Panel, *, person: PersonProfile) -> None:
        """Delete a panel, outdate its scores and announce it, in the caller's transaction."""
        await self._panels.delete_panel(conn, panel.user_id, panel.id)
        await self._scores.outdate_panel(conn, panel.user_id, panel.id)
        await self._engine.refresh_panel(
            conn,
            panel.user_id,
            panel_id=panel.id,
            collection_time=None,
            biomarker_ids=(),
            person=person,
            trigger=ScoreTrigger.INPUT_CHANGED,
        )
        await events.panel_deleted(conn, panel.user_id, panel.name, datetime.now(UTC))

    async def get_marker(
        self, user_id: uuid.UUID, panel_id: uuid.UUID, marker_id: uuid.UUID
    ) -> tuple[Marker, datetime]:
        """One marker with its panel's collection time."""
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            marker = await self._panels.get_marker(conn, user_id, panel_id, marker_id)
            panel = None if marker is None else await self._panels.get_panel(conn, user_id, panel_id)
        if marker is None or panel is None:
            raise NotFound("the marker does not exist", reason="MARKER_NOT_FOUND")
        return marker, panel.fields.collection_time

    async def list_markers(
        self,
        user_id: uuid.UUID,
        *,
        panel_id: uuid.UUID | None,
        biomarker_id: str | None,
        interval: TimeInterval,
        flags: Sequence[Flag],
        ascending: bool,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[tuple[uuid.UUID, datetime, Marker]]:
        """Markers of one panel or of every panel (a biomarker's history)."""
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            if panel_id is not None and await self._panels.get_panel(conn, user_id, panel_id) is None:
                raise panel_not_found()
            return await self._panels.list_markers(
                conn,
                user_id,
                panel_id=panel_id,
                biomarker_id=biomarker_id,
                interval=interval,
                flags=flags,
                ascending=ascending,
                after=after,
                limit=limit,
            )


def _draft_of(marker: Marker) -> MarkerDraft:
    """A stored marker as a draft, to re-evaluate it (after a collection-time change)."""
    return MarkerDraft(
        biomarker=f"biomarkers/{marker.biomarker_id}",
        value=marker.value,
        reported_unit=marker.reported_unit,
        marker_id=marker.id,
        reported_name=marker.reported_name,
        comparator=marker.comparator,
        reported_value=marker.reported_value,
        lab_range=marker.lab_range,
        reported_flag=marker.reported_flag,
        provenance=marker.provenance,
        note=marker.note,
        extracted_marker=marker.extracted_marker,
    )


def draft_of(marker: Marker) -> MarkerDraft:
    """A stored marker as a draft (public for the document merge)."""
    return _draft_of(marker)
