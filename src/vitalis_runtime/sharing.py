"""Share grants on the read path: may this caller read that user's data in this scope?

The owner of a resource always may. Anyone else needs a live share grant from the owner for the
scope, which identity alone knows; every check asks it afresh (no cache), so a revoked or expired
grant stops working at once. A refusal is :class:`NotFound`, never PermissionDenied, so that a
stranger cannot tell another user's resource from one that never existed.
"""

from __future__ import annotations

import uuid
from typing import Protocol

import grpc

from vitalis.identity.v1 import share_grant_internal_service_pb2 as grant_messages
from vitalis.identity.v1 import share_grant_internal_service_pb2_grpc as grant_stubs
from vitalis.identity.v1 import share_grant_pb2
from vitalis_runtime.auth import Principal
from vitalis_runtime.errors import InvalidArgument, NotFound
from vitalis_runtime.service_auth import ServiceCredentials

SCOPES: dict[str, share_grant_pb2.ShareScope.ValueType] = {
    "profile": share_grant_pb2.SHARE_SCOPE_PROFILE,
    "wearables": share_grant_pb2.SHARE_SCOPE_WEARABLES,
    "biomarkers": share_grant_pb2.SHARE_SCOPE_BIOMARKERS,
    "documents": share_grant_pb2.SHARE_SCOPE_DOCUMENTS,
    "insights": share_grant_pb2.SHARE_SCOPE_INSIGHTS,
}


class ShareGrantChecker(Protocol):
    """Answers whether ``grantee_id`` holds a live grant from ``owner_id`` for ``scope``."""

    async def allows(self, *, owner_id: uuid.UUID, grantee_id: uuid.UUID, scope: str) -> bool:
        """True only for a grant that covers the scope and has neither expired nor been revoked."""
        ...


class RemoteShareGrantChecker:
    """Asks identity's ``ShareGrantInternalService.CheckShareGrant`` on every call."""

    def __init__(self, channel: grpc.aio.Channel, credentials: ServiceCredentials) -> None:
        self._stub = grant_stubs.ShareGrantInternalServiceStub(channel)
        self._credentials = credentials

    async def allows(self, *, owner_id: uuid.UUID, grantee_id: uuid.UUID, scope: str) -> bool:
        """Identity's answer; its errors (UNAVAILABLE included) propagate, so failure is closed."""
        request = grant_messages.CheckShareGrantRequest(
            owner=f"users/{owner_id}", grantee=f"users/{grantee_id}", scope=scope_value(scope)
        )
        response = await self._stub.CheckShareGrant(request, metadata=self._credentials.metadata(grantee_id))
        return bool(response.allowed)


def scope_value(scope: str) -> share_grant_pb2.ShareScope.ValueType:
    """The ``ShareScope`` enum value of a scope name."""
    try:
        return SCOPES[scope]
    except KeyError:
        raise InvalidArgument(f"unknown share scope {scope!r}; known: {', '.join(SCOPES)}") from None


async def authorize_read(
    principal: Principal, owner_id: uuid.UUID, scope: str, checker: ShareGrantChecker | None
) -> None:
    """Return when ``principal`` may read ``owner_id``'s data in ``scope``; raise NotFound otherwise."""
    scope_value(scope)
    if principal.user_id == owner_id:
        return
    if checker is not None and await checker.allows(
        owner_id=owner_id, grantee_id=principal.user_id, scope=scope
    ):
        return
    raise NotFound("the requested resource does not exist")
