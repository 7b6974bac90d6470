"""vitalis.insights.v1.AlertService: list, acknowledge and snooze alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

import grpc

from vitalis.insights.v1 import alert_pb2, alert_service_pb2, alert_service_pb2_grpc, events_pb2
from vitalis_insights.api.names import ReadAccess, not_found, resolve_uuid_child
from vitalis_insights.store import feed
from vitalis_insights.store.insights import PRODUCER, SCHEMA, alert_to_proto
from vitalis_runtime.db import Database
from vitalis_runtime.errors import Aborted, FailedPrecondition, InvalidArgument
from vitalis_runtime.outbox import add_to_outbox
from vitalis_runtime.pagination import PageTokens, resolve_page_size

MIN_SNOOZE: Final = timedelta(minutes=5)
MAX_SNOOZE: Final = timedelta(days=30)

Context = grpc.aio.ServicerContext[object, object]


class AlertServicer(alert_service_pb2_grpc.AlertServiceServicer):
    """A user's alerts."""

    def __init__(self, db: Database, tokens: PageTokens, access: ReadAccess) -> None:
        self._db = db
        self._access = access
        self._tokens = tokens

    async def ListAlerts(
        self, request: alert_service_pb2.ListAlertsRequest, context: Context
    ) -> alert_service_pb2.ListAlertsResponse:
        """A page of alerts, newest first."""
        user_id = await self._access.parent(request.parent)
        size = resolve_page_size(request.page_size)
        fingerprint = {"parent": str(user_id), "filter": request.filter}
        offset = int(self._tokens.decode(request.page_token, request=fingerprint).get("offset", 0))
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            rows = await feed.list_alerts(
                conn, user_id, filter_text=request.filter, offset=offset, limit=size
            )
            active = await feed.active_alert_count(conn, user_id)
        now = datetime.now(UTC)
        response = alert_service_pb2.ListAlertsResponse(
            alerts=[alert_to_proto(row, now=now) for row in rows[:size]], active_count=active
        )
        if len(rows) > size:
            response.next_page_token = self._tokens.encode({"offset": offset + size}, request=fingerprint)
        return response

    async def GetAlert(self, request: alert_service_pb2.GetAlertRequest, context: Context) -> alert_pb2.Alert:
        """One alert."""
        user_id, alert_id = await self._access.child(request.name, "alerts")
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            row = await feed.get_alert(conn, user_id, alert_id)
        if row is None:
            raise not_found(request.name)
        return alert_to_proto(row, now=datetime.now(UTC))

    async def AcknowledgeAlert(
        self, request: alert_service_pb2.AcknowledgeAlertRequest, context: Context
    ) -> alert_pb2.Alert:
        """Acknowledge: final; acknowledging again changes nothing."""
        user_id, alert_id = resolve_uuid_child(request.name, "alerts")
        async with self._db.transaction(user_id=user_id) as conn:
            row = await feed.get_alert(conn, user_id, alert_id)
            if row is None:
                raise not_found(request.name)
            if request.etag and request.etag != str(row["version"]):
                raise Aborted("the alert changed since it was read; fetch it again", reason="ETAG_MISMATCH")
            if row["state"] != alert_pb2.ALERT_STATE_ACKNOWLEDGED:
                row = await feed.update_alert(
                    conn, user_id, alert_id, state=alert_pb2.ALERT_STATE_ACKNOWLEDGED, snooze_until=None
                )
                event = events_pb2.AlertAcknowledged(user=f"users/{user_id}", alert=request.name)
                event.alert = f"users/{user_id}/alerts/{alert_id}"
                event.occur_time.FromDatetime(row["acknowledge_time"])
                await add_to_outbox(conn, schema=SCHEMA, producer=PRODUCER, user_id=user_id, message=event)
        return alert_to_proto(row, now=datetime.now(UTC))

    async def SnoozeAlert(
        self, request: alert_service_pb2.SnoozeAlertRequest, context: Context
    ) -> alert_pb2.Alert:
        """Hide an alert until now + ``snooze_duration``."""
        user_id, alert_id = resolve_uuid_child(request.name, "alerts")
        if not request.HasField("snooze_duration"):
            raise InvalidArgument.for_field("snooze_duration", "is required")
        duration = request.snooze_duration.ToTimedelta()
        if not MIN_SNOOZE <= duration <= MAX_SNOOZE:
            raise InvalidArgument.for_field("snooze_duration", "must be between 5 minutes and 30 days")
        async with self._db.transaction(user_id=user_id) as conn:
            row = await feed.get_alert(conn, user_id, alert_id)
            if row is None:
                raise not_found(request.name)
            if request.etag and request.etag != str(row["version"]):
                raise Aborted("the alert changed since it was read; fetch it again", reason="ETAG_MISMATCH")
            if row["state"] == alert_pb2.ALERT_STATE_ACKNOWLEDGED:
                raise FailedPrecondition(
                    "an acknowledged alert cannot be snoozed", reason="ALERT_ACKNOWLEDGED"
                )
            row = await feed.update_alert(
                conn,
                user_id,
                alert_id,
                state=alert_pb2.ALERT_STATE_SNOOZED,
                snooze_until=datetime.now(UTC) + duration,
            )
        return alert_to_proto(row, now=datetime.now(UTC))
