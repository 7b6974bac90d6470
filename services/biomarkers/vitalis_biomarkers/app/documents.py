"""Results the documents service extracted from a lab report, merged into that report's panel."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from vitalis_biomarkers.app.panels import PanelBook, draft_of
from vitalis_biomarkers.domain.panels import (
    Fasting,
    MarkerDraft,
    Panel,
    PanelFields,
    Provenance,
    ProvenanceKind,
    evaluate_markers,
    validate_fields,
)
from vitalis_runtime.db import Database
from vitalis_runtime.errors import InvalidArgument


@dataclass(frozen=True)
class DocumentResults:
    """One merge request: the report's facts, the results to upsert and those to remove."""

    document: str
    collection_time: datetime
    utc_offset: timedelta | None
    lab_name: str
    fasting: Fasting
    upserts: Sequence[tuple[str, MarkerDraft]]
    removals: Sequence[str]


@dataclass(frozen=True)
class MergeOutcome:
    """The panel after the merge (None when it has no markers left), the links and whether it is new."""

    panel: Panel | None
    links: list[tuple[str, str]]
    created: bool


def source_key(document: str) -> str:
    """The source key of a document's panel."""
    return f"document:{document}"


def check_document(user_id: uuid.UUID, results: DocumentResults) -> None:
    """The document and every extracted result must belong to the user."""
    prefix = f"users/{user_id}/documents/"
    segments = results.document.split("/")
    if not results.document.startswith(prefix) or len(segments) != 4 or not segments[3]:
        raise InvalidArgument.for_field(
            "document", f"must be a document of users/{user_id}: {prefix}{{document}}"
        )
    for index, (extracted, _) in enumerate(results.upserts):
        if not extracted.startswith(f"{results.document}/extractedMarkers/"):
            raise InvalidArgument.for_field(
                f"upserts[{index}].extracted_marker", f"must be an extracted marker of {results.document}"
            )


class DocumentMerge:
    """Keeps one panel per document in step with the results extracted from it."""

    def __init__(self, db: Database, book: PanelBook) -> None:
        """Write through ``book``'s stores in transactions on ``db``."""
        self._db = db
        self._book = book

    async def merge(self, user_id: uuid.UUID, results: DocumentResults) -> MergeOutcome:
        """Add, replace or remove the document's markers; create or delete its panel as needed."""
        check_document(user_id, results)
        now = datetime.now(UTC)
        fields = PanelFields(
            collection_time=results.collection_time,
            utc_offset=results.utc_offset,
            lab_name=results.lab_name,
            fasting=results.fasting,
        )
        validate_fields(fields, now=now, prefix="request")
        person = await self._book.person(user_id)
        upserts = {
            extracted: dataclasses.replace(
                draft,
                extracted_marker=extracted,
                provenance=_document_provenance(draft, results.document, extracted),
            )
            for extracted, draft in results.upserts
        }
        store = self._book.store

        async def work(conn: asyncpg.Connection) -> MergeOutcome:
            current = await store.find_by_source(conn, user_id, source_key(results.document))
            kept = (
                []
                if current is None
                else [
                    marker
                    for marker in current.markers
                    if marker.extracted_marker not in results.removals
                    and marker.extracted_marker not in upserts
                ]
            )
            by_key = (
                {} if current is None else {marker.extracted_marker: marker.id for marker in current.markers}
            )
            drafts = [draft_of(marker) for marker in kept] + [
                dataclasses.replace(draft, marker_id=by_key.get(extracted))
                for extracted, draft in upserts.items()
            ]
            if not drafts:
                if current is not None:
                    await self._book.delete_in(conn, current, person=person)
                return MergeOutcome(None, [], False)
            if current is None:
                markers = evaluate_markers(
                    self._book.dictionary,
                    drafts,
                    person=person,
                    collection_time=fields.collection_time,
                    prefix="upserts",
                )
                panel = Panel(
                    user_id=user_id,
                    id=uuid.uuid4(),
                    fields=fields,
                    provenance=Provenance(kind=ProvenanceKind.DOCUMENT, document=results.document),
                    markers=tuple(markers),
                    create_time=now,
                    update_time=now,
                    version=1,
                )
                await self._book.insert_in(
                    conn, panel, source_key=source_key(results.document), person=person, now=now
                )
                return MergeOutcome(panel, _links(panel, upserts), True)
            new_fields = dataclasses.replace(
                current.fields,
                collection_time=fields.collection_time,
                utc_offset=fields.utc_offset if fields.utc_offset is not None else current.fields.utc_offset,
                lab_name=fields.lab_name or current.fields.lab_name,
                fasting=fields.fasting
                if fields.fasting is not Fasting.UNSPECIFIED
                else current.fields.fasting,
            )
            markers = evaluate_markers(
                self._book.dictionary,
                drafts,
                person=person,
                collection_time=new_fields.collection_time,
                existing_ids=frozenset(marker.id for marker in current.markers),
                prefix="upserts",
            )
            changed = [
                name
                for name in ("collection_time", "utc_offset", "lab_name", "fasting")
                if getattr(new_fields, name) != getattr(current.fields, name)
            ]
            if _marker_content(markers) != _marker_content(current.markers):
                changed.append("markers")
            if not changed:
                return MergeOutcome(current, _links(current, upserts), False)
            updated = dataclasses.replace(
                current,
                fields=new_fields,
                markers=tuple(markers),
                update_time=now,
                version=current.version + 1,
            )
            await self._book.store_update_in(conn, updated, changed, person=person, now=now)
            return MergeOutcome(updated, _links(updated, upserts), False)

        return await self._book.write(user_id, work)


def _document_provenance(draft: MarkerDraft, document: str, extracted: str) -> Provenance:
    given = draft.provenance or Provenance()
    return dataclasses.replace(
        given, kind=ProvenanceKind.DOCUMENT, document=document, extracted_marker=extracted
    )


def _marker_content(markers: Sequence[object]) -> list[str]:
    return sorted(repr(marker) for marker in markers)


def _links(panel: Panel, upserts: dict[str, MarkerDraft]) -> list[tuple[str, str]]:
    by_key = {marker.extracted_marker: panel.marker_name(marker) for marker in panel.markers}
    return [(extracted, by_key[extracted]) for extracted in upserts if extracted in by_key]
