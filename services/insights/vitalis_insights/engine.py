"""The per-user actor: events in, series values and insights out.

The event consumer hands each event of a user to :meth:`InsightsEngine.handle` inside the
transaction that records it in the inbox, in stream order per user; an advisory lock on the user
serialises it with the user's requests (goal changes) and with any other replica. The engine
reads the values an event announces through the producer's contract, keeps them in
``series_values``, runs the rules the event triggers, stores each finding once per dedupe key and
recomputes the progress of the goals about the changed series.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Hashable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg

from vitalis.biomarkers.v1 import events_pb2 as biomarker_events
from vitalis.ingestion.v1 import events_pb2 as ingestion_events
from vitalis.insights.v1 import events_pb2 as insight_events
from vitalis.insights.v1 import narrative_pb2
from vitalis_insights.adapters.readers import BiomarkerReader, DailyValueReader
from vitalis_insights.domain.goals import compute_progress, milestone_findings
from vitalis_insights.domain.panel_rules import FlaggedMarker, MarkerReading, flagged_marker_findings
from vitalis_insights.domain.rules import (
    NIGHT_RULES,
    Finding,
    biological_age_change,
    night_anomaly,
    significant_change,
    sleep_debt,
    sleep_debt_of,
)
from vitalis_insights.domain.series import SLEEP_DEBT, TOTAL_SLEEP_TIME, SeriesValue
from vitalis_insights.facts import gather_facts
from vitalis_insights.narrator import Narrator
from vitalis_insights.store import goals as goal_store
from vitalis_insights.store import series as series_store
from vitalis_insights.store.insights import PRODUCER, SCHEMA, record_finding
from vitalis_runtime import errors
from vitalis_runtime.events import Event
from vitalis_runtime.mailbox import advisory_lock
from vitalis_runtime.outbox import add_to_outbox

logger = logging.getLogger(__name__)

DAILY_SUMMARY_UPDATED = ingestion_events.DailySummaryUpdated.DESCRIPTOR.full_name
PANEL_CREATED = biomarker_events.PanelCreated.DESCRIPTOR.full_name
PANEL_UPDATED = biomarker_events.PanelUpdated.DESCRIPTOR.full_name
PANEL_DELETED = biomarker_events.PanelDeleted.DESCRIPTOR.full_name
SCORE_COMPUTED = biomarker_events.ScoreComputed.DESCRIPTOR.full_name
PHENOAGE = "scoreFormulas/phenoage"


def user_lock_key(user_id: uuid.UUID) -> str:
    """The advisory lock that serialises a user's insights work across replicas."""
    return f"insights.user:{user_id}"


class InsightsEngine:
    """Applies events to a user's insights state."""

    def __init__(
        self,
        *,
        ingestion: DailyValueReader | None,
        biomarkers: BiomarkerReader | None,
        narrator: Narrator | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._ingestion = ingestion
        self._biomarkers = biomarkers
        self._narrator = narrator
        self._clock = clock

    def supersede_key(self, event: Event) -> Hashable | None:
        """What makes an earlier event of the user redundant: a day's summary is re-read whole."""
        if event.type != DAILY_SUMMARY_UPDATED:
            return None
        return (event.type, event.unpack(ingestion_events.DailySummaryUpdated).daily_summary)

    async def handle(self, conn: asyncpg.Connection, event: Event) -> None:
        """Apply one event; events of other types are ignored."""
        if event.user_id is None:
            return
        handlers = {
            DAILY_SUMMARY_UPDATED: self._daily_summary_updated,
            PANEL_CREATED: self._panel_changed,
            PANEL_UPDATED: self._panel_changed,
            PANEL_DELETED: self._panel_deleted,
            SCORE_COMPUTED: self._score_computed,
        }
        handler = handlers.get(event.type)
        if handler is None:
            return
        await advisory_lock(conn, user_lock_key(event.user_id))
        await handler(conn, event.user_id, event)

    async def _daily_summary_updated(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, event: Event
    ) -> None:
        message = event.unpack(ingestion_events.DailySummaryUpdated)
        if self._ingestion is None:
            logger.warning("no ingestion address is configured; %s is skipped", event.id)
            return
        values = await self._ingestion.daily_values(user_id, message.daily_summary)
        await series_store.upsert_values(conn, user_id, values)
        keys = sorted({value.series_key for value in values})
        findings: list[Finding] = []
        for key in keys:
            if key in NIGHT_RULES:
                history = await series_store.values_of(conn, user_id, key)
                found = night_anomaly(key, history)
                if found is not None:
                    findings.append(found)
        if TOTAL_SLEEP_TIME in keys:
            nights = await series_store.values_of(conn, user_id, TOTAL_SLEEP_TIME)
            debt = sleep_debt_of(nights)
            if debt is not None:
                latest = debt[1][-1]
                debt_value = SeriesValue(SLEEP_DEBT, latest.observe_time, debt[0], "min", latest.evidence)
                await series_store.upsert_values(conn, user_id, [debt_value])
                keys.append(SLEEP_DEBT)
            found = sleep_debt(nights)
            if found is not None:
                findings.append(found)
        await self._store(conn, user_id, findings)
        await self.refresh_goals(conn, user_id, keys)
        if values:
            await self._weekly_summary(
                conn, user_id, date(message.date.year, message.date.month, message.date.day)
            )

    async def _weekly_summary(self, conn: asyncpg.Connection, user_id: uuid.UUID, day: date) -> None:
        """Write last week's summary when the first data of this week arrives (not for old imports)."""
        today = self._clock().date()
        if self._narrator is None or day < today - timedelta(days=today.weekday()):
            return
        start = datetime.combine(day - timedelta(days=day.weekday() + 7), time.min, tzinfo=UTC)
        end = start + timedelta(days=7)
        kind = narrative_pb2.NARRATIVE_KIND_WEEKLY_SUMMARY
        if await conn.fetchval(
            """SELECT true FROM narratives
               WHERE user_id = $1 AND kind = $2 AND automatic AND period_start = $3""",
            user_id,
            kind,
            start,
        ):
            return
        facts = await gather_facts(conn, user_id, start, end)
        if not facts:
            return
        try:
            text = await self._narrator.compose(user_id, kind, start, end, facts)
        except errors.Unavailable:
            logger.warning(
                "the weekly summary of %s could not be written: the text provider is unavailable", user_id
            )
            return
        await self._narrator.store(
            conn, user_id, kind=kind, start=start, end=end, text=text, facts=facts, automatic=True
        )

    async def _panel_changed(self, conn: asyncpg.Connection, user_id: uuid.UUID, event: Event) -> None:
        message: biomarker_events.PanelCreated | biomarker_events.PanelUpdated
        if event.type == PANEL_CREATED:
            message = event.unpack(biomarker_events.PanelCreated)
        else:
            message = event.unpack(biomarker_events.PanelUpdated)
        collection_time = message.collection_time.ToDatetime(UTC)
        readings: dict[str, tuple[str, MarkerReading]] = {}
        names: dict[str, str] = {}
        if self._biomarkers is not None:
            readings = await self._biomarkers.panel_readings(user_id, message.panel)
            flagged_biomarkers = sorted({marker.biomarker for marker in message.flagged_markers})
            names = await self._biomarkers.display_names(user_id, flagged_biomarkers)
        findings = flagged_marker_findings(
            panel=message.panel,
            collection_time=collection_time,
            flagged=[FlaggedMarker(m.marker, m.biomarker, m.flag) for m in message.flagged_markers],
            readings={marker: reading for marker, (_, reading) in readings.items()},
            names=names,
        )
        values = [
            SeriesValue(f"biomarker:{biomarker}", collection_time, reading.value, reading.unit, marker)
            for marker, (biomarker, reading) in readings.items()
        ]
        for value in values:
            earlier = await series_store.values_of(conn, user_id, value.series_key, end=collection_time)
            if earlier:
                found = significant_change(value.series_key.removeprefix("biomarker:"), earlier[-1], value)
                if found is not None:
                    findings.append(found)
        await series_store.upsert_values(conn, user_id, values)
        await self._store(conn, user_id, findings)
        await self.refresh_goals(conn, user_id, sorted({value.series_key for value in values}))

    async def _panel_deleted(self, conn: asyncpg.Connection, user_id: uuid.UUID, event: Event) -> None:
        message = event.unpack(biomarker_events.PanelDeleted)
        await series_store.delete_from_resource(conn, user_id, message.panel)

    async def _score_computed(self, conn: asyncpg.Connection, user_id: uuid.UUID, event: Event) -> None:
        message = event.unpack(biomarker_events.ScoreComputed)
        if self._biomarkers is None:
            return
        current = await self._biomarkers.score_value(user_id, message.score)
        if current is None:
            return
        await series_store.upsert_values(conn, user_id, [current])
        if message.formula == PHENOAGE and message.superseded_score:
            previous = await self._biomarkers.score_value(user_id, message.superseded_score)
            if previous is not None:
                found = biological_age_change(previous, current)
                if found is not None:
                    await self._store(conn, user_id, [found])
        await self.refresh_goals(conn, user_id, [current.series_key])

    async def history(self, user_id: uuid.UUID, key: str, start: date, end: date) -> list[SeriesValue]:
        """The values a producing service already holds (for a new goal), read through its contract."""
        if key.startswith("biomarker:") and self._biomarkers is not None:
            return await self._biomarkers.marker_history(user_id, key.removeprefix("biomarker:"))
        if key.startswith(("metric:", "sleep:")) and self._ingestion is not None:
            return await self._ingestion.history(user_id, start, end)
        return []

    async def require_known_biomarker(self, user_id: uuid.UUID, key: str) -> None:
        """NOT_FOUND for a biomarker series the dictionary does not know (when biomarkers can be asked)."""
        if not key.startswith("biomarker:") or self._biomarkers is None:
            return
        biomarker = key.removeprefix("biomarker:")
        if not await self._biomarkers.biomarker_exists(user_id, biomarker):
            raise errors.NotFound(f"biomarker {biomarker!r} was not found", reason="BIOMARKER_NOT_FOUND")

    async def canonical_target(
        self, user_id: uuid.UUID, key: str, values: dict[str, float | None], unit: str
    ) -> dict[str, Any] | None:
        """A biomarker goal's target values in the canonical unit; None when they are in it already."""
        if not key.startswith("biomarker:") or self._biomarkers is None:
            return None
        biomarker = key.removeprefix("biomarker:")
        converted: dict[str, Any] = {}
        for field, value in values.items():
            if value is not None:
                converted[field], converted["unit"] = await self._biomarkers.to_canonical(
                    user_id, biomarker, value, unit
                )
        if converted.get("unit", unit) == unit:
            return None
        return converted

    async def _store(self, conn: asyncpg.Connection, user_id: uuid.UUID, findings: Iterable[Finding]) -> None:
        for finding in findings:
            await record_finding(conn, user_id, finding)

    async def refresh_goals(self, conn: asyncpg.Connection, user_id: uuid.UUID, keys: list[str]) -> None:
        """Recompute the progress of the user's goals about ``keys``; store milestone findings."""
        if not keys:
            return
        now = self._clock()
        for row in await goal_store.goals_of_series(conn, user_id, keys):
            await self.refresh_goal(conn, user_id, row, now=now)

    async def refresh_goal(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, row: asyncpg.Record, *, now: datetime
    ) -> asyncpg.Record:
        """Recompute one goal's progress from the stored series; return the updated row."""
        target = goal_store.target_of(row)
        reached = goal_store.reached_milestones(row)
        values = await series_store.values_of(conn, user_id, row["series_key"])
        progress = compute_progress(target, values, now=now, reached=reached)
        updated = await goal_store.save_progress(
            conn, user_id, row["goal_id"], progress.state, goal_store.progress_json(target, progress, now)
        )
        await self._store(conn, user_id, milestone_findings(target, reached, progress))
        if progress.state != row["state"] or set(progress.milestones) != set(reached):
            event = insight_events.GoalProgressed(
                user=f"users/{user_id}",
                goal=target.goal,
                state=progress.state,  # type: ignore[arg-type]
                milestone_fraction=max(progress.milestones, default=0.0),
            )
            event.occur_time.FromDatetime(now)
            await add_to_outbox(conn, schema=SCHEMA, producer=PRODUCER, user_id=user_id, message=event)
        return updated
