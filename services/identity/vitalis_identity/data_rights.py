"""Data-subject rights: export and erasure jobs gathered from every service's UserDataService.

Jobs are queued in the database; a runner on any replica claims one at a time (a lease, so a
crashed replica's job is taken over), calls each service with a service token acting for the user
and records each service's progress. A service that fails is retried a few times within the
attempt; an export then fails naming the service, an erasure is retried later until it succeeds.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import uuid
import zipfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from vitalis_identity import events
from vitalis_identity.audit import AuditTrail
from vitalis_identity.domain.audit import AuditAction
from vitalis_identity.domain.jobs import DataRightsJob, ErasureTrigger, JobError, JobState, ServiceProgress
from vitalis_identity.domain.sessions import RevokeReason
from vitalis_identity.domain.users import normalize_email
from vitalis_identity.listing import ListQuery
from vitalis_identity.profiles import user_not_found
from vitalis_identity.store import SessionStore, UserStore
from vitalis_identity.store_jobs import JobStore
from vitalis_runtime.background import run_until_stopped
from vitalis_runtime.db import Database
from vitalis_runtime.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted

logger = logging.getLogger(__name__)
IDENTITY = "identity"
LEASE_SECONDS = 300.0
CALL_ATTEMPTS = 3
ERASURE_RETRY_SECONDS = 30.0
ARCHIVE_TTL = timedelta(days=7)
MAX_EXPORTS_PER_DAY = 5


@dataclass(frozen=True)
class ArchiveEntry:
    """One file of a service's part of an export."""

    path: str
    content_type: str
    data: bytes


JobRef = tuple[str, uuid.UUID, uuid.UUID]


class ServiceCallError(Exception):
    """A service's UserDataService call failed; ``code`` is the gRPC status code number."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UserDataClient(Protocol):
    """One service's UserDataService."""

    name: str

    async def export(self, user_id: uuid.UUID, job_name: str) -> list[ArchiveEntry]:
        """Every entry the service holds about the user."""
        ...

    async def erase(self, user_id: uuid.UUID, job_name: str) -> int:
        """Erase the user's data; how many items were erased."""
        ...


class DataRights:
    """Creates, reads and runs data-subject jobs."""

    def __init__(
        self,
        db: Database,
        audit: AuditTrail,
        clients: Sequence[UserDataClient],
        *,
        retry_delay: float = 0.5,
        jobs: JobStore | None = None,
        users: UserStore | None = None,
        sessions: SessionStore | None = None,
    ) -> None:
        self._db = db
        self._audit = audit
        self._clients = list(clients)
        self._retry_delay = retry_delay
        self._jobs = jobs or JobStore()
        self._users = users or UserStore()
        self._sessions = sessions or SessionStore()
        self._wake = asyncio.Event()

    async def create_export(self, user_id: uuid.UUID, request_id: str | None) -> DataRightsJob:
        """Queue an export; one at a time per user."""
        async with self._db.transaction(user_id=user_id) as conn:
            if request_id and (earlier := await self._jobs.by_request(conn, "export", user_id, request_id)):
                return earlier
            if await self._jobs.unfinished(conn, "export", user_id) is not None:
                raise FailedPrecondition(
                    "an export of this user is already pending or running", reason="EXPORT_RUNNING"
                )
            if (
                await self._jobs.exports_since(conn, user_id, datetime.now(UTC) - timedelta(days=1))
                >= MAX_EXPORTS_PER_DAY
            ):
                raise ResourceExhausted(
                    f"at most {MAX_EXPORTS_PER_DAY} exports a day; try again tomorrow", reason="EXPORT_QUOTA"
                )
            job = await self._jobs.create(conn, "export", user_id, request_id=request_id)
            await self._audit.record(conn, user_id, AuditAction.EXPORT, job.name)
        self._wake.set()
        return job

    async def create_erasure(
        self,
        user_id: uuid.UUID,
        *,
        trigger: ErasureTrigger,
        request_id: str | None = None,
        confirm_email: str | None,
    ) -> DataRightsJob:
        """Queue an erasure: the user is signed out everywhere and cannot sign in again."""
        async with self._db.transaction(user_id=user_id) as conn:
            if request_id and (earlier := await self._jobs.by_request(conn, "erasure", user_id, request_id)):
                return earlier
            running = await self._jobs.unfinished(conn, "erasure", user_id)
            scheduled = running is not None and running.trigger is ErasureTrigger.DELETION_EXPIRED
            if running is not None and not (scheduled and running.state is JobState.PENDING):
                return running
            user = await self._users.get_user(conn, user_id)
            if user is None:
                raise user_not_found(f"users/{user_id}")
            if (
                confirm_email is not None
                and normalize_email(confirm_email or "x@invalid.example") != user.email
            ):
                raise InvalidArgument.for_field("confirm_email", "does not match the user's e-mail address")
            now = datetime.now(UTC)
            await self._users.set_deleted(
                conn,
                user_id,
                expected_version=user.version,
                delete_time=user.delete_time or now,
                expire_time=now,
            )
            await self._sessions.revoke_other_sessions(conn, user_id, None, RevokeReason.USER_DELETED.value)
            if running is not None:
                # The erasure a soft delete scheduled for later runs now instead.
                await self._jobs.retry_later(conn, running.job_id, 0)
                job = running
            else:
                job = await self._jobs.create(
                    conn, "erasure", user_id, request_id=request_id, trigger=trigger
                )
            await events.erasure_started(conn, user_id, job.name, job.trigger or trigger)
            await self._audit.record(conn, user_id, AuditAction.ERASE, job.name)
        self._wake.set()
        return job

    async def start_external_erasure(self, user_id: uuid.UUID) -> DataRightsJob:
        """The erasure a provider's deletion starts."""
        return await self.create_erasure(
            user_id, trigger=ErasureTrigger.EXTERNAL_PROVIDER, confirm_email=None
        )

    async def get(self, kind: str, user_id: uuid.UUID, job_id: uuid.UUID) -> DataRightsJob:
        """One job of the user."""
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            job = await self._jobs.get(conn, kind, user_id, job_id)
        if job is None:
            name = f"users/{user_id}/{'exportJobs' if kind == 'export' else 'erasureJobs'}/{job_id}"
            raise NotFound(f"job {name!r} was not found", reason="JOB_NOT_FOUND", metadata={"name": name})
        return job

    async def list_page(
        self, kind: str, user_id: uuid.UUID, cursor: Mapping[str, Any], limit: int
    ) -> list[DataRightsJob]:
        """A page of the user's jobs, newest first."""
        query = ListQuery()
        query.page_after(cursor, "create_time", "job_id", descending=True)
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            return await self._jobs.list_page(conn, kind, user_id, query, limit)

    async def archive(self, user_id: uuid.UUID, job_id: uuid.UUID) -> bytes:
        """The archive of a succeeded export."""
        job = await self.get("export", user_id, job_id)
        if job.state is not JobState.SUCCEEDED:
            raise FailedPrecondition("the export has not succeeded yet", reason="EXPORT_NOT_READY")
        async with self._db.transaction(user_id=user_id) as conn:
            data = await self._jobs.archive(conn, user_id, job_id)
            if data is not None:
                await self._audit.record(conn, user_id, AuditAction.EXPORT, job.name)
        if data is None:
            raise NotFound(f"the archive of {job.name!r} has expired", reason="ARCHIVE_EXPIRED")
        return data

    async def run(self, stop: asyncio.Event, *, idle_delay: float = 5.0) -> None:
        """Run queued jobs until ``stop`` is set (a background task of the service)."""

        async def step() -> bool:
            self._wake.clear()
            ran = await self.run_next()
            if not ran:
                waiter = asyncio.create_task(self._wake.wait())
                stopper = asyncio.create_task(stop.wait())
                await asyncio.wait({waiter, stopper}, timeout=idle_delay, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                return True
            return True

        await run_until_stopped(step, stop, name="data-subject jobs", idle_delay=0.0)

    async def run_next(self) -> bool:
        """Run the next due job, if any; whether one ran."""
        async with self._db.transaction(user_id=None) as conn:
            claimed = await self._jobs.claim_next(conn, LEASE_SECONDS)
        if claimed is None:
            return False
        kind, job_id, user_id = claimed
        if kind == "export":
            await self._run_export(user_id, job_id)
        else:
            await self._run_erasure(user_id, job_id)
        return True

    async def _progress(
        self,
        job: JobRef,
        state: JobState,
        services: Sequence[ServiceProgress],
        error: JobError | None = None,
        *,
        end: bool = False,
    ) -> None:
        kind, user_id, job_id = job
        now = datetime.now(UTC)
        async with self._db.transaction(user_id=user_id) as conn:
            await self._jobs.update(
                conn,
                kind,
                user_id,
                job_id,
                state=state,
                services=services,
                error=error,
                start_time=now,
                end_time=now if end else None,
            )
            if end and kind == "export":
                await events.export_completed(conn, user_id, f"users/{user_id}/exportJobs/{job_id}", state)

    async def _call(self, operation: Callable[[], Awaitable[Any]]) -> Any:
        delay = self._retry_delay
        for attempt in range(CALL_ATTEMPTS):
            try:
                return await operation()
            except ServiceCallError:
                if attempt == CALL_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    async def _run_export(self, user_id: uuid.UUID, job_id: uuid.UUID) -> None:
        job_name = f"users/{user_id}/exportJobs/{job_id}"
        progress = {c.name: ServiceProgress(c.name, JobState.PENDING) for c in self._clients}
        await self._progress(("export", user_id, job_id), JobState.RUNNING, list(progress.values()))
        gathered: dict[str, list[ArchiveEntry]] = {}
        failed: list[str] = []
        for client in self._clients:
            try:
                entries: list[ArchiveEntry] = await self._call(
                    lambda client=client: client.export(user_id, job_name)  # type: ignore[misc]
                )
            except ServiceCallError as error:
                failed.append(client.name)
                progress[client.name] = ServiceProgress(
                    client.name, JobState.FAILED, error=JobError(error.code, error.message)
                )
                continue
            gathered[client.name] = entries
            progress[client.name] = ServiceProgress(
                client.name,
                JobState.SUCCEEDED,
                item_count=len(entries),
                byte_count=sum(len(e.data) for e in entries),
            )
            await self._progress(("export", user_id, job_id), JobState.RUNNING, list(progress.values()))
        services = list(progress.values())
        if failed:
            failure = JobError(14, f"the export failed in: {', '.join(failed)}")
            await self._progress(("export", user_id, job_id), JobState.FAILED, services, failure, end=True)
        else:
            archive = build_archive(user_id, gathered)
            async with self._db.transaction(user_id=user_id) as conn:
                await self._jobs.store_archive(
                    conn,
                    user_id,
                    job_id,
                    archive=archive,
                    sha256=hashlib.sha256(archive).hexdigest(),
                    expire_time=datetime.now(UTC) + ARCHIVE_TTL,
                )
            await self._progress(("export", user_id, job_id), JobState.SUCCEEDED, services, end=True)
        async with self._db.transaction(user_id=None) as conn:
            await self._jobs.done(conn, job_id)

    async def _run_erasure(self, user_id: uuid.UUID, job_id: uuid.UUID) -> None:
        job_name = f"users/{user_id}/erasureJobs/{job_id}"
        async with self._db.transaction(user_id=user_id) as conn:
            if await self._jobs.get(conn, "erasure", user_id, job_id) is None:
                # Cancelled (the user was restored before the erasure a soft delete scheduled).
                await self._jobs.done(conn, job_id)
                return
        # Identity erases last: until then the user (and this job's owner) still exists.
        ordered = [c for c in self._clients if c.name != IDENTITY] + [
            c for c in self._clients if c.name == IDENTITY
        ]
        progress = {c.name: ServiceProgress(c.name, JobState.PENDING) for c in ordered}
        await self._progress(("erasure", user_id, job_id), JobState.RUNNING, list(progress.values()))
        failed: list[str] = []
        for client in ordered:
            if client.name == IDENTITY and failed:
                break
            try:
                count: int = await self._call(lambda client=client: client.erase(user_id, job_name))  # type: ignore[misc]
            except ServiceCallError as error:
                failed.append(client.name)
                progress[client.name] = ServiceProgress(
                    client.name, JobState.FAILED, error=JobError(error.code, error.message)
                )
                continue
            progress[client.name] = ServiceProgress(client.name, JobState.SUCCEEDED, item_count=count)
        services = list(progress.values())
        async with self._db.transaction(user_id=None) as conn:
            if failed:
                await self._jobs.retry_later(conn, job_id, ERASURE_RETRY_SECONDS)
            else:
                await self._jobs.done(conn, job_id)
        if failed:
            failure = JobError(14, f"the erasure failed in: {', '.join(failed)}; it will be retried")
            await self._progress(("erasure", user_id, job_id), JobState.FAILED, services, failure)
        else:
            await self._progress(("erasure", user_id, job_id), JobState.SUCCEEDED, services, end=True)
            async with self._db.transaction(user_id=user_id) as conn:
                await events.user_erased(conn, user_id, job_name)
                await self._audit.record(conn, user_id, AuditAction.ERASE, f"users/{user_id}")


def build_archive(user_id: uuid.UUID, gathered: Mapping[str, Sequence[ArchiveEntry]]) -> bytes:
    """A ZIP with one folder per service and a manifest listing every entry with its SHA-256."""
    buffer = io.BytesIO()
    manifest: dict[str, Any] = {
        "user": f"users/{user_id}",
        "create_time": datetime.now(UTC).isoformat(),
        "services": sorted(gathered),
        "entries": [],
    }
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for service, entries in sorted(gathered.items()):
            for entry in entries:
                path = f"{service}/{entry.path}"
                archive.writestr(path, entry.data)
                manifest["entries"].append(
                    {
                        "path": path,
                        "content_type": entry.content_type,
                        "size_bytes": len(entry.data),
                        "sha256": hashlib.sha256(entry.data).hexdigest(),
                    }
                )
        archive.writestr("manifest.json", json.dumps(manifest, indent=2))
    return buffer.getvalue()
