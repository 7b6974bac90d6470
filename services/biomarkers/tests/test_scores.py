"""ScoreService: formulas, evaluation, automatic and requested scores, supersession and history."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from vitalis.biomarkers.v1 import (
    panel_pb2,
    panel_service_pb2,
    panel_service_pb2_grpc,
    score_pb2,
    score_service_pb2,
    score_service_pb2_grpc,
)

pytestmark = pytest.mark.timeout(60)
DRAWN = datetime(2026, 3, 2, 7, 30, tzinfo=UTC)
BORN = date(1979, 3, 2)  # 47 years at DRAWN, the age of the published vector
CRP_MG_PER_L = math.exp(-4.20) * 10


def ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        found = error_details_pb2.ErrorInfo()
        if detail.Unpack(found):
            return found
    raise AssertionError("no ErrorInfo")


def vector_markers(**overrides: float) -> list[panel_pb2.Marker]:
    values = {
        "albumin": (50, "g/L"),
        "creatinine": (75.14, "umol/L"),
        "glucose": (4.44, "mmol/L"),
        "c-reactive-protein": (CRP_MG_PER_L, "mg/L"),
        "lymphocytes-percent": (40, "%"),
        "mean-corpuscular-volume": (88, "fL"),
        "red-cell-distribution-width": (12, "%"),
        "alkaline-phosphatase": (45, "U/L"),
        "leukocytes": (4.2, "10*3/uL"),
    }
    return [
        panel_pb2.Marker(biomarker=f"biomarkers/{name}", value=overrides.get(name, value), reported_unit=unit)
        for name, (value, unit) in values.items()
    ]


def scores(platform: Any) -> score_service_pb2_grpc.ScoreServiceStub:
    return score_service_pb2_grpc.ScoreServiceStub(platform.biomarkers)


def panels(platform: Any) -> panel_service_pb2_grpc.PanelServiceStub:
    return panel_service_pb2_grpc.PanelServiceStub(platform.biomarkers)


async def create_panel(
    platform: Any, person: Any, markers: list[panel_pb2.Marker], drawn: datetime = DRAWN
) -> panel_pb2.Panel:
    return await panels(platform).CreatePanel(
        panel_service_pb2.CreatePanelRequest(
            parent="users/me", panel=panel_pb2.Panel(collection_time=ts(drawn), markers=markers)
        ),
        metadata=person.auth,
    )


async def list_scores(platform: Any, person: Any, **extra: Any) -> list[score_pb2.Score]:
    response = await scores(platform).ListScores(
        score_service_pb2.ListScoresRequest(parent="users/me", **extra), metadata=person.auth
    )
    return list(response.scores)


async def test_formulas_are_listed_with_versions_and_coefficient_sets(platform: Any, someone: Any) -> None:
    person = someone
    listed = await scores(platform).ListScoreFormulas(
        score_service_pb2.ListScoreFormulasRequest(), metadata=person.auth
    )
    names = [formula.name for formula in listed.score_formulas]
    assert names == [
        "scoreFormulas/phenoage",
        "scoreFormulas/homa-ir",
        "scoreFormulas/egfr-ckd-epi-2021",
        "scoreFormulas/ldl-friedewald",
        "scoreFormulas/ldl-sampson",
    ]
    phenoage = await scores(platform).GetScoreFormula(
        score_service_pb2.GetScoreFormulaRequest(name="scoreFormulas/phenoage"), metadata=person.auth
    )
    version = phenoage.versions[0]
    assert version.default_coefficient_set == "levine-2018-full-0.090165"
    assert {s.id for s in version.coefficient_sets} >= {
        "levine-2018-rounded-0.090165",
        "levine-2018-rounded-0.09165",
    }
    assert [p.parameter for p in version.parameters][-1] == "age"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await scores(platform).GetScoreFormula(
            score_service_pb2.GetScoreFormulaRequest(name="scoreFormulas/astrology"), metadata=person.auth
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def evaluation_request(
    coefficient_set: str, **overrides: float
) -> score_service_pb2.EvaluateScoreFormulaRequest:
    values = {
        "albumin": (50, ""),
        "creatinine": (75.14, ""),
        "glucose": (4.44, ""),
        "crp": (CRP_MG_PER_L, "mg/L"),
        "lymphocytes": (40, ""),
        "mcv": (88, ""),
        "rdw": (12, ""),
        "alp": (45, ""),
        "wbc": (4.2, ""),
        "age": (47, ""),
    }
    return score_service_pb2.EvaluateScoreFormulaRequest(
        name="scoreFormulas/phenoage",
        coefficient_set=coefficient_set,
        values=[
            score_service_pb2.ParameterValue(parameter=name, value=overrides.get(name, value), unit=unit)
            for name, (value, unit) in values.items()
        ],
    )


@pytest.mark.parametrize(
    ("coefficient_set", "expected"),
    [("levine-2018-rounded-0.090165", 26.41), ("levine-2018-rounded-0.09165", 28.28), ("", 26.35)],
)
async def test_evaluate_reproduces_the_published_vector(
    platform: Any, someone: Any, coefficient_set: str, expected: float
) -> None:
    person = someone
    result = await scores(platform).EvaluateScoreFormula(
        evaluation_request(coefficient_set), metadata=person.auth
    )
    assert result.value == pytest.approx(expected, abs=0.01)
    assert result.status == score_pb2.SCORE_STATUS_OK
    assert result.intermediates["xb"] < 0


async def test_evaluate_refuses_undefined_and_incomplete_inputs(platform: Any, someone: Any) -> None:
    person = someone
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await scores(platform).EvaluateScoreFormula(evaluation_request("", crp=0), metadata=person.auth)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info(raised.value).reason == "SCORE_UNDEFINED"
    incomplete = evaluation_request("")
    del incomplete.values[-1]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await scores(platform).EvaluateScoreFormula(incomplete, metadata=person.auth)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "age" in raised.value.details()
    bad_unit = evaluation_request("")
    bad_unit.values[0].unit = "mmol/L"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await scores(platform).EvaluateScoreFormula(bad_unit, metadata=person.auth)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await scores(platform).EvaluateScoreFormula(evaluation_request("no-such-set"), metadata=person.auth)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    flagged = await scores(platform).EvaluateScoreFormula(
        evaluation_request("", glucose=40), metadata=person.auth
    )
    assert flagged.status == score_pb2.SCORE_STATUS_FLAGGED
    assert [issue.reason for issue in flagged.issues] == ["OUTSIDE_PLAUSIBLE_RANGE"]


async def test_a_complete_panel_gets_its_phenoage_with_inputs_and_age(platform: Any) -> None:
    person = await platform.person(birth_date=BORN)
    created = await create_panel(platform, person, vector_markers())
    current = await list_scores(platform, person, formula="scoreFormulas/phenoage")
    assert len(current) == 1
    score = current[0]
    assert score.value == pytest.approx(26.35, abs=0.01)
    assert (score.formula_version, score.coefficient_set) == ("1.0.0", "levine-2018-full-0.090165")
    assert score.age_at_sample_years == pytest.approx(47.0, abs=0.01)
    assert score.panel == created.name
    assert score.trigger == score_pb2.SCORE_TRIGGER_PANEL_CREATED
    assert score.state == score_pb2.SCORE_STATE_CURRENT
    assert score.status == score_pb2.SCORE_STATUS_OK
    by_parameter = {given.parameter: given for given in score.inputs}
    assert by_parameter["crp"].value == pytest.approx(math.exp(-4.2), rel=1e-9)
    assert by_parameter["crp"].unit == "mg/dL"
    assert by_parameter["albumin"].marker.startswith(created.name + "/markers/")
    assert by_parameter["albumin"].collection_time == created.collection_time
    fetched = await scores(platform).GetScore(
        score_service_pb2.GetScoreRequest(name=score.name), metadata=person.auth
    )
    assert fetched == score


async def test_a_changed_input_supersedes_the_score_and_a_deleted_panel_outdates_it(platform: Any) -> None:
    person = await platform.person(birth_date=BORN)
    created = await create_panel(platform, person, vector_markers())
    first = (await list_scores(platform, person, formula="scoreFormulas/phenoage"))[0]
    albumin = next(m for m in created.markers if m.biomarker == "biomarkers/albumin")
    changed = [
        m
        if m.name != albumin.name
        else panel_pb2.Marker(name=m.name, biomarker=m.biomarker, value=40, reported_unit="g/L")
        for m in created.markers
    ]
    await panels(platform).UpdatePanel(
        panel_service_pb2.UpdatePanelRequest(
            panel=panel_pb2.Panel(name=created.name, markers=changed),
            update_mask=field_mask_pb2.FieldMask(paths=["markers"]),
        ),
        metadata=person.auth,
    )
    current = await list_scores(platform, person, formula="scoreFormulas/phenoage")
    assert len(current) == 1
    assert current[0].value > first.value
    assert current[0].trigger == score_pb2.SCORE_TRIGGER_INPUT_CHANGED
    history = await list_scores(platform, person, formula="scoreFormulas/phenoage", show_history=True)
    old = next(score for score in history if score.name == first.name)
    assert old.state == score_pb2.SCORE_STATE_SUPERSEDED
    assert old.superseded_by == current[0].name
    await panels(platform).DeletePanel(
        panel_service_pb2.DeletePanelRequest(name=created.name), metadata=person.auth
    )
    assert await list_scores(platform, person, formula="scoreFormulas/phenoage") == []
    kept = await list_scores(platform, person, formula="scoreFormulas/phenoage", show_history=True)
    assert {score.state for score in kept} == {
        score_pb2.SCORE_STATE_SUPERSEDED,
        score_pb2.SCORE_STATE_OUTDATED,
    }


async def test_compute_and_recompute_with_another_coefficient_set(platform: Any) -> None:
    person = await platform.person(birth_date=BORN)
    created = await create_panel(platform, person, vector_markers())
    request_id = str(uuid.uuid4())
    computed = await scores(platform).ComputeScore(
        score_service_pb2.ComputeScoreRequest(
            parent="users/me",
            formula="scoreFormulas/phenoage",
            coefficient_set="levine-2018-rounded-0.09165",
            panel=created.name,
            request_id=request_id,
        ),
        metadata=person.auth,
    )
    assert computed.value == pytest.approx(28.28, abs=0.01)
    assert computed.trigger == score_pb2.SCORE_TRIGGER_REQUESTED
    again = await scores(platform).ComputeScore(
        score_service_pb2.ComputeScoreRequest(
            parent="users/me",
            formula="scoreFormulas/phenoage",
            coefficient_set="levine-2018-rounded-0.09165",
            request_id=request_id,
        ),
        metadata=person.auth,
    )
    assert again == computed
    recomputed = await scores(platform).RecomputeScores(
        score_service_pb2.RecomputeScoresRequest(
            parent="users/me",
            formula="scoreFormulas/phenoage",
            coefficient_set="levine-2018-rounded-0.090165",
        ),
        metadata=person.auth,
    )
    assert [round(s.value, 2) for s in recomputed.scores] == [26.41]
    assert recomputed.scores[0].trigger == score_pb2.SCORE_TRIGGER_FORMULA_VERSION
    current = await list_scores(platform, person, formula="scoreFormulas/phenoage")
    assert sorted(s.coefficient_set for s in current) == [
        "levine-2018-full-0.090165",
        "levine-2018-rounded-0.090165",
        "levine-2018-rounded-0.09165",
    ]


async def test_compute_without_inputs_says_which_are_missing_and_stores_nothing(platform: Any) -> None:
    person = await platform.person(birth_date=BORN)
    await create_panel(platform, person, vector_markers()[:3])
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await scores(platform).ComputeScore(
            score_service_pb2.ComputeScoreRequest(parent="users/me", formula="scoreFormulas/phenoage"),
            metadata=person.auth,
        )
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = info(raised.value)
    assert details.reason == "SCORE_INPUTS_MISSING"
    assert set(details.metadata["missing"].split(",")) == {"crp", "lymphocytes", "mcv", "rdw", "alp", "wbc"}
    assert await list_scores(platform, person, formula="scoreFormulas/phenoage", show_history=True) == []


async def test_phenoage_needs_a_birth_date(platform: Any) -> None:
    person = await platform.person(birth_date=None)
    await create_panel(platform, person, vector_markers())
    assert await list_scores(platform, person, formula="scoreFormulas/phenoage") == []
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await scores(platform).ComputeScore(
            score_service_pb2.ComputeScoreRequest(parent="users/me", formula="scoreFormulas/phenoage"),
            metadata=person.auth,
        )
    assert info(raised.value).metadata["missing"] == "age"


async def test_crp_below_detection_is_clamped_and_flagged(platform: Any) -> None:
    person = await platform.person(birth_date=BORN)
    markers = vector_markers(**{"c-reactive-protein": 0.0})
    await create_panel(platform, person, markers)
    score = (await list_scores(platform, person, formula="scoreFormulas/phenoage"))[0]
    assert score.status == score_pb2.SCORE_STATUS_FLAGGED
    assert [issue.reason for issue in score.issues] == ["CLAMPED_TO_DETECTION_LIMIT"]
    assert next(i for i in score.inputs if i.parameter == "crp").clamped


async def test_lipid_kidney_and_insulin_scores(platform: Any) -> None:
    person = await platform.person(sex="male", birth_date=date(1976, 3, 2))
    await create_panel(
        platform,
        person,
        [
            panel_pb2.Marker(biomarker="biomarkers/cholesterol-total", value=200, reported_unit="mg/dL"),
            panel_pb2.Marker(biomarker="biomarkers/hdl-cholesterol", value=50, reported_unit="mg/dL"),
            panel_pb2.Marker(biomarker="biomarkers/triglycerides", value=150, reported_unit="mg/dL"),
            panel_pb2.Marker(biomarker="biomarkers/creatinine", value=1.0, reported_unit="mg/dL"),
            panel_pb2.Marker(biomarker="biomarkers/glucose", value=5.0, reported_unit="mmol/L"),
            panel_pb2.Marker(biomarker="biomarkers/insulin", value=54, reported_unit="pmol/L"),
        ],
    )
    by_formula = {s.formula: s for s in await list_scores(platform, person)}
    assert by_formula["scoreFormulas/ldl-friedewald"].value == pytest.approx(120.0)
    assert by_formula["scoreFormulas/ldl-sampson"].value == pytest.approx(123.40, abs=0.01)
    assert by_formula["scoreFormulas/homa-ir"].value == pytest.approx(90.078 * 9.0 / 405, rel=1e-4)
    assert by_formula["scoreFormulas/egfr-ckd-epi-2021"].value == pytest.approx(91.70, abs=0.05)
    assert by_formula["scoreFormulas/egfr-ckd-epi-2021"].unit == "mL/min/{1.73_m2}"


async def test_scores_are_announced_and_invisible_to_others(platform: Any) -> None:
    person, stranger = await platform.person(birth_date=BORN), await platform.person()
    await create_panel(platform, person, vector_markers())
    score = (await list_scores(platform, person))[0]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await scores(platform).GetScore(
            score_service_pb2.GetScoreRequest(name=score.name), metadata=stranger.auth
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await scores(platform).ListScores(
            score_service_pb2.ListScoresRequest(parent=person.name), metadata=stranger.auth
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await scores(platform).RecomputeScores(
            score_service_pb2.RecomputeScoresRequest(parent=person.name, formula="scoreFormulas/phenoage"),
            metadata=stranger.auth,
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    admin = await asyncpg.connect(platform.database_url)
    try:
        types = await admin.fetch(
            "SELECT event_type FROM biomarkers.outbox WHERE event_user_id = $1 ORDER BY position",
            person.user_id,
        )
    finally:
        await admin.close()
    assert "vitalis.biomarkers.v1.ScoreComputed" in [row["event_type"] for row in types]


async def test_list_scores_pages(platform: Any) -> None:
    person = await platform.person(birth_date=BORN)
    for days in range(3):
        await create_panel(platform, person, vector_markers(), drawn=DRAWN - timedelta(days=30 * days))
    first = await scores(platform).ListScores(
        score_service_pb2.ListScoresRequest(parent="users/me", formula="scoreFormulas/phenoage", page_size=2),
        metadata=person.auth,
    )
    rest = await scores(platform).ListScores(
        score_service_pb2.ListScoresRequest(
            parent="users/me", formula="scoreFormulas/phenoage", page_size=2, page_token=first.next_page_token
        ),
        metadata=person.auth,
    )
    times = [s.sample_time.ToDatetime() for s in [*first.scores, *rest.scores]]
    assert len(times) == 3
    assert times == sorted(times, reverse=True)
    assert not rest.next_page_token


async def test_a_score_taking_inputs_from_another_panel_follows_that_panel(platform: Any) -> None:
    person = await platform.person(birth_date=BORN)
    markers = vector_markers()
    without_wbc = [m for m in markers if m.biomarker != "biomarkers/leukocytes"]
    wbc_only = [m for m in markers if m.biomarker == "biomarkers/leukocytes"]
    earlier = await create_panel(platform, person, without_wbc, drawn=DRAWN - timedelta(days=2))
    later = await create_panel(platform, person, wbc_only)
    first = (await list_scores(platform, person, formula="scoreFormulas/phenoage"))[0]
    assert first.panel == later.name
    albumin = next(m for m in earlier.markers if m.biomarker == "biomarkers/albumin")
    assert next(i for i in first.inputs if i.parameter == "albumin").marker == albumin.name
    changed = [
        m
        if m.name != albumin.name
        else panel_pb2.Marker(name=m.name, biomarker=m.biomarker, value=38, reported_unit="g/L")
        for m in earlier.markers
    ]
    await panels(platform).UpdatePanel(
        panel_service_pb2.UpdatePanelRequest(
            panel=panel_pb2.Panel(name=earlier.name, markers=changed),
            update_mask=field_mask_pb2.FieldMask(paths=["markers"]),
        ),
        metadata=person.auth,
    )
    current = await list_scores(platform, person, formula="scoreFormulas/phenoage")
    assert len(current) == 1
    second = current[0]
    assert second.panel == later.name
    assert second.value > first.value
    await panels(platform).DeletePanel(
        panel_service_pb2.DeletePanelRequest(name=earlier.name), metadata=person.auth
    )
    assert await list_scores(platform, person, formula="scoreFormulas/phenoage") == []
    history = await list_scores(platform, person, formula="scoreFormulas/phenoage", show_history=True)
    assert next(s for s in history if s.name == second.name).state == score_pb2.SCORE_STATE_OUTDATED


async def test_compute_refuses_inputs_the_formula_has_no_value_for(platform: Any) -> None:
    person = await platform.person(birth_date=BORN)
    created = await create_panel(platform, person, vector_markers(glucose=100.0))
    assert await list_scores(platform, person, formula="scoreFormulas/phenoage") == []
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await scores(platform).ComputeScore(
            score_service_pb2.ComputeScoreRequest(
                parent="users/me", formula="scoreFormulas/phenoage", panel=created.name
            ),
            metadata=person.auth,
        )
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info(raised.value).reason == "SCORE_UNDEFINED"
    assert "mortality" in raised.value.details()
