"""The score formulas: PhenoAge (Levine 2018), HOMA-IR, eGFR CKD-EPI 2021 and calculated LDL.

Each formula has published versions; each version names its parameters (with the unit it takes
them in and the range it was validated for), its coefficient sets and a pure ``compute`` function.
Versions are never edited: a correction is a new version. A formula without a value for some
inputs raises :class:`ScoreUndefinedError` instead of returning infinity or NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from vitalis_biomarkers.domain.people import Sex

Computation = Callable[[Mapping[str, float], Mapping[str, float], Sex], tuple[float, dict[str, float]]]


class ScoreUndefinedError(ValueError):
    """The formula has no value for these inputs (a logarithm of zero, a mortality score of 1)."""


class SexRequiredError(ValueError):
    """The formula depends on sex and the person's sex is neither female nor male."""


@dataclass(frozen=True)
class Parameter:
    """One input of a formula version."""

    name: str
    unit: str
    biomarkers: tuple[str, ...] = ()
    plausible_min: float | None = None
    plausible_max: float | None = None


@dataclass(frozen=True)
class CoefficientSet:
    """Named coefficients and constants of one version."""

    id: str
    description: str
    coefficients: Mapping[str, float]
    citation: str


@dataclass(frozen=True)
class FormulaVersion:
    """A published, immutable version of a formula."""

    version: str
    description: str
    parameters: tuple[Parameter, ...]
    coefficient_sets: tuple[CoefficientSet, ...]
    default_coefficient_set: str
    input_window: timedelta
    compute: Computation
    needs_sex: bool = False

    def coefficient_set(self, set_id: str) -> CoefficientSet | None:
        """The set with this ID; the default one for an empty ID."""
        wanted = set_id or self.default_coefficient_set
        return next((candidate for candidate in self.coefficient_sets if candidate.id == wanted), None)

    def parameter(self, name: str) -> Parameter | None:
        """The parameter called ``name``."""
        return next((parameter for parameter in self.parameters if parameter.name == name), None)


@dataclass(frozen=True)
class Formula:
    """A score formula with its versions."""

    id: str
    display_name: str
    description: str
    citation: str
    unit: str
    versions: tuple[FormulaVersion, ...]
    default_version: str

    @property
    def name(self) -> str:
        """``scoreFormulas/{id}``."""
        return f"scoreFormulas/{self.id}"

    def version(self, version: str) -> FormulaVersion | None:
        """The version called ``version``; the default one for an empty string."""
        wanted = version or self.default_version
        return next((candidate for candidate in self.versions if candidate.version == wanted), None)


AGE = Parameter("age", "a", (), 18, 100)
PHENOAGE_TERMS: Final = (
    "albumin",
    "creatinine",
    "glucose",
    "crp",
    "lymphocytes",
    "mcv",
    "rdw",
    "alp",
    "wbc",
    "age",
)


def _phenoage(
    values: Mapping[str, float], c: Mapping[str, float], sex: Sex
) -> tuple[float, dict[str, float]]:
    del sex
    crp = values["crp"]
    if crp <= 0:
        raise ScoreUndefinedError("PhenoAge takes the logarithm of CRP, which must be above 0 mg/dL")
    logged = {**values, "crp": math.log(crp)}
    xb = c["intercept"] + sum(c[term] * logged[term] for term in PHENOAGE_TERMS)
    gamma = c["gamma"]
    mortality = 1 - math.exp(-math.exp(xb) * (math.exp(120 * gamma) - 1) / gamma)
    if not 0 < mortality < 1:
        raise ScoreUndefinedError(
            f"PhenoAge is undefined: the mortality score is {mortality:g}, and ln(1 - M) needs 0 < M < 1"
        )
    phenoage = (
        c["phenoage_intercept"]
        + math.log(c["phenoage_scale"] * math.log(1 - mortality)) / c["final_constant"]
    )
    return phenoage, {"xb": xb, "mortality_score": mortality, "ln_crp": logged["crp"]}


_LEVINE_FULL: Final = {
    "intercept": -19.90667,
    "albumin": -0.03359355,
    "creatinine": 0.009506491,
    "glucose": 0.1953192,
    "crp": 0.09536762,
    "lymphocytes": -0.01199984,
    "mcv": 0.02676401,
    "rdw": 0.3306156,
    "alp": 0.001868778,
    "wbc": 0.05542406,
    "age": 0.08035356,
    "gamma": 0.007692696,
    "phenoage_intercept": 141.50225,
    "phenoage_scale": -0.0055305,
}
_LEVINE_ROUNDED: Final = {
    "intercept": -19.9067,
    "albumin": -0.0336,
    "creatinine": 0.0095,
    "glucose": 0.1953,
    "crp": 0.0954,
    "lymphocytes": -0.0120,
    "mcv": 0.0268,
    "rdw": 0.3306,
    "alp": 0.0019,
    "wbc": 0.0554,
    "age": 0.0804,
    "gamma": 0.0076927,
    "phenoage_intercept": 141.50225,
    "phenoage_scale": -0.00553,
}


def _phenoage_sets() -> tuple[CoefficientSet, ...]:
    sets = []
    for precision, coefficients, source in (
        ("full", _LEVINE_FULL, "dayoonkwon/BioAge R/phenoage_calc.R"),
        ("rounded", _LEVINE_ROUNDED, "ajsteele/bioage"),
    ):
        for constant in (0.090165, 0.09165):
            sets.append(
                CoefficientSet(
                    id=f"levine-2018-{precision}-{constant}",
                    description=(
                        f"{precision.capitalize()}-precision coefficients ({source}) with the final constant "
                        f"{constant}"
                        + (" (the published correction as read by some)" if constant == 0.09165 else "")
                    ),
                    coefficients={**coefficients, "final_constant": constant},
                    citation=f"Levine et al., Aging 2018;10(4):573-591; {source}",
                )
            )
    return tuple(sets)


PHENOAGE = Formula(
    id="phenoage",
    display_name="PhenoAge (Levine 2018)",
    description=(
        "Phenotypic age in years from nine blood markers and chronological age; above the person's age "
        "means faster biological ageing."
    ),
    citation=(
        "Levine ME et al. An epigenetic biomarker of aging for lifespan and healthspan. "
        "Aging 2018;10(4):573-591"
    ),
    unit="a",
    versions=(
        FormulaVersion(
            version="1.0.0",
            description="Levine 2018 Gompertz model, CRP as ln(mg/dL).",
            parameters=(
                Parameter("albumin", "g/L", ("albumin",), 20, 60),
                Parameter("creatinine", "umol/L", ("creatinine",), 20, 500),
                Parameter("glucose", "mmol/L", ("glucose",), 2.5, 30),
                Parameter(
                    "crp", "mg/dL", ("c-reactive-protein", "c-reactive-protein-high-sensitivity"), 0.01, 20
                ),
                Parameter("lymphocytes", "%", ("lymphocytes-percent",), 3, 70),
                Parameter("mcv", "fL", ("mean-corpuscular-volume",), 60, 120),
                Parameter("rdw", "%", ("red-cell-distribution-width",), 9, 25),
                Parameter("alp", "U/L", ("alkaline-phosphatase",), 15, 400),
                Parameter("wbc", "10*3/uL", ("leukocytes",), 1.5, 20),
                AGE,
            ),
            coefficient_sets=_phenoage_sets(),
            default_coefficient_set="levine-2018-full-0.090165",
            input_window=timedelta(days=7),
            compute=_phenoage,
        ),
    ),
    default_version="1.0.0",
)


def _homa_ir(values: Mapping[str, float], c: Mapping[str, float], sex: Sex) -> tuple[float, dict[str, float]]:
    del sex
    return values["glucose"] * values["insulin"] / c["divisor"], {}


HOMA_IR = Formula(
    id="homa-ir",
    display_name="HOMA-IR",
    description="Insulin resistance from fasting glucose and insulin; above about 2.5 suggests resistance.",
    citation="Matthews DR et al. Homeostasis model assessment. Diabetologia 1985;28(7):412-419",
    unit="1",
    versions=(
        FormulaVersion(
            version="1.0.0",
            description="Glucose (mg/dL) x insulin (uIU/mL) / 405.",
            parameters=(
                Parameter("glucose", "mg/dL", ("glucose",), 40, 400),
                Parameter("insulin", "u[IU]/mL", ("insulin",), 0.5, 300),
            ),
            coefficient_sets=(
                CoefficientSet(
                    "matthews-1985", "Divisor 405 for glucose in mg/dL", {"divisor": 405.0}, "Matthews 1985"
                ),
            ),
            default_coefficient_set="matthews-1985",
            input_window=timedelta(days=1),
            compute=_homa_ir,
        ),
    ),
    default_version="1.0.0",
)


def _egfr(values: Mapping[str, float], c: Mapping[str, float], sex: Sex) -> tuple[float, dict[str, float]]:
    if sex not in (Sex.FEMALE, Sex.MALE):
        raise SexRequiredError("CKD-EPI 2021 depends on sex, which must be female or male")
    female = sex is Sex.FEMALE
    kappa = c["kappa_female"] if female else c["kappa_male"]
    alpha = c["alpha_female"] if female else c["alpha_male"]
    ratio = values["creatinine"] / kappa
    if ratio <= 0:
        raise ScoreUndefinedError("CKD-EPI 2021 needs a creatinine above 0 mg/dL")
    value = (
        c["multiplier"]
        * min(ratio, 1.0) ** alpha
        * max(ratio, 1.0) ** c["exponent_above"]
        * c["age_base"] ** values["age"]
        * (c["female_factor"] if female else 1.0)
    )
    return value, {"creatinine_over_kappa": ratio}


EGFR = Formula(
    id="egfr-ckd-epi-2021",
    display_name="eGFR (CKD-EPI 2021, creatinine, race-free)",
    description="Estimated glomerular filtration rate from serum creatinine, age and sex.",
    citation=(
        "Inker LA et al. New creatinine- and cystatin C-based equations to estimate GFR without race. "
        "NEJM 2021"
    ),
    unit="mL/min/{1.73_m2}",
    versions=(
        FormulaVersion(
            version="1.0.0",
            description="142 x min(Scr/k,1)^a x max(Scr/k,1)^-1.200 x 0.9938^age x 1.012 (female).",
            parameters=(Parameter("creatinine", "mg/dL", ("creatinine",), 0.2, 15), AGE),
            coefficient_sets=(
                CoefficientSet(
                    "inker-2021",
                    "CKD-EPI 2021 creatinine equation",
                    {
                        "multiplier": 142.0,
                        "kappa_female": 0.7,
                        "kappa_male": 0.9,
                        "alpha_female": -0.241,
                        "alpha_male": -0.302,
                        "exponent_above": -1.200,
                        "age_base": 0.9938,
                        "female_factor": 1.012,
                    },
                    "Inker et al., NEJM 2021;385:1737-1749",
                ),
            ),
            default_coefficient_set="inker-2021",
            input_window=timedelta(days=1),
            compute=_egfr,
            needs_sex=True,
        ),
    ),
    default_version="1.0.0",
)

_LIPID_PARAMETERS: Final = (
    Parameter("total_cholesterol", "mg/dL", ("cholesterol-total",), 50, 600),
    Parameter("hdl_cholesterol", "mg/dL", ("hdl-cholesterol",), 10, 150),
)


def _friedewald(
    values: Mapping[str, float], c: Mapping[str, float], sex: Sex
) -> tuple[float, dict[str, float]]:
    del sex
    non_hdl = values["total_cholesterol"] - values["hdl_cholesterol"]
    return non_hdl - values["triglycerides"] / c["triglyceride_divisor"], {"non_hdl_cholesterol": non_hdl}


def _sampson(values: Mapping[str, float], c: Mapping[str, float], sex: Sex) -> tuple[float, dict[str, float]]:
    del sex
    total, hdl, tg = values["total_cholesterol"], values["hdl_cholesterol"], values["triglycerides"]
    non_hdl = total - hdl
    value = (
        total / c["total_divisor"]
        - hdl / c["hdl_divisor"]
        - (tg / c["tg_divisor"] + tg * non_hdl / c["tg_non_hdl_divisor"] - tg**2 / c["tg_squared_divisor"])
        - c["offset"]
    )
    return value, {"non_hdl_cholesterol": non_hdl}


LDL_FRIEDEWALD = Formula(
    id="ldl-friedewald",
    display_name="LDL cholesterol (Friedewald)",
    description=(
        "LDL cholesterol from total cholesterol, HDL and triglycerides; unreliable above 400 mg/dL TG."
    ),
    citation="Friedewald WT et al. Clin Chem 1972;18(6):499-502",
    unit="mg/dL",
    versions=(
        FormulaVersion(
            version="1.0.0",
            description="TC - HDL - TG/5 (mg/dL).",
            parameters=(*_LIPID_PARAMETERS, Parameter("triglycerides", "mg/dL", ("triglycerides",), 10, 400)),
            coefficient_sets=(
                CoefficientSet(
                    "friedewald-1972", "TG/5 for mg/dL", {"triglyceride_divisor": 5.0}, "Friedewald 1972"
                ),
            ),
            default_coefficient_set="friedewald-1972",
            input_window=timedelta(days=1),
            compute=_friedewald,
        ),
    ),
    default_version="1.0.0",
)

LDL_SAMPSON = Formula(
    id="ldl-sampson",
    display_name="LDL cholesterol (Sampson, NIH equation 2)",
    description="LDL cholesterol valid up to 800 mg/dL triglycerides.",
    citation="Sampson M et al. JAMA Cardiology 2020;5(5):540-548",
    unit="mg/dL",
    versions=(
        FormulaVersion(
            version="1.0.0",
            description="TC/0.948 - HDL/0.971 - (TG/8.56 + TG x nonHDL/2140 - TG^2/16100) - 9.44 (mg/dL).",
            parameters=(*_LIPID_PARAMETERS, Parameter("triglycerides", "mg/dL", ("triglycerides",), 10, 800)),
            coefficient_sets=(
                CoefficientSet(
                    "sampson-2020",
                    "NIH equation 2",
                    {
                        "total_divisor": 0.948,
                        "hdl_divisor": 0.971,
                        "tg_divisor": 8.56,
                        "tg_non_hdl_divisor": 2140.0,
                        "tg_squared_divisor": 16100.0,
                        "offset": 9.44,
                    },
                    "Sampson et al., JAMA Cardiol 2020",
                ),
            ),
            default_coefficient_set="sampson-2020",
            input_window=timedelta(days=1),
            compute=_sampson,
        ),
    ),
    default_version="1.0.0",
)

FORMULAS: Final = (PHENOAGE, HOMA_IR, EGFR, LDL_FRIEDEWALD, LDL_SAMPSON)


def formula_by_id(formula_id: str) -> Formula | None:
    """The formula with this ID."""
    return next((formula for formula in FORMULAS if formula.id == formula_id), None)
