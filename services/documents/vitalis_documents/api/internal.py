"""vitalis.documents.v1.DocumentInternalService and UserDataService: for other services only."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc
from google.api import httpbody_pb2  # type: ignore[import-untyped]

from vitalis.documents.v1 import (
    document_internal_service_pb2,
    document_internal_service_pb2_grpc,
    user_data_service_pb2,
    user_data_service_pb2_grpc,
)
from vitalis_documents.api.names import parse_document, parse_user, require_owner
from vitalis_documents.library import DocumentLibrary
from vitalis_documents.user_data import UserData
from vitalis_runtime.auth import current_principal

logger = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[object, object]


class DocumentInternalServicer(document_internal_service_pb2_grpc.DocumentInternalServiceServicer):
    """Another service reads a document's bytes on the owner's behalf."""

    def __init__(self, library: DocumentLibrary) -> None:
        self._library = library

    async def ReadDocumentContent(
        self, request: document_internal_service_pb2.ReadDocumentContentRequest, context: Context
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        """Stream the bytes, recording which service read them."""
        ref = parse_document(request.name)
        require_owner(ref.user_id, request.name)
        document, content = await self._library.open_content(ref.user_id, ref.document_id)
        logger.info(
            "document content read by a service",
            extra={
                "audit": True,
                "document": document.name,
                "actor": current_principal().service or "unknown",
            },
        )
        async for chunk in content:
            yield httpbody_pb2.HttpBody(content_type=document.content_type, data=chunk)


class UserDataServicer(user_data_service_pb2_grpc.UserDataServiceServicer):
    """Export and erasure of everything documents holds about a user."""

    def __init__(self, user_data: UserData) -> None:
        self._user_data = user_data

    async def ExportUserData(
        self, request: user_data_service_pb2.ExportUserDataRequest, context: Context
    ) -> AsyncIterator[user_data_service_pb2.ExportUserDataResponse]:
        """Stream the archive entries."""
        user_id = parse_user(request.user, "user", allow_me=False)
        require_owner(user_id, request.user)
        logger.info(
            "user data exported", extra={"audit": True, "user": request.user, "job": request.export_job}
        )
        async for entry_path, content_type, data in self._user_data.export(user_id):
            yield user_data_service_pb2.ExportUserDataResponse(
                entry_path=entry_path, content_type=content_type, data=data
            )

    async def EraseUserData(
        self, request: user_data_service_pb2.EraseUserDataRequest, context: Context
    ) -> user_data_service_pb2.EraseUserDataResponse:
        """Erase everything."""
        user_id = parse_user(request.user, "user", allow_me=False)
        require_owner(user_id, request.user)
        erased = await self._user_data.erase(user_id)
        logger.info(
            "user data erased", extra={"audit": True, "user": request.user, "job": request.erasure_job}
        )
        return user_data_service_pb2.EraseUserDataResponse(erased_item_count=erased)
