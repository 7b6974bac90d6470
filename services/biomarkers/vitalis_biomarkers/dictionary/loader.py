"""Loading the dictionary data file, refusing anything that is wrong rather than serving it.

Every conversion factor the units library can derive — from unit definitions, or through the
analyte's molecular weight for molar ↔ mass pairs — is derived here, and a published factor written
beside it must agree within :data:`FACTOR_TOLERANCE`; a factor ten times too big, an inverse, a urea
factor on urea nitrogen or any factor on a pair without a fixed conversion makes the whole load fail
with :class:`DictionaryError` naming the row. LOINC codes must carry a correct check digit and units
must be UCUM the registry understands.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Final

import yaml

from vitalis_biomarkers.dictionary.model import (
    AlternateUnit,
    BiomarkerDefinition,
    Category,
    ConversionKind,
    Dictionary,
    RangeBand,
)
from vitalis_biomarkers.dictionary.units import Units, UnknownUnitError
from vitalis_biomarkers.domain.people import Sex

FACTOR_TOLERANCE: Final = 0.01
DATA_FILE: Final = "dictionary.yaml"
_LOINC = re.compile(r"^(?P<number>\d{1,7})-(?P<check>\d)$")
_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_SEXES: Final = {"female": Sex.FEMALE, "male": Sex.MALE, None: Sex.UNSPECIFIED}
_KINDS: Final = {
    "linear": ConversionKind.LINEAR,
    "ifcc_ngsp": ConversionKind.IFCC_NGSP,
    "not_convertible": ConversionKind.NOT_CONVERTIBLE,
}


class DictionaryError(ValueError):
    """The dictionary data is wrong; the message names the biomarker and the row."""


def loinc_check_digit(number: str) -> int:
    """The LOINC check digit of the number part of a code (the Luhn mod-10 algorithm)."""
    total = 0
    for position, character in enumerate(reversed(number)):
        digit = int(character) * (2 if position % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return (10 - total % 10) % 10


def check_loinc(code: str) -> None:
    """Raise :class:`DictionaryError` unless ``code`` is ``NNNN-C`` with a correct check digit."""
    match = _LOINC.match(code)
    if match is None:
        raise DictionaryError(f"LOINC code {code!r} is not of the form NNNNN-C")
    expected = loinc_check_digit(match["number"])
    if int(match["check"]) != expected:
        raise DictionaryError(f"LOINC code {code!r} has a wrong check digit (expected {expected})")


def load_packaged_dictionary(units: Units, *, load_time: datetime | None = None) -> Dictionary:
    """The dictionary shipped with the service."""
    text = resources.files("vitalis_biomarkers.dictionary").joinpath(DATA_FILE).read_text(encoding="utf-8")
    return parse_dictionary(yaml.safe_load(text), units, load_time=load_time)


def parse_dictionary(document: Any, units: Units, *, load_time: datetime | None = None) -> Dictionary:
    """Check and build a dictionary from its parsed data file."""
    if not isinstance(document, Mapping):
        raise DictionaryError("the dictionary file must hold a mapping")
    version = _text(document, "version", required=True)
    default_citation = _text(document, "default_citation")
    entries = document.get("biomarkers")
    if not isinstance(entries, list) or not entries:
        raise DictionaryError("the dictionary has no biomarkers")
    definitions = [_definition(entry, units, version, default_citation) for entry in entries]
    _check_unique(definitions)
    sources = document.get("sources") or []
    return Dictionary(
        version=version,
        sources=tuple(str(source) for source in sources),
        biomarkers=tuple(definitions),
        load_time=load_time or datetime.now(UTC),
    )


def _definition(entry: Any, units: Units, version: str, default_citation: str) -> BiomarkerDefinition:
    if not isinstance(entry, Mapping):
        raise DictionaryError("every biomarker entry must be a mapping")
    biomarker_id = _text(entry, "id", required=True)
    try:
        return _checked_definition(entry, biomarker_id, units, version, default_citation)
    except DictionaryError as error:
        raise DictionaryError(f"biomarker {biomarker_id}: {error}") from None


def _checked_definition(
    entry: Mapping[str, Any], biomarker_id: str, units: Units, version: str, default_citation: str
) -> BiomarkerDefinition:
    if not _ID.match(biomarker_id):
        raise DictionaryError("the id must be a lower-case slug")
    loinc = _text(entry, "loinc", required=True)
    additional = tuple(str(code) for code in entry.get("also_loinc") or [])
    for code in (loinc, *additional):
        check_loinc(code)
    canonical_unit = _text(entry, "unit", required=True)
    _check_unit(units, canonical_unit)
    molecular_weight = _optional_number(entry, "molecular_weight")
    if molecular_weight is not None and molecular_weight <= 0:
        raise DictionaryError("molecular_weight must be positive")
    alternates = tuple(
        _alternate(row, canonical_unit, molecular_weight, units) for row in entry.get("alternates") or []
    )
    category_name = _text(entry, "category", required=True).upper()
    try:
        category = Category[category_name]
    except KeyError:
        raise DictionaryError(f"unknown category {category_name.lower()!r}") from None
    plausible = entry.get("plausible") or [None, None]
    if not isinstance(plausible, list) or len(plausible) != 2:
        raise DictionaryError("plausible must be [min, max]")
    return BiomarkerDefinition(
        id=biomarker_id,
        display_name=_text(entry, "name", required=True),
        loinc_code=loinc,
        additional_loinc_codes=additional,
        aliases=tuple(dict.fromkeys(str(alias) for alias in entry.get("aliases") or [])),
        category=category,
        description=_text(entry, "description"),
        canonical_unit=canonical_unit,
        alternate_units=alternates,
        molecular_weight=molecular_weight,
        reference_ranges=_bands(entry.get("ranges") or [], default_citation, derive_every_sex=True),
        optimal_ranges=_bands(entry.get("optimal") or [], default_citation, derive_every_sex=False),
        plausible_min=None if plausible[0] is None else float(plausible[0]),
        plausible_max=None if plausible[1] is None else float(plausible[1]),
        display_precision=int(entry.get("precision", 1)),
        dictionary_version=version,
    )


def _alternate(row: Any, canonical_unit: str, molecular_weight: float | None, units: Units) -> AlternateUnit:
    if not isinstance(row, Mapping):
        raise DictionaryError("every alternate unit must be a mapping")
    unit = _text(row, "unit", required=True)
    _check_unit(units, unit)
    loinc = _text(row, "loinc")
    if loinc:
        check_loinc(loinc)
    kind_name = _text(row, "kind") or "linear"
    if kind_name not in _KINDS:
        raise DictionaryError(f"{unit}: unknown conversion kind {kind_name!r}")
    kind = _KINDS[kind_name]
    stated = _stated_factor(row, unit)
    basis = _text(row, "basis")
    if kind is ConversionKind.NOT_CONVERTIBLE:
        if stated is not None:
            raise DictionaryError(
                f"{unit} -> {canonical_unit}: a factor is given for a pair without a fixed conversion"
            )
        return AlternateUnit(unit, loinc, kind, None, basis or "no fixed conversion")
    if kind is ConversionKind.IFCC_NGSP:
        if {unit, canonical_unit} != {"mmol/mol", "%"} or stated is not None:
            raise DictionaryError(
                f"{unit}: the IFCC-NGSP equation converts only % and mmol/mol, with no factor"
            )
        return AlternateUnit(unit, loinc, kind, None, basis or "IFCC-NGSP master equation")
    derived = units.factor(unit, canonical_unit, molecular_weight=molecular_weight)
    if derived is None:
        if units.factor(unit, canonical_unit, molecular_weight=1.0) is not None:
            raise DictionaryError(
                f"{unit} -> {canonical_unit}: a molar <-> mass conversion needs the analyte's "
                "molecular weight; "
                "without one (Lp(a)) the pair has no fixed conversion"
            )
        if stated is None:
            raise DictionaryError(
                f"{unit} -> {canonical_unit}: no conversion can be derived and no published factor is given"
            )
        return AlternateUnit(unit, loinc, kind, stated, basis or "published factor")
    if stated is not None and abs(stated - derived) > FACTOR_TOLERANCE * derived:
        raise DictionaryError(
            f"{unit} -> {canonical_unit}: the published factor {stated:g} disagrees with {derived:.6g} "
            f"derived from {_derivation(units, unit, canonical_unit, molecular_weight)}"
        )
    return AlternateUnit(
        unit, loinc, kind, derived, basis or _derivation(units, unit, canonical_unit, molecular_weight)
    )


def _derivation(units: Units, unit: str, canonical_unit: str, molecular_weight: float | None) -> str:
    if units.factor(unit, canonical_unit) is None and molecular_weight is not None:
        return f"molecular weight {molecular_weight:g} g/mol"
    return "unit definitions"


def _stated_factor(row: Mapping[str, Any], unit: str) -> float | None:
    to_canonical = _optional_number(row, "to_canonical_factor")
    from_canonical = _optional_number(row, "from_canonical_factor")
    if to_canonical is not None and from_canonical is not None:
        raise DictionaryError(f"{unit}: give to_canonical_factor or from_canonical_factor, not both")
    for factor in (to_canonical, from_canonical):
        if factor is not None and factor <= 0:
            raise DictionaryError(f"{unit}: a factor must be positive")
    if from_canonical is not None:
        return 1.0 / from_canonical
    return to_canonical


def _bands(rows: Sequence[Any], default_citation: str, *, derive_every_sex: bool) -> tuple[RangeBand, ...]:
    bands = [_band(row, default_citation) for row in rows]
    if derive_every_sex:
        bands += _bands_for_every_sex(bands)
    return tuple(bands)


def _band(row: Any, default_citation: str) -> RangeBand:
    if not isinstance(row, Mapping):
        raise DictionaryError("every range must be a mapping")
    sex_name = row.get("sex")
    if sex_name not in _SEXES:
        raise DictionaryError(f"unknown sex {sex_name!r} in a range")
    age = row.get("age") or [0]
    if not isinstance(age, list) or len(age) not in (1, 2):
        raise DictionaryError("age must be [min] or [min, max]")
    band = RangeBand(
        sex=_SEXES[sex_name],
        min_age=float(age[0]),
        max_age=float(age[1]) if len(age) == 2 else None,
        low=_optional_number(row, "low"),
        high=_optional_number(row, "high"),
        critical_low=_optional_number(row, "critical_low"),
        critical_high=_optional_number(row, "critical_high"),
        citation=_text(row, "citation") or default_citation,
    )
    if band.low is not None and band.high is not None and band.low > band.high:
        raise DictionaryError(f"a range has low {band.low:g} above high {band.high:g}")
    if band.max_age is not None and band.max_age <= band.min_age:
        raise DictionaryError("an age band ends before it starts")
    return band


def _bands_for_every_sex(bands: Sequence[RangeBand]) -> list[RangeBand]:
    """For each age band with female and male ranges and none for every sex, the widest of the two."""
    derived = []
    ages = dict.fromkeys((band.min_age, band.max_age) for band in bands)
    for min_age, max_age in ages:
        same_age = [band for band in bands if (band.min_age, band.max_age) == (min_age, max_age)]
        by_sex = {band.sex: band for band in same_age}
        female, male = by_sex.get(Sex.FEMALE), by_sex.get(Sex.MALE)
        if female is None or male is None or Sex.UNSPECIFIED in by_sex:
            continue
        derived.append(
            RangeBand(
                sex=Sex.UNSPECIFIED,
                min_age=min_age,
                max_age=max_age,
                low=_widest(min, female.low, male.low),
                high=_widest(max, female.high, male.high),
                critical_low=_widest(min, female.critical_low, male.critical_low),
                critical_high=_widest(max, female.critical_high, male.critical_high),
                citation="Widest of the female and male ranges, for people whose sex is not stated",
            )
        )
    return derived


def _widest(pick: Any, first: float | None, second: float | None) -> float | None:
    if first is None or second is None:
        return None
    chosen: float = pick(first, second)
    return chosen


def _check_unit(units: Units, unit: str) -> None:
    try:
        units.quantity(unit)
    except UnknownUnitError as error:
        raise DictionaryError(str(error)) from None


def _check_unique(definitions: Sequence[BiomarkerDefinition]) -> None:
    seen_ids: set[str] = set()
    own_codes: dict[str, str] = {}
    for definition in definitions:
        if definition.id in seen_ids:
            raise DictionaryError(f"biomarker {definition.id} is defined twice")
        seen_ids.add(definition.id)
        if definition.loinc_code in own_codes:
            raise DictionaryError(
                f"biomarkers {own_codes[definition.loinc_code]} and {definition.id} share the LOINC code "
                f"{definition.loinc_code}"
            )
        own_codes[definition.loinc_code] = definition.id


def _text(entry: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    value = entry.get(key)
    if value is None or value == "":
        if required:
            raise DictionaryError(f"{key} is required")
        return ""
    return str(value)


def _optional_number(entry: Mapping[str, Any], key: str) -> float | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DictionaryError(f"{key} must be a number")
    return float(value)
