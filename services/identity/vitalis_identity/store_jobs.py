"""SQL for data-subject jobs and their work queue."""

# Like store.py: SQL is composed from constant column lists only; values are always bind parameters.
# ruff: noqa: S608

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from vitalis_identity.domain.jobs import DataRightsJob, ErasureTrigger, JobError, JobState, ServiceProgress
from vitalis_identity.listing import ListQuery

_COMMON = "user_id, job_id, state, services, create_time, start_time, end_time, error"
_TABLES = {"export": "export_jobs", "erasure": "erasure_jobs"}
_EXTRA = {
    "export": ", archive_size_bytes, archive_sha256, expire_time",
    "erasure": ", trigger",
}


def _job(kind: str, row: asyncpg.Record) -> DataRightsJob:
    return DataRightsJob(
        kind=kind,
        user_id=row["user_id"],
        job_id=row["job_id"],
        state=JobState(row["state"]),
        services=tuple(ServiceProgress.from_json(s) for s in row["services"]),
        create_time=row["create_time"],
        start_time=row["start_time"],
        end_time=row["end_time"],
        error=JobError.from_json(row["error"]),
        trigger=ErasureTrigger(row["trigger"]) if kind == "erasure" else None,
        archive_size_bytes=row["archive_size_bytes"] if kind == "export" else 0,
        archive_sha256=row["archive_sha256"] if kind == "export" else "",
        expire_time=row["expire_time"] if kind == "export" else None,
    )


def _columns(kind: str) -> str:
    return _COMMON + _EXTRA[kind]


class JobStore:
    """Export and erasure jobs of a user, and the queue any replica takes work from."""

    async def create(
        self,
        conn: asyncpg.Connection,
        kind: str,
        user_id: uuid.UUID,
        *,
        request_id: str | None,
        trigger: ErasureTrigger | None = None,
        run_after: datetime | None = None,
    ) -> DataRightsJob:
        """Insert a pending job and queue it (to run from ``run_after``, by default at once)."""
        job_id = uuid.uuid4()
        if kind == "erasure":
            assert trigger is not None
            row = await conn.fetchrow(
                f"""INSERT INTO erasure_jobs (user_id, job_id, trigger, request_id) VALUES ($1, $2, $3, $4)
                    RETURNING {_columns(kind)}""",
                user_id,
                job_id,
                trigger.value,
                request_id,
            )
        else:
            row = await conn.fetchrow(
                f"""INSERT INTO export_jobs (user_id, job_id, request_id) VALUES ($1, $2, $3)
                    RETURNING {_columns(kind)}""",
                user_id,
                job_id,
                request_id,
            )
        await conn.execute(
            """INSERT INTO data_rights_queue (job_id, kind, subject_id, run_after)
               VALUES ($1, $2, $3, coalesce($4, now()))""",
            job_id,
            kind,
            user_id,
            run_after,
        )
        assert row is not None
        return _job(kind, row)

    async def get(
        self, conn: asyncpg.Connection, kind: str, user_id: uuid.UUID, job_id: uuid.UUID
    ) -> DataRightsJob | None:
        """One job of the user."""
        row = await conn.fetchrow(
            f"SELECT {_columns(kind)} FROM {_TABLES[kind]} WHERE user_id = $1 AND job_id = $2",
            user_id,
            job_id,
        )
        return _job(kind, row) if row else None

    async def by_request(
        self, conn: asyncpg.Connection, kind: str, user_id: uuid.UUID, request_id: str
    ) -> DataRightsJob | None:
        """The job an earlier request with this id created."""
        row = await conn.fetchrow(
            f"SELECT {_columns(kind)} FROM {_TABLES[kind]} WHERE user_id = $1 AND request_id = $2",
            user_id,
            request_id,
        )
        return _job(kind, row) if row else None

    async def unfinished(
        self, conn: asyncpg.Connection, kind: str, user_id: uuid.UUID
    ) -> DataRightsJob | None:
        """A job of the user still pending, running or (for erasures) failed and to be retried."""
        states = ("pending", "running", "failed") if kind == "erasure" else ("pending", "running")
        row = await conn.fetchrow(
            f"""SELECT {_columns(kind)} FROM {_TABLES[kind]}
                WHERE user_id = $1 AND state = ANY($2::text[]) ORDER BY create_time LIMIT 1""",
            user_id,
            list(states),
        )
        return _job(kind, row) if row else None

    async def list_page(
        self, conn: asyncpg.Connection, kind: str, user_id: uuid.UUID, query: ListQuery, limit: int
    ) -> list[DataRightsJob]:
        """A page of the user's jobs, newest first."""
        query.where("user_id = {}", user_id)
        rows = await conn.fetch(
            query.sql(
                f"SELECT {_columns(kind)} FROM {_TABLES[kind]}",
                "create_time",
                "job_id",
                descending=True,
                limit=limit,
            ),
            *query.params,
        )
        return [_job(kind, r) for r in rows]

    async def update(
        self,
        conn: asyncpg.Connection,
        kind: str,
        user_id: uuid.UUID,
        job_id: uuid.UUID,
        *,
        state: JobState,
        services: Sequence[ServiceProgress],
        error: JobError | None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
    ) -> None:
        """Record progress."""
        await conn.execute(
            f"""UPDATE {_TABLES[kind]} SET state = $3, services = $4, error = $5,
                    start_time = coalesce(start_time, $6), end_time = $7
                WHERE user_id = $1 AND job_id = $2""",
            user_id,
            job_id,
            state.value,
            [s.to_json() for s in services],
            error.to_json() if error else None,
            start_time,
            end_time,
        )

    async def store_archive(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        job_id: uuid.UUID,
        *,
        archive: bytes,
        sha256: str,
        expire_time: datetime,
    ) -> None:
        """Keep a finished export's archive until it expires."""
        await conn.execute(
            """UPDATE export_jobs SET archive = $3, archive_size_bytes = $4, archive_sha256 = $5,
                   expire_time = $6
               WHERE user_id = $1 AND job_id = $2""",
            user_id,
            job_id,
            archive,
            len(archive),
            sha256,
            expire_time,
        )

    async def archive(self, conn: asyncpg.Connection, user_id: uuid.UUID, job_id: uuid.UUID) -> bytes | None:
        """A succeeded export's archive, while it has not expired."""
        data: bytes | None = await conn.fetchval(
            """SELECT archive FROM export_jobs WHERE user_id = $1 AND job_id = $2 AND state = 'succeeded'
                 AND expire_time > now()""",
            user_id,
            job_id,
        )
        return data

    async def claim_next(
        self, conn: asyncpg.Connection, lease_seconds: float
    ) -> tuple[str, uuid.UUID, uuid.UUID] | None:
        """Take the next due job off the queue for ``lease_seconds`` (kind, job id, user id)."""
        row = await conn.fetchrow(
            """UPDATE data_rights_queue
               SET run_after = now() + make_interval(secs => $1), attempts = attempts + 1
               WHERE job_id = (SELECT job_id FROM data_rights_queue WHERE run_after <= now()
                               ORDER BY run_after FOR UPDATE SKIP LOCKED LIMIT 1)
               RETURNING kind, job_id, subject_id""",
            lease_seconds,
        )
        return (row["kind"], row["job_id"], row["subject_id"]) if row else None

    async def retry_later(self, conn: asyncpg.Connection, job_id: uuid.UUID, delay_seconds: float) -> None:
        """Put a job back on the queue after a delay."""
        await conn.execute(
            "UPDATE data_rights_queue SET run_after = now() + make_interval(secs => $2) WHERE job_id = $1",
            job_id,
            delay_seconds,
        )

    async def cancel_scheduled_erasure(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
        """Drop the erasure a soft delete scheduled, when the user is restored before it ran."""
        rows = await conn.fetch(
            """DELETE FROM erasure_jobs
               WHERE user_id = $1 AND state = 'pending' AND trigger = 'deletion_expired'
               RETURNING job_id""",
            user_id,
        )
        await conn.execute(
            "DELETE FROM data_rights_queue WHERE job_id = ANY($1::uuid[])", [r["job_id"] for r in rows]
        )

    async def exports_since(self, conn: asyncpg.Connection, user_id: uuid.UUID, since: datetime) -> int:
        """How many exports the user requested since a time."""
        count: int = await conn.fetchval(
            "SELECT count(*) FROM export_jobs WHERE user_id = $1 AND create_time >= $2", user_id, since
        )
        return count

    async def done(self, conn: asyncpg.Connection, job_id: uuid.UUID) -> None:
        """Remove a finished job from the queue."""
        await conn.execute("DELETE FROM data_rights_queue WHERE job_id = $1", job_id)
