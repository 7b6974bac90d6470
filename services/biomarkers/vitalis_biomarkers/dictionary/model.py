"""The biomarker dictionary as loaded: definitions, their units and conversions, and their ranges."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from vitalis_biomarkers.domain.people import Sex

IFCC_SLOPE = 10.929
IFCC_INTERCEPT = 2.15


class Category(enum.Enum):
    """The clinical area of a biomarker (the values match the contract's enum)."""

    METABOLIC = 1
    LIPIDS = 2
    BLOOD_COUNT = 3
    ELECTROLYTES = 4
    KIDNEY = 5
    LIVER = 6
    PROTEINS = 7
    THYROID = 8
    IRON = 9
    VITAMINS = 10
    HORMONES = 11
    INFLAMMATION = 12
    CARDIAC = 13
    CANCER_SCREENING = 14
    OTHER = 15


class ConversionKind(enum.Enum):
    """How an alternate unit converts to the canonical one (values match the contract's enum)."""

    LINEAR = 1
    IFCC_NGSP = 2
    NOT_CONVERTIBLE = 3


class UnitNotAcceptedError(ValueError):
    """The unit is not the canonical unit nor an alternate unit of the biomarker."""


class NoFixedConversionError(ValueError):
    """The two units of the biomarker have no fixed conversion (Lp(a) nmol/L ↔ mg/dL)."""


@dataclass(frozen=True)
class AlternateUnit:
    """A unit other than the canonical one, with ``canonical = value * factor`` for LINEAR."""

    unit: str
    loinc_code: str
    kind: ConversionKind
    factor: float | None
    basis: str

    def to_canonical(self, value: float) -> float:
        """``value`` in this unit expressed in the canonical unit."""
        if self.kind is ConversionKind.IFCC_NGSP:
            return value / IFCC_SLOPE + IFCC_INTERCEPT
        if self.kind is ConversionKind.NOT_CONVERTIBLE or self.factor is None:
            raise NoFixedConversionError(f"{self.unit} has no fixed conversion: {self.basis}")
        return value * self.factor

    def from_canonical(self, value: float) -> float:
        """A canonical ``value`` expressed in this unit."""
        if self.kind is ConversionKind.IFCC_NGSP:
            return (value - IFCC_INTERCEPT) * IFCC_SLOPE
        if self.kind is ConversionKind.NOT_CONVERTIBLE or self.factor is None:
            raise NoFixedConversionError(f"{self.unit} has no fixed conversion: {self.basis}")
        return value / self.factor


@dataclass(frozen=True)
class RangeBand:
    """A range for one sex (UNSPECIFIED: every sex) and age band ``[min_age, max_age)``."""

    sex: Sex = Sex.UNSPECIFIED
    min_age: float = 0.0
    max_age: float | None = None
    low: float | None = None
    high: float | None = None
    critical_low: float | None = None
    critical_high: float | None = None
    citation: str = ""

    def covers_age(self, age: float | None) -> bool:
        """Whether the band applies at ``age``; an unknown age matches only the band for every age
        and, failing that, adult bands (checked by the caller)."""
        if age is None:
            return self.min_age == 0.0 and self.max_age is None
        return self.min_age <= age and (self.max_age is None or age < self.max_age)


def select_band(bands: Sequence[RangeBand], sex: Sex, age: float | None) -> RangeBand | None:
    """The band for a person: their own sex before every sex, their age band (adult when unknown)."""
    wanted = sex if sex in (Sex.FEMALE, Sex.MALE) else Sex.UNSPECIFIED
    for candidate_sex in dict.fromkeys((wanted, Sex.UNSPECIFIED)):
        of_sex = [band for band in bands if band.sex is candidate_sex]
        for band in of_sex:
            if band.covers_age(age):
                return band
        if age is None:
            adult = [band for band in of_sex if band.covers_age(40.0)]
            if adult:
                return adult[0]
    return None


@dataclass(frozen=True)
class BiomarkerDefinition:
    """One biomarker of the dictionary."""

    id: str
    display_name: str
    loinc_code: str
    additional_loinc_codes: tuple[str, ...]
    aliases: tuple[str, ...]
    category: Category
    description: str
    canonical_unit: str
    alternate_units: tuple[AlternateUnit, ...]
    molecular_weight: float | None
    reference_ranges: tuple[RangeBand, ...]
    optimal_ranges: tuple[RangeBand, ...]
    plausible_min: float | None
    plausible_max: float | None
    display_precision: int
    dictionary_version: str

    @property
    def name(self) -> str:
        """The resource name, ``biomarkers/{id}``."""
        return f"biomarkers/{self.id}"

    @property
    def loinc_codes(self) -> tuple[str, ...]:
        """Every LOINC code of the biomarker, its own first."""
        return (self.loinc_code, *self.additional_loinc_codes)

    @property
    def units(self) -> tuple[str, ...]:
        """The canonical unit and every alternate unit."""
        return (self.canonical_unit, *(alternate.unit for alternate in self.alternate_units))

    def alternate(self, unit: str) -> AlternateUnit | None:
        """The alternate unit ``unit``, if the biomarker has it."""
        return next((alternate for alternate in self.alternate_units if alternate.unit == unit), None)

    def accepts(self, unit: str) -> bool:
        """Whether values may be reported in ``unit``."""
        return unit == self.canonical_unit or self.alternate(unit) is not None

    def to_canonical(self, value: float, unit: str) -> float | None:
        """``value`` in the canonical unit; None when ``unit`` has no fixed conversion.

        Raises :class:`UnitNotAcceptedError` for a unit the biomarker is not reported in.
        """
        if unit == self.canonical_unit:
            return value
        alternate = self.alternate(unit)
        if alternate is None:
            raise UnitNotAcceptedError(self._unit_problem(unit))
        if alternate.kind is ConversionKind.NOT_CONVERTIBLE:
            return None
        return alternate.to_canonical(value)

    def convert(self, value: float, from_unit: str, to_unit: str) -> tuple[float, ConversionKind]:
        """``value`` from one unit of the biomarker to another, and the kind of conversion applied.

        Raises :class:`UnitNotAcceptedError` or :class:`NoFixedConversionError`.
        """
        for unit in (from_unit, to_unit):
            if not self.accepts(unit):
                raise UnitNotAcceptedError(self._unit_problem(unit))
        if from_unit == to_unit:
            return value, ConversionKind.LINEAR
        source, target = self.alternate(from_unit), self.alternate(to_unit)
        kinds = {alternate.kind for alternate in (source, target) if alternate is not None}
        if ConversionKind.NOT_CONVERTIBLE in kinds:
            raise NoFixedConversionError(
                f"{self.display_name} has no fixed conversion between {from_unit} and {to_unit}: "
                "the values are stored as reported"
            )
        canonical = value if source is None else source.to_canonical(value)
        converted = canonical if target is None else target.from_canonical(canonical)
        kind = ConversionKind.IFCC_NGSP if ConversionKind.IFCC_NGSP in kinds else ConversionKind.LINEAR
        return converted, kind

    def reference_range(self, sex: Sex, age: float | None) -> RangeBand | None:
        """The reference range for a person of ``sex`` and ``age``."""
        return select_band(self.reference_ranges, sex, age)

    def optimal_range(self, sex: Sex, age: float | None) -> RangeBand | None:
        """The optimal range for a person of ``sex`` and ``age``."""
        return select_band(self.optimal_ranges, sex, age)

    def is_plausible(self, canonical_value: float) -> bool:
        """Whether a canonical value lies within the plausible limits."""
        if self.plausible_min is not None and canonical_value < self.plausible_min:
            return False
        return self.plausible_max is None or canonical_value <= self.plausible_max

    def _unit_problem(self, unit: str) -> str:
        return (
            f"{unit!r} is not a unit {self.display_name} is reported in; use one of {', '.join(self.units)}"
        )


@dataclass(frozen=True)
class Dictionary:
    """A loaded version of the dictionary."""

    version: str
    sources: tuple[str, ...]
    biomarkers: tuple[BiomarkerDefinition, ...]
    load_time: datetime
    _by_id: dict[str, BiomarkerDefinition] = field(init=False, repr=False, compare=False)
    _by_loinc: dict[str, BiomarkerDefinition] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_loinc: dict[str, BiomarkerDefinition] = {}
        for definition in self.biomarkers:
            for code in definition.loinc_codes:
                by_loinc.setdefault(code, definition)
        object.__setattr__(self, "_by_id", {definition.id: definition for definition in self.biomarkers})
        object.__setattr__(self, "_by_loinc", by_loinc)

    def get(self, biomarker_id: str) -> BiomarkerDefinition | None:
        """The definition with this ID, if any."""
        return self._by_id.get(biomarker_id)

    def by_name(self, name: str) -> BiomarkerDefinition | None:
        """The definition named ``biomarkers/{id}``, if any."""
        prefix, _, biomarker_id = name.partition("/")
        if prefix != "biomarkers" or not biomarker_id:
            return None
        return self.get(biomarker_id)

    def by_loinc(self, code: str) -> BiomarkerDefinition | None:
        """The definition one of whose LOINC codes is ``code``; a definition's own code wins."""
        own = next((definition for definition in self.biomarkers if definition.loinc_code == code), None)
        return own or self._by_loinc.get(code)

    def sorted_by_display_name(self) -> list[BiomarkerDefinition]:
        """Every definition in display-name order (ties by ID)."""
        return sorted(
            self.biomarkers, key=lambda definition: (definition.display_name.casefold(), definition.id)
        )
