"""Flags from the lab's range or the dictionary's range for the person's sex and age."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from vitalis_biomarkers.dictionary.loader import load_packaged_dictionary
from vitalis_biomarkers.dictionary.model import Dictionary
from vitalis_biomarkers.dictionary.units import Units
from vitalis_biomarkers.domain.flags import Flag, FlagBasis, LabRange, OptimalStatus
from vitalis_biomarkers.domain.panels import Marker, MarkerDraft, evaluate_marker
from vitalis_biomarkers.domain.people import PersonProfile, Sex

DRAWN = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def dictionary() -> Dictionary:
    return load_packaged_dictionary(Units())


def person(sex: Sex, age: int | None) -> PersonProfile:
    return PersonProfile(sex=sex, birth_date=None if age is None else date(DRAWN.year - age, 1, 1))


def marker(
    dictionary: Dictionary,
    biomarker: str,
    value: float,
    unit: str,
    who: PersonProfile,
    lab: LabRange | None = None,
) -> Marker:
    draft = MarkerDraft(
        biomarker=f"biomarkers/{biomarker}", value=value, reported_unit=unit, lab_range=lab or LabRange()
    )
    return evaluate_marker(
        dictionary, draft, marker_id=uuid.uuid4(), person=who, collection_time=DRAWN, field_path="marker"
    )


@pytest.mark.parametrize(
    ("mmol", "flag"), [(5.0, Flag.NORMAL), (6.0, Flag.HIGH), (3.5, Flag.LOW), (2.0, Flag.CRITICAL_LOW)]
)
def test_glucose_in_mmol_and_mg_give_the_same_canonical_value_and_flag(
    dictionary: Dictionary, mmol: float, flag: Flag
) -> None:
    who = person(Sex.FEMALE, 40)
    molar = marker(dictionary, "glucose", mmol, "mmol/L", who)
    mass = marker(dictionary, "glucose", mmol * 18.0156, "mg/dL", who)
    assert molar.canonical_value == pytest.approx(mass.canonical_value, rel=1e-12)
    assert molar.flag is mass.flag is flag
    assert molar.flag_basis is FlagBasis.DICTIONARY_RANGE


def test_creatinine_flag_depends_on_sex(dictionary: Dictionary) -> None:
    assert marker(dictionary, "creatinine", 1.2, "mg/dL", person(Sex.FEMALE, 40)).flag is Flag.HIGH
    assert marker(dictionary, "creatinine", 1.2, "mg/dL", person(Sex.MALE, 40)).flag is Flag.NORMAL
    assert marker(dictionary, "creatinine", 106.1, "umol/L", person(Sex.FEMALE, 40)).flag is Flag.HIGH
    # Sex not stated: the widest of the female and male ranges.
    assert marker(dictionary, "creatinine", 1.2, "mg/dL", person(Sex.UNSPECIFIED, 40)).flag is Flag.NORMAL


def test_alkaline_phosphatase_flag_depends_on_age(dictionary: Dictionary) -> None:
    assert marker(dictionary, "alkaline-phosphatase", 300, "U/L", person(Sex.MALE, 10)).flag is Flag.NORMAL
    assert marker(dictionary, "alkaline-phosphatase", 300, "U/L", person(Sex.MALE, 30)).flag is Flag.HIGH
    # An unknown age falls back to the adult range.
    assert marker(dictionary, "alkaline-phosphatase", 300, "U/L", person(Sex.MALE, None)).flag is Flag.HIGH


def test_testosterone_flag_depends_on_sex_and_age_band(dictionary: Dictionary) -> None:
    assert marker(dictionary, "testosterone-total", 280, "ng/dL", person(Sex.MALE, 30)).flag is Flag.LOW
    assert marker(dictionary, "testosterone-total", 280, "ng/dL", person(Sex.MALE, 50)).flag is Flag.NORMAL
    assert marker(dictionary, "testosterone-total", 280, "ng/dL", person(Sex.FEMALE, 50)).flag is Flag.HIGH


def test_lab_range_takes_precedence_over_the_dictionary(dictionary: Dictionary) -> None:
    found = marker(dictionary, "glucose", 105, "mg/dL", person(Sex.MALE, 40), LabRange(70, 110, "70 - 110"))
    assert (found.flag, found.flag_basis) == (Flag.NORMAL, FlagBasis.LAB_RANGE)
    low = marker(dictionary, "glucose", 4.0, "mmol/L", person(Sex.MALE, 40), LabRange(4.1, 5.9))
    assert (low.flag, low.flag_basis) == (Flag.LOW, FlagBasis.LAB_RANGE)


def test_critical_limits_apply_even_with_a_lab_range(dictionary: Dictionary) -> None:
    found = marker(dictionary, "potassium", 7.0, "mmol/L", person(Sex.MALE, 40), LabRange(3.5, 5.1))
    assert found.flag is Flag.CRITICAL_HIGH


def test_optimal_status(dictionary: Dictionary) -> None:
    who = person(Sex.FEMALE, 40)
    assert marker(dictionary, "glucose", 85, "mg/dL", who).optimal_status is OptimalStatus.OPTIMAL
    assert marker(dictionary, "glucose", 95, "mg/dL", who).optimal_status is OptimalStatus.ABOVE_OPTIMAL


def test_lipoprotein_a_in_nmol_is_kept_as_reported_without_a_flag(dictionary: Dictionary) -> None:
    found = marker(dictionary, "lipoprotein-a", 75, "nmol/L", person(Sex.MALE, 40))
    assert found.canonical_value is None
    assert found.flag is Flag.UNSPECIFIED
    flagged = marker(dictionary, "lipoprotein-a", 160, "nmol/L", person(Sex.MALE, 40), LabRange(high=75))
    assert flagged.flag is Flag.HIGH
