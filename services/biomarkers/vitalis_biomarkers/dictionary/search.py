"""Finding biomarkers by LOINC code, name or alias, and matching what lab reports print."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from vitalis_biomarkers.dictionary.model import BiomarkerDefinition, Dictionary

SIMILARITY_THRESHOLD: Final = 0.3
NORMALIZED_SCORE: Final = 0.95
UNIT_MISMATCH_PENALTY: Final = 0.6
_NOT_ALPHANUMERIC = re.compile(r"[^0-9a-z]+")
_QUALIFIERS = re.compile(r"\s*(\(.*?\)|,.*$)")


class MatchKind(enum.Enum):
    """How a text matched (values match the contract's MatchKind)."""

    LOINC_CODE = 1
    EXACT_NAME = 2
    NORMALIZED_NAME = 3
    SIMILAR_NAME = 4


@dataclass(frozen=True)
class Hit:
    """A biomarker found, how, by which text and how well (0 to 1)."""

    definition: BiomarkerDefinition
    kind: MatchKind
    matched_text: str
    score: float


def fold(text: str) -> str:
    """Case- and punctuation-insensitive form: ``Hb A1C`` and ``HbA1c`` fold alike."""
    return _NOT_ALPHANUMERIC.sub("", text.casefold())


def trigrams(text: str) -> set[str]:
    """The trigrams of a folded text, padded as pg_trgm does."""
    padded = f"  {fold(text)} "
    return {padded[index : index + 3] for index in range(len(padded) - 2)}


def similarity(left: str, right: str) -> float:
    """Trigram similarity (shared over all trigrams), from 0 to 1."""
    a, b = trigrams(left), trigrams(right)
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def _names(definition: BiomarkerDefinition) -> Iterable[str]:
    yield definition.display_name
    yield from definition.aliases


def _best(definition: BiomarkerDefinition, query: str) -> Hit | None:
    if query in definition.loinc_codes:
        return Hit(definition, MatchKind.LOINC_CODE, query, 1.0)
    names = list(_names(definition))
    for name in names:
        if name == query:
            return Hit(definition, MatchKind.EXACT_NAME, name, 1.0)
    folded = fold(query)
    for name in names:
        if folded and fold(name) == folded:
            return Hit(definition, MatchKind.NORMALIZED_NAME, name, NORMALIZED_SCORE)
    scored = max(((similarity(query, name), name) for name in names), default=(0.0, ""))
    if scored[0] >= SIMILARITY_THRESHOLD:
        return Hit(definition, MatchKind.SIMILAR_NAME, scored[1], round(min(scored[0], 0.9), 4))
    return None


def search(dictionary: Dictionary, query: str) -> list[Hit]:
    """Every biomarker matching ``query``, best first (ties in display-name order)."""
    text = query.strip()
    hits = [hit for definition in dictionary.biomarkers if (hit := _best(definition, text)) is not None]
    return sorted(hits, key=lambda hit: (-hit.score, hit.kind.value, hit.definition.display_name.casefold()))


@dataclass(frozen=True)
class Candidate:
    """A candidate biomarker for one printed result."""

    hit: Hit
    confidence: float
    normalized_unit: str
    unit_accepted: bool


def match_printed(
    dictionary: Dictionary,
    *,
    label: str,
    loinc_code: str,
    unit: str,
    normalize_unit: Callable[[str], str | None],
    limit: int,
) -> list[Candidate]:
    """Candidates for a printed result: by LOINC code first, then by label (with qualifiers dropped)."""
    hits: dict[str, Hit] = {}
    if loinc_code:
        definition = dictionary.by_loinc(loinc_code.strip())
        if definition is not None:
            hits[definition.id] = Hit(definition, MatchKind.LOINC_CODE, loinc_code.strip(), 1.0)
    if label.strip():
        for query in dict.fromkeys((label.strip(), _QUALIFIERS.sub("", label).strip())):
            if not query:
                continue
            for hit in search(dictionary, query):
                known = hits.get(hit.definition.id)
                if known is None or known.score < hit.score:
                    hits[hit.definition.id] = hit
    normalized = normalize_unit(unit) if unit.strip() else None
    candidates = []
    for hit in hits.values():
        accepted = normalized is not None and hit.definition.accepts(normalized)
        confidence = hit.score if not unit.strip() or accepted else hit.score * UNIT_MISMATCH_PENALTY
        candidates.append(Candidate(hit, round(confidence, 4), normalized or "", accepted))
    candidates.sort(
        key=lambda candidate: (-candidate.confidence, candidate.hit.definition.display_name.casefold())
    )
    return candidates[:limit]
