"""The use cases of scores: read them, compute one on request, recompute a formula's history."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from vitalis_biomarkers.app.panels import PanelBook, panel_not_found
from vitalis_biomarkers.app.scores import FormulaChoice
from vitalis_biomarkers.domain.formulas import ScoreUndefinedError
from vitalis_biomarkers.domain.scores import Score, ScoreTrigger
from vitalis_biomarkers.domain.scoring import MissingInputsError
from vitalis_biomarkers.store.panels import TimeInterval
from vitalis_biomarkers.store.requests import RequestStore
from vitalis_biomarkers.store.scores import ScoreStore
from vitalis_runtime.db import Database
from vitalis_runtime.errors import FailedPrecondition, NotFound

COMPUTE_METHOD = "ComputeScore"
RECOMPUTE_METHOD = "RecomputeScores"


@dataclass(frozen=True)
class SkippedSample:
    """A panel whose inputs gave no value in a recomputation."""

    panel_id: uuid.UUID
    reason: str
    message: str


@dataclass(frozen=True)
class Recomputation:
    """New scores, latest sample first, and the samples skipped."""

    scores: list[Score]
    skipped: list[SkippedSample]


def inputs_missing(error: MissingInputsError) -> FailedPrecondition:
    """The error for a computation without every input."""
    return FailedPrecondition(
        f"no value for {', '.join(error.missing)}: "
        "record the missing markers (or the birth date and sex) first",
        reason="SCORE_INPUTS_MISSING",
        metadata={"missing": ",".join(error.missing)},
    )


def undefined(error: ScoreUndefinedError) -> FailedPrecondition:
    """The error for inputs the formula has no value for."""
    return FailedPrecondition(str(error), reason="SCORE_UNDEFINED")


class ScoreBook:
    """Scores of a user."""

    def __init__(self, db: Database, book: PanelBook) -> None:
        """Compute with ``book``'s engine in transactions on ``db``."""
        self._db = db
        self._book = book
        self._scores = ScoreStore()
        self._requests = RequestStore()

    async def get(self, user_id: uuid.UUID, score_id: uuid.UUID) -> Score:
        """One score; NotFound when it does not exist."""
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            score = await self._scores.get(conn, user_id, score_id)
        if score is None:
            raise NotFound("the score does not exist", reason="SCORE_NOT_FOUND")
        return score

    async def list_scores(
        self,
        user_id: uuid.UUID,
        *,
        formula_id: str | None,
        interval: TimeInterval,
        show_history: bool,
        after: tuple[datetime, datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[Score]:
        """Scores, latest sample first."""
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            return await self._scores.list_scores(
                conn,
                user_id,
                formula_id=formula_id,
                interval=interval,
                show_history=show_history,
                after=after,
                limit=limit,
            )

    async def compute(
        self, user_id: uuid.UUID, choice: FormulaChoice, *, panel_id: uuid.UUID | None, request_id: str
    ) -> Score:
        """Compute and store a score from a panel (or the latest markers); nothing is stored on error."""
        person = await self._book.person(user_id)
        biomarkers = sorted({b for parameter in choice.version.parameters for b in parameter.biomarkers})

        async def work(conn: asyncpg.Connection) -> Score:
            if request_id:
                earlier = await self._requests.find(conn, user_id, COMPUTE_METHOD, request_id)
                if earlier is not None:
                    found = await self._scores.get(conn, user_id, uuid.UUID(earlier.resource))
                    if found is not None:
                        return found
            if panel_id is not None:
                panel = await self._book.store.get_panel(conn, user_id, panel_id)
                if panel is None:
                    raise panel_not_found()
                anchor = (panel.id, panel.fields.collection_time)
            else:
                panels = await self._book.store.panels_with_biomarkers(conn, user_id, biomarkers)
                if not panels:
                    raise inputs_missing(MissingInputsError([p.name for p in choice.version.parameters]))
                anchor = panels[0]
            try:
                score = await self._book.engine.compute(
                    conn,
                    user_id,
                    choice,
                    anchor_panel=anchor[0],
                    anchor_time=anchor[1],
                    person=person,
                    trigger=ScoreTrigger.REQUESTED,
                )
            except MissingInputsError as error:
                raise inputs_missing(error) from None
            except ScoreUndefinedError as error:
                raise undefined(error) from None
            if request_id:
                await self._requests.remember(
                    conn, user_id, COMPUTE_METHOD, request_id, resource=str(score.id)
                )
            return score

        return await self._book.write(user_id, work)

    async def recompute(
        self, user_id: uuid.UUID, choice: FormulaChoice, *, trigger: ScoreTrigger
    ) -> Recomputation:
        """Recompute the formula for every panel that has its inputs or had a score of it."""
        person = await self._book.person(user_id)
        biomarkers = sorted({b for parameter in choice.version.parameters for b in parameter.biomarkers})
        scores: list[Score] = []
        skipped: list[SkippedSample] = []

        async def work(conn: asyncpg.Connection) -> None:
            scored = await self._scores.panels_scored_with(conn, user_id, choice.formula.id)
            for panel_id, collection_time in await self._book.store.panels_with_biomarkers(
                conn, user_id, biomarkers
            ):
                try:
                    scores.append(
                        await self._book.engine.compute(
                            conn,
                            user_id,
                            choice,
                            anchor_panel=panel_id,
                            anchor_time=collection_time,
                            person=person,
                            trigger=trigger,
                        )
                    )
                except MissingInputsError as error:
                    if panel_id in scored:
                        skipped.append(
                            SkippedSample(panel_id, "SCORE_INPUTS_MISSING", inputs_missing(error).message)
                        )
                except ScoreUndefinedError as error:
                    skipped.append(SkippedSample(panel_id, "SCORE_UNDEFINED", str(error)))

        await self._book.write(user_id, work)
        scores.sort(key=lambda score: score.sample_time, reverse=True)
        return Recomputation(scores, skipped)

    async def remembered(self, user_id: uuid.UUID, request_id: str) -> bytes | None:
        """The response an earlier RecomputeScores with ``request_id`` gave."""
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            earlier = await self._requests.find(conn, user_id, RECOMPUTE_METHOD, request_id)
        return None if earlier is None else earlier.response

    async def remember(self, user_id: uuid.UUID, request_id: str, response: bytes) -> None:
        """Keep a RecomputeScores response for retries with the same request id."""
        async with self._db.transaction(user_id=user_id) as conn:
            await self._requests.remember(conn, user_id, RECOMPUTE_METHOD, request_id, response=response)
