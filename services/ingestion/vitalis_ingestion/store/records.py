"""Timed records (sleep, workouts, strength, nutrition, manual entries) in one table keyed by collection."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final

import asyncpg

from vitalis_ingestion.domain.records import RecordDraft, StoredRecord
from vitalis_runtime.errors import AlreadyExists

RECORD_COLUMNS: Final = """user_id, collection, record_id, source_id, kind, start_time, end_time,
    utc_offset_s,
    local_date, body, import_job_id, version, create_time, update_time"""
_CREATE_STAGING: Final = """
CREATE TEMP TABLE IF NOT EXISTS record_staging (
    collection text, record_id uuid, source_id text, kind smallint, start_time timestamptz,
    end_time timestamptz, utc_offset_s integer, local_date date, body text
) ON COMMIT DELETE ROWS"""


def _record(row: asyncpg.Record) -> StoredRecord:
    return StoredRecord(**{key: row[key] for key in row.keys()})  # noqa: SIM118 - asyncpg records


class RecordStore:
    """SQL for the ``records`` table."""

    async def write_many(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        drafts: Sequence[RecordDraft],
        *,
        import_job_id: uuid.UUID | None,
    ) -> set[uuid.UUID]:
        """COPY drafts into staging and merge them by natural key; return the IDs that were new."""
        if not drafts:
            return set()
        await conn.execute(_CREATE_STAGING)
        await conn.execute("TRUNCATE record_staging")
        await conn.copy_records_to_table(
            "record_staging",
            records=[
                (
                    d.collection,
                    d.record_id,
                    d.source_id,
                    d.kind,
                    d.start_time,
                    d.end_time,
                    d.utc_offset_s,
                    d.day(),
                    json.dumps(d.body),
                )
                for d in drafts
            ],
        )
        rows = await conn.fetch(
            """INSERT INTO records (user_id, collection, record_id, source_id, kind, start_time, end_time,
                                    utc_offset_s, local_date, body, import_job_id)
               SELECT $1, collection, record_id, source_id, kind, start_time, end_time, utc_offset_s,
                      local_date,
                      body::jsonb, $2
               FROM record_staging
               ON CONFLICT DO NOTHING RETURNING record_id""",
            user_id,
            import_job_id,
        )
        return {row["record_id"] for row in rows}

    async def create(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, draft: RecordDraft, *, request_id: str | None
    ) -> tuple[StoredRecord, bool]:
        """Insert one record; with a known ``request_id`` return the earlier one (and ``False``)."""
        if request_id:
            earlier = await conn.fetchrow(
                f"""SELECT {RECORD_COLUMNS} FROM records
                    WHERE user_id = $1 AND collection = $2 AND request_id = $3""",
                user_id,
                draft.collection,
                request_id,
            )
            if earlier is not None:
                return _record(earlier), False
        row = await conn.fetchrow(
            f"""INSERT INTO records (user_id, collection, record_id, source_id, kind, start_time, end_time,
                                     utc_offset_s, body, request_id, local_date)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING
                RETURNING {RECORD_COLUMNS}""",
            user_id,
            draft.collection,
            draft.record_id,
            draft.source_id,
            draft.kind,
            draft.start_time,
            draft.end_time,
            draft.utc_offset_s,
            dict(draft.body),
            request_id or None,
            draft.day(),
        )
        if row is None:
            raise AlreadyExists(
                "a record of this source with the same start time already exists",
                reason="RECORD_ALREADY_EXISTS",
            )
        return _record(row), True

    async def get(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, collection: str, record_id: uuid.UUID
    ) -> StoredRecord | None:
        """One record, or ``None``."""
        row = await conn.fetchrow(
            f"SELECT {RECORD_COLUMNS} FROM records WHERE user_id = $1 AND collection = $2 AND record_id = $3",
            user_id,
            collection,
            record_id,
        )
        return None if row is None else _record(row)

    async def update(
        self,
        conn: asyncpg.Connection,
        record: StoredRecord,
        *,
        end_time: datetime,
        utc_offset_s: int | None,
        body: Mapping[str, Any],
        kind: int,
        local_day: date,
        start_time: datetime,
    ) -> StoredRecord:
        """Replace a record's mutable parts and bump its version."""
        row = await conn.fetchrow(
            f"""UPDATE records SET end_time = $4, utc_offset_s = $5, body = $6, kind = $7, local_date = $8,
                       start_time = $9, version = version + 1, update_time = now()
                WHERE user_id = $1 AND collection = $2 AND record_id = $3 RETURNING {RECORD_COLUMNS}""",
            record.user_id,
            record.collection,
            record.record_id,
            end_time,
            utc_offset_s,
            dict(body),
            kind,
            local_day,
            start_time,
        )
        assert row is not None
        return _record(row)

    async def delete(self, conn: asyncpg.Connection, record: StoredRecord) -> None:
        """Delete one record."""
        await conn.execute(
            "DELETE FROM records WHERE user_id = $1 AND collection = $2 AND record_id = $3",
            record.user_id,
            record.collection,
            record.record_id,
        )

    async def find(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        collection: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        first_day: date | None = None,
        last_day: date | None = None,
        source_id: str | None = None,
        kinds: Sequence[int] = (),
        body_filter: Mapping[str, Any] | None = None,
        descending: bool,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[StoredRecord]:
        """Records of a collection by start time, filtered, after a keyset cursor."""
        comparison, order = ("<", "DESC") if descending else (">", "ASC")
        rows = await conn.fetch(
            f"""SELECT {RECORD_COLUMNS} FROM records
                WHERE user_id = $1 AND collection = $2
                  AND ($3::timestamptz IS NULL OR start_time >= $3)
                  AND ($4::timestamptz IS NULL OR start_time < $4)
                  AND ($5::text IS NULL OR source_id = $5)
                  AND (cardinality($6::smallint[]) = 0 OR kind = ANY($6))
                  AND ($7::jsonb IS NULL OR body @> $7)
                  AND ($8::timestamptz IS NULL OR (start_time, record_id) {comparison} ($8, $9::uuid))
                  AND ($11::date IS NULL OR local_date >= $11)
                  AND ($12::date IS NULL OR local_date <= $12)
                ORDER BY start_time {order}, record_id {order} LIMIT $10""",
            user_id,
            collection,
            start,
            end,
            source_id,
            list(kinds),
            dict(body_filter) if body_filter else None,
            after[0] if after else None,
            after[1] if after else None,
            limit,
            first_day,
            last_day,
        )
        return [_record(row) for row in rows]

    async def on_days(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, first_day: date | None, last_day: date | None
    ) -> list[StoredRecord]:
        """Records of every collection attributed to days in a range (daily summaries)."""
        rows = await conn.fetch(
            f"""SELECT {RECORD_COLUMNS} FROM records
                WHERE user_id = $1 AND collection = ANY('{{sleepSessions,workouts,strengthSessions}}'::text[])
                  AND ($2::date IS NULL OR local_date >= $2) AND ($3::date IS NULL OR local_date <= $3)
                ORDER BY local_date, start_time""",
            user_id,
            first_day,
            last_day,
        )
        return [_record(row) for row in rows]

    async def all_for_user(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> list[StoredRecord]:
        """Every record of the user (data export)."""
        rows = await conn.fetch(
            f"SELECT {RECORD_COLUMNS} FROM records WHERE user_id = $1 ORDER BY collection, start_time",
            user_id,
        )
        return [_record(row) for row in rows]
