"""vitalis.identity.v1.ConsentService."""

from __future__ import annotations

from vitalis.identity.v1 import consent_pb2, consent_service_pb2, consent_service_pb2_grpc
from vitalis_identity.api.context import Context, client_ip, user_agent
from vitalis_identity.api.messages import (
    CONSENT_TYPES,
    CONSENT_TYPES_FROM_PROTO,
    consent_event_to_proto,
    consent_to_proto,
    enum_names,
)
from vitalis_identity.api.names import own_child, own_parent
from vitalis_identity.consents import Consents
from vitalis_identity.domain.consents import ConsentEvent, consent_type_of
from vitalis_identity.domain.filters import parse_filter
from vitalis_identity.listing import EQUALITY, ORDERED, FilterField, cursor_of, enum_value, parse_time
from vitalis_identity.paging import Pager
from vitalis_runtime.errors import InvalidArgument

EVENT_FIELDS = {
    "action": FilterField(
        "action",
        EQUALITY,
        enum_value({"CONSENT_ACTION_GRANT": "grant", "CONSENT_ACTION_REVOKE": "revoke"}, "action"),
    ),
    "type": FilterField(
        "consent_type",
        EQUALITY,
        enum_value(
            {k: v.value for k, v in enum_names(CONSENT_TYPES, consent_pb2.ConsentType).items()}, "type"
        ),
    ),
    "occur_time": FilterField("occur_time", ORDERED, parse_time),
}


class ConsentServicer(consent_service_pb2_grpc.ConsentServiceServicer):
    """The caller's consents and their history."""

    def __init__(self, consents: Consents, pager: Pager) -> None:
        self._consents = consents
        self._pager = pager

    async def ListConsents(
        self, request: consent_service_pb2.ListConsentsRequest, context: Context
    ) -> consent_service_pb2.ListConsentsResponse:
        """A page of current consents."""
        user_id = own_parent(request.parent)
        fingerprint = {"parent": str(user_id), "method": "ListConsents"}
        size, cursor = self._pager.start(request.page_size, request.page_token, fingerprint)
        offset = int(cursor.get("offset", 0))
        rows = await self._consents.list_page(user_id, offset, size)
        page, token = self._pager.finish(rows, size, fingerprint, lambda _: {"offset": offset + size})
        return consent_service_pb2.ListConsentsResponse(
            consents=[consent_to_proto(c) for c in page], next_page_token=token
        )

    async def GetConsent(
        self, request: consent_service_pb2.GetConsentRequest, context: Context
    ) -> consent_pb2.Consent:
        """The current consent of one type."""
        user_id, raw = own_child(request.name, "consents")
        return consent_to_proto(await self._consents.get(user_id, consent_type_of(raw)))

    async def GrantConsent(
        self, request: consent_service_pb2.GrantConsentRequest, context: Context
    ) -> consent_pb2.Consent:
        """Grant consent of one type at one version."""
        user_id = own_parent(request.parent)
        if request.type not in CONSENT_TYPES_FROM_PROTO:
            raise InvalidArgument.for_field("type", "is required")
        consent = await self._consents.grant(
            user_id,
            CONSENT_TYPES_FROM_PROTO[request.type],
            request.version,
            request_id=request.request_id or None,
            user_agent=user_agent(context),
            client_ip=client_ip(context),
        )
        return consent_to_proto(consent)

    async def RevokeConsent(
        self, request: consent_service_pb2.RevokeConsentRequest, context: Context
    ) -> consent_pb2.Consent:
        """Withdraw a consent."""
        user_id, raw = own_child(request.name, "consents")
        consent = await self._consents.revoke(
            user_id,
            consent_type_of(raw),
            etag=request.etag,
            user_agent=user_agent(context),
            client_ip=client_ip(context),
        )
        return consent_to_proto(consent)

    async def ListConsentEvents(
        self, request: consent_service_pb2.ListConsentEventsRequest, context: Context
    ) -> consent_service_pb2.ListConsentEventsResponse:
        """A page of consent history, newest first."""
        user_id, raw = own_child(request.parent, "consents", field="parent")
        consent_type = None if raw == "-" else consent_type_of(raw, field="parent")
        comparisons = parse_filter(request.filter, {k: v.operators for k, v in EVENT_FIELDS.items()})
        fingerprint = {
            "parent": request.parent,
            "user": str(user_id),
            "filter": request.filter,
            "method": "events",
        }
        size, cursor = self._pager.start(request.page_size, request.page_token, fingerprint)
        rows = await self._consents.list_events(
            user_id, consent_type, comparisons=comparisons, fields=EVENT_FIELDS, cursor=cursor, limit=size
        )
        page: list[ConsentEvent]
        page, token = self._pager.finish(
            rows, size, fingerprint, lambda e: cursor_of(e.occur_time, e.event_id)
        )
        return consent_service_pb2.ListConsentEventsResponse(
            consent_events=[consent_event_to_proto(e) for e in page], next_page_token=token
        )
