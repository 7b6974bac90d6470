"""SQL for derived scores."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from vitalis_biomarkers.domain.scores import Score, ScoreKey, ScoreState, ScoreStatus, ScoreTrigger
from vitalis_biomarkers.domain.scoring import InputValue, ScoreIssue
from vitalis_biomarkers.store.panels import TimeInterval


def _input_json(given: InputValue) -> dict[str, Any]:
    return {
        "parameter": given.parameter,
        "value": given.value,
        "unit": given.unit,
        "marker": given.marker,
        "panel_id": None if given.panel_id is None else str(given.panel_id),
        "collection_time": None if given.collection_time is None else given.collection_time.isoformat(),
        "clamped": given.clamped,
    }


def _input(data: dict[str, Any]) -> InputValue:
    return InputValue(
        parameter=data["parameter"],
        value=data["value"],
        unit=data["unit"],
        marker=data.get("marker", ""),
        panel_id=uuid.UUID(data["panel_id"]) if data.get("panel_id") else None,
        collection_time=datetime.fromisoformat(data["collection_time"])
        if data.get("collection_time")
        else None,
        clamped=bool(data.get("clamped", False)),
    )


def _score(row: asyncpg.Record) -> Score:
    return Score(
        user_id=row["user_id"],
        id=row["score_id"],
        key=ScoreKey(row["panel_id"], row["formula_id"], row["formula_version"], row["coefficient_set"]),
        value=row["value"],
        unit=row["unit"],
        status=ScoreStatus(row["status"]),
        issues=tuple(ScoreIssue(**issue) for issue in row["issues"]),
        inputs=tuple(_input(item) for item in row["inputs"]),
        intermediates=dict(row["intermediates"]),
        age_at_sample_years=row["age_at_sample_years"],
        sample_time=row["sample_time"],
        state=ScoreState(row["state"]),
        trigger=ScoreTrigger(row["trigger"]),
        compute_time=row["compute_time"],
        superseded_by=row["superseded_by"],
    )


class ScoreStore:
    """Reads and writes scores inside the caller's transaction."""

    async def insert(self, conn: asyncpg.Connection, score: Score) -> None:
        """Store a new score."""
        await conn.execute(
            """INSERT INTO scores (user_id, score_id, formula_id, formula_version, coefficient_set, value,
                   unit,
                   status, issues, inputs, intermediates, age_at_sample_years, sample_time, panel_id, state,
                   superseded_by, trigger, compute_time)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)""",
            score.user_id,
            score.id,
            score.key.formula_id,
            score.key.formula_version,
            score.key.coefficient_set,
            score.value,
            score.unit,
            score.status.value,
            [{"parameter": i.parameter, "reason": i.reason, "message": i.message} for i in score.issues],
            [_input_json(given) for given in score.inputs],
            dict(score.intermediates),
            score.age_at_sample_years,
            score.sample_time,
            score.key.panel_id,
            score.state.value,
            score.superseded_by,
            score.trigger.value,
            score.compute_time,
        )

    async def current(self, conn: asyncpg.Connection, user_id: uuid.UUID, key: ScoreKey) -> Score | None:
        """The current score of a key, locked for the change about to replace it."""
        row = await conn.fetchrow(
            """SELECT * FROM scores WHERE user_id = $1 AND panel_id = $2 AND formula_id = $3
                 AND formula_version = $4 AND coefficient_set = $5 AND state = 1 FOR UPDATE""",
            user_id,
            key.panel_id,
            key.formula_id,
            key.formula_version,
            key.coefficient_set,
        )
        return None if row is None else _score(row)

    async def current_keys_of_panel(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, panel_id: uuid.UUID
    ) -> list[ScoreKey]:
        """The keys of the current scores computed from a panel."""
        rows = await conn.fetch(
            """SELECT formula_id, formula_version, coefficient_set FROM scores
               WHERE user_id = $1 AND panel_id = $2 AND state = 1""",
            user_id,
            panel_id,
        )
        return [
            ScoreKey(panel_id, row["formula_id"], row["formula_version"], row["coefficient_set"])
            for row in rows
        ]

    async def current_keys_using_panel(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, panel_id: uuid.UUID
    ) -> list[ScoreKey]:
        """The keys of current scores, anchored anywhere, that took an input from a panel."""
        rows = await conn.fetch(
            """SELECT panel_id, formula_id, formula_version, coefficient_set FROM scores
               WHERE user_id = $1 AND state = 1 AND inputs @> $2::jsonb""",
            user_id,
            [{"panel_id": str(panel_id)}],
        )
        return [
            ScoreKey(row["panel_id"], row["formula_id"], row["formula_version"], row["coefficient_set"])
            for row in rows
        ]

    async def panels_scored_with(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, formula_id: str
    ) -> set[uuid.UUID]:
        """The panels that have, or had, a score of the formula."""
        rows = await conn.fetch(
            "SELECT DISTINCT panel_id FROM scores WHERE user_id = $1 AND formula_id = $2", user_id, formula_id
        )
        return {row["panel_id"] for row in rows}

    async def set_state(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        score_id: uuid.UUID,
        state: ScoreState,
        superseded_by: uuid.UUID | None = None,
    ) -> None:
        """Mark a score superseded (by another) or outdated."""
        await conn.execute(
            "UPDATE scores SET state = $3, superseded_by = $4 WHERE user_id = $1 AND score_id = $2",
            user_id,
            score_id,
            state.value,
            superseded_by,
        )

    async def outdate_panel(self, conn: asyncpg.Connection, user_id: uuid.UUID, panel_id: uuid.UUID) -> int:
        """Mark every current score of a panel outdated; return how many."""
        status: str = await conn.execute(
            "UPDATE scores SET state = 3 WHERE user_id = $1 AND panel_id = $2 AND state = 1",
            user_id,
            panel_id,
        )
        return int(status.rsplit(" ", 1)[-1])

    async def get(self, conn: asyncpg.Connection, user_id: uuid.UUID, score_id: uuid.UUID) -> Score | None:
        """One score."""
        row = await conn.fetchrow(
            "SELECT * FROM scores WHERE user_id = $1 AND score_id = $2", user_id, score_id
        )
        return None if row is None else _score(row)

    async def list_scores(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        *,
        formula_id: str | None,
        interval: TimeInterval,
        show_history: bool,
        after: tuple[datetime, datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[Score]:
        """Scores, latest sample first, then latest computation first, after the keyset ``after``."""
        rows = await conn.fetch(
            """SELECT * FROM scores
               WHERE user_id = $1
                 AND ($2::text IS NULL OR formula_id = $2)
                 AND ($3::timestamptz IS NULL OR sample_time >= $3)
                 AND ($4::timestamptz IS NULL OR sample_time < $4)
                 AND ($5 OR state = 1)
                 AND ($6::timestamptz IS NULL OR (sample_time, compute_time, score_id) < ($6, $7, $8::uuid))
               ORDER BY sample_time DESC, compute_time DESC, score_id DESC
               LIMIT $9""",
            user_id,
            formula_id,
            interval.start,
            interval.end,
            show_history,
            after[0] if after else None,
            after[1] if after else None,
            after[2] if after else None,
            limit,
        )
        return [_score(row) for row in rows]

    async def all_of_user(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> Sequence[Score]:
        """Every score of a user, for the data export."""
        rows = await conn.fetch(
            "SELECT * FROM scores WHERE user_id = $1 ORDER BY sample_time, compute_time", user_id
        )
        return [_score(row) for row in rows]
