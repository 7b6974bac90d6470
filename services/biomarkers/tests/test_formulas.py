"""Score formulas as pure functions: the published PhenoAge vector, monotonicity, undefined cases."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitalis_biomarkers.domain.formulas import (
    EGFR,
    HOMA_IR,
    LDL_FRIEDEWALD,
    LDL_SAMPSON,
    PHENOAGE,
    ScoreUndefinedError,
)
from vitalis_biomarkers.domain.people import Sex
from vitalis_biomarkers.domain.scoring import Evaluation, InputValue, MissingInputsError, evaluate

# bio-learn/biolearn PR #202, as in reference/phenoage.md; CRP given as mg/dL with ln = -4.20.
VECTOR = {
    "albumin": 50.0,
    "creatinine": 75.14,
    "glucose": 4.44,
    "crp": math.exp(-4.20),
    "lymphocytes": 40.0,
    "mcv": 88.0,
    "rdw": 12.0,
    "alp": 45.0,
    "wbc": 4.2,
    "age": 47.0,
}


def phenoage(values: dict[str, float], coefficient_set: str = "") -> Evaluation:
    version = PHENOAGE.version("")
    assert version is not None
    coefficients = version.coefficient_set(coefficient_set)
    assert coefficients is not None
    inputs = {name: InputValue(name, value, "") for name, value in values.items()}
    return evaluate(version, coefficients, inputs, Sex.UNSPECIFIED)


@pytest.mark.parametrize(
    ("coefficient_set", "expected"),
    [
        ("levine-2018-rounded-0.090165", 26.41),
        ("levine-2018-rounded-0.09165", 28.28),
        ("levine-2018-full-0.090165", 26.35),
        ("levine-2018-full-0.09165", 28.22),
    ],
)
def test_published_phenoage_vector_is_reproduced(coefficient_set: str, expected: float) -> None:
    result = phenoage(VECTOR, coefficient_set)
    assert result.value == pytest.approx(expected, abs=0.01)
    assert not result.flagged


def test_rounded_set_gives_the_published_intermediates() -> None:
    result = phenoage(VECTOR, "levine-2018-rounded-0.090165")
    assert result.intermediates["xb"] == pytest.approx(-10.4638, abs=1e-4)
    assert result.intermediates["mortality_score"] == pytest.approx(0.005615, abs=1e-6)


def test_default_coefficient_set_is_full_precision_with_0_090165() -> None:
    version = PHENOAGE.version("")
    assert version is not None
    assert version.default_coefficient_set == "levine-2018-full-0.090165"


# PhenoAge rises with each term of positive coefficient and falls with the negative ones.
INCREASING = ("creatinine", "glucose", "crp", "mcv", "rdw", "alp", "wbc", "age")
DECREASING = ("albumin", "lymphocytes")


@settings(max_examples=60, deadline=None)
@given(
    term=st.sampled_from(INCREASING + DECREASING),
    factor=st.floats(min_value=1.01, max_value=1.5),
    scale=st.floats(min_value=0.8, max_value=1.2),
)
def test_phenoage_is_monotonic_in_every_input(term: str, factor: float, scale: float) -> None:
    base = {name: value * scale if name != "age" else value for name, value in VECTOR.items()}
    raised = {**base, term: base[term] * factor}
    lower, higher = phenoage(base).value, phenoage(raised).value
    if term in INCREASING:
        assert higher > lower
    else:
        assert higher < lower


def test_zero_crp_is_undefined_not_infinite() -> None:
    with pytest.raises(ScoreUndefinedError, match="logarithm"):
        phenoage({**VECTOR, "crp": 0.0})


def test_mortality_score_reaching_one_is_undefined() -> None:
    with pytest.raises(ScoreUndefinedError, match="mortality"):
        phenoage({**VECTOR, "glucose": 400.0, "age": 100.0})


def test_implausible_inputs_flag_the_score() -> None:
    result = phenoage({**VECTOR, "glucose": 45.0})
    assert result.flagged
    assert [issue.reason for issue in result.issues] == ["OUTSIDE_PLAUSIBLE_RANGE"]


def test_missing_inputs_are_named() -> None:
    values = dict(VECTOR)
    del values["rdw"], values["age"]
    with pytest.raises(MissingInputsError) as raised:
        phenoage(values)
    assert raised.value.missing == ("rdw", "age")


def _evaluate(formula: object, values: dict[str, float], sex: Sex = Sex.UNSPECIFIED) -> float:
    version = formula.version("")  # type: ignore[attr-defined]
    coefficients = version.coefficient_set("")
    return evaluate(version, coefficients, {k: InputValue(k, v, "") for k, v in values.items()}, sex).value


def test_homa_ir() -> None:
    assert _evaluate(HOMA_IR, {"glucose": 90.0, "insulin": 9.0}) == pytest.approx(2.0)


def test_egfr_ckd_epi_2021_matches_published_examples() -> None:
    # Worked by hand: 142 x 0.9938^50 x 1.012 for a woman at kappa;
    # 142 x (1.0/0.9)^-1.2 x 0.9938^50 for a man.
    assert _evaluate(EGFR, {"creatinine": 0.7, "age": 50.0}, Sex.FEMALE) == pytest.approx(105.30, abs=0.05)
    assert _evaluate(EGFR, {"creatinine": 1.0, "age": 50.0}, Sex.MALE) == pytest.approx(91.70, abs=0.05)


def test_egfr_needs_a_female_or_male_sex() -> None:
    with pytest.raises(MissingInputsError) as raised:
        _evaluate(EGFR, {"creatinine": 1.0, "age": 50.0}, Sex.OTHER)
    assert raised.value.missing == ("sex",)


def test_calculated_ldl() -> None:
    lipids = {"total_cholesterol": 200.0, "hdl_cholesterol": 50.0, "triglycerides": 150.0}
    assert _evaluate(LDL_FRIEDEWALD, lipids) == pytest.approx(120.0)
    # Worked by hand: 210.97 - 51.49 - (17.52 + 10.51 - 1.40) - 9.44.
    assert _evaluate(LDL_SAMPSON, lipids) == pytest.approx(123.40, abs=0.01)


@settings(max_examples=60, deadline=None)
@given(
    creatinine=st.floats(min_value=0.3, max_value=8.0),
    age=st.floats(min_value=18, max_value=95),
    step=st.floats(min_value=1.01, max_value=1.5),
    sex=st.sampled_from([Sex.FEMALE, Sex.MALE]),
)
def test_egfr_falls_with_creatinine_and_age(creatinine: float, age: float, step: float, sex: Sex) -> None:
    base = _evaluate(EGFR, {"creatinine": creatinine, "age": age}, sex)
    assert _evaluate(EGFR, {"creatinine": creatinine * step, "age": age}, sex) < base
    assert _evaluate(EGFR, {"creatinine": creatinine, "age": age + step}, sex) < base


@settings(max_examples=60, deadline=None)
@given(
    total=st.floats(min_value=120, max_value=400),
    hdl=st.floats(min_value=20, max_value=100),
    triglycerides=st.floats(min_value=30, max_value=390),
    step=st.floats(min_value=1.0, max_value=20.0),
)
def test_calculated_ldl_rises_with_total_and_falls_with_hdl(
    total: float, hdl: float, triglycerides: float, step: float
) -> None:
    for formula in (LDL_FRIEDEWALD, LDL_SAMPSON):
        lipids = {"total_cholesterol": total, "hdl_cholesterol": hdl, "triglycerides": triglycerides}
        base = _evaluate(formula, lipids)
        assert _evaluate(formula, {**lipids, "total_cholesterol": total + step}) > base
        assert _evaluate(formula, {**lipids, "hdl_cholesterol": hdl + step}) < base
