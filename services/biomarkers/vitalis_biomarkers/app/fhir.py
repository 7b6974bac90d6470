"""Exchanging panels as FHIR R4: export a Bundle, import one idempotently."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vitalis_biomarkers.app.panels import PanelBook, panel_not_found
from vitalis_biomarkers.dictionary.units import Units
from vitalis_biomarkers.domain.fhir import ImportIssue, InvalidFhirError, export_bundle
from vitalis_biomarkers.domain.fhir_import import FhirReader
from vitalis_biomarkers.domain.panels import Panel
from vitalis_biomarkers.store.panels import TimeInterval
from vitalis_runtime.errors import InvalidArgument, NotFound, VitalisError

EXPORT_PAGE = 500


@dataclass
class FhirImport:
    """What an import did."""

    panels: list[Panel] = field(default_factory=list)
    created_count: int = 0
    observation_count: int = 0
    imported_observation_count: int = 0
    issues: list[ImportIssue] = field(default_factory=list)


class FhirExchange:
    """Export and import of a user's panels."""

    def __init__(self, book: PanelBook, units: Units) -> None:
        """Read and write panels through ``book``."""
        self._book = book
        self._reader = FhirReader(book.dictionary, units.normalize)

    async def export(
        self, user_id: uuid.UUID, *, panel_ids: Sequence[uuid.UUID], interval: TimeInterval
    ) -> dict[str, Any]:
        """The Bundle of the named panels, or of every panel in ``interval``."""
        panels: list[Panel] = []
        if panel_ids:
            found = await self._book.list_panels(
                user_id,
                interval=TimeInterval(),
                ascending=True,
                after=None,
                limit=len(panel_ids),
                panel_ids=panel_ids,
            )
            by_id = {panel.id: panel for panel in found}
            for panel_id in panel_ids:
                if panel_id not in by_id:
                    raise panel_not_found()
                panels.append(by_id[panel_id])
        else:
            after = None
            while True:
                page = await self._book.list_panels(
                    user_id, interval=interval, ascending=True, after=after, limit=EXPORT_PAGE
                )
                panels += page
                if len(page) < EXPORT_PAGE:
                    break
                after = (page[-1].fields.collection_time, page[-1].id)
        person = await self._book.person(user_id)
        return export_bundle(panels, self._book.dictionary, person, now=datetime.now(UTC))

    async def import_bundle(self, user_id: uuid.UUID, data: bytes) -> FhirImport:
        """Create the panels a FHIR resource holds; ones imported before are returned as they are."""
        try:
            document = json.loads(data)
            result = self._reader.read(document)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InvalidArgument.for_field(
                "http_body", f"is not JSON: {error}", reason="INVALID_FHIR"
            ) from None
        except InvalidFhirError as error:
            raise InvalidArgument.for_field("http_body", str(error), reason="INVALID_FHIR") from None
        outcome = FhirImport(observation_count=result.observation_count, issues=list(result.issues))
        for imported in result.panels:
            try:
                panel, created = await self._book.create(
                    user_id,
                    imported.fields,
                    imported.provenance,
                    imported.markers,
                    source_key=f"fhir:{imported.provenance.fhir_source}|{imported.source}",
                )
            except (InvalidArgument, NotFound) as error:
                if isinstance(error, VitalisError):
                    outcome.issues.append(ImportIssue(imported.source, "IMPLAUSIBLE_VALUE", error.message))
                continue
            outcome.panels.append(panel)
            outcome.created_count += int(created)
            outcome.imported_observation_count += len(imported.markers)
        return outcome
