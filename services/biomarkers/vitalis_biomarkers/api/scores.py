"""vitalis.biomarkers.v1.ScoreService."""

from __future__ import annotations

import uuid
from datetime import datetime

import grpc

from vitalis.biomarkers.v1 import score_pb2, score_service_pb2, score_service_pb2_grpc
from vitalis_biomarkers.api.common import (
    Pages,
    duration,
    interval,
    interval_fingerprint,
    parse_id,
    split_name,
    timestamp,
)
from vitalis_biomarkers.app.access import Access
from vitalis_biomarkers.app.score_book import ScoreBook
from vitalis_biomarkers.app.scores import FormulaChoice, choose_formula
from vitalis_biomarkers.dictionary.model import Dictionary, NoFixedConversionError, UnitNotAcceptedError
from vitalis_biomarkers.dictionary.units import Units, UnknownUnitError
from vitalis_biomarkers.domain.formulas import FORMULAS, Formula, Parameter, ScoreUndefinedError
from vitalis_biomarkers.domain.people import Sex
from vitalis_biomarkers.domain.scores import Score, ScoreTrigger
from vitalis_biomarkers.domain.scoring import Evaluation, InputValue, MissingInputsError, ScoreIssue, evaluate
from vitalis_runtime.errors import FieldViolation, InvalidArgument
from vitalis_runtime.pagination import resolve_page_size

Context = grpc.aio.ServicerContext[object, object]


def formula_to_proto(formula: Formula) -> score_pb2.ScoreFormula:
    """A ScoreFormula message."""
    message = score_pb2.ScoreFormula(
        name=formula.name,
        display_name=formula.display_name,
        description=formula.description,
        citation=formula.citation,
        unit=formula.unit,
        default_version=formula.default_version,
    )
    for version in formula.versions:
        added = message.versions.add(
            version=version.version,
            description=version.description,
            default_coefficient_set=version.default_coefficient_set,
            input_window=duration(version.input_window),
        )
        for parameter in version.parameters:
            item = added.parameters.add(
                parameter=parameter.name,
                biomarker=f"biomarkers/{parameter.biomarkers[0]}" if parameter.biomarkers else "",
                unit=parameter.unit,
            )
            if parameter.plausible_min is not None:
                item.plausible_min = parameter.plausible_min
            if parameter.plausible_max is not None:
                item.plausible_max = parameter.plausible_max
        for coefficients in version.coefficient_sets:
            added.coefficient_sets.add(
                id=coefficients.id,
                description=coefficients.description,
                coefficients=dict(coefficients.coefficients),
                citation=coefficients.citation,
            )
    return message


def _issues(issues: tuple[ScoreIssue, ...]) -> list[score_pb2.ScoreIssue]:
    return [score_pb2.ScoreIssue(parameter=i.parameter, reason=i.reason, message=i.message) for i in issues]


def score_to_proto(score: Score) -> score_pb2.Score:
    """A Score message."""
    message = score_pb2.Score(
        name=score.name,
        formula=f"scoreFormulas/{score.key.formula_id}",
        formula_version=score.key.formula_version,
        coefficient_set=score.key.coefficient_set,
        value=score.value,
        unit=score.unit,
        status=score.status.value,  # type: ignore[arg-type]
        issues=_issues(score.issues),
        intermediates=dict(score.intermediates),
        age_at_sample_years=score.age_at_sample_years or 0.0,
        sample_time=timestamp(score.sample_time),
        panel=f"users/{score.user_id}/panels/{score.key.panel_id}",
        state=score.state.value,  # type: ignore[arg-type]
        superseded_by=""
        if score.superseded_by is None
        else f"users/{score.user_id}/scores/{score.superseded_by}",
        trigger=score.trigger.value,  # type: ignore[arg-type]
        compute_time=timestamp(score.compute_time),
    )
    for given in score.inputs:
        item = message.inputs.add(
            parameter=given.parameter,
            marker=given.marker,
            value=given.value,
            unit=given.unit,
            clamped=given.clamped,
        )
        if given.collection_time is not None:
            item.collection_time.CopyFrom(timestamp(given.collection_time))
    return message


def _score_cursor(cursor: dict[str, object]) -> tuple[datetime, datetime, uuid.UUID] | None:
    if not cursor:
        return None
    try:
        return (
            datetime.fromisoformat(str(cursor["s"])),
            datetime.fromisoformat(str(cursor["c"])),
            uuid.UUID(str(cursor["id"])),
        )
    except (KeyError, ValueError):
        raise InvalidArgument.for_field(
            "page_token", "is not a page token of this list", reason="INVALID_PAGE_TOKEN"
        ) from None


class ScoreServicer(score_service_pb2_grpc.ScoreServiceServicer):
    """Formulas and a user's scores."""

    def __init__(
        self, scores: ScoreBook, dictionary: Dictionary, units: Units, access: Access, pages: Pages
    ) -> None:
        """Serve ``scores``; convert given values with ``dictionary`` and ``units``."""
        self._scores = scores
        self._dictionary = dictionary
        self._units = units
        self._access = access
        self._pages = pages

    async def GetScoreFormula(
        self, request: score_service_pb2.GetScoreFormulaRequest, context: Context
    ) -> score_pb2.ScoreFormula:
        """One formula with its versions."""
        return formula_to_proto(choose_formula(request.name, "", "", field="name").formula)

    async def ListScoreFormulas(
        self, request: score_service_pb2.ListScoreFormulasRequest, context: Context
    ) -> score_service_pb2.ListScoreFormulasResponse:
        """Every formula."""
        size = resolve_page_size(request.page_size, default=50, maximum=100)
        fingerprint = {"method": "ListScoreFormulas"}
        offset = int(self._pages.cursor(request.page_token, fingerprint).get("offset", 0))
        page = FORMULAS[offset : offset + size]
        token = (
            self._pages.token({"offset": offset + size}, fingerprint) if offset + size < len(FORMULAS) else ""
        )
        return score_service_pb2.ListScoreFormulasResponse(
            score_formulas=[formula_to_proto(formula) for formula in page], next_page_token=token
        )

    def _given_value(self, parameter: Parameter, value: float, unit: str, field: str) -> float:
        if not unit or unit == parameter.unit:
            return value
        if parameter.biomarkers:
            definition = self._dictionary.get(parameter.biomarkers[0])
            if definition is not None and definition.accepts(unit):
                try:
                    return definition.convert(value, unit, parameter.unit)[0]
                except (NoFixedConversionError, UnitNotAcceptedError) as error:
                    raise InvalidArgument.for_field(field, str(error), reason="UNKNOWN_UNIT") from None
        try:
            factor = self._units.factor(unit, parameter.unit)
        except UnknownUnitError as error:
            raise InvalidArgument.for_field(field, str(error), reason="UNKNOWN_UNIT") from None
        if factor is None:
            raise InvalidArgument.for_field(
                field,
                f"{unit!r} does not convert to {parameter.unit}, the unit of {parameter.name}",
                reason="UNKNOWN_UNIT",
            )
        return value * factor

    async def EvaluateScoreFormula(
        self, request: score_service_pb2.EvaluateScoreFormulaRequest, context: Context
    ) -> score_service_pb2.ScoreEvaluation:
        """The formula on given values, storing nothing."""
        choice = choose_formula(request.name, request.formula_version, request.coefficient_set, field="name")
        inputs: dict[str, InputValue] = {}
        for index, given in enumerate(request.values):
            parameter = choice.version.parameter(given.parameter)
            if parameter is None:
                raise InvalidArgument.for_field(
                    f"values[{index}].parameter",
                    f"{given.parameter!r} is not a parameter of {choice.formula.name} "
                    f"({', '.join(p.name for p in choice.version.parameters)})",
                )
            value = self._given_value(parameter, given.value, given.unit, f"values[{index}].unit")
            inputs[parameter.name] = InputValue(parameter.name, value, parameter.unit)
        try:
            sex = Sex(request.sex)
        except ValueError:
            raise InvalidArgument.for_field("sex", f"unknown value {request.sex}") from None
        evaluation = self._evaluate(choice, inputs, sex)
        return score_service_pb2.ScoreEvaluation(
            formula=choice.formula.name,
            formula_version=choice.version.version,
            coefficient_set=choice.coefficients.id,
            value=evaluation.value,
            unit=choice.formula.unit,
            status=score_pb2.SCORE_STATUS_FLAGGED if evaluation.flagged else score_pb2.SCORE_STATUS_OK,
            issues=_issues(evaluation.issues),
            intermediates=dict(evaluation.intermediates),
        )

    @staticmethod
    def _evaluate(choice: FormulaChoice, inputs: dict[str, InputValue], sex: Sex) -> Evaluation:
        try:
            return evaluate(choice.version, choice.coefficients, inputs, sex)
        except MissingInputsError as error:
            violations = [
                FieldViolation("sex" if name == "sex" else "values", f"needs a value for {name}")
                for name in error.missing
            ]
            raise InvalidArgument(
                f"no value for {', '.join(error.missing)}",
                violations=violations,
                reason="SCORE_INPUTS_MISSING",
            ) from None
        except ScoreUndefinedError as error:
            raise InvalidArgument(str(error), reason="SCORE_UNDEFINED") from None

    async def GetScore(self, request: score_service_pb2.GetScoreRequest, context: Context) -> score_pb2.Score:
        """One score."""
        segment, score = split_name(request.name, ("users", "scores"), "name")
        user_id = await self._access.reader(segment, "name")
        return score_to_proto(await self._scores.get(user_id, parse_id(score, "name")))

    async def ListScores(
        self, request: score_service_pb2.ListScoresRequest, context: Context
    ) -> score_service_pb2.ListScoresResponse:
        """Scores, latest sample first; history on request."""
        user_id = await self._access.reader(split_name(request.parent, ("users",), "parent")[0], "parent")
        formula_id = None
        if request.formula:
            formula_id = choose_formula(request.formula, "", "").formula.id
        size = resolve_page_size(request.page_size, default=50, maximum=1000)
        window = interval(request, "sample_interval")
        fingerprint = {
            "method": "ListScores",
            "user": str(user_id),
            "formula": formula_id,
            "interval": interval_fingerprint(window),
            "history": request.show_history,
        }
        after = _score_cursor(self._pages.cursor(request.page_token, fingerprint))
        scores = await self._scores.list_scores(
            user_id,
            formula_id=formula_id,
            interval=window,
            show_history=request.show_history,
            after=after,
            limit=size + 1,
        )
        token = ""
        if len(scores) > size:
            scores = scores[:size]
            last = scores[-1]
            token = self._pages.token(
                {"s": last.sample_time.isoformat(), "c": last.compute_time.isoformat(), "id": str(last.id)},
                fingerprint,
            )
        return score_service_pb2.ListScoresResponse(
            scores=[score_to_proto(score) for score in scores], next_page_token=token
        )

    async def ComputeScore(
        self, request: score_service_pb2.ComputeScoreRequest, context: Context
    ) -> score_pb2.Score:
        """Compute and store a score now."""
        user_id = self._access.owner(split_name(request.parent, ("users",), "parent")[0], "parent")
        choice = choose_formula(request.formula, request.formula_version, request.coefficient_set)
        panel_id = None
        if request.panel:
            segment, panel = split_name(request.panel, ("users", "panels"), "panel")
            if self._access.owner(segment, "panel") != user_id:
                raise InvalidArgument.for_field("panel", "must be a panel of the parent user")
            panel_id = parse_id(panel, "panel")
        if request.request_id:
            parse_id(request.request_id, "request_id")
        score = await self._scores.compute(user_id, choice, panel_id=panel_id, request_id=request.request_id)
        return score_to_proto(score)

    async def RecomputeScores(
        self, request: score_service_pb2.RecomputeScoresRequest, context: Context
    ) -> score_service_pb2.RecomputeScoresResponse:
        """Recompute a formula for every sample that has its inputs."""
        user_id = self._access.owner(split_name(request.parent, ("users",), "parent")[0], "parent")
        choice = choose_formula(request.formula, request.formula_version, request.coefficient_set)
        if request.request_id:
            parse_id(request.request_id, "request_id")
            earlier = await self._scores.remembered(user_id, request.request_id)
            if earlier is not None:
                return score_service_pb2.RecomputeScoresResponse.FromString(earlier)
        explicit = bool(request.formula_version or request.coefficient_set)
        result = await self._scores.recompute(
            user_id, choice, trigger=ScoreTrigger.FORMULA_VERSION if explicit else ScoreTrigger.REQUESTED
        )
        response = score_service_pb2.RecomputeScoresResponse(
            scores=[score_to_proto(score) for score in result.scores],
            skipped_samples=[
                score_service_pb2.SkippedSample(
                    panel=f"users/{user_id}/panels/{sample.panel_id}",
                    reason=sample.reason,
                    message=sample.message,
                )
                for sample in result.skipped
            ],
        )
        if request.request_id:
            await self._scores.remember(user_id, request.request_id, response.SerializeToString())
        return response
