"""Reading a stored document's bytes from the documents service, on behalf of a user."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Protocol

import grpc

from vitalis.documents.v1 import document_internal_service_pb2, document_internal_service_pb2_grpc
from vitalis_runtime.errors import NotFound, Unavailable
from vitalis_runtime.service_auth import ServiceCredentials


class DocumentReader(Protocol):
    """Streams the bytes of a user's stored document."""

    def read(self, user_id: uuid.UUID, document: str) -> AsyncIterator[bytes]:
        """The document's bytes in chunks; NotFound when it does not exist for the user."""
        ...


class _Refusal:
    """An empty stream of bytes that refuses on its first read."""

    def __aiter__(self) -> _Refusal:
        return self

    async def __anext__(self) -> bytes:
        raise Unavailable(
            "importing stored documents is not configured here; upload the file instead",
            reason="DOCUMENT_UNAVAILABLE",
        )


class UnconfiguredDocumentReader:
    """Used when the documents service is not configured: every read is UNAVAILABLE."""

    def read(self, user_id: uuid.UUID, document: str) -> AsyncIterator[bytes]:  # noqa: ARG002
        """Always refuses."""
        return _Refusal()


class RemoteDocumentReader:
    """Calls ``DocumentInternalService.ReadDocumentContent`` with a service token for the user."""

    def __init__(self, channel: grpc.aio.Channel, credentials: ServiceCredentials) -> None:
        self._stub = document_internal_service_pb2_grpc.DocumentInternalServiceStub(channel)
        self._credentials = credentials

    async def read(self, user_id: uuid.UUID, document: str) -> AsyncIterator[bytes]:
        """The document's bytes in chunks."""
        call = self._stub.ReadDocumentContent(
            document_internal_service_pb2.ReadDocumentContentRequest(name=document),
            metadata=self._credentials.metadata(user_id),
        )
        try:
            async for body in call:
                yield body.data
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound(
                    f"document {document!r} does not exist", reason="DOCUMENT_NOT_FOUND"
                ) from error
            raise Unavailable(
                "the documents service could not be reached", reason="DOCUMENT_UNAVAILABLE"
            ) from error
