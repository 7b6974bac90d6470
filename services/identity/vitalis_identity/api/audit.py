"""vitalis.identity.v1.AuditLogService and AuditLogInternalService."""

from __future__ import annotations

import uuid
from datetime import UTC

from vitalis.identity.v1 import (
    audit_log_internal_service_pb2,
    audit_log_internal_service_pb2_grpc,
    audit_log_pb2,
    audit_log_service_pb2,
    audit_log_service_pb2_grpc,
)
from vitalis_identity.api.context import Context
from vitalis_identity.api.messages import (
    AUDIT_ACTIONS,
    AUDIT_ACTIONS_FROM_PROTO,
    audit_entry_to_proto,
    enum_names,
)
from vitalis_identity.api.names import own_parent
from vitalis_identity.audit import MAX_BATCH, AuditTrail
from vitalis_identity.domain.audit import AuditEntry, new_entry_id
from vitalis_identity.domain.filters import parse_filter
from vitalis_identity.listing import EQUALITY, ORDERED, FilterField, cursor_of, enum_value, parse_time
from vitalis_identity.paging import Pager
from vitalis_runtime.auth import current_principal
from vitalis_runtime.errors import FieldViolation, InvalidArgument

FIELDS = {
    "actor": FilterField("actor", EQUALITY),
    "action": FilterField(
        "action",
        EQUALITY,
        enum_value(
            {k: v.value for k, v in enum_names(AUDIT_ACTIONS, audit_log_pb2.AuditAction).items()}, "action"
        ),
    ),
    "service": FilterField("service", EQUALITY),
    "resource": FilterField("resource", EQUALITY),
    "occur_time": FilterField("occur_time", ORDERED, parse_time),
}


class AuditLogServicer(audit_log_service_pb2_grpc.AuditLogServiceServicer):
    """Who read or changed the caller's data."""

    def __init__(self, audit: AuditTrail, pager: Pager) -> None:
        self._audit = audit
        self._pager = pager

    async def ListAuditLogEntries(
        self, request: audit_log_service_pb2.ListAuditLogEntriesRequest, context: Context
    ) -> audit_log_service_pb2.ListAuditLogEntriesResponse:
        """A page of entries about the caller's data."""
        user_id = own_parent(request.parent)
        order = request.order_by.strip() or "occur_time desc"
        if order not in {"occur_time desc", "occur_time", "occur_time asc"}:
            raise InvalidArgument.for_field("order_by", "must be 'occur_time desc' or 'occur_time'")
        descending = order == "occur_time desc"
        filter_text = request.filter.replace('"users/me"', f'"users/{user_id}"')
        comparisons = parse_filter(filter_text, {k: v.operators for k, v in FIELDS.items()})
        fingerprint = {"parent": str(user_id), "filter": request.filter, "order_by": order}
        size, cursor = self._pager.start(request.page_size, request.page_token, fingerprint)
        rows = await self._audit.list_page(user_id, comparisons, FIELDS, cursor, size, descending=descending)
        page, token = self._pager.finish(
            rows, size, fingerprint, lambda e: cursor_of(e.occur_time, e.entry_id)
        )
        return audit_log_service_pb2.ListAuditLogEntriesResponse(
            audit_log_entries=[audit_entry_to_proto(e) for e in page], next_page_token=token
        )


def entry_from_proto(index: int, message: audit_log_pb2.AuditLogEntry) -> AuditEntry:
    """A domain entry from a writer's message, naming the entry in any violation."""
    prefix = f"entries[{index}]"
    violations = [
        FieldViolation(f"{prefix}.{name}", "is required")
        for name in ("user", "actor", "service", "method", "resource", "insert_id")
        if not getattr(message, name)
    ]
    if not message.HasField("occur_time"):
        violations.append(FieldViolation(f"{prefix}.occur_time", "is required"))
    if message.action not in AUDIT_ACTIONS_FROM_PROTO:
        violations.append(FieldViolation(f"{prefix}.action", "is required"))
    user_id: uuid.UUID | None = None
    prefix_ok, _, ident = message.user.partition("/")
    try:
        user_id = uuid.UUID(ident) if prefix_ok == "users" else None
    except ValueError:
        user_id = None
    if message.user and user_id is None:
        violations.append(FieldViolation(f"{prefix}.user", "must be users/{uuid}"))
    if violations:
        raise InvalidArgument(f"{prefix} is incomplete or malformed", violations=violations)
    assert user_id is not None
    occur_time = message.occur_time.ToDatetime(tzinfo=UTC)
    return AuditEntry(
        user_id=user_id,
        occur_time=occur_time,
        actor=message.actor,
        action=AUDIT_ACTIONS_FROM_PROTO[message.action],
        service=message.service,
        method=message.method,
        resource=message.resource,
        insert_id=message.insert_id,
        share_grant=message.share_grant,
        client_ip=message.client_ip,
        user_agent=message.user_agent,
        request_id=message.request_id,
        trace_id=message.trace_id,
        status_code=message.status_code,
        entry_id=new_entry_id(occur_time),
    )


class AuditLogInternalServicer(audit_log_internal_service_pb2_grpc.AuditLogInternalServiceServicer):
    """Every service's writes to the one audit log."""

    def __init__(self, audit: AuditTrail) -> None:
        self._audit = audit

    async def WriteAuditLogEntries(
        self, request: audit_log_internal_service_pb2.WriteAuditLogEntriesRequest, context: Context
    ) -> audit_log_internal_service_pb2.WriteAuditLogEntriesResponse:
        """Append a batch atomically, skipping insert ids already recorded."""
        current_principal()
        if not request.entries:
            raise InvalidArgument.for_field("entries", "name at least one entry")
        if len(request.entries) > MAX_BATCH:
            raise InvalidArgument.for_field("entries", f"at most {MAX_BATCH} entries per call")
        entries = [entry_from_proto(i, m) for i, m in enumerate(request.entries)]
        written, duplicates = await self._audit.write(entries)
        return audit_log_internal_service_pb2.WriteAuditLogEntriesResponse(
            written_count=written, duplicate_count=duplicates
        )
