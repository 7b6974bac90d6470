"""An in-memory biomarkers service for the documents tests: the dictionary of the benchmark's analytes."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from vitalis_documents.extraction_bench.catalog import ANALYTES, Analyte
from vitalis_documents.parsing.values import normalize_unit
from vitalis_documents.ports import (
    BiomarkerCandidate,
    BiomarkerQuery,
    PanelMarker,
    PanelMerge,
    PanelMergeResult,
)
from vitalis_runtime.errors import InvalidArgument, Unavailable


def slug(analyte: Analyte) -> str:
    """The fake dictionary's name of an analyte."""
    return "biomarkers/" + re.sub(r"[^a-z0-9]+", "-", analyte.english.lower()).strip("-")


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


@dataclass
class FakePanel:
    """One document's panel."""

    name: str
    markers: dict[str, PanelMarker] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeBiomarkers:
    """Matches names and aliases exactly (after normalising) and keeps one panel per document."""

    panels: dict[str, FakePanel] = field(default_factory=dict)
    calls: list[PanelMerge] = field(default_factory=list)
    unavailable: bool = False

    async def match(
        self, user_id: uuid.UUID, queries: Sequence[BiomarkerQuery]
    ) -> list[list[BiomarkerCandidate]]:
        """Exact alias matches with the unit checked against the analyte's units."""
        if self.unavailable:
            raise Unavailable("biomarkers is down")
        results = []
        for query in queries:
            found = []
            for analyte in ANALYTES:
                if _key(query.label) in {_key(analyte.english), _key(analyte.german)}:
                    unit, _ = normalize_unit(query.unit)
                    found.append(
                        BiomarkerCandidate(
                            biomarker=slug(analyte),
                            matched_text=analyte.english,
                            confidence=0.97,
                            normalized_unit=unit,
                            unit_accepted=unit in {analyte.ucum, analyte.si_ucum},
                            loinc_code=analyte.loinc,
                        )
                    )
            results.append(found)
        return results

    async def merge_markers(self, user_id: uuid.UUID, merge: PanelMerge) -> PanelMergeResult:
        """Upserts keyed by extracted marker; one marker per biomarker."""
        if self.unavailable:
            raise Unavailable("biomarkers is down")
        self.calls.append(merge)
        panel = self.panels.setdefault(
            merge.document, FakePanel(name=f"users/{user_id}/panels/{uuid.uuid4()}")
        )
        for removal in merge.removals:
            panel.markers.pop(removal, None)
            panel.links.pop(removal, None)
        for marker in merge.upserts:
            clash = [
                k
                for k, m in panel.markers.items()
                if m.biomarker == marker.biomarker and k != marker.extracted_marker
            ]
            if clash:
                raise InvalidArgument(f"the panel already has {marker.biomarker}")
            panel.markers[marker.extracted_marker] = marker
            panel.links.setdefault(marker.extracted_marker, f"{panel.name}/markers/{uuid.uuid4()}")
        if not panel.markers:
            del self.panels[merge.document]
            return PanelMergeResult(panel="", links={})
        return PanelMergeResult(
            panel=panel.name,
            links={m.extracted_marker: panel.links[m.extracted_marker] for m in merge.upserts},
        )
