"""What the documents service needs from the biomarkers service, as a port.

The parse pipeline and the review depend on this protocol only; the composition root plugs in
:class:`vitalis_documents.biomarkers_client.GrpcBiomarkerDirectory`, unit tests an in-memory fake.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from vitalis_documents.domain.model import ReferenceRange, ValueComparator


@dataclass(frozen=True)
class BiomarkerQuery:
    """A printed result name (and unit) to match to the dictionary."""

    label: str
    unit: str = ""


@dataclass(frozen=True)
class BiomarkerCandidate:
    """One candidate biomarker for a query, best first."""

    biomarker: str
    matched_text: str
    confidence: float
    normalized_unit: str
    unit_accepted: bool
    loinc_code: str = ""


@dataclass(frozen=True)
class PanelMarker:
    """One accepted result to put into the document's panel."""

    extracted_marker: str
    biomarker: str
    printed_name: str
    value: float
    comparator: ValueComparator
    value_text: str
    unit: str
    reference_range: ReferenceRange
    flag_text: str
    page: int
    confidence: float


@dataclass(frozen=True)
class PanelMerge:
    """A change to one document's panel."""

    document: str
    collection_time: datetime
    lab_name: str = ""
    upserts: Sequence[PanelMarker] = ()
    removals: Sequence[str] = ()


@dataclass(frozen=True)
class PanelMergeResult:
    """The panel after a merge (empty name when it has no markers) and where each result went."""

    panel: str
    links: Mapping[str, str] = field(default_factory=dict)


class BiomarkerDirectory(Protocol):
    """The biomarkers service as the documents service uses it."""

    async def match(
        self, user_id: uuid.UUID, queries: Sequence[BiomarkerQuery]
    ) -> list[list[BiomarkerCandidate]]:
        """Candidates for each query, in the order of the queries."""
        ...

    async def merge_markers(self, user_id: uuid.UUID, merge: PanelMerge) -> PanelMergeResult:
        """Add, replace or remove the document's results in its panel."""
        ...
