"""Import jobs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

import asyncpg

from vitalis_ingestion.domain.import_jobs import ImportJob, JobCounts, JobError, JobState

JOB_COLUMNS: Final = """user_id, job_id, format, source_id, document, file_name, size_bytes, content_sha256,
    state,
    cancel_requested, bytes_read, counts, error, version, create_time, start_time, end_time, update_time,
    data_start_time, data_end_time"""


def _job(row: asyncpg.Record) -> ImportJob:
    error = row["error"]
    return ImportJob(
        **{key: row[key] for key in row.keys() if key not in ("state", "counts", "error")},  # noqa: SIM118 - asyncpg records
        state=JobState(row["state"]),
        counts=JobCounts.from_json(row["counts"] or {}),
        error=JobError(error["reason"], error["message"]) if error else None,
    )


class ImportJobStore:
    """SQL for ``import_jobs``."""

    async def create(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        *,
        format: int,
        source_id: str | None,
        document: str,
        file_name: str,
        size_bytes: int,
        content_sha256: str,
        request_id: str | None,
    ) -> tuple[ImportJob, bool]:
        """A new pending job, or the existing one for the same request or bytes (and ``False``)."""
        if request_id:
            earlier = await conn.fetchrow(
                f"SELECT {JOB_COLUMNS} FROM import_jobs WHERE user_id = $1 AND request_id = $2",
                user_id,
                request_id,
            )
            if earlier is not None:
                return _job(earlier), False
        row = await conn.fetchrow(
            f"""INSERT INTO import_jobs (user_id, job_id, format, source_id, document, file_name, size_bytes,
                                         content_sha256, state, request_id)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9)
                ON CONFLICT (user_id, content_sha256) WHERE state <> 5 DO NOTHING
                RETURNING {JOB_COLUMNS}""",
            user_id,
            uuid.uuid4(),
            format,
            source_id,
            document,
            file_name,
            size_bytes,
            content_sha256,
            request_id or None,
        )
        if row is not None:
            return _job(row), True
        existing = await conn.fetchrow(
            f"""SELECT {JOB_COLUMNS} FROM import_jobs
                WHERE user_id = $1 AND content_sha256 = $2 AND state <> 5""",
            user_id,
            content_sha256,
        )
        assert existing is not None
        return _job(existing), False

    async def get(self, conn: asyncpg.Connection, user_id: uuid.UUID, job_id: uuid.UUID) -> ImportJob | None:
        """One job, or ``None``."""
        row = await conn.fetchrow(
            f"SELECT {JOB_COLUMNS} FROM import_jobs WHERE user_id = $1 AND job_id = $2",
            user_id,
            job_id,
        )
        return None if row is None else _job(row)

    async def find(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        *,
        states: Sequence[int],
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[ImportJob]:
        """Jobs newest first."""
        rows = await conn.fetch(
            f"""SELECT {JOB_COLUMNS} FROM import_jobs
                WHERE user_id = $1 AND (cardinality($2::smallint[]) = 0 OR state = ANY($2))
                  AND ($3::timestamptz IS NULL OR (create_time, job_id) < ($3, $4::uuid))
                ORDER BY create_time DESC, job_id DESC LIMIT $5""",
            user_id,
            list(states),
            after[0] if after else None,
            after[1] if after else None,
            limit,
        )
        return [_job(row) for row in rows]

    async def start(self, conn: asyncpg.Connection, job: ImportJob) -> bool:
        """Mark a pending job running; ``False`` when it is no longer pending (cancelled meanwhile)."""
        status: str = await conn.execute(
            """UPDATE import_jobs SET state = 2, start_time = now(), update_time = now(),
                      version = version + 1
               WHERE user_id = $1 AND job_id = $2 AND state = 1""",
            job.user_id,
            job.job_id,
        )
        return status.endswith(" 1")

    async def progress(
        self,
        conn: asyncpg.Connection,
        job: ImportJob,
        *,
        bytes_read: int,
        counts: JobCounts,
        data_range: tuple[datetime | None, datetime | None],
    ) -> bool:
        """Record progress; return whether cancellation was requested."""
        requested: bool | None = await conn.fetchval(
            """UPDATE import_jobs SET bytes_read = $3, counts = $4, update_time = now(),
                      version = version + 1,
                      data_start_time = $5, data_end_time = $6
               WHERE user_id = $1 AND job_id = $2 RETURNING cancel_requested""",
            job.user_id,
            job.job_id,
            bytes_read,
            counts.to_json(),
            data_range[0],
            data_range[1],
        )
        return bool(requested)

    async def finish(
        self,
        conn: asyncpg.Connection,
        job: ImportJob,
        state: JobState,
        *,
        counts: JobCounts,
        error: JobError | None,
    ) -> ImportJob:
        """Move a job to a terminal state."""
        row = await conn.fetchrow(
            f"""UPDATE import_jobs SET state = $3::smallint, counts = $4, error = $5, end_time = now(),
                       update_time = now(), version = version + 1,
                       bytes_read = CASE WHEN $3::smallint = 3 THEN size_bytes ELSE bytes_read END
                WHERE user_id = $1 AND job_id = $2 RETURNING {JOB_COLUMNS}""",
            job.user_id,
            job.job_id,
            int(state),
            counts.to_json(),
            {"reason": error.reason, "message": error.message} if error else None,
        )
        assert row is not None
        return _job(row)

    async def stale(
        self, conn: asyncpg.Connection, *, older_than: timedelta
    ) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """(user, job) of every job pending or running without progress for ``older_than``."""
        rows = await conn.fetch("SELECT user_id, job_id FROM stale_import_jobs($1)", older_than)
        return [(row["user_id"], row["job_id"]) for row in rows]

    async def reclaim(self, conn: asyncpg.Connection, job: ImportJob, *, older_than: timedelta) -> bool:
        """Put a stalled job back to pending so it runs again; ``False`` when another process got it first."""
        status: str = await conn.execute(
            """UPDATE import_jobs SET state = 1, update_time = now(), version = version + 1
               WHERE user_id = $1 AND job_id = $2 AND state IN (1, 2)
                 AND update_time < now() - $3::interval""",
            job.user_id,
            job.job_id,
            older_than,
        )
        return status.endswith(" 1")

    async def request_cancel(self, conn: asyncpg.Connection, job: ImportJob) -> ImportJob:
        """Flag a pending or running job for cancellation (a pending one is cancelled at once)."""
        row = await conn.fetchrow(
            f"""UPDATE import_jobs SET cancel_requested = true, update_time = now(), version = version + 1,
                       state = CASE WHEN state = 1 THEN 5 ELSE state END,
                       end_time = CASE WHEN state = 1 THEN now() ELSE end_time END
                WHERE user_id = $1 AND job_id = $2 RETURNING {JOB_COLUMNS}""",
            job.user_id,
            job.job_id,
        )
        assert row is not None
        return _job(row)

    async def all_for_user(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> list[ImportJob]:
        """Every job of the user (data export)."""
        return await self.find(conn, user_id, states=[], after=None, limit=1_000_000)
