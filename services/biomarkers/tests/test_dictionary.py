"""The dictionary: every unit pair converts and round-trips, the loader refuses every known-wrong row."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from vitalis_biomarkers.dictionary.loader import (
    DictionaryError,
    check_loinc,
    load_packaged_dictionary,
    parse_dictionary,
)
from vitalis_biomarkers.dictionary.model import ConversionKind, Dictionary, NoFixedConversionError
from vitalis_biomarkers.dictionary.search import MatchKind, match_printed, search
from vitalis_biomarkers.dictionary.units import Units, UnknownUnitError

# The 59 rows of reference/biomarkers-and-wearables.md, by their conventional LOINC codes.
REFERENCE_LOINC_CODES = [
    "2345-7",
    "4548-4",
    "20448-7",
    "2093-3",
    "2085-9",
    "13457-7",
    "18262-6",
    "2571-8",
    "1884-6",
    "10835-7",
    "30522-7",
    "1988-5",
    "2160-0",
    "3094-0",
    "98979-8",
    "33863-2",
    "3084-1",
    "2951-2",
    "2823-3",
    "2075-0",
    "2028-9",
    "17861-6",
    "19123-9",
    "2777-1",
    "1751-7",
    "2885-2",
    "1975-2",
    "6768-6",
    "1742-6",
    "1920-8",
    "2324-2",
    "718-7",
    "4544-3",
    "789-8",
    "6690-2",
    "777-3",
    "787-2",
    "785-6",
    "786-4",
    "788-0",
    "736-9",
    "731-0",
    "770-8",
    "751-8",
    "3016-3",
    "3024-7",
    "3051-0",
    "62292-8",
    "2132-9",
    "2284-8",
    "2276-4",
    "2498-4",
    "2500-7",
    "2502-3",
    "13965-9",
    "2986-8",
    "13967-5",
    "2243-4",
    "2143-6",
    "2191-5",
    "2857-1",
]


@pytest.fixture(scope="module")
def units() -> Units:
    return Units()


@pytest.fixture(scope="module")
def dictionary(units: Units) -> Dictionary:
    return load_packaged_dictionary(units)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    from importlib import resources

    text = resources.files("vitalis_biomarkers.dictionary").joinpath("dictionary.yaml").read_text()
    document: dict[str, Any] = yaml.safe_load(text)
    return document


def test_dictionary_covers_every_reference_biomarker(dictionary: Dictionary) -> None:
    missing = [code for code in REFERENCE_LOINC_CODES if dictionary.by_loinc(code) is None]
    assert missing == []
    assert len(REFERENCE_LOINC_CODES) == 61  # 59 rows, two of which (MCH/MCHC, neutrophils) hold two codes
    assert len(dictionary.biomarkers) >= 59


def test_every_alternate_unit_pair_round_trips_within_a_tenth_of_a_percent(dictionary: Dictionary) -> None:
    checked = 0
    for definition in dictionary.biomarkers:
        convertible = [
            unit
            for unit in definition.units
            if definition.alternate(unit) is None
            or definition.alternate(unit).kind is not ConversionKind.NOT_CONVERTIBLE  # type: ignore[union-attr]
        ]
        probe = (definition.plausible_min or 0) + (
            (definition.plausible_max or 100) - (definition.plausible_min or 0)
        ) / 7
        probe = max(probe, 2.2)
        for source, target in itertools.permutations(convertible, 2):
            start = definition.convert(probe, definition.canonical_unit, source)[0]
            there, _ = definition.convert(start, source, target)
            back, _ = definition.convert(there, target, source)
            assert back == pytest.approx(start, rel=1e-3), (definition.id, source, target)
            checked += 1
    assert checked > 100


def test_factors_are_derived_from_molecular_weights(dictionary: Dictionary) -> None:
    glucose = dictionary.get("glucose")
    assert glucose is not None
    mmol = glucose.alternate("mmol/L")
    assert mmol is not None
    assert mmol.factor == pytest.approx(18.0156, rel=1e-6)
    assert "180.156" in mmol.basis
    urea_nitrogen = dictionary.get("urea-nitrogen")
    assert urea_nitrogen is not None
    assert urea_nitrogen.convert(1.0, "mmol/L", "mg/dL")[0] == pytest.approx(2.8014, rel=1e-4)
    creatinine = dictionary.get("creatinine")
    assert creatinine is not None
    assert creatinine.convert(1.0, "mg/dL", "umol/L")[0] == pytest.approx(88.40, rel=1e-3)


def test_hba1c_uses_the_ifcc_ngsp_master_equation(dictionary: Dictionary) -> None:
    hba1c = dictionary.get("hemoglobin-a1c")
    assert hba1c is not None
    assert hba1c.convert(5.7, "%", "mmol/mol") == (pytest.approx(38.8, abs=0.05), ConversionKind.IFCC_NGSP)
    assert hba1c.convert(6.5, "%", "mmol/mol")[0] == pytest.approx(47.5, abs=0.05)
    assert hba1c.to_canonical(47.5, "mmol/mol") == pytest.approx(6.5, abs=0.01)


def test_lipoprotein_a_molar_and_mass_units_do_not_convert(dictionary: Dictionary) -> None:
    lpa = dictionary.get("lipoprotein-a")
    assert lpa is not None
    with pytest.raises(NoFixedConversionError):
        lpa.convert(75, "nmol/L", "mg/dL")
    assert lpa.to_canonical(75, "nmol/L") is None


def _entry(raw: dict[str, Any], biomarker_id: str) -> dict[str, Any]:
    return next(entry for entry in raw["biomarkers"] if entry["id"] == biomarker_id)


ERRATA = [
    ("cortisol", {"unit": "nmol/L", "loinc": "14675-3", "to_canonical_factor": 0.362}),
    ("cortisol", {"unit": "nmol/L", "loinc": "14675-3", "to_canonical_factor": 27.5862069}),
    ("free-triiodothyronine", {"unit": "pmol/L", "loinc": "14928-6", "to_canonical_factor": 64.94}),
    ("phosphate", {"unit": "mmol/L", "loinc": "14879-1", "to_canonical_factor": 0.3229}),
    ("ldl-cholesterol-calculated", {"unit": "mmol/L", "loinc": "39469-2", "to_canonical_factor": 0.02585984}),
    ("urea-nitrogen", {"unit": "mmol/L", "loinc": "14937-7", "to_canonical_factor": 6.006}),
    ("vitamin-d3-25-hydroxy", {"unit": "pmol/L", "to_canonical_factor": 0.385}),
    ("testosterone-free", {"unit": "pmol/L", "to_canonical_factor": 3.46740638}),
    ("lipoprotein-a", {"unit": "nmol/L", "loinc": "43583-4", "to_canonical_factor": 28.01}),
    (
        "lipoprotein-a",
        {"unit": "nmol/L", "loinc": "43583-4", "kind": "not_convertible", "to_canonical_factor": 28.01},
    ),
    ("vitamin-b12", {"unit": "pmol/L", "loinc": "14685-2", "to_canonical_factor": 1.329}),
    ("cortisol", {"unit": "ug/dL", "loinc": "299-1"}),
    ("cortisol", {"unit": "nomol/L", "to_canonical_factor": 0.03625}),
    ("cortisol", {"unit": "{ration}", "to_canonical_factor": 1}),
]


@pytest.mark.parametrize(("biomarker_id", "row"), ERRATA, ids=[f"{b}:{r}" for b, r in ERRATA])
def test_loader_rejects_each_known_wrong_row(
    raw: dict[str, Any], units: Units, biomarker_id: str, row: dict[str, Any]
) -> None:
    document = copy.deepcopy(raw)
    entry = _entry(document, biomarker_id)
    entry["alternates"] = [
        alternate for alternate in entry["alternates"] if alternate["unit"] != row["unit"] or "kind" in row
    ]
    if row.get("kind") == "not_convertible":
        entry["alternates"] = [a for a in entry["alternates"] if a["unit"] != row["unit"]]
    entry["alternates"].append(row)
    with pytest.raises(DictionaryError) as raised:
        parse_dictionary(document, units)
    assert biomarker_id in str(raised.value)


def test_loader_accepts_the_corrected_factors(raw: dict[str, Any], units: Units) -> None:
    document = copy.deepcopy(raw)
    corrected = {
        "cortisol": ("nmol/L", 0.03625),
        "free-triiodothyronine": ("pmol/L", 0.651),
        "phosphate": ("mmol/L", 3.097),
        "ldl-cholesterol-calculated": ("mmol/L", 38.67),
        "urea-nitrogen": ("mmol/L", 2.801),
        "vitamin-d3-25-hydroxy": ("nmol/L", 0.4006),
        "testosterone-free": ("pmol/L", 0.2884),
        "vitamin-b12": ("pmol/L", 1.3554),
    }
    for biomarker_id, (unit, factor) in corrected.items():
        entry = _entry(document, biomarker_id)
        entry["alternates"] = [a for a in entry["alternates"] if a["unit"] != unit]
        entry["alternates"].append({"unit": unit, "to_canonical_factor": factor})
    loaded = parse_dictionary(document, units)
    vitamin_d3 = loaded.get("vitamin-d3-25-hydroxy")
    assert vitamin_d3 is not None
    assert vitamin_d3.convert(1.0, "nmol/L", "ng/mL")[0] == pytest.approx(0.40064, rel=1e-4)


def test_loinc_check_digits_are_verified() -> None:
    check_loinc("2345-7")
    check_loinc("2999-1")
    with pytest.raises(DictionaryError, match="check digit"):
        check_loinc("299-1")
    with pytest.raises(DictionaryError):
        check_loinc("2345")


@pytest.mark.parametrize(
    ("printed", "ucum"),
    [
        ("mg/dl", "mg/dL"),
        ("MG/DL", "mg/dL"),
        ("µmol/L", "umol/L"),
        ("μmol/l", "umol/L"),
        ("x10E3/uL", "10*3/uL"),
        ("10^3/µL", "10*3/uL"),
        ("mIU/L", "m[IU]/L"),
        ("uIU/mL", "u[IU]/mL"),
        ("mEq/L", "meq/L"),
        ("mcg/dL", "ug/dL"),
    ],
)
def test_printed_units_normalise_to_ucum(
    dictionary: Dictionary, units: Units, printed: str, ucum: str
) -> None:
    known = sorted({unit for definition in dictionary.biomarkers for unit in definition.units})
    assert units.normalize(printed, known=known) == ucum


def test_unknown_units_are_refused(units: Units) -> None:
    for text in ("nomol/L", "{ration}", "banana", ""):
        with pytest.raises(UnknownUnitError):
            units.quantity(text)


def test_search_by_code_exact_name_normalised_name_and_similarity(dictionary: Dictionary) -> None:
    assert search(dictionary, "14749-6")[0].definition.id == "glucose"
    assert search(dictionary, "14749-6")[0].kind is MatchKind.LOINC_CODE
    exact = search(dictionary, "GLU")[0]
    assert (exact.definition.id, exact.kind) == ("glucose", MatchKind.EXACT_NAME)
    normalized = search(dictionary, "hb a1c")[0]
    assert (normalized.definition.id, normalized.kind) == ("hemoglobin-a1c", MatchKind.NORMALIZED_NAME)
    similar = search(dictionary, "Trigliceride")[0]
    assert (similar.definition.id, similar.kind) == ("triglycerides", MatchKind.SIMILAR_NAME)


def test_printed_results_match_with_unit_fit(dictionary: Dictionary, units: Units) -> None:
    known = sorted({unit for definition in dictionary.biomarkers for unit in definition.units})

    def normalize(text: str) -> str | None:
        return units.normalize(text, known=known)

    found = match_printed(
        dictionary, label="Glucose, Serum", loinc_code="", unit="mg/dl", normalize_unit=normalize, limit=3
    )
    assert found[0].hit.definition.id == "glucose"
    assert found[0].unit_accepted
    assert found[0].normalized_unit == "mg/dL"
    mismatched = match_printed(
        dictionary, label="Glucose", loinc_code="", unit="g/dL", normalize_unit=normalize, limit=3
    )
    assert not mismatched[0].unit_accepted
    assert mismatched[0].confidence < found[0].confidence


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_value_round_trips_between_any_two_units_of_a_biomarker(
    dictionary: Dictionary, data: st.DataObject
) -> None:
    definition = data.draw(st.sampled_from(dictionary.biomarkers))
    convertible = [
        unit
        for unit in definition.units
        if (alternate := definition.alternate(unit)) is None
        or alternate.kind is not ConversionKind.NOT_CONVERTIBLE
    ]
    source, target = data.draw(st.sampled_from(convertible)), data.draw(st.sampled_from(convertible))
    value = data.draw(st.floats(min_value=0.01, max_value=1e4, allow_nan=False))
    there, _ = definition.convert(value, source, target)
    back, _ = definition.convert(there, target, source)
    assert back == pytest.approx(value, rel=1e-3)
    if definition.alternate(source) is not None and definition.alternate(target) is not None:
        through_canonical = definition.convert(
            definition.convert(value, source, definition.canonical_unit)[0], definition.canonical_unit, target
        )[0]
        assert there == pytest.approx(through_canonical, rel=1e-9)
