"""The events the service publishes, written to the outbox in the transaction of the change."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from vitalis.biomarkers.v1 import events_pb2, panel_pb2, score_pb2
from vitalis_biomarkers.domain.panels import Panel, ProvenanceKind
from vitalis_biomarkers.domain.scores import Score
from vitalis_runtime.outbox import add_to_outbox

SCHEMA = "biomarkers"
PRODUCER = "biomarkers"


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _flagged(panel: Panel) -> list[events_pb2.FlaggedMarker]:
    return [
        events_pb2.FlaggedMarker(
            marker=panel.marker_name(marker),
            biomarker=f"biomarkers/{marker.biomarker_id}",
            flag=marker.flag.value,  # type: ignore[arg-type]
        )
        for marker in panel.markers
        if marker.flag.is_abnormal
    ]


async def publish(conn: asyncpg.Connection, user_id: uuid.UUID, message: Message) -> None:
    """Write one event about ``user_id`` to the outbox."""
    await add_to_outbox(conn, schema=SCHEMA, producer=PRODUCER, message=message, user_id=user_id)


async def panel_created(conn: asyncpg.Connection, panel: Panel, now: datetime) -> None:
    """PanelCreated."""
    document = panel.provenance.document if panel.provenance.kind is ProvenanceKind.DOCUMENT else ""
    await publish(
        conn,
        panel.user_id,
        events_pb2.PanelCreated(
            user=f"users/{panel.user_id}",
            panel=panel.name,
            collection_time=_timestamp(panel.fields.collection_time),
            biomarkers=[f"biomarkers/{marker.biomarker_id}" for marker in panel.markers],
            flagged_markers=_flagged(panel),
            provenance=panel_pb2.ProvenanceKind.Value(f"PROVENANCE_KIND_{panel.provenance.kind.name}"),
            document=document,
            occur_time=_timestamp(now),
        ),
    )


async def panel_updated(
    conn: asyncpg.Connection, panel: Panel, changed: Sequence[str], now: datetime
) -> None:
    """PanelUpdated."""
    await publish(
        conn,
        panel.user_id,
        events_pb2.PanelUpdated(
            user=f"users/{panel.user_id}",
            panel=panel.name,
            collection_time=_timestamp(panel.fields.collection_time),
            changed_fields=list(changed),
            flagged_markers=_flagged(panel),
            occur_time=_timestamp(now),
        ),
    )


async def panel_deleted(conn: asyncpg.Connection, user_id: uuid.UUID, name: str, now: datetime) -> None:
    """PanelDeleted."""
    await publish(
        conn,
        user_id,
        events_pb2.PanelDeleted(user=f"users/{user_id}", panel=name, occur_time=_timestamp(now)),
    )


async def score_computed(conn: asyncpg.Connection, score: Score, superseded: Score | None) -> None:
    """ScoreComputed."""
    await publish(
        conn,
        score.user_id,
        events_pb2.ScoreComputed(
            user=f"users/{score.user_id}",
            score=score.name,
            formula=f"scoreFormulas/{score.key.formula_id}",
            formula_version=score.key.formula_version,
            coefficient_set=score.key.coefficient_set,
            status=score_pb2.ScoreStatus.Value(f"SCORE_STATUS_{score.status.name}"),
            sample_time=_timestamp(score.sample_time),
            superseded_score="" if superseded is None else superseded.name,
            trigger=score_pb2.ScoreTrigger.Value(f"SCORE_TRIGGER_{score.trigger.name}"),
            occur_time=_timestamp(score.compute_time),
        ),
    )


async def record_changed(
    conn: asyncpg.Connection,
    message: events_pb2.BodyCompositionScanRecorded | events_pb2.EpigeneticTestRecorded,
) -> None:
    """BodyCompositionScanRecorded or EpigeneticTestRecorded."""
    user_id = uuid.UUID(message.user.removeprefix("users/"))
    await publish(conn, user_id, message)
