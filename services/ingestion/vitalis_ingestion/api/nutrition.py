"""vitalis.ingestion.v1.NutritionService."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import empty_pb2

from vitalis.ingestion.v1 import (
    nutrition_log_pb2,
    nutrition_service_pb2,
    nutrition_service_pb2_grpc,
)
from vitalis_ingestion.api.convert import enum_name, interval_filter
from vitalis_ingestion.api.record_operations import RecordOperations
from vitalis_ingestion.api.record_types import NUTRITION

Context = grpc.aio.ServicerContext[object, object]


class NutritionServicer(nutrition_service_pb2_grpc.NutritionServiceServicer):
    """Nutrition logs."""

    def __init__(self, operations: RecordOperations) -> None:
        self._ops = operations

    async def CreateNutritionLog(
        self, request: nutrition_service_pb2.CreateNutritionLogRequest, context: Context
    ) -> nutrition_log_pb2.NutritionLog:
        """Log a meal."""
        return await self._ops.create(
            NUTRITION, request.parent, request.nutrition_log, request.request_id, "nutrition_log"
        )  # type: ignore[return-value]

    async def GetNutritionLog(
        self, request: nutrition_service_pb2.GetNutritionLogRequest, context: Context
    ) -> nutrition_log_pb2.NutritionLog:
        """One log."""
        return await self._ops.get(NUTRITION, request.name)  # type: ignore[return-value]

    async def ListNutritionLogs(
        self, request: nutrition_service_pb2.ListNutritionLogsRequest, context: Context
    ) -> nutrition_service_pb2.ListNutritionLogsResponse:
        """Logs, newest first."""
        filters: dict[str, Any] = interval_filter(request)
        if request.meal_type:
            filters["body_filter"] = {
                "mealType": enum_name(nutrition_log_pb2.MealType, request.meal_type, "meal_type")
            }
        found, token = await self._ops.find(
            NUTRITION, request, default_desc=True, order_field="consume_time", filters=filters
        )
        return nutrition_service_pb2.ListNutritionLogsResponse(nutrition_logs=found, next_page_token=token)

    async def UpdateNutritionLog(
        self, request: nutrition_service_pb2.UpdateNutritionLogRequest, context: Context
    ) -> nutrition_log_pb2.NutritionLog:
        """Change a log."""
        return await self._ops.update(
            NUTRITION, request.nutrition_log, list(request.update_mask.paths), "nutrition_log"
        )  # type: ignore[return-value]

    async def DeleteNutritionLog(
        self, request: nutrition_service_pb2.DeleteNutritionLogRequest, context: Context
    ) -> empty_pb2.Empty:
        """Delete a log."""
        await self._ops.delete(NUTRITION, request.name, request.etag)
        return empty_pb2.Empty()
