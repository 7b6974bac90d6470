"""Writing samples: validation, source checks, COPY-based storage and events, for the API and importers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg

from vitalis_ingestion import events
from vitalis_ingestion.domain.metrics import metric_by_number
from vitalis_ingestion.domain.samples import (
    Rejection,
    SampleDraft,
    SampleRow,
    WriteTally,
    canonical_row,
    contract_violations,
    located,
    well_formed,
)
from vitalis_ingestion.store.samples import SampleStore
from vitalis_ingestion.store.sources import SourceStore
from vitalis_runtime.db import Database
from vitalis_runtime.errors import FieldViolation, InvalidArgument, NotFound

# A valid row with the index of its draft, so a location is only written out when one is reported.
IndexedRow = tuple[int, SampleRow]


class SampleWriter:
    """Validates and stores samples idempotently, counting new, duplicate and rejected ones."""

    def __init__(self, db: Database, samples: SampleStore, sources: SourceStore) -> None:
        self._db = db
        self._samples = samples
        self._sources = sources

    async def write(
        self,
        user_id: uuid.UUID,
        drafts: Sequence[SampleDraft],
        *,
        where: str,
        strict: bool,
        tally: WriteTally | None = None,
        import_job_id: uuid.UUID | None = None,
    ) -> WriteTally:
        """Store ``drafts`` (the list named ``where``, so the n-th is ``{where}[n]``) and count the outcome.

        ``strict`` (the API): a draft breaking the contract fails the whole call with
        INVALID_ARGUMENT and an unknown source with NOT_FOUND, before anything is written.
        Otherwise such drafts are counted as rejected and the rest are written.
        """
        tally = tally if tally is not None else WriteTally()
        tally.received += len(drafts)
        rows = self._validate(drafts, where, strict=strict, tally=tally)
        if not rows:
            return tally
        await self._samples.ensure_partitions([row for _, row in rows])
        async with self._db.transaction(user_id=user_id) as conn:
            # Checked in the writing transaction: one transaction per batch instead of two.
            kept = await self._known_references(conn, user_id, rows, where, strict=strict, tally=tally)
            if not kept:
                return tally
            result = await self._samples.write(conn, user_id, kept, import_job_id=import_job_id)
            job = f"users/{user_id}/importJobs/{import_job_id}" if import_job_id else ""
            await events.samples_ingested(conn, user_id, result.series, import_job=job)
            await self._samples.mark_sources_written(conn, user_id, result.series)
        tally.stored(new=result.new_count, written=len(kept))
        return tally

    @staticmethod
    def _validate(
        drafts: Sequence[SampleDraft], where: str, *, strict: bool, tally: WriteTally
    ) -> list[IndexedRow]:
        now = datetime.now(UTC)
        violations: list[FieldViolation] = []
        rows: list[IndexedRow] = []
        for index, draft in enumerate(drafts):
            metric = metric_by_number(draft.metric)
            if metric is None or not well_formed(draft, metric):
                problems = contract_violations(draft, f"{where}[{index}]")
                if problems:
                    if strict:
                        violations += problems
                    else:
                        first = problems[0]
                        tally.reject(
                            Rejection(
                                "INVALID_RECORD", f"{first.field}: {first.description}", f"{where}[{index}]"
                            )
                        )
                    continue
                assert metric is not None
            outcome = canonical_row(draft, metric, now=now)
            if isinstance(outcome, Rejection):
                tally.reject(located(outcome, f"{where}[{index}]"))
            else:
                rows.append((index, outcome))
        if violations:
            summary = "; ".join(f"{v.field}: {v.description}" for v in violations[:3])
            more = f" (and {len(violations) - 3} more)" if len(violations) > 3 else ""
            raise InvalidArgument(f"nothing was written: {summary}{more}", violations=violations)
        return rows

    async def _known_references(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        rows: list[IndexedRow],
        where: str,
        *,
        strict: bool,
        tally: WriteTally,
    ) -> list[SampleRow]:
        source_ids = sorted({row.source_id for _, row in rows})
        device_ids = sorted({row.device_id for _, row in rows if row.device_id})
        known_sources = await self._sources.existing_source_ids(conn, user_id, source_ids)
        known_devices = (
            await self._sources.existing_device_ids(conn, user_id, device_ids) if device_ids else set()
        )
        if len(known_sources) == len(source_ids) and len(known_devices) == len(device_ids):
            return [row for _, row in rows]
        kept: list[SampleRow] = []
        for index, row in rows:
            missing = None
            if row.source_id not in known_sources:
                missing = f"source users/{user_id}/sources/{row.source_id} does not exist"
            elif row.device_id and row.device_id not in known_devices:
                missing = f"device users/{user_id}/devices/{row.device_id} does not exist"
            if missing is None:
                kept.append(row)
            elif strict:
                raise NotFound(
                    f"{where}[{index}]: {missing}; nothing was written", reason="REFERENCE_NOT_FOUND"
                )
            else:
                tally.reject(Rejection("UNKNOWN_SOURCE", missing, f"{where}[{index}]"))
        return kept
