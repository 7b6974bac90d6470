"""Evaluating a formula version: choosing inputs from markers, flagging doubtful ones, computing."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from vitalis_biomarkers.dictionary.model import Dictionary, NoFixedConversionError, UnitNotAcceptedError
from vitalis_biomarkers.domain.formulas import CoefficientSet, FormulaVersion, Parameter, ScoreUndefinedError
from vitalis_biomarkers.domain.panels import Comparator
from vitalis_biomarkers.domain.people import PersonProfile, Sex

# Parameters the formula takes the logarithm of: a zero or "below detection" value is raised to the
# detection limit so the logarithm exists, and the score is flagged.
DETECTION_LIMITS: Final = {"crp": 0.01}
_BELOW = frozenset({Comparator.LESS_THAN, Comparator.LESS_OR_EQUAL})


class MissingInputsError(ValueError):
    """Some parameters have no value; ``missing`` names them."""

    def __init__(self, missing: Sequence[str]) -> None:
        """Name the missing parameters."""
        super().__init__(f"no value for {', '.join(missing)}")
        self.missing = tuple(missing)


@dataclass(frozen=True)
class ScoreIssue:
    """Something about an input worth knowing."""

    parameter: str
    reason: str
    message: str


@dataclass(frozen=True)
class InputValue:
    """The value of one parameter as a score uses it, in the parameter's unit."""

    parameter: str
    value: float
    unit: str
    marker: str = ""
    panel_id: uuid.UUID | None = None
    collection_time: datetime | None = None
    clamped: bool = False


@dataclass(frozen=True)
class Evaluation:
    """A computed value with its quality."""

    value: float
    issues: tuple[ScoreIssue, ...]
    intermediates: Mapping[str, float] = field(default_factory=dict)

    @property
    def flagged(self) -> bool:
        """Whether an input was implausible or clamped."""
        return bool(self.issues)


@dataclass(frozen=True)
class CandidateMarker:
    """A stored marker that may supply a parameter."""

    marker: str
    panel_id: uuid.UUID
    biomarker_id: str
    value: float
    reported_unit: str
    comparator: Comparator
    collection_time: datetime


def evaluate(
    version: FormulaVersion,
    coefficients: CoefficientSet,
    inputs: Mapping[str, InputValue],
    sex: Sex,
) -> Evaluation:
    """Compute the version on ``inputs`` (every parameter needed, in its unit).

    Raises :class:`MissingInputsError` (also for a sex-dependent formula without a female or male
    sex) and :class:`ScoreUndefinedError`.
    """
    missing = [parameter.name for parameter in version.parameters if parameter.name not in inputs]
    if version.needs_sex and sex not in (Sex.FEMALE, Sex.MALE):
        missing.append("sex")
    if missing:
        raise MissingInputsError(missing)
    issues = []
    for parameter in version.parameters:
        issue = _plausibility_issue(parameter, inputs[parameter.name])
        if issue is not None:
            issues.append(issue)
    times = [given.collection_time for given in inputs.values() if given.collection_time is not None]
    if times and max(times) - min(times) > version.input_window:
        issues.append(
            ScoreIssue(
                "", "INPUTS_FAR_APART", f"the inputs were collected more than {version.input_window} apart"
            )
        )
    values = {name: given.value for name, given in inputs.items()}
    try:
        value, intermediates = version.compute(values, coefficients.coefficients, sex)
    except (OverflowError, ZeroDivisionError, ValueError) as error:
        if isinstance(error, ScoreUndefinedError):
            raise
        raise ScoreUndefinedError(f"the formula has no value for these inputs: {error}") from error
    if not math.isfinite(value):
        raise ScoreUndefinedError("the formula has no finite value for these inputs")
    return Evaluation(value=value, issues=tuple(issues), intermediates=intermediates)


def _plausibility_issue(parameter: Parameter, given: InputValue) -> ScoreIssue | None:
    if given.clamped:
        return ScoreIssue(
            parameter.name,
            "CLAMPED_TO_DETECTION_LIMIT",
            f"{parameter.name} was below the limit of detection and was raised to "
            f"{given.value:g} {given.unit}",
        )
    low, high = parameter.plausible_min, parameter.plausible_max
    if (low is not None and given.value < low) or (high is not None and given.value > high):
        return ScoreIssue(
            parameter.name,
            "OUTSIDE_PLAUSIBLE_RANGE",
            f"{parameter.name} {given.value:g} {given.unit} is outside the range the formula was "
            f"validated for ({_bounds(low, high)} {parameter.unit}); read the score with care",
        )
    return None


def _bounds(low: float | None, high: float | None) -> str:
    return f"{'-inf' if low is None else f'{low:g}'} to {'inf' if high is None else f'{high:g}'}"


def select_inputs(
    version: FormulaVersion,
    candidates: Sequence[CandidateMarker],
    *,
    dictionary: Dictionary,
    anchor_panel: uuid.UUID,
    anchor_time: datetime,
    person: PersonProfile,
) -> dict[str, InputValue]:
    """The inputs a panel supplies, completed from other panels within the input window.

    Per parameter the marker of the anchor panel wins, then the one collected nearest in time; the
    first biomarker a parameter lists is preferred over its alternatives. Age is taken at the latest
    collection time among the chosen markers. Parameters without a usable marker are left out.
    """
    chosen: dict[str, InputValue] = {}
    for parameter in version.parameters:
        if not parameter.biomarkers:
            continue
        ranked = sorted(
            (
                candidate
                for candidate in candidates
                if candidate.biomarker_id in parameter.biomarkers
                and abs(candidate.collection_time - anchor_time) <= version.input_window
            ),
            key=lambda candidate: (
                candidate.panel_id != anchor_panel,
                abs(candidate.collection_time - anchor_time),
                parameter.biomarkers.index(candidate.biomarker_id),
            ),
        )
        for candidate in ranked:
            converted = _converted(dictionary, parameter, candidate)
            if converted is not None:
                chosen[parameter.name] = converted
                break
    if any(parameter.name == "age" for parameter in version.parameters):
        times = [given.collection_time for given in chosen.values() if given.collection_time is not None]
        age = person.age_at(max(times) if times else anchor_time)
        if age is not None:
            chosen["age"] = InputValue("age", age, "a")
    return chosen


def _converted(dictionary: Dictionary, parameter: Parameter, candidate: CandidateMarker) -> InputValue | None:
    definition = dictionary.get(candidate.biomarker_id)
    if definition is None:
        return None
    try:
        value, _ = definition.convert(candidate.value, candidate.reported_unit, parameter.unit)
    except (NoFixedConversionError, UnitNotAcceptedError):
        return None
    limit = DETECTION_LIMITS.get(parameter.name)
    clamped = False
    if limit is not None and (value <= 0 or candidate.comparator in _BELOW):
        clamped = True
        value = max(value, limit)
    return InputValue(
        parameter=parameter.name,
        value=value,
        unit=parameter.unit,
        marker=candidate.marker,
        panel_id=candidate.panel_id,
        collection_time=candidate.collection_time,
        clamped=clamped,
    )
