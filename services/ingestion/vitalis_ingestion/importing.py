"""Running import jobs: parse in a worker thread, write in batches through the COPY paths, keep counts."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import uuid
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, cast

from google.protobuf.timestamp_pb2 import Timestamp

from vitalis.ingestion.v1 import common_pb2, events_pb2
from vitalis_ingestion import events
from vitalis_ingestion.domain.import_jobs import ImportJob, JobCounts, JobError, JobState
from vitalis_ingestion.domain.metrics import metric_by_number
from vitalis_ingestion.domain.records import RecordDraft
from vitalis_ingestion.domain.samples import (
    Rejection,
    SampleRow,
    WriteTally,
    canonical_row,
    contract_violations,
)
from vitalis_ingestion.importers import archive
from vitalis_ingestion.importers.apple_health import AppleHealthParser
from vitalis_ingestion.importers.csv_file import CSV_PLATFORM, parse_csv
from vitalis_ingestion.importers.fit import FitParser
from vitalis_ingestion.importers.items import CountingReader, ImportFailure, ImportItem, SourceHint
from vitalis_ingestion.store.import_jobs import ImportJobStore
from vitalis_ingestion.store.records import RecordStore
from vitalis_ingestion.store.samples import SampleStore
from vitalis_ingestion.store.sources import SourceStore
from vitalis_runtime.background import run_until_stopped
from vitalis_runtime.db import Database

logger = logging.getLogger(__name__)
STALL_TIMEOUT = timedelta(minutes=10)
JsonItems = Callable[[IO[bytes], uuid.UUID, SourceHint], Iterator[ImportItem]]


@dataclass
class _Batch:
    items: list[ImportItem]
    bytes_read: int
    done: bool
    prepared: _Prepared
    failure: ImportFailure | None = None


@dataclass
class _Prepared:
    rows: list[SampleRow] = field(default_factory=list)
    records: list[RecordDraft] = field(default_factory=list)
    row_owner: list[int] = field(default_factory=list)
    record_owner: list[int] = field(default_factory=list)
    first_rejection: dict[int, Rejection] = field(default_factory=dict)


def _take(items: Iterator[ImportItem], reader: CountingReader, size: int) -> _Batch:
    """Up to ``size`` items, validated; a failure ends the batch, keeping the items read before it."""
    batch: list[ImportItem] = []
    failure: ImportFailure | None = None
    done = True
    try:
        for item in items:
            batch.append(item)
            if len(batch) >= size:
                done = False
                break
    except ImportFailure as error:
        failure = error
    return _Batch(batch, reader.bytes_read, done=done, prepared=_prepare(batch), failure=failure)


class ImportRunner:
    """Runs import jobs in the background of this process, a few at a time."""

    def __init__(
        self,
        db: Database,
        *,
        jobs: ImportJobStore,
        samples: SampleStore,
        sources: SourceStore,
        records: RecordStore,
        spool_dir: Path,
        json_items: JsonItems,
        batch_size: int = 5000,
        concurrency: int = 2,
        stall_timeout: timedelta = STALL_TIMEOUT,
    ) -> None:
        self._db = db
        self._jobs = jobs
        self._samples = samples
        self._sources = sources
        self._records = records
        self._spool = spool_dir
        self._json_items = json_items
        self._batch_size = batch_size
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[uuid.UUID] = set()
        self._stall_timeout = stall_timeout

    def path_of(self, job_id: uuid.UUID) -> Path:
        """Where the bytes of a job wait until it finishes."""
        return self._spool / f"{job_id}.import"

    def submit(self, job: ImportJob) -> None:
        """Start ``job`` in the background."""
        # A fresh context: the job must not inherit the uploading request's deadline or caller.
        task = asyncio.create_task(self._run(job), name=f"import-{job.job_id}", context=contextvars.Context())
        self._tasks.add(task)
        self._running.add(job.job_id)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._running.discard(job.job_id))

    async def resume_stalled(self, *, older_than: timedelta | None = None) -> int:
        """Run again the stalled jobs whose files this process holds (after a restart); return how many.

        A job is stalled when it made no progress for ``older_than`` (the runner's stall timeout by
        default). Records already written are found again by their natural keys, so the rerun only
        adds what is missing; its counts describe the rerun.
        """
        older_than = self._stall_timeout if older_than is None else older_than
        async with self._db.transaction(user_id=None) as conn:
            stalled = await self._jobs.stale(conn, older_than=older_than)
        resumed = 0
        for user_id, job_id in stalled:
            if job_id in self._running or not self.path_of(job_id).exists():
                continue
            async with self._db.transaction(user_id=user_id) as conn:
                job = await self._jobs.get(conn, user_id, job_id)
                if job is None or not await self._jobs.reclaim(conn, job, older_than=older_than):
                    continue
            self.submit(job)
            resumed += 1
        return resumed

    async def keep_resuming(self, stop: asyncio.Event) -> None:
        """Resume stalled jobs at start and then periodically (at most a minute apart) until ``stop``."""

        async def step() -> bool:
            await self.resume_stalled()
            return False

        idle_delay = min(60.0, max(1.0, self._stall_timeout.total_seconds() / 2))
        await run_until_stopped(step, stop, name="import-resume", idle_delay=idle_delay)

    async def run_now(self, job: ImportJob) -> None:
        """Run ``job`` to its end in the caller's task (tools and benchmarks)."""
        await self._run(job)

    async def close(self) -> None:
        """Stop running imports (they stay running in the database and are re-run by their next upload)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, job: ImportJob) -> None:
        async with self._slots:
            async with self._db.transaction(user_id=job.user_id) as conn:
                started = await self._jobs.start(conn, job)
            if not started:
                self.path_of(job.job_id).unlink(missing_ok=True)
                return
            counts = JobCounts()
            state, error = JobState.SUCCEEDED, None
            try:
                cancelled = await self._import(job, counts)
                if cancelled:
                    state = JobState.CANCELLED
            except ImportFailure as failure:
                state, error = JobState.FAILED, JobError(failure.reason, failure.message)
            except Exception:
                logger.exception("import %s failed unexpectedly", job.name)
                state, error = (
                    JobState.FAILED,
                    JobError("INTERNAL", "the import stopped on an internal error"),
                )
            async with self._db.transaction(user_id=job.user_id) as conn:
                finished = await self._jobs.finish(conn, job, state, counts=counts, error=error)
                await events.emit(conn, job.user_id, _finished_event(finished))
            self.path_of(job.job_id).unlink(missing_ok=True)

    async def _import(self, job: ImportJob, counts: JobCounts) -> bool:
        loop = asyncio.get_running_loop()
        with (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="import") as worker,
            contextlib.ExitStack() as stack,
        ):
            raw = stack.enter_context(self.path_of(job.job_id).open("rb"))
            reader = CountingReader(raw)
            items = await loop.run_in_executor(worker, self._open_items, job, reader, stack)
            known_sources: set[str] = set()
            data_range: list[datetime | None] = [None, None]
            # The next batch is parsed in the worker while this one is written.
            upcoming = loop.run_in_executor(worker, _take, items, reader, self._batch_size)
            while True:
                batch = await upcoming
                if not batch.done:
                    upcoming = loop.run_in_executor(worker, _take, items, reader, self._batch_size)
                await self._write(job, batch, counts, known_sources, data_range)
                async with self._db.transaction(user_id=job.user_id) as conn:
                    cancel = await self._jobs.progress(
                        conn,
                        job,
                        bytes_read=batch.bytes_read,
                        counts=counts,
                        data_range=(data_range[0], data_range[1]),
                    )
                if batch.failure is not None:
                    raise batch.failure
                if cancel:
                    if not batch.done:
                        await upcoming
                    return True
                if batch.done:
                    return False

    def _open_items(
        self, job: ImportJob, reader: CountingReader, stack: contextlib.ExitStack
    ) -> Iterator[ImportItem]:
        fixed = SourceHint(job.source_id, "", 0, "") if job.source_id else None
        stream = cast(IO[bytes], reader)
        if job.format == archive.APPLE_ZIP:
            try:
                zipped = stack.enter_context(zipfile.ZipFile(stream))
                entry = archive.open_export(zipped)
            except zipfile.BadZipFile as error:
                raise ImportFailure(
                    "FILE_TRUNCATED", f"the zip archive is truncated or damaged ({error})"
                ) from error
            base = entry.filename.rsplit("/", 1)[0] + "/" if "/" in entry.filename else ""

            def open_route(path: str) -> IO[bytes]:
                return zipped.open(base + path.lstrip("/"))

            entry_stream = archive.BoundedEntry(stack.enter_context(zipped.open(entry)), entry.file_size)
            parser = AppleHealthParser(fixed_source=fixed, route_opener=open_route)
            return _zip_errors(parser.items(cast(IO[bytes], entry_stream)))
        if job.format == archive.APPLE_XML:
            return AppleHealthParser(fixed_source=fixed, route_opener=None).items(stream)
        if job.format == archive.GARMIN_FIT:
            return FitParser(fixed_source=fixed).items(stream)
        if job.format == archive.CSV:
            return parse_csv(reader, source=fixed or SourceHint("csv-import", "CSV import", CSV_PLATFORM, ""))
        if job.format == archive.JSON:
            return self._json_items(
                stream, job.user_id, fixed or SourceHint("json-import", "JSON import", 14, "")
            )
        raise ImportFailure("UNSUPPORTED_FORMAT", f"format {job.format} cannot be imported")

    async def _write(
        self,
        job: ImportJob,
        batch: _Batch,
        counts: JobCounts,
        known_sources: set[str],
        data_range: list[datetime | None],
    ) -> None:
        items = batch.items
        hints = {item.source.source_id: item.source for item in items if item.source and item.source.platform}
        new_hints = [hint for source_id, hint in hints.items() if source_id not in known_sources]
        if new_hints:
            async with self._db.transaction(user_id=job.user_id) as conn:
                for hint in new_hints:
                    await self._sources.ensure_source(
                        conn,
                        job.user_id,
                        source_id=hint.source_id,
                        display_name=hint.display_name,
                        platform=hint.platform,
                        app_id=hint.app_id,
                    )
            known_sources.update(hint.source_id for hint in new_hints)
        named = {row.source_id for row in batch.prepared.rows} | {r.source_id for r in batch.prepared.records}
        unchecked = sorted(named - known_sources)
        if unchecked:
            async with self._db.transaction(user_id=job.user_id, readonly=True) as conn:
                known_sources.update(await self._sources.existing_source_ids(conn, job.user_id, unchecked))
        prepared = _known_sources_only(batch.prepared, items, known_sources)
        await self._samples.ensure_partitions(prepared.rows)
        async with self._db.transaction(user_id=job.user_id) as conn:
            result = await self._samples.write(conn, job.user_id, prepared.rows, import_job_id=job.job_id)
            new_records = await self._records.write_many(
                conn, job.user_id, prepared.records, import_job_id=job.job_id
            )
            await events.samples_ingested(conn, job.user_id, result.series, import_job=job.name)
            await self._samples.mark_sources_written(conn, job.user_id, result.series)
        for series in result.series:
            data_range[0] = min(filter(None, (data_range[0], series.first_start)))
            data_range[1] = max(filter(None, (data_range[1], series.last_end)))
        new_items = {
            prepared.row_owner[i] for i, row in enumerate(prepared.rows) if result.is_new(row.sample_uid)
        }
        new_items |= {
            prepared.record_owner[i] for i, r in enumerate(prepared.records) if r.record_id in new_records
        }
        stored_items = set(prepared.row_owner) | set(prepared.record_owner)
        _count(items, counts, stored=stored_items, new=new_items, rejections=prepared.first_rejection)


def _count(
    items: list[ImportItem],
    counts: JobCounts,
    *,
    stored: set[int],
    new: set[int],
    rejections: dict[int, Rejection],
) -> None:
    """Add a batch's outcome to the job's counts, overall and by record type."""
    received: Counter[str] = Counter()
    fresh: Counter[str] = Counter()
    repeated: Counter[str] = Counter()
    for index, item in enumerate(items):
        received[item.record_type] += item.weight
        if index in stored:
            (fresh if index in new else repeated)[item.record_type] += item.weight
            continue
        rejection = item.rejection or rejections.get(index)
        if rejection is None:
            rejection = Rejection("EMPTY_RECORD", "the record carries nothing to store", item.location)
        counts.total.reject(rejection, item.weight)
        counts.for_type(item.record_type).reject(rejection, item.weight)
    for record_type, count in received.items():
        for tally in (counts.total, counts.for_type(record_type)):
            tally.received += count
            tally.stored(new=fresh[record_type], written=fresh[record_type] + repeated[record_type])


def _known_sources_only(prepared: _Prepared, items: list[ImportItem], known: set[str]) -> _Prepared:
    """The prepared rows and records whose source exists; the others are rejected (UNKNOWN_SOURCE)."""
    if all(row.source_id in known for row in prepared.rows) and all(
        r.source_id in known for r in prepared.records
    ):
        return prepared
    kept = _Prepared(first_rejection=dict(prepared.first_rejection))

    def refuse(owner: int, source_id: str) -> None:
        kept.first_rejection.setdefault(
            owner, Rejection("UNKNOWN_SOURCE", f"source {source_id!r} does not exist", items[owner].location)
        )

    for row, owner in zip(prepared.rows, prepared.row_owner, strict=True):
        if row.source_id in known:
            kept.rows.append(row)
            kept.row_owner.append(owner)
        else:
            refuse(owner, row.source_id)
    for record, owner in zip(prepared.records, prepared.record_owner, strict=True):
        if record.source_id in known:
            kept.records.append(record)
            kept.record_owner.append(owner)
        else:
            refuse(owner, record.source_id)
    return kept


def _prepare(items: list[ImportItem]) -> _Prepared:
    prepared = _Prepared()
    now = datetime.now(UTC)
    for index, item in enumerate(items):
        if item.rejection is not None:
            continue
        for draft in item.samples:
            problems = contract_violations(draft, item.location)
            if problems:
                first = problems[0]
                prepared.first_rejection.setdefault(
                    index, Rejection("INVALID_RECORD", f"{first.field}: {first.description}", item.location)
                )
                continue
            metric = metric_by_number(draft.metric)
            assert metric is not None
            outcome = canonical_row(draft, metric, now=now)
            if isinstance(outcome, Rejection):
                prepared.first_rejection.setdefault(
                    index, Rejection(outcome.reason, outcome.message, item.location)
                )
            else:
                prepared.rows.append(outcome)
                prepared.row_owner.append(index)
        for record in item.records:
            prepared.records.append(record)
            prepared.record_owner.append(index)
    return prepared


def _zip_errors(items: Iterator[ImportItem]) -> Iterator[ImportItem]:
    try:
        yield from items
    except zipfile.BadZipFile as error:
        raise ImportFailure("FILE_CORRUPT", f"the zip archive is damaged ({error})") from error
    except (zlib.error, EOFError) as error:
        raise ImportFailure(
            "FILE_TRUNCATED", f"the zip archive ends early or is damaged ({error})"
        ) from error


def _ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _finished_event(job: ImportJob) -> events_pb2.ImportJobFinished:
    total: WriteTally = job.counts.total
    message = events_pb2.ImportJobFinished(
        user=f"users/{job.user_id}",
        import_job=job.name,
        state=int(job.state),  # type: ignore[arg-type]
        counts=common_pb2.WriteCounts(
            received_count=total.received,
            new_count=total.new,
            duplicate_count=total.duplicate,
            rejected_count=total.rejected,
        ),
        occur_time=_ts(datetime.now(UTC)),
    )
    if job.data_start_time is not None:
        message.data_start_time.CopyFrom(_ts(job.data_start_time))
    if job.data_end_time is not None:
        message.data_end_time.CopyFrom(_ts(job.data_end_time))
    return message
