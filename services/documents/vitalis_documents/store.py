"""All SQL of the documents service. Returns domain objects; knows nothing of gRPC."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from vitalis_documents.domain.model import (
    BoundingBox,
    Document,
    DocumentKind,
    ExtractedMarker,
    FieldConfidence,
    ParseState,
    ParseStateReason,
    ReferenceRange,
    ResultFlag,
    ReviewState,
    ValueComparator,
)
from vitalis_runtime.errors import AlreadyExists

_DOCUMENT_COLUMNS = """user_id, document_id, display_name, description, kind, content_type, size_bytes,
    sha256, storage_key, page_count, parse_state, parse_state_reason, parse_state_message, parser_version,
    parse_time, ocr_used, lab_name, collection_date, panel, extracted_marker_count,
    review_pending_count, create_time, update_time, delete_time, expire_time, version"""

_MARKER_COLUMNS = """user_id, document_id, extracted_marker_id, position, source_text, printed_name,
    biomarker, biomarker_display_name, loinc_code, value, value_comparator, value_text, unit, unit_text, flag,
    range_low, range_high, range_text, collection_date, page, bbox, confidence_biomarker,
    confidence_value, confidence_unit, confidence_flag, confidence_range, confidence_date,
    confidence_overall, review_state, marker, review_time, parser_version, create_time, version"""

_MARKER_FIELDS = [column.strip() for column in _MARKER_COLUMNS.split(",")]

ORDERINGS: Mapping[str, tuple[str, str]] = {
    "create_time desc": ("create_time", "DESC"),
    "create_time": ("create_time", "ASC"),
    "collection_date desc": ("collection_date", "DESC"),
    "collection_date": ("collection_date", "ASC"),
    "display_name": ("display_name", "ASC"),
}
"""The orderings ListDocuments accepts: column and direction."""

NO_DATE = date(1, 1, 1)
_MARKER_FILTER_COLUMNS: Mapping[str, str] = {
    "review_state": "review_state",
    "biomarker": "biomarker",
    "page": "page",
    "confidence.overall": "confidence_overall",
}
_SORT_KEYS: Mapping[str, str] = {
    "create_time": "create_time",
    "collection_date": "COALESCE(collection_date, DATE '0001-01-01')",
    "display_name": "display_name",
}


@dataclass(frozen=True)
class Condition:
    """One comparison of a list filter: a column, an SQL operator and a bound value."""

    column: str
    operator: str
    value: Any


def sort_value(document: Document, column: str) -> str:
    """The cursor value of ``document`` for an ordering on ``column``."""
    if column == "create_time":
        return document.create_time.isoformat()
    if column == "collection_date":
        return (document.collection_date or NO_DATE).isoformat()
    return document.display_name


def _cursor_value(column: str, text: str) -> Any:
    if column == "create_time":
        return datetime.fromisoformat(text)
    if column == "collection_date":
        return date.fromisoformat(text)
    return text


def _document(row: asyncpg.Record) -> Document:
    return Document(
        user_id=row["user_id"],
        document_id=row["document_id"],
        display_name=row["display_name"],
        description=row["description"],
        kind=DocumentKind(row["kind"]),
        content_type=row["content_type"],
        size_bytes=row["size_bytes"],
        sha256=row["sha256"],
        storage_key=row["storage_key"],
        page_count=row["page_count"],
        parse_state=ParseState(row["parse_state"]),
        parse_state_reason=ParseStateReason(row["parse_state_reason"]),
        parse_state_message=row["parse_state_message"],
        parser_version=row["parser_version"],
        parse_time=row["parse_time"],
        ocr_used=row["ocr_used"],
        lab_name=row["lab_name"],
        collection_date=row["collection_date"],
        panel=row["panel"],
        extracted_marker_count=row["extracted_marker_count"],
        review_pending_count=row["review_pending_count"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        delete_time=row["delete_time"],
        expire_time=row["expire_time"],
        version=row["version"],
    )


def _marker(row: asyncpg.Record) -> ExtractedMarker:
    bbox = list(row["bbox"]) + [0.0] * 4
    return ExtractedMarker(
        user_id=row["user_id"],
        document_id=row["document_id"],
        extracted_marker_id=row["extracted_marker_id"],
        position=row["position"],
        source_text=row["source_text"],
        printed_name=row["printed_name"],
        biomarker=row["biomarker"],
        biomarker_display_name=row["biomarker_display_name"],
        loinc_code=row["loinc_code"],
        value=row["value"],
        value_comparator=ValueComparator(row["value_comparator"]),
        value_text=row["value_text"],
        unit=row["unit"],
        unit_text=row["unit_text"],
        flag=ResultFlag(row["flag"]),
        reference_range=ReferenceRange(low=row["range_low"], high=row["range_high"], text=row["range_text"]),
        collection_date=row["collection_date"],
        page=row["page"],
        bounding_box=BoundingBox(*bbox[:4]),
        confidence=FieldConfidence(
            biomarker=row["confidence_biomarker"],
            value=row["confidence_value"],
            unit=row["confidence_unit"],
            flag=row["confidence_flag"],
            reference_range=row["confidence_range"],
            collection_date=row["confidence_date"],
        ),
        review_state=ReviewState(row["review_state"]),
        marker=row["marker"],
        review_time=row["review_time"],
        parser_version=row["parser_version"],
        create_time=row["create_time"],
        version=row["version"],
    )


_MARKER_TYPES: Mapping[str, str] = {
    "user_id": "uuid",
    "document_id": "uuid",
    "extracted_marker_id": "uuid",
    "position": "integer",
    "value": "double precision",
    "value_comparator": "smallint",
    "flag": "smallint",
    "range_low": "double precision",
    "range_high": "double precision",
    "collection_date": "date",
    "page": "integer",
    "review_state": "smallint",
    "review_time": "timestamptz",
    "create_time": "timestamptz",
    "version": "bigint",
}


def _marker_type(column: str) -> str:
    if column in _MARKER_TYPES:
        return _MARKER_TYPES[column]
    return "double precision" if column.startswith("confidence") else "text"


def _marker_record(marker: ExtractedMarker) -> tuple[Any, ...]:
    confidence = marker.confidence
    return (
        marker.user_id,
        marker.document_id,
        marker.extracted_marker_id,
        marker.position,
        marker.source_text,
        marker.printed_name,
        marker.biomarker,
        marker.biomarker_display_name,
        marker.loinc_code,
        marker.value,
        int(marker.value_comparator),
        marker.value_text,
        marker.unit,
        marker.unit_text,
        int(marker.flag),
        marker.reference_range.low,
        marker.reference_range.high,
        marker.reference_range.text,
        marker.collection_date,
        marker.page,
        [
            marker.bounding_box.left,
            marker.bounding_box.top,
            marker.bounding_box.width,
            marker.bounding_box.height,
        ],
        confidence.biomarker,
        confidence.value,
        confidence.unit,
        confidence.flag,
        confidence.reference_range,
        confidence.collection_date,
        confidence.overall,
        int(marker.review_state),
        marker.marker,
        marker.review_time,
        marker.parser_version,
        marker.create_time or datetime.now().astimezone(),
        marker.version,
    )


class DocumentStore:
    """Documents, extracted markers, request results and the parse and purge queues."""

    async def insert_document(
        self,
        conn: asyncpg.Connection,
        *,
        user_id: uuid.UUID,
        document_id: uuid.UUID,
        display_name: str,
        description: str,
        kind: DocumentKind,
        content_type: str,
        size_bytes: int,
        sha256: str,
        storage_key: str,
        parse_state: ParseState,
        parse_state_reason: ParseStateReason,
        parse_state_message: str,
    ) -> Document:
        """Insert a new document; ``AlreadyExists`` when the user already has these bytes."""
        try:
            row = await conn.fetchrow(
                f"""INSERT INTO documents (user_id, document_id, display_name, description, kind,
                        content_type, size_bytes, sha256, storage_key, parse_state, parse_state_reason,
                        parse_state_message)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                    RETURNING {_DOCUMENT_COLUMNS}""",
                user_id,
                document_id,
                display_name,
                description,
                int(kind),
                content_type,
                size_bytes,
                sha256,
                storage_key,
                int(parse_state),
                int(parse_state_reason),
                parse_state_message,
            )
        except asyncpg.UniqueViolationError:
            raise AlreadyExists("the document already exists", reason="DOCUMENT_EXISTS") from None
        assert row is not None
        return _document(row)

    async def get_document(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        document_id: uuid.UUID,
        *,
        for_update: bool = False,
    ) -> Document | None:
        """One document, soft-deleted ones included; None when missing."""
        lock = " FOR UPDATE" if for_update else ""
        row = await conn.fetchrow(
            f"SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE user_id = $1 AND document_id = $2{lock}",
            user_id,
            document_id,
        )
        return None if row is None else _document(row)

    async def find_by_sha256(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, sha256: str
    ) -> Document | None:
        """The user's document with these bytes, if any."""
        row = await conn.fetchrow(
            f"SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE user_id = $1 AND sha256 = $2", user_id, sha256
        )
        return None if row is None else _document(row)

    async def list_documents(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        *,
        conditions: Sequence[Condition],
        order_by: str,
        after: Mapping[str, Any],
        limit: int,
        show_deleted: bool,
    ) -> list[Document]:
        """A page of documents matching ``conditions``, after the keyset cursor ``after``."""
        column, direction = ORDERINGS[order_by]
        key = _SORT_KEYS[column]
        where = ["user_id = $1"]
        args: list[Any] = [user_id]
        for condition in conditions:
            args.append(condition.value)
            where.append(f"{condition.column} {condition.operator} ${len(args)}")
        if not show_deleted:
            where.append("delete_time IS NULL")
        if after:
            args += [_cursor_value(column, after["v"]), uuid.UUID(after["id"])]
            comparison = "<" if direction == "DESC" else ">"
            where.append(f"({key}, document_id) {comparison} (${len(args) - 1}, ${len(args)})")
        args.append(limit)
        rows = await conn.fetch(
            f"""SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE {" AND ".join(where)}
                ORDER BY {key} {direction}, document_id {direction} LIMIT ${len(args)}""",
            *args,
        )
        return [_document(row) for row in rows]

    async def update_document(
        self, conn: asyncpg.Connection, document: Document, changes: Mapping[str, Any]
    ) -> Document:
        """Set ``changes`` (column → value) on the document and bump its version."""
        allowed = {
            "display_name", "description", "kind", "parse_state", "parse_state_reason", "parse_state_message",
            "parser_version", "parse_time", "ocr_used", "lab_name", "collection_date", "panel", "page_count",
            "extracted_marker_count", "review_pending_count", "delete_time", "expire_time",
        }  # fmt: skip
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        columns = list(changes)
        assignments = ", ".join(f"{column} = ${index + 3}" for index, column in enumerate(columns))
        values = [
            int(v) if isinstance(v, DocumentKind | ParseState | ParseStateReason) else v
            for v in changes.values()
        ]
        row = await conn.fetchrow(
            f"""UPDATE documents SET {assignments}{", " if assignments else ""}version = version + 1,
                    update_time = now()
                WHERE user_id = $1 AND document_id = $2 RETURNING {_DOCUMENT_COLUMNS}""",
            document.user_id,
            document.document_id,
            *values,
        )
        assert row is not None
        return _document(row)

    async def delete_document_row(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, document_id: uuid.UUID
    ) -> bool:
        """Remove a document and its markers for good."""
        status: str = await conn.execute(
            "DELETE FROM documents WHERE user_id = $1 AND document_id = $2", user_id, document_id
        )
        return status.endswith(" 1")

    async def user_documents(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> list[Document]:
        """Every document of the user, deleted ones included, oldest first."""
        rows = await conn.fetch(
            f"SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE user_id = $1 ORDER BY create_time, document_id",
            user_id,
        )
        return [_document(row) for row in rows]

    async def erase_user(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
        """Delete every row of the user; return how many."""
        erased = 0
        for table in ("extracted_markers", "request_results", "documents"):
            status: str = await conn.execute(f"DELETE FROM {table} WHERE user_id = $1", user_id)
            erased += int(status.rsplit(" ", 1)[-1])
        return erased

    # --- extracted markers -------------------------------------------------------------------

    async def list_markers(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        document_id: uuid.UUID,
        *,
        conditions: Sequence[Condition] = (),
        after_position: int = -1,
        limit: int | None = None,
    ) -> list[ExtractedMarker]:
        """A document's markers in document order, matching ``conditions``."""
        args: list[Any] = [user_id, document_id, after_position]
        where = ["user_id = $1", "document_id = $2", "position > $3"]
        for condition in conditions:
            args.append(condition.value)
            where.append(f"{_MARKER_FILTER_COLUMNS[condition.column]} {condition.operator} ${len(args)}")
        sql = f"SELECT {_MARKER_COLUMNS} FROM extracted_markers WHERE {' AND '.join(where)} ORDER BY position"
        if limit is not None:
            args.append(limit)
            sql += f" LIMIT ${len(args)}"
        return [_marker(row) for row in await conn.fetch(sql, *args)]

    async def user_markers(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> list[ExtractedMarker]:
        """Every marker of the user, by document and position."""
        rows = await conn.fetch(
            f"""SELECT {_MARKER_COLUMNS} FROM extracted_markers WHERE user_id = $1
                ORDER BY document_id, position""",
            user_id,
        )
        return [_marker(row) for row in rows]

    async def get_marker(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, document_id: uuid.UUID, marker_id: uuid.UUID
    ) -> ExtractedMarker | None:
        """One marker; None when missing."""
        row = await conn.fetchrow(
            f"""SELECT {_MARKER_COLUMNS} FROM extracted_markers
                WHERE user_id = $1 AND document_id = $2 AND extracted_marker_id = $3""",
            user_id,
            document_id,
            marker_id,
        )
        return None if row is None else _marker(row)

    async def replace_unreviewed_markers(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        document_id: uuid.UUID,
        markers: Sequence[ExtractedMarker],
    ) -> None:
        """Drop the markers no person reviewed and insert ``markers`` (by COPY)."""
        await conn.execute(
            """DELETE FROM extracted_markers
               WHERE user_id = $1 AND document_id = $2 AND review_state = ANY($3::smallint[])""",
            user_id,
            document_id,
            [int(ReviewState.AUTO_ACCEPTED), int(ReviewState.NEEDS_REVIEW)],
        )
        if markers:
            await self.insert_markers(conn, markers)

    async def insert_markers(self, conn: asyncpg.Connection, markers: Sequence[ExtractedMarker]) -> None:
        """Insert markers in one statement over arrays (PostgreSQL refuses COPY into tables with RLS)."""
        records = [_marker_record(marker) for marker in markers]
        arrays: list[list[Any]] = []
        casts: list[str] = []
        selects: list[str] = []
        for index, name in enumerate(_MARKER_FIELDS):
            values = [record[index] for record in records]
            if name == "bbox":
                corners = []
                for corner in range(4):
                    arrays.append([box[corner] for box in values])
                    casts.append(f"${len(arrays)}::double precision[]")
                    corners.append(f"c{len(arrays)}")
                selects.append(f"ARRAY[{', '.join(corners)}]")
                continue
            arrays.append(values)
            casts.append(f"${len(arrays)}::{_marker_type(name)}[]")
            selects.append(f"c{len(arrays)}")
        aliases = ", ".join(f"c{position}" for position in range(1, len(arrays) + 1))
        await conn.execute(
            f"""INSERT INTO extracted_markers ({", ".join(_MARKER_FIELDS)})
                SELECT {", ".join(selects)} FROM unnest({", ".join(casts)}) AS t({aliases})""",
            *arrays,
        )

    async def save_markers(self, conn: asyncpg.Connection, markers: Sequence[ExtractedMarker]) -> None:
        """Overwrite existing markers with these states (versions as given)."""
        if not markers:
            return
        assignments = ", ".join(
            f"{column} = ${index + 1}" for index, column in enumerate(_MARKER_FIELDS) if index > 2
        )
        await conn.executemany(
            f"""UPDATE extracted_markers SET {assignments}
                WHERE user_id = $1 AND document_id = $2 AND extracted_marker_id = $3""",
            [_marker_record(marker) for marker in markers],
        )

    # --- idempotent requests ------------------------------------------------------------------

    async def find_request(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, request_id: uuid.UUID
    ) -> tuple[str, uuid.UUID, bytes | None] | None:
        """The method, document and stored response of an earlier request with this id."""
        row = await conn.fetchrow(
            """SELECT method, document_id, response FROM request_results
               WHERE user_id = $1 AND request_id = $2""",
            user_id,
            request_id,
        )
        if row is None:
            return None
        return row["method"], row["document_id"], None if row["response"] is None else bytes(row["response"])

    async def record_request(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        request_id: uuid.UUID,
        *,
        method: str,
        document_id: uuid.UUID,
        response: bytes | None = None,
    ) -> None:
        """Remember a request's result."""
        await conn.execute(
            """INSERT INTO request_results (user_id, request_id, method, document_id, response)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
            user_id,
            request_id,
            method,
            document_id,
            response,
        )

    # --- queues ---------------------------------------------------------------------------------

    async def enqueue_parse(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, document_id: uuid.UUID
    ) -> None:
        """Ask for a parse of the document (once; a queued request stays)."""
        await conn.execute(
            """INSERT INTO parse_jobs (document_id, owner_id) VALUES ($1, $2)
               ON CONFLICT (document_id) DO UPDATE SET lease_until = '-infinity', attempts = 0""",
            document_id,
            user_id,
        )

    async def claim_parse(
        self, conn: asyncpg.Connection, *, lease_seconds: float
    ) -> tuple[uuid.UUID, uuid.UUID, int] | None:
        """Lease the oldest due parse job: its owner, document and attempt number."""
        row = await conn.fetchrow(
            """UPDATE parse_jobs SET lease_until = now() + make_interval(secs => $1), attempts = attempts + 1
               WHERE document_id = (
                   SELECT document_id FROM parse_jobs WHERE lease_until < now()
                   ORDER BY enqueue_time LIMIT 1 FOR UPDATE SKIP LOCKED)
               RETURNING owner_id, document_id, attempts""",
            lease_seconds,
        )
        return None if row is None else (row["owner_id"], row["document_id"], row["attempts"])

    async def release_parse(self, conn: asyncpg.Connection, document_id: uuid.UUID) -> None:
        """Give a leased job back at once, without counting the attempt (the parse was abandoned)."""
        await conn.execute(
            """UPDATE parse_jobs SET lease_until = '-infinity', attempts = greatest(attempts - 1, 0)
               WHERE document_id = $1""",
            document_id,
        )

    async def finish_parse(self, conn: asyncpg.Connection, document_id: uuid.UUID) -> None:
        """Remove a parse job."""
        await conn.execute("DELETE FROM parse_jobs WHERE document_id = $1", document_id)

    async def schedule_purge(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        document_id: uuid.UUID,
        purge_time: datetime | None,
    ) -> None:
        """Plan (or with None, cancel) the purge of a soft-deleted document."""
        if purge_time is None:
            await conn.execute("DELETE FROM purge_schedule WHERE document_id = $1", document_id)
            return
        await conn.execute(
            """INSERT INTO purge_schedule (document_id, owner_id, purge_time) VALUES ($1, $2, $3)
               ON CONFLICT (document_id) DO UPDATE SET purge_time = EXCLUDED.purge_time""",
            document_id,
            user_id,
            purge_time,
        )

    async def due_purges(self, conn: asyncpg.Connection, *, limit: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """Owners and documents whose purge time has come."""
        rows = await conn.fetch(
            """SELECT owner_id, document_id FROM purge_schedule
               WHERE purge_time <= now() ORDER BY purge_time LIMIT $1""",
            limit,
        )
        return [(row["owner_id"], row["document_id"]) for row in rows]

    async def forget_user_jobs(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
        """Remove a user's parse jobs and purge plans."""
        erased = 0
        for table in ("parse_jobs", "purge_schedule"):
            status: str = await conn.execute(f"DELETE FROM {table} WHERE owner_id = $1", user_id)
            erased += int(status.rsplit(" ", 1)[-1])
        return erased
