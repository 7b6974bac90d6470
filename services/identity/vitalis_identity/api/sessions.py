"""vitalis.identity.v1.SessionService."""

from __future__ import annotations

from datetime import UTC, datetime

from vitalis.identity.v1 import session_pb2, session_service_pb2, session_service_pb2_grpc
from vitalis_identity.api.context import Context
from vitalis_identity.api.messages import session_to_proto
from vitalis_identity.api.names import child_uuid, own_child, own_parent
from vitalis_identity.domain.filters import parse_filter
from vitalis_identity.listing import EQUALITY, FilterField, cursor_of, enum_value
from vitalis_identity.paging import Pager
from vitalis_identity.sessions import Sessions
from vitalis_runtime.auth import current_principal

FIELDS = {
    "state": FilterField(
        "CASE WHEN revoke_time IS NOT NULL THEN 'revoked' WHEN expire_time <= now() THEN 'expired' "
        "ELSE 'active' END",
        EQUALITY,
        enum_value(
            {
                "SESSION_STATE_ACTIVE": "active",
                "SESSION_STATE_EXPIRED": "expired",
                "SESSION_STATE_REVOKED": "revoked",
            },
            "state",
        ),
    ),
    "auth_method": FilterField(
        "auth_method",
        EQUALITY,
        enum_value(
            {"AUTH_METHOD_PASSWORD": "password", "AUTH_METHOD_EXTERNAL_PROVIDER": "external"}, "auth_method"
        ),
    ),
}


class SessionServicer(session_service_pb2_grpc.SessionServiceServicer):
    """The caller's sessions."""

    def __init__(self, sessions: Sessions, pager: Pager) -> None:
        self._sessions = sessions
        self._pager = pager

    async def ListSessions(
        self, request: session_service_pb2.ListSessionsRequest, context: Context
    ) -> session_service_pb2.ListSessionsResponse:
        """A page of sessions, most recently refreshed first."""
        user_id = own_parent(request.parent)
        comparisons = parse_filter(request.filter, {k: v.operators for k, v in FIELDS.items()})
        fingerprint = {"parent": str(user_id), "filter": request.filter, "method": "ListSessions"}
        size, cursor = self._pager.start(request.page_size, request.page_token, fingerprint)
        rows = await self._sessions.list_page(user_id, comparisons, FIELDS, cursor, size)
        page, token = self._pager.finish(
            rows, size, fingerprint, lambda s: cursor_of(s.last_refresh_time, s.session_id)
        )
        now = datetime.now(UTC)
        current = current_principal().session_id
        return session_service_pb2.ListSessionsResponse(
            sessions=[session_to_proto(s, now=now, current=current) for s in page], next_page_token=token
        )

    async def GetSession(
        self, request: session_service_pb2.GetSessionRequest, context: Context
    ) -> session_pb2.Session:
        """One of the caller's sessions."""
        user_id, raw = own_child(request.name, "sessions")
        session = await self._sessions.get(user_id, child_uuid(raw, name=request.name))
        return session_to_proto(session, now=datetime.now(UTC), current=current_principal().session_id)

    async def RevokeSession(
        self, request: session_service_pb2.RevokeSessionRequest, context: Context
    ) -> session_pb2.Session:
        """Revoke one of the caller's sessions."""
        user_id, raw = own_child(request.name, "sessions")
        session = await self._sessions.revoke(user_id, child_uuid(raw, name=request.name))
        return session_to_proto(session, now=datetime.now(UTC), current=current_principal().session_id)
