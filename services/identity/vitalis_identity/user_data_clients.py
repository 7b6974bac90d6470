"""Clients of every service's UserDataService, over gRPC with service credentials, or in-process."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from vitalis_identity.data_rights import ArchiveEntry, ServiceCallError
from vitalis_runtime.service_auth import ServiceCredentials

CALL_TIMEOUT_SECONDS = 60.0


class GrpcUserDataClient:
    """Calls ``vitalis.<service>.v1.UserDataService`` at ``target``."""

    def __init__(self, name: str, channel: grpc.aio.Channel, credentials: ServiceCredentials) -> None:
        self.name = name
        self._credentials = credentials
        messages: Any = importlib.import_module(f"vitalis.{name}.v1.user_data_service_pb2")
        self._messages = messages
        service = f"/vitalis.{name}.v1.UserDataService"
        self._export = channel.unary_stream(
            f"{service}/ExportUserData",
            request_serializer=messages.ExportUserDataRequest.SerializeToString,
            response_deserializer=messages.ExportUserDataResponse.FromString,
        )
        self._erase = channel.unary_unary(
            f"{service}/EraseUserData",
            request_serializer=messages.EraseUserDataRequest.SerializeToString,
            response_deserializer=messages.EraseUserDataResponse.FromString,
        )

    async def export(self, user_id: uuid.UUID, job_name: str) -> list[ArchiveEntry]:
        """Collect the streamed chunks into entries."""
        request = self._messages.ExportUserDataRequest(user=f"users/{user_id}", export_job=job_name)
        entries: dict[str, tuple[str, bytearray]] = {}
        try:
            call = self._export(
                request, metadata=self._credentials.metadata(user_id), timeout=CALL_TIMEOUT_SECONDS
            )
            async for chunk in call:
                _, data = entries.setdefault(chunk.entry_path, (chunk.content_type, bytearray()))
                data.extend(chunk.data)
        except grpc.aio.AioRpcError as error:
            raise _failure(self.name, error) from None
        return [
            ArchiveEntry(path, content_type, bytes(data)) for path, (content_type, data) in entries.items()
        ]

    async def erase(self, user_id: uuid.UUID, job_name: str) -> int:
        """Erase and report how many items went."""
        request = self._messages.EraseUserDataRequest(user=f"users/{user_id}", erasure_job=job_name)
        try:
            response = await self._erase(
                request, metadata=self._credentials.metadata(user_id), timeout=CALL_TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError as error:
            raise _failure(self.name, error) from None
        return int(response.erased_item_count)


def _failure(name: str, error: grpc.aio.AioRpcError) -> ServiceCallError:
    code = error.code()
    return ServiceCallError(code.value[0], f"{name}: {code.name}: {error.details() or ''}".rstrip(": "))


class LocalUserDataClient:
    """Identity's own part, called in-process."""

    def __init__(
        self,
        export: Callable[[uuid.UUID], Awaitable[list[ArchiveEntry]]],
        erase: Callable[[uuid.UUID], Awaitable[int]],
    ) -> None:
        self.name = "identity"
        self._export = export
        self._erase = erase

    async def export(self, user_id: uuid.UUID, job_name: str) -> list[ArchiveEntry]:  # noqa: ARG002 - the protocol's
        """Identity's entries."""
        return await self._export(user_id)

    async def erase(self, user_id: uuid.UUID, job_name: str) -> int:  # noqa: ARG002 - the protocol's
        """Erase identity's data of the user."""
        return await self._erase(user_id)
