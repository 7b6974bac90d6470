"""Computing, storing and superseding scores, inside the transaction that changed their inputs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from vitalis_biomarkers.app import events
from vitalis_biomarkers.dictionary.model import Dictionary
from vitalis_biomarkers.domain.formulas import (
    FORMULAS,
    CoefficientSet,
    Formula,
    FormulaVersion,
    formula_by_id,
)
from vitalis_biomarkers.domain.people import PersonProfile
from vitalis_biomarkers.domain.scores import Score, ScoreKey, ScoreState, ScoreStatus, ScoreTrigger
from vitalis_biomarkers.domain.scoring import MissingInputsError, evaluate, select_inputs
from vitalis_biomarkers.store.panels import PanelStore
from vitalis_biomarkers.store.scores import ScoreStore
from vitalis_runtime.errors import NotFound


@dataclass(frozen=True)
class FormulaChoice:
    """A formula with the version and coefficient set to compute it with."""

    formula: Formula
    version: FormulaVersion
    coefficients: CoefficientSet

    def key(self, panel_id: uuid.UUID) -> ScoreKey:
        """The score key of this choice for a panel."""
        return ScoreKey(panel_id, self.formula.id, self.version.version, self.coefficients.id)


def choose_formula(name: str, version: str, coefficient_set: str, *, field: str = "formula") -> FormulaChoice:
    """Resolve ``scoreFormulas/{id}`` with a version and set (defaults when empty); NotFound otherwise."""
    formula_id = name.removeprefix("scoreFormulas/") if name.startswith("scoreFormulas/") else ""
    formula = formula_by_id(formula_id)
    if formula is None:
        raise NotFound(f"{field}: there is no score formula {name!r}", reason="FORMULA_NOT_FOUND")
    chosen_version = formula.version(version)
    if chosen_version is None:
        raise NotFound(
            f"formula {formula.name} has no version {version!r}", reason="FORMULA_VERSION_NOT_FOUND"
        )
    coefficients = chosen_version.coefficient_set(coefficient_set)
    if coefficients is None:
        raise NotFound(
            f"formula {formula.name} version {chosen_version.version} "
            f"has no coefficient set {coefficient_set!r}",
            reason="COEFFICIENT_SET_NOT_FOUND",
        )
    return FormulaChoice(formula, chosen_version, coefficients)


def _choice_of(key: ScoreKey) -> FormulaChoice | None:
    formula = formula_by_id(key.formula_id)
    version = None if formula is None else formula.version(key.formula_version)
    coefficients = None if version is None else version.coefficient_set(key.coefficient_set)
    if formula is None or version is None or coefficients is None:
        return None
    return FormulaChoice(formula, version, coefficients)


class ScoreEngine:
    """Computes scores from stored markers and keeps exactly one current score per key."""

    def __init__(self, dictionary: Dictionary, panels: PanelStore, scores: ScoreStore) -> None:
        """Read markers through ``panels`` and store scores through ``scores``."""
        self._dictionary = dictionary
        self._panels = panels
        self._scores = scores

    async def compute(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        choice: FormulaChoice,
        *,
        anchor_panel: uuid.UUID,
        anchor_time: datetime,
        person: PersonProfile,
        trigger: ScoreTrigger,
    ) -> Score:
        """Compute and store a score anchored at a panel, superseding the current one of its key.

        Raises MissingInputsError or ScoreUndefinedError; nothing is stored then.
        """
        version = choice.version
        biomarkers = sorted({b for parameter in version.parameters for b in parameter.biomarkers})
        candidates = await self._panels.candidate_markers(
            conn,
            user_id,
            biomarker_ids=biomarkers,
            start=anchor_time - version.input_window,
            end=anchor_time + version.input_window,
        )
        inputs = select_inputs(
            version,
            candidates,
            dictionary=self._dictionary,
            anchor_panel=anchor_panel,
            anchor_time=anchor_time,
            person=person,
        )
        evaluation = evaluate(version, choice.coefficients, inputs, person.sex)
        times = [given.collection_time for given in inputs.values() if given.collection_time is not None]
        sample_time = max(times) if times else anchor_time
        key = choice.key(anchor_panel)
        previous = await self._scores.current(conn, user_id, key)
        score = Score(
            user_id=user_id,
            id=uuid.uuid4(),
            key=key,
            value=evaluation.value,
            unit=choice.formula.unit,
            status=ScoreStatus.FLAGGED if evaluation.flagged else ScoreStatus.OK,
            issues=evaluation.issues,
            inputs=tuple(inputs[parameter.name] for parameter in version.parameters),
            intermediates=dict(evaluation.intermediates),
            age_at_sample_years=person.age_at(sample_time),
            sample_time=sample_time,
            state=ScoreState.CURRENT,
            trigger=trigger,
            compute_time=datetime.now(UTC),
        )
        if previous is not None:
            await self._scores.set_state(conn, user_id, previous.id, ScoreState.SUPERSEDED, score.id)
        await self._scores.insert(conn, score)
        await events.score_computed(conn, score, previous)
        return score

    async def refresh_panel(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        *,
        panel_id: uuid.UUID,
        collection_time: datetime | None,
        biomarker_ids: Sequence[str],
        person: PersonProfile,
        trigger: ScoreTrigger,
    ) -> list[Score]:
        """After a panel changed (or, with ``collection_time`` None, was deleted): recompute the scores
        it anchors, the default ones its markers feed, and the scores of other panels that took an
        input from it. A score whose inputs no longer give a value is marked outdated.
        """
        keys: dict[ScoreKey, FormulaChoice | None] = {}
        dependents = await self._scores.current_keys_using_panel(conn, user_id, panel_id)
        if collection_time is not None:
            for key in await self._scores.current_keys_of_panel(conn, user_id, panel_id):
                keys[key] = _choice_of(key)
            present = set(biomarker_ids)
            for formula in FORMULAS:
                choice = choose_formula(formula.name, "", "")
                feeds = any(set(parameter.biomarkers) & present for parameter in choice.version.parameters)
                # A sample another panel's score already covers with these markers gets no second score.
                covered = any(
                    (key.formula_id, key.formula_version, key.coefficient_set)
                    == (formula.id, choice.version.version, choice.coefficients.id)
                    for key in dependents
                )
                if feeds and not covered:
                    keys.setdefault(choice.key(panel_id), choice)
        for key in dependents:
            keys.setdefault(key, _choice_of(key))
        computed = []
        for key, chosen in keys.items():
            anchor_time = (
                collection_time
                if key.panel_id == panel_id
                else await self._panels.collection_time(conn, user_id, key.panel_id)
            )
            score = None
            if chosen is not None and anchor_time is not None:
                try:
                    score = await self.compute(
                        conn,
                        user_id,
                        chosen,
                        anchor_panel=key.panel_id,
                        anchor_time=anchor_time,
                        person=person,
                        trigger=trigger,
                    )
                except (MissingInputsError, ValueError):
                    score = None
            if score is not None:
                computed.append(score)
                continue
            current = await self._scores.current(conn, user_id, key)
            if current is not None:
                await self._scores.set_state(conn, user_id, current.id, ScoreState.OUTDATED)
        return computed
