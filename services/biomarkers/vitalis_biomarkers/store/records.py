"""SQL for body-composition scans and epigenetic tests, stored as documents with a time column."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from vitalis_biomarkers.store.panels import TimeInterval


@dataclass(frozen=True)
class Record:
    """A stored scan or test: its fields as a JSON document, its time and its version."""

    user_id: uuid.UUID
    id: uuid.UUID
    time: datetime
    document: dict[str, Any]
    create_time: datetime
    update_time: datetime
    version: int

    @property
    def etag(self) -> str:
        """The version as an opaque etag."""
        return f"v{self.version}"


@dataclass(frozen=True)
class RecordTable:
    """Where one kind of record lives: fixed identifiers, never taken from a request."""

    table: str
    id_column: str
    time_column: str


BODY_COMPOSITION_SCANS = RecordTable("body_composition_scans", "scan_id", "scan_time")
EPIGENETIC_TESTS = RecordTable("epigenetic_tests", "test_id", "collection_time")


class RecordStore:
    """Reads and writes one kind of record inside the caller's transaction."""

    def __init__(self, table: RecordTable) -> None:
        """Work on ``table``."""
        self._t = table

    def _record(self, row: asyncpg.Record) -> Record:
        return Record(
            user_id=row["user_id"],
            id=row[self._t.id_column],
            time=row[self._t.time_column],
            document=dict(row["document"]),
            create_time=row["create_time"],
            update_time=row["update_time"],
            version=row["version"],
        )

    async def insert(self, conn: asyncpg.Connection, record: Record) -> None:
        """Store a new record."""
        t = self._t
        await conn.execute(
            f"""INSERT INTO {t.table} (user_id, {t.id_column}, {t.time_column}, document, create_time,
                    update_time, version)
                VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            record.user_id,
            record.id,
            record.time,
            record.document,
            record.create_time,
            record.update_time,
            record.version,
        )

    async def update(self, conn: asyncpg.Connection, record: Record) -> None:
        """Store a changed record."""
        t = self._t
        await conn.execute(
            f"""UPDATE {t.table} SET {t.time_column} = $3, document = $4, update_time = $5, version = $6
                WHERE user_id = $1 AND {t.id_column} = $2""",
            record.user_id,
            record.id,
            record.time,
            record.document,
            record.update_time,
            record.version,
        )

    async def get(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, record_id: uuid.UUID, *, for_update: bool = False
    ) -> Record | None:
        """One record, or None."""
        t = self._t
        lock = " FOR UPDATE" if for_update else ""
        row = await conn.fetchrow(
            f"SELECT * FROM {t.table} WHERE user_id = $1 AND {t.id_column} = $2{lock}",
            user_id,
            record_id,
        )
        return None if row is None else self._record(row)

    async def delete(self, conn: asyncpg.Connection, user_id: uuid.UUID, record_id: uuid.UUID) -> None:
        """Delete one record."""
        t = self._t
        await conn.execute(
            f"DELETE FROM {t.table} WHERE user_id = $1 AND {t.id_column} = $2",
            user_id,
            record_id,
        )

    async def list_records(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        *,
        interval: TimeInterval,
        ascending: bool,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[Record]:
        """Records in time order after the keyset ``after``."""
        t = self._t
        direction, comparison = ("ASC", ">") if ascending else ("DESC", "<")
        rows = await conn.fetch(
            f"""SELECT * FROM {t.table}
                WHERE user_id = $1
                  AND ($2::timestamptz IS NULL OR {t.time_column} >= $2)
                  AND ($3::timestamptz IS NULL OR {t.time_column} < $3)
                  AND ($4::timestamptz IS NULL
                       OR ({t.time_column}, {t.id_column}) {comparison} ($4, $5::uuid))
                ORDER BY {t.time_column} {direction}, {t.id_column} {direction}
                LIMIT $6""",
            user_id,
            interval.start,
            interval.end,
            after[0] if after else None,
            after[1] if after else None,
            limit,
        )
        return [self._record(row) for row in rows]
