"""SQL for panels and markers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from vitalis_biomarkers.domain.flags import Flag, FlagBasis, LabRange, OptimalStatus
from vitalis_biomarkers.domain.panels import (
    Comparator,
    Fasting,
    Marker,
    Panel,
    PanelFields,
    Provenance,
)
from vitalis_biomarkers.domain.scoring import CandidateMarker

# Enum members by stored value: a dictionary lookup costs a tenth of calling the Enum, and a history
# read turns hundreds of rows into markers.
_COMPARATORS = {member.value: member for member in Comparator}
_FLAGS = {member.value: member for member in Flag}
_FLAG_BASES = {member.value: member for member in FlagBasis}
_OPTIMAL_STATUSES = {member.value: member for member in OptimalStatus}
_NO_LAB_RANGE = LabRange()

_MARKER_COLUMNS = """marker_id, panel_id, position, biomarker_id, reported_name, value, comparator,
    reported_value, reported_unit, canonical_value, canonical_unit, lab_low, lab_high, lab_text,
    reported_flag, flag, flag_basis, optimal_status, provenance, note, dictionary_version,
    collection_time, extracted_marker"""


@dataclass(frozen=True)
class TimeInterval:
    """A half-open range of times; either side may be open."""

    start: datetime | None = None
    end: datetime | None = None


async def lock_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
    """Serialise one user's writes across replicas until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"biomarkers.user.{user_id}")


def _marker(row: asyncpg.Record) -> Marker:
    low, high, text = row["lab_low"], row["lab_high"], row["lab_text"]
    provenance = row["provenance"]
    return Marker(
        id=row["marker_id"],
        biomarker_id=row["biomarker_id"],
        value=row["value"],
        reported_unit=row["reported_unit"],
        canonical_value=row["canonical_value"],
        canonical_unit=row["canonical_unit"],
        flag=_FLAGS[row["flag"]],
        flag_basis=_FLAG_BASES[row["flag_basis"]],
        optimal_status=_OPTIMAL_STATUSES[row["optimal_status"]],
        dictionary_version=row["dictionary_version"],
        reported_name=row["reported_name"],
        comparator=_COMPARATORS[row["comparator"]],
        reported_value=row["reported_value"],
        lab_range=_NO_LAB_RANGE if low is None and high is None and not text else LabRange(low, high, text),
        reported_flag=row["reported_flag"],
        provenance=None if provenance is None else Provenance.from_json(provenance),
        note=row["note"],
        extracted_marker=row["extracted_marker"],
    )


def _panel(row: asyncpg.Record, markers: Sequence[Marker]) -> Panel:
    offset = row["utc_offset_seconds"]
    return Panel(
        user_id=row["user_id"],
        id=row["panel_id"],
        fields=PanelFields(
            collection_time=row["collection_time"],
            display_name=row["display_name"],
            utc_offset=None if offset is None else timedelta(seconds=offset),
            report_time=row["report_time"],
            fasting=Fasting(row["fasting"]),
            lab_name=row["lab_name"],
            note=row["note"],
        ),
        provenance=Provenance.from_json(row["provenance"]) or Provenance(),
        markers=tuple(markers),
        create_time=row["create_time"],
        update_time=row["update_time"],
        version=row["version"],
    )


class PanelStore:
    """Reads and writes panels and their markers inside the caller's transaction."""

    async def insert_panel(self, conn: asyncpg.Connection, panel: Panel, *, source_key: str | None) -> None:
        """Insert a new panel and its markers."""
        fields = panel.fields
        await conn.execute(
            """INSERT INTO panels (user_id, panel_id, display_name, collection_time, utc_offset_seconds,
                   report_time, fasting, lab_name, note, provenance, source_key, create_time, update_time,
                   version)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13)""",
            panel.user_id,
            panel.id,
            fields.display_name,
            fields.collection_time,
            _offset_seconds(fields.utc_offset),
            fields.report_time,
            fields.fasting.value,
            fields.lab_name,
            fields.note,
            panel.provenance.to_json(),
            source_key,
            panel.create_time,
            panel.version,
        )
        await self._insert_markers(conn, panel)

    async def update_panel(self, conn: asyncpg.Connection, panel: Panel) -> None:
        """Store a changed panel: its fields, version and the full set of markers."""
        fields = panel.fields
        await conn.execute(
            """UPDATE panels SET display_name = $3, collection_time = $4, utc_offset_seconds = $5,
                   report_time = $6, fasting = $7, lab_name = $8, note = $9, update_time = $10, version = $11
               WHERE user_id = $1 AND panel_id = $2""",
            panel.user_id,
            panel.id,
            fields.display_name,
            fields.collection_time,
            _offset_seconds(fields.utc_offset),
            fields.report_time,
            fields.fasting.value,
            fields.lab_name,
            fields.note,
            panel.update_time,
            panel.version,
        )
        await conn.execute(
            "DELETE FROM markers WHERE user_id = $1 AND panel_id = $2", panel.user_id, panel.id
        )
        await self._insert_markers(conn, panel)

    async def _insert_markers(self, conn: asyncpg.Connection, panel: Panel) -> None:
        # Row-level security rules out COPY FROM, so the batch goes in as one INSERT over arrays.
        columns: list[list[Any]] = [[] for _ in range(23)]
        for position, marker in enumerate(panel.markers):
            values = (
                marker.id,
                panel.id,
                position,
                marker.biomarker_id,
                marker.reported_name,
                marker.value,
                marker.comparator.value,
                marker.reported_value,
                marker.reported_unit,
                marker.canonical_value,
                marker.canonical_unit,
                marker.lab_range.low,
                marker.lab_range.high,
                marker.lab_range.text,
                marker.reported_flag,
                marker.flag.value,
                marker.flag_basis.value,
                marker.optimal_status.value,
                None if marker.provenance is None else marker.provenance.to_json(),
                marker.note,
                marker.dictionary_version,
                panel.fields.collection_time,
                marker.extracted_marker,
            )
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        await conn.execute(
            f"""INSERT INTO markers (user_id, {_MARKER_COLUMNS})
                SELECT $1, * FROM unnest($2::uuid[], $3::uuid[], $4::int[], $5::text[], $6::text[],
                    $7::float8[], $8::int2[], $9::text[], $10::text[], $11::float8[], $12::text[],
                    $13::float8[], $14::float8[], $15::text[], $16::text[], $17::int2[], $18::int2[],
                    $19::int2[], $20::jsonb[], $21::text[], $22::text[], $23::timestamptz[],
                    $24::text[])""",
            panel.user_id,
            *columns,
        )

    async def get_panel(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, panel_id: uuid.UUID, *, for_update: bool = False
    ) -> Panel | None:
        """One panel with its markers, or None."""
        lock = " FOR UPDATE" if for_update else ""
        row = await conn.fetchrow(
            f"SELECT * FROM panels WHERE user_id = $1 AND panel_id = $2{lock}",
            user_id,
            panel_id,
        )
        if row is None:
            return None
        markers = await self._markers_of(conn, user_id, [panel_id])
        return _panel(row, markers.get(panel_id, []))

    async def collection_time(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, panel_id: uuid.UUID
    ) -> datetime | None:
        """When a panel was collected, or None when it does not exist."""
        moment: datetime | None = await conn.fetchval(
            "SELECT collection_time FROM panels WHERE user_id = $1 AND panel_id = $2", user_id, panel_id
        )
        return moment

    async def find_by_source(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, source_key: str
    ) -> Panel | None:
        """The panel created from a document or FHIR resource, if any."""
        panel_id = await conn.fetchval(
            "SELECT panel_id FROM panels WHERE user_id = $1 AND source_key = $2 FOR UPDATE",
            user_id,
            source_key,
        )
        return None if panel_id is None else await self.get_panel(conn, user_id, panel_id)

    async def list_panels(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        *,
        interval: TimeInterval,
        ascending: bool,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
        panel_ids: Sequence[uuid.UUID] | None = None,
    ) -> list[Panel]:
        """Panels in collection-time order after the keyset cursor ``after``."""
        direction, comparison = ("ASC", ">") if ascending else ("DESC", "<")
        rows = await conn.fetch(
            f"""SELECT * FROM panels
                WHERE user_id = $1
                  AND ($2::timestamptz IS NULL OR collection_time >= $2)
                  AND ($3::timestamptz IS NULL OR collection_time < $3)
                  AND ($4::timestamptz IS NULL OR (collection_time, panel_id) {comparison} ($4, $5::uuid))
                  AND ($7::uuid[] IS NULL OR panel_id = ANY($7))
                ORDER BY collection_time {direction}, panel_id {direction}
                LIMIT $6""",
            user_id,
            interval.start,
            interval.end,
            after[0] if after else None,
            after[1] if after else None,
            limit,
            None if panel_ids is None else list(panel_ids),
        )
        markers = await self._markers_of(conn, user_id, [row["panel_id"] for row in rows])
        return [_panel(row, markers.get(row["panel_id"], [])) for row in rows]

    async def _markers_of(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, panel_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[Marker]]:
        if not panel_ids:
            return {}
        rows = await conn.fetch(
            f"""SELECT {_MARKER_COLUMNS} FROM markers WHERE user_id = $1 AND panel_id = ANY($2::uuid[])
                ORDER BY panel_id, position""",
            user_id,
            list(panel_ids),
        )
        grouped: dict[uuid.UUID, list[Marker]] = {}
        for row in rows:
            grouped.setdefault(row["panel_id"], []).append(_marker(row))
        return grouped

    async def delete_panel(self, conn: asyncpg.Connection, user_id: uuid.UUID, panel_id: uuid.UUID) -> None:
        """Delete a panel; its markers go with it."""
        await conn.execute("DELETE FROM panels WHERE user_id = $1 AND panel_id = $2", user_id, panel_id)

    async def get_marker(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, panel_id: uuid.UUID, marker_id: uuid.UUID
    ) -> Marker | None:
        """One marker of one panel."""
        row = await conn.fetchrow(
            f"SELECT {_MARKER_COLUMNS} FROM markers WHERE user_id = $1 AND panel_id = $2 AND marker_id = $3",
            user_id,
            panel_id,
            marker_id,
        )
        return None if row is None else _marker(row)

    async def list_markers(
        self,
        conn: asyncpg.Connection,
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
        """Markers (with their panel and collection time) in collection-time order after ``after``.

        The statement names only the filters given, so that each combination is a plain prepared
        statement whose plan PostgreSQL keeps (a biomarker's history is one scan of
        ``markers_history``) instead of planning a catch-all statement again on every call.
        """
        direction, comparison = ("ASC", ">") if ascending else ("DESC", "<")
        arguments: list[Any] = [user_id]

        def bind(value: Any) -> str:
            arguments.append(value)
            return f"${len(arguments)}"

        conditions = ["user_id = $1"]
        if panel_id is not None:
            conditions.append(f"panel_id = {bind(panel_id)}")
        if biomarker_id is not None:
            conditions.append(f"biomarker_id = {bind(biomarker_id)}")
        if interval.start is not None:
            conditions.append(f"collection_time >= {bind(interval.start)}")
        if interval.end is not None:
            conditions.append(f"collection_time < {bind(interval.end)}")
        if flags:
            conditions.append(f"flag = ANY({bind([flag.value for flag in flags])}::int2[])")
        if after is not None:
            conditions.append(
                f"(collection_time, marker_id) {comparison} ({bind(after[0])}, {bind(after[1])}::uuid)"
            )
        rows = await conn.fetch(
            f"""SELECT {_MARKER_COLUMNS} FROM markers
                WHERE {" AND ".join(conditions)}
                ORDER BY collection_time {direction}, marker_id {direction}
                LIMIT {bind(limit)}""",
            *arguments,
        )
        return [(row["panel_id"], row["collection_time"], _marker(row)) for row in rows]

    async def candidate_markers(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        *,
        biomarker_ids: Sequence[str],
        start: datetime,
        end: datetime,
    ) -> list[CandidateMarker]:
        """Markers of the given biomarkers collected in ``[start, end]``, for choosing score inputs."""
        rows = await conn.fetch(
            """SELECT marker_id, panel_id, biomarker_id, value, reported_unit, comparator, collection_time
               FROM markers
               WHERE user_id = $1 AND biomarker_id = ANY($2::text[])
                 AND collection_time BETWEEN $3 AND $4""",
            user_id,
            list(biomarker_ids),
            start,
            end,
        )
        return [
            CandidateMarker(
                marker=f"users/{user_id}/panels/{row['panel_id']}/markers/{row['marker_id']}",
                panel_id=row["panel_id"],
                biomarker_id=row["biomarker_id"],
                value=row["value"],
                reported_unit=row["reported_unit"],
                comparator=Comparator(row["comparator"]),
                collection_time=row["collection_time"],
            )
            for row in rows
        ]

    async def panels_with_biomarkers(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, biomarker_ids: Sequence[str]
    ) -> list[tuple[uuid.UUID, datetime]]:
        """Every panel holding one of the biomarkers, latest collection first."""
        rows = await conn.fetch(
            """SELECT DISTINCT panel_id, collection_time FROM markers
               WHERE user_id = $1 AND biomarker_id = ANY($2::text[])
               ORDER BY collection_time DESC, panel_id DESC""",
            user_id,
            list(biomarker_ids),
        )
        return [(row["panel_id"], row["collection_time"]) for row in rows]


def _offset_seconds(offset: timedelta | None) -> int | None:
    return None if offset is None else int(offset.total_seconds())
