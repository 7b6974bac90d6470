"""vitalis.ingestion.v1.SleepService."""

from __future__ import annotations

import grpc
from google.protobuf import empty_pb2

from vitalis.ingestion.v1 import (
    sleep_service_pb2,
    sleep_service_pb2_grpc,
    sleep_session_pb2,
)
from vitalis_ingestion.api.convert import day_range_filter
from vitalis_ingestion.api.record_operations import RecordOperations
from vitalis_ingestion.api.record_types import SLEEP

Context = grpc.aio.ServicerContext[object, object]


class SleepServicer(sleep_service_pb2_grpc.SleepServiceServicer):
    """Sleep sessions with their stages."""

    def __init__(self, operations: RecordOperations) -> None:
        self._ops = operations

    async def CreateSleepSession(
        self, request: sleep_service_pb2.CreateSleepSessionRequest, context: Context
    ) -> sleep_session_pb2.SleepSession:
        """Record a sleep session."""
        return await self._ops.create(
            SLEEP, request.parent, request.sleep_session, request.request_id, "sleep_session"
        )  # type: ignore[return-value]

    async def GetSleepSession(
        self, request: sleep_service_pb2.GetSleepSessionRequest, context: Context
    ) -> sleep_session_pb2.SleepSession:
        """One session."""
        return await self._ops.get(SLEEP, request.name)  # type: ignore[return-value]

    async def ListSleepSessions(
        self, request: sleep_service_pb2.ListSleepSessionsRequest, context: Context
    ) -> sleep_service_pb2.ListSleepSessionsResponse:
        """Sessions by sleep day, newest first by default."""
        filters = {**day_range_filter(request), "source": request.source}
        found, token = await self._ops.find(
            SLEEP, request, default_desc=True, order_field="start_time", filters=filters
        )
        return sleep_service_pb2.ListSleepSessionsResponse(sleep_sessions=found, next_page_token=token)

    async def UpdateSleepSession(
        self, request: sleep_service_pb2.UpdateSleepSessionRequest, context: Context
    ) -> sleep_session_pb2.SleepSession:
        """Change a session."""
        return await self._ops.update(
            SLEEP, request.sleep_session, list(request.update_mask.paths), "sleep_session"
        )  # type: ignore[return-value]

    async def DeleteSleepSession(
        self, request: sleep_service_pb2.DeleteSleepSessionRequest, context: Context
    ) -> empty_pb2.Empty:
        """Delete a session."""
        await self._ops.delete(SLEEP, request.name, request.etag)
        return empty_pb2.Empty()
