"""vitalis.identity.v1.ShareGrantService and ShareGrantInternalService."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from vitalis.identity.v1 import (
    share_grant_internal_service_pb2,
    share_grant_internal_service_pb2_grpc,
    share_grant_pb2,
    share_grant_service_pb2,
    share_grant_service_pb2_grpc,
)
from vitalis_identity.api.context import Context
from vitalis_identity.api.convert import timestamp
from vitalis_identity.api.messages import SCOPES, SCOPES_FROM_PROTO, enum_names, grant_to_proto
from vitalis_identity.api.names import any_user, child_uuid, own_parent, split_child, split_user
from vitalis_identity.domain.filters import parse_filter
from vitalis_identity.listing import EQUALITY, ORDERED, FilterField, cursor_of, enum_value, parse_time
from vitalis_identity.paging import Pager
from vitalis_identity.sharing import Sharing, grant_not_found
from vitalis_identity.store_records import GRANT_STATE_SQL
from vitalis_runtime.auth import current_principal
from vitalis_runtime.errors import InvalidArgument

_SCOPE_NAMES = {k: v.value for k, v in enum_names(SCOPES, share_grant_pb2.ShareScope).items()}
_STATES = {
    "SHARE_GRANT_STATE_ACTIVE": "active",
    "SHARE_GRANT_STATE_EXPIRED": "expired",
    "SHARE_GRANT_STATE_REVOKED": "revoked",
}


def _user_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(split_user(value, field="filter"))
    except ValueError:
        raise InvalidArgument.for_field(
            "filter", f"{value!r} is not a user name", reason="INVALID_FILTER"
        ) from None


def _fields(party: str, column: str) -> dict[str, FilterField]:
    return {
        "state": FilterField(GRANT_STATE_SQL, EQUALITY, enum_value(_STATES, "state")),
        party: FilterField(column, EQUALITY, _user_uuid),
        "scopes": FilterField("scopes", frozenset({":"}), enum_value(_SCOPE_NAMES, "scopes"), array=True),
        "expire_time": FilterField("expire_time", ORDERED, parse_time),
    }


GIVEN_FIELDS = _fields("grantee", "grantee_id")
RECEIVED_FIELDS = _fields("owner", "user_id")


class ShareGrantServicer(share_grant_service_pb2_grpc.ShareGrantServiceServicer):
    """Grants the caller gave or received."""

    def __init__(self, sharing: Sharing, pager: Pager) -> None:
        self._sharing = sharing
        self._pager = pager

    async def CreateShareGrant(
        self, request: share_grant_service_pb2.CreateShareGrantRequest, context: Context
    ) -> share_grant_pb2.ShareGrant:
        """Grant read access to chosen scopes until a time."""
        owner_id = own_parent(request.parent)
        grant = request.share_grant
        grantee_id = (
            any_user(split_user(grant.grantee, field="share_grant.grantee"), field="share_grant.grantee")
            if (grant.grantee)
            else None
        )
        scopes = []
        for scope in grant.scopes:
            if scope not in SCOPES_FROM_PROTO:
                raise InvalidArgument.for_field("share_grant.scopes", f"unknown scope {scope}")
            scopes.append(SCOPES_FROM_PROTO[scope])
        created = await self._sharing.create(
            owner_id,
            grantee_id=grantee_id,
            grantee_email=grant.grantee_email,
            scopes=scopes,
            expire_time=grant.expire_time.ToDatetime(tzinfo=UTC) if grant.HasField("expire_time") else None,
            note=grant.note,
            request_id=request.request_id or None,
        )
        return grant_to_proto(created, now=datetime.now(UTC))

    async def GetShareGrant(
        self, request: share_grant_service_pb2.GetShareGrantRequest, context: Context
    ) -> share_grant_pb2.ShareGrant:
        """A grant, to its owner or grantee."""
        owner, raw = split_child(request.name, "shareGrants", field="name")
        grant = await self._sharing.get(
            current_principal().user_id,
            any_user(owner, field="name"),
            child_uuid(raw, name=request.name),
        )
        return grant_to_proto(grant, now=datetime.now(UTC))

    async def ListShareGrants(
        self, request: share_grant_service_pb2.ListShareGrantsRequest, context: Context
    ) -> share_grant_service_pb2.ListShareGrantsResponse:
        """Grants the caller gave, newest first."""
        grants, token = await self._list(request.parent, "parent", request, received=False)
        return share_grant_service_pb2.ListShareGrantsResponse(share_grants=grants, next_page_token=token)

    async def ListReceivedShareGrants(
        self, request: share_grant_service_pb2.ListReceivedShareGrantsRequest, context: Context
    ) -> share_grant_service_pb2.ListReceivedShareGrantsResponse:
        """Grants the caller received, newest first."""
        grants, token = await self._list(request.grantee, "grantee", request, received=True)
        return share_grant_service_pb2.ListReceivedShareGrantsResponse(
            share_grants=grants, next_page_token=token
        )

    async def _list(
        self,
        parent: str,
        field: str,
        request: share_grant_service_pb2.ListShareGrantsRequest
        | share_grant_service_pb2.ListReceivedShareGrantsRequest,
        *,
        received: bool,
    ) -> tuple[list[share_grant_pb2.ShareGrant], str]:
        caller = own_parent(parent, field=field)
        fields = RECEIVED_FIELDS if received else GIVEN_FIELDS
        comparisons = parse_filter(request.filter, {k: v.operators for k, v in fields.items()})
        fingerprint = {"caller": str(caller), "received": received, "filter": request.filter}
        size, cursor = self._pager.start(request.page_size, request.page_token, fingerprint)
        rows = await self._sharing.list_page(
            caller, received=received, comparisons=comparisons, fields=fields, cursor=cursor, limit=size
        )
        page, token = self._pager.finish(
            rows, size, fingerprint, lambda g: cursor_of(g.create_time, g.grant_id)
        )
        now = datetime.now(UTC)
        return [grant_to_proto(g, now=now) for g in page], token

    async def RevokeShareGrant(
        self, request: share_grant_service_pb2.RevokeShareGrantRequest, context: Context
    ) -> share_grant_pb2.ShareGrant:
        """Revoke a grant the caller gave."""
        owner, raw = split_child(request.name, "shareGrants", field="name")
        owner_id = any_user(owner, field="name")
        if owner_id != current_principal().user_id:
            raise grant_not_found(request.name)
        grant = await self._sharing.revoke(owner_id, child_uuid(raw, name=request.name), etag=request.etag)
        return grant_to_proto(grant, now=datetime.now(UTC))


def _strict_user(name: str, field: str) -> uuid.UUID:
    ident = split_user(name, field=field)
    try:
        return uuid.UUID(ident)
    except ValueError:
        raise InvalidArgument.for_field(
            field, f"{name!r} must name a user by UUID (never users/me)"
        ) from None


class ShareGrantInternalServicer(share_grant_internal_service_pb2_grpc.ShareGrantInternalServiceServicer):
    """Lets every service check a grant on each read of another user's data."""

    def __init__(self, sharing: Sharing) -> None:
        self._sharing = sharing

    async def CheckShareGrant(
        self, request: share_grant_internal_service_pb2.CheckShareGrantRequest, context: Context
    ) -> share_grant_internal_service_pb2.CheckShareGrantResponse:
        """Whether ``grantee`` may read ``owner``'s data in ``scope`` now."""
        owner = _strict_user(request.owner, "owner")
        grantee = _strict_user(request.grantee, "grantee")
        if request.scope not in SCOPES_FROM_PROTO:
            raise InvalidArgument.for_field("scope", "is required")
        if owner == grantee:
            return share_grant_internal_service_pb2.CheckShareGrantResponse(allowed=True)
        grant = await self._sharing.check(owner, grantee, SCOPES_FROM_PROTO[request.scope])
        if grant is None:
            return share_grant_internal_service_pb2.CheckShareGrantResponse(allowed=False)
        return share_grant_internal_service_pb2.CheckShareGrantResponse(
            allowed=True, share_grant=grant.name, expire_time=timestamp(grant.expire_time)
        )
