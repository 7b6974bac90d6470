"""The parse pipeline: one actor per document, pending → parsing → parsed | needs_review | failed.

Parse requests wait in the ``parse_jobs`` queue (written in the transaction that asked for them).
Workers lease one job at a time (``FOR UPDATE SKIP LOCKED``, so replicas share the queue and never
parse the same document twice at once); within a process, work for one document also goes through
a keyed mailbox. A lease that expires (a worker died, biomarkers was unreachable) is taken up again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time
from pathlib import Path
from time import monotonic
from typing import Any

import asyncpg

from vitalis_documents import events
from vitalis_documents.domain.extraction import (
    build_markers,
    document_outcome,
    unreviewed_removals,
    with_links,
)
from vitalis_documents.domain.model import (
    Document,
    ExtractedMarker,
    ParseState,
    ParseStateReason,
    ReviewState,
)
from vitalis_documents.library import DocumentLibrary
from vitalis_documents.parsing import PARSER_VERSION
from vitalis_documents.parsing.engines import unreadable_image
from vitalis_documents.parsing.errors import ParseFailure
from vitalis_documents.parsing.lab_report import LabReport
from vitalis_documents.parsing.sandbox import ParseBudget, SandboxResult, parse_in_sandbox
from vitalis_documents.ports import (
    BiomarkerCandidate,
    BiomarkerDirectory,
    BiomarkerQuery,
    PanelMarker,
    PanelMerge,
)
from vitalis_runtime import errors
from vitalis_runtime.background import sleep_unless_stopped
from vitalis_runtime.mailbox import KeyedMailbox, advisory_lock

logger = logging.getLogger(__name__)
COPY_CHUNK_BYTES = 1024 * 1024
MAX_ATTEMPTS = 5


def collection_time(day: date) -> datetime:
    """Noon UTC of the collection day: the same calendar day in every time zone within ±12 hours."""
    return datetime.combine(day, time(12, 0), UTC)


def flag_text(marker: ExtractedMarker) -> str:
    """The flag as labs print it."""
    return {2: "L", 3: "H", 4: "LL", 5: "HH", 6: "A", 1: "N"}.get(int(marker.flag), "")


def panel_marker(marker: ExtractedMarker, *, reviewed: bool) -> PanelMarker:
    """A marker as the biomarkers service's panel takes it."""
    return PanelMarker(
        extracted_marker=marker.name,
        biomarker=marker.biomarker,
        printed_name=marker.printed_name,
        value=marker.value or 0.0,
        comparator=marker.value_comparator,
        value_text=marker.value_text,
        unit=marker.unit,
        reference_range=marker.reference_range,
        flag_text=flag_text(marker),
        page=marker.page,
        confidence=1.0 if reviewed else marker.confidence.overall,
    )


class ParsePipeline:
    """Leases parse jobs and runs them, a few documents at a time."""

    def __init__(
        self,
        library: DocumentLibrary,
        biomarkers: BiomarkerDirectory | None,
        *,
        budget: ParseBudget,
        confidence_threshold: float,
        concurrency: int = 2,
        scratch: Path | None = None,
    ) -> None:
        """``scratch`` is where files are copied for the parser (the system's temporary folder by default)."""
        self._library = library
        self._store = library.store
        self._biomarkers = biomarkers
        self._budget = budget
        self._threshold = confidence_threshold
        self._concurrency = concurrency
        self._scratch = scratch
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self.mailbox: KeyedMailbox[uuid.UUID] = KeyedMailbox()
        self._lease_seconds = budget.seconds * 2 + 60

    def wake(self) -> None:
        """A parse was requested: look at the queue now."""
        self._wakeup.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Parse queued documents until ``stop`` is set."""
        workers = [asyncio.create_task(self._work(stop)) for _ in range(self._concurrency)]
        try:
            await stop.wait()
        finally:
            # A parse in flight is abandoned (its child killed); its lease lets another replica redo it.
            self._stopping.set()
            self._wakeup.set()
            for worker in workers:
                worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*workers)
            await self.mailbox.close()

    async def _work(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                found = await self.parse_next()
                failures = 0
            except Exception as error:
                failures += 1
                if isinstance(error, errors.VitalisError):
                    logger.warning("parse pipeline: %s; retrying", error.message)
                else:
                    logger.exception("parse pipeline failed; retrying")
                await sleep_unless_stopped(stop, min(0.2 * 2**failures, 10.0))
                continue
            if not found:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=1.0)

    async def parse_next(self) -> bool:
        """Lease and parse the oldest due job; return whether there was one."""
        async with self._library.db.transaction(user_id=None) as conn:
            job = await self._store.claim_parse(conn, lease_seconds=self._lease_seconds)
        if job is None:
            return False
        user_id, document_id, attempts = job
        if attempts > MAX_ATTEMPTS:
            await self.mailbox.submit(document_id, lambda: self._give_up(user_id, document_id, attempts - 1))
        else:
            await self.mailbox.submit(document_id, lambda: self.parse_document(user_id, document_id))
        return True

    async def _give_up(self, user_id: uuid.UUID, document_id: uuid.UUID, attempts: int) -> None:
        """A document whose parse kept failing outside the parser is failed, not retried for ever."""
        document = await self._begin(user_id, document_id)
        if document is not None:
            await self._fail(
                document,
                ParseFailure(
                    ParseStateReason.INTERNAL_ERROR,
                    f"The parse could not be completed after {attempts} attempts; re-parse the document"
                    " later.",
                ),
            )

    async def drain(self) -> int:
        """Parse until the queue has nothing due; return how many jobs ran (for tests and tools)."""
        count = 0
        while await self.parse_next():
            count += 1
        return count

    async def parse_document(self, user_id: uuid.UUID, document_id: uuid.UUID) -> None:
        """Parse one document and record the outcome."""
        document = await self._begin(user_id, document_id)
        if document is None:
            return
        started = monotonic()
        try:
            result = await self._read(document)
        except errors.Unavailable as stopping:
            if stopping.reason == "SHUTTING_DOWN":
                async with self._library.db.transaction(user_id=None) as conn:
                    await self._store.release_parse(conn, document_id)
            raise
        except ParseFailure as failure:
            await self._fail(document, failure)
            logger.info(
                "document parse failed",
                extra={
                    "document": document.name,
                    "reason": failure.reason.name,
                    "seconds": round(monotonic() - started, 3),
                },
            )
            return
        report, ocr_used = result
        await self._finish(document, report, ocr_used)
        logger.info(
            "document parsed",
            extra={
                "document": document.name,
                "rows": len(report.rows),
                "pages": report.page_count,
                "ocr": ocr_used,
                "seconds": round(monotonic() - started, 3),
            },
        )

    async def _begin(self, user_id: uuid.UUID, document_id: uuid.UUID) -> Document | None:
        async with self._library.db.transaction(user_id=user_id) as conn:
            await advisory_lock(conn, f"documents.document:{document_id}")
            document = await self._store.get_document(conn, user_id, document_id, for_update=True)
            if (
                document is None
                or document.deleted
                or document.parse_state
                not in {
                    ParseState.PENDING,
                    ParseState.PARSING,
                }
            ):
                await self._store.finish_parse(conn, document_id)
                return None
            return await self._store.update_document(
                conn,
                document,
                {"parse_state": ParseState.PARSING, "parse_state_reason": ParseStateReason.UNSPECIFIED},
            )

    async def _read(self, document: Document) -> tuple[LabReport, bool]:
        # Known from the type alone: neither a copy of the file nor a parser process is needed.
        unreadable = unreadable_image(document.content_type, ocr_available=self._library.ocr_available)
        if unreadable is not None:
            raise unreadable
        with tempfile.TemporaryDirectory(dir=self._scratch, prefix="vitalis-parse-") as folder:
            path = Path(folder) / "document"
            with path.open("wb") as handle:
                try:
                    async for chunk in self._library.storage.read(
                        document.storage_key, chunk_size=COPY_CHUNK_BYTES
                    ):
                        await asyncio.to_thread(handle.write, chunk)
                except KeyError:
                    raise ParseFailure(
                        ParseStateReason.INTERNAL_ERROR, "The document's stored bytes are missing."
                    ) from None
            result = await self._unless_stopping(parse_in_sandbox(path, document.content_type, self._budget))
        if result.failure is not None:
            raise result.failure
        assert result.report is not None
        return result.report, result.ocr_used

    async def _unless_stopping(self, work: Coroutine[Any, Any, SandboxResult]) -> SandboxResult:
        task = asyncio.ensure_future(work)
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if task.cancelled():
            raise errors.Unavailable("The service is shutting down.", reason="SHUTTING_DOWN")
        return task.result()

    async def _fail(self, document: Document, failure: ParseFailure) -> None:
        state = (
            ParseState.NEEDS_REVIEW if failure.reason == ParseStateReason.NO_TEXT_LAYER else ParseState.FAILED
        )
        async with self._library.db.transaction(user_id=document.user_id) as conn:
            current = await self._locked_parsing(conn, document)
            if current is None:
                return
            await self._store.replace_unreviewed_markers(conn, document.user_id, document.document_id, [])
            kept = await self._store.list_markers(conn, document.user_id, document.document_id)
            updated = await self._store.update_document(
                conn,
                current,
                {
                    "parse_state": state,
                    "parse_state_reason": failure.reason,
                    "parse_state_message": failure.message,
                    "parser_version": PARSER_VERSION,
                    "parse_time": datetime.now(UTC),
                    "extracted_marker_count": len(kept),
                    "review_pending_count": 0,
                },
            )
            await self._library.emit(conn, document.user_id, events.document_parsed(updated))
            await self._store.finish_parse(conn, document.document_id)

    async def _locked_parsing(self, conn: asyncpg.Connection, document: Document) -> Document | None:
        await advisory_lock(conn, f"documents.document:{document.document_id}")
        current = await self._store.get_document(
            conn, document.user_id, document.document_id, for_update=True
        )
        if current is None or current.deleted or current.parse_state != ParseState.PARSING:
            await self._store.finish_parse(conn, document.document_id)
            return None
        return current

    async def _match(self, user_id: uuid.UUID, report: LabReport) -> list[list[BiomarkerCandidate]]:
        if self._biomarkers is None or not report.rows:
            return [[] for _ in report.rows]
        queries = [
            BiomarkerQuery(label=row.printed_name, unit=row.unit or row.unit_text) for row in report.rows
        ]
        return await self._biomarkers.match(user_id, queries)

    async def _finish(self, document: Document, report: LabReport, ocr_used: bool) -> None:
        async with self._library.db.transaction(user_id=document.user_id, readonly=True) as conn:
            previous = await self._store.list_markers(conn, document.user_id, document.document_id)
        candidates = await self._match(document.user_id, report)
        markers = build_markers(
            user_id=document.user_id,
            document_id=document.document_id,
            report=report,
            candidates=candidates,
            previous=previous,
            threshold=self._threshold,
            parser_version=PARSER_VERSION,
        )
        removals = unreviewed_removals(previous, {m.extracted_marker_id for m in markers})
        markers, panel = await self._merge(document, report, markers, removals)
        kept = [m for m in previous if m.review_state.reviewed]
        outcome = document_outcome([*kept, *markers], report.collection_date)
        async with self._library.db.transaction(user_id=document.user_id) as conn:
            current = await self._locked_parsing(conn, document)
            if current is None:
                return
            await self._store.replace_unreviewed_markers(
                conn, document.user_id, document.document_id, markers
            )
            updated = await self._store.update_document(
                conn,
                current,
                {
                    "parse_state": outcome.state,
                    "parse_state_reason": outcome.reason,
                    "parse_state_message": outcome.message,
                    "parser_version": PARSER_VERSION,
                    "parse_time": datetime.now(UTC),
                    "ocr_used": ocr_used,
                    "page_count": report.page_count,
                    "lab_name": report.lab_name,
                    "collection_date": report.collection_date or current.collection_date,
                    "panel": panel if panel is not None else current.panel,
                    "extracted_marker_count": len(kept) + len(markers),
                    "review_pending_count": sum(m.review_state == ReviewState.NEEDS_REVIEW for m in markers),
                },
            )
            await self._library.emit(conn, document.user_id, events.document_parsed(updated))
            await self._store.finish_parse(conn, document.document_id)

    async def _merge(
        self,
        document: Document,
        report: LabReport,
        markers: Sequence[ExtractedMarker],
        removals: Sequence[ExtractedMarker],
    ) -> tuple[list[ExtractedMarker], str | None]:
        accepted = [m for m in markers if m.review_state == ReviewState.AUTO_ACCEPTED]
        if self._biomarkers is None or report.collection_date is None or not (accepted or removals):
            return list(markers), None
        merge = PanelMerge(
            document=document.name,
            collection_time=collection_time(report.collection_date),
            lab_name=report.lab_name,
            upserts=[panel_marker(m, reviewed=False) for m in accepted],
            removals=[m.name for m in removals],
        )
        try:
            result = await self._biomarkers.merge_markers(document.user_id, merge)
        except errors.InvalidArgument as refused:
            # The panel refused what the parser was sure of: a person decides instead.
            logger.info("panel refused the parsed results of %s: %s", document.name, refused.message)
            demoted = [m if m.review_state != ReviewState.AUTO_ACCEPTED else _demoted(m) for m in markers]
            return demoted, None
        return with_links(markers, result.links), result.panel


def _demoted(marker: ExtractedMarker) -> ExtractedMarker:
    return replace(marker, review_state=ReviewState.NEEDS_REVIEW)
