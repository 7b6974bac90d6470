"""Conversions between identity's domain objects and the protobuf messages of its newer resources."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import time
from typing import Any

from google.rpc import status_pb2  # type: ignore[import-untyped]
from google.type import dayofweek_pb2, timeofday_pb2  # type: ignore[import-untyped]

from vitalis.identity.v1 import (
    account_pb2,
    audit_log_pb2,
    consent_pb2,
    data_rights_pb2,
    preferences_pb2,
    session_pb2,
    share_grant_pb2,
)
from vitalis_identity.api.convert import timestamp
from vitalis_identity.domain.accounts import Account, AccountTier
from vitalis_identity.domain.audit import AuditAction, AuditEntry
from vitalis_identity.domain.consents import Consent, ConsentEvent, ConsentType
from vitalis_identity.domain.grants import GrantState, ShareGrant, ShareScope
from vitalis_identity.domain.jobs import DataRightsJob, ErasureTrigger, JobError, JobState, ServiceProgress
from vitalis_identity.domain.preferences import Preferences
from vitalis_identity.domain.sessions import Session
from vitalis_runtime.errors import InvalidArgument

TIERS = {
    AccountTier.FREE: account_pb2.ACCOUNT_TIER_FREE,
    AccountTier.PREMIUM: account_pb2.ACCOUNT_TIER_PREMIUM,
    AccountTier.PROFESSIONAL: account_pb2.ACCOUNT_TIER_PROFESSIONAL,
}
TIERS_FROM_PROTO = {v: k for k, v in TIERS.items()}
CONSENT_TYPES = {t: consent_pb2.ConsentType.Value(f"CONSENT_TYPE_{t.name}") for t in ConsentType}
CONSENT_TYPES_FROM_PROTO = {v: k for k, v in CONSENT_TYPES.items()}
SCOPES = {s: share_grant_pb2.ShareScope.Value(f"SHARE_SCOPE_{s.name}") for s in ShareScope}
SCOPES_FROM_PROTO = {v: k for k, v in SCOPES.items()}
GRANT_STATES = {s: share_grant_pb2.ShareGrantState.Value(f"SHARE_GRANT_STATE_{s.name}") for s in GrantState}
JOB_STATES = {s: data_rights_pb2.JobState.Value(f"JOB_STATE_{s.name}") for s in JobState}
TRIGGERS = {t: data_rights_pb2.ErasureTrigger.Value(f"ERASURE_TRIGGER_{t.name}") for t in ErasureTrigger}
AUDIT_ACTIONS = {a: audit_log_pb2.AuditAction.Value(f"AUDIT_ACTION_{a.name}") for a in AuditAction}
AUDIT_ACTIONS_FROM_PROTO = {v: k for k, v in AUDIT_ACTIONS.items()}
SESSION_STATES = {
    "active": session_pb2.SESSION_STATE_ACTIVE,
    "expired": session_pb2.SESSION_STATE_EXPIRED,
    "revoked": session_pb2.SESSION_STATE_REVOKED,
}
AUTH_METHODS = {
    "password": session_pb2.AUTH_METHOD_PASSWORD,
    "external": session_pb2.AUTH_METHOD_EXTERNAL_PROVIDER,
}
REVOKE_REASONS = {
    "sign_out": session_pb2.SESSION_REVOKE_REASON_SIGN_OUT,
    "user_revoked": session_pb2.SESSION_REVOKE_REASON_USER_REVOKED,
    "refresh_token_reuse": session_pb2.SESSION_REVOKE_REASON_REFRESH_TOKEN_REUSE,
    "password_changed": session_pb2.SESSION_REVOKE_REASON_PASSWORD_CHANGED,
    "user_deleted": session_pb2.SESSION_REVOKE_REASON_USER_DELETED,
}


def account_to_proto(account: Account) -> account_pb2.Account:
    """The public representation of an account."""
    message = account_pb2.Account(
        name=account.name,
        display_name=account.display_name,
        tier=TIERS[account.tier],
        owner=f"users/{account.owner_user_id}" if account.owner_user_id else "",
        billing_email=account.billing_email,
        state=account_pb2.ACCOUNT_STATE_DELETED if account.delete_time else account_pb2.ACCOUNT_STATE_ACTIVE,
        user_count=account.user_count,
        create_time=timestamp(account.create_time),
        update_time=timestamp(account.update_time),
        etag=account.etag,
    )
    if account.delete_time is not None:
        message.delete_time.CopyFrom(timestamp(account.delete_time))
    if account.expire_time is not None:
        message.expire_time.CopyFrom(timestamp(account.expire_time))
    return message


def _time_of_day(value: time | None) -> timeofday_pb2.TimeOfDay | None:
    return timeofday_pb2.TimeOfDay(hours=value.hour, minutes=value.minute) if value else None


def _time(message: Any, field: str) -> time | None:
    if not message.HasField(field):
        return None
    value = getattr(message, field)
    try:
        return time(value.hours, value.minutes, value.seconds)
    except ValueError:
        raise InvalidArgument.for_field(
            f"preferences.notifications.{field}", "is not a valid time of day"
        ) from None


def preferences_to_proto(preferences: Preferences) -> preferences_pb2.Preferences:
    """The public representation of preferences."""
    notifications = preferences_pb2.NotificationPreferences(
        alert_push_enabled=preferences.alert_push_enabled,
        alert_email_enabled=preferences.alert_email_enabled,
        weekly_summary_email_enabled=preferences.weekly_summary_email_enabled,
    )
    if (start := _time_of_day(preferences.quiet_hours_start)) is not None:
        notifications.quiet_hours_start.CopyFrom(start)
    if (end := _time_of_day(preferences.quiet_hours_end)) is not None:
        notifications.quiet_hours_end.CopyFrom(end)
    return preferences_pb2.Preferences(
        name=preferences.name,
        language_code=preferences.language_code,
        first_day_of_week=dayofweek_pb2.DayOfWeek.Value(
            ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"][
                preferences.first_day_of_week - 1
            ]
        ),
        unit_overrides=dict(preferences.unit_overrides),
        notifications=notifications,
        update_time=timestamp(preferences.update_time),
        etag=preferences.etag,
    )


def preferences_changes(message: preferences_pb2.Preferences) -> dict[str, Any]:
    """Domain values of every mutable field of a Preferences message."""
    notifications = message.notifications
    return {
        "language_code": message.language_code,
        "first_day_of_week": int(message.first_day_of_week),
        "unit_overrides": dict(message.unit_overrides),
        "alert_push_enabled": notifications.alert_push_enabled,
        "alert_email_enabled": notifications.alert_email_enabled,
        "weekly_summary_email_enabled": notifications.weekly_summary_email_enabled,
        "quiet_hours_start": _time(notifications, "quiet_hours_start"),
        "quiet_hours_end": _time(notifications, "quiet_hours_end"),
    }


def populated_preferences_paths(message: preferences_pb2.Preferences) -> list[str]:
    """The update mask implied by the fields set (AIP-134)."""
    paths = [
        f.name
        for f, _ in message.ListFields()
        if f.name in {"language_code", "first_day_of_week", "unit_overrides"}
    ]
    if message.HasField("notifications"):
        paths += [f"notifications.{f.name}" for f, _ in message.notifications.ListFields()]
    return paths


def session_to_proto(session: Session, *, now: Any, current: str | None) -> session_pb2.Session:
    """The public representation of a session."""
    message = session_pb2.Session(
        name=session.name,
        state=SESSION_STATES[session.state(now)],
        auth_method=AUTH_METHODS.get(session.auth_method, session_pb2.AUTH_METHOD_PASSWORD),
        user_agent=session.user_agent,
        client_ip=session.client_ip,
        create_time=timestamp(session.create_time),
        last_refresh_time=timestamp(session.last_refresh_time),
        expire_time=timestamp(session.expire_time),
        current=current == str(session.session_id),
    )
    if session.revoke_time is not None:
        message.revoke_time.CopyFrom(timestamp(session.revoke_time))
        message.revoke_reason = REVOKE_REASONS.get(
            session.revoke_reason or "", session_pb2.SESSION_REVOKE_REASON_UNSPECIFIED
        )
    return message


def consent_to_proto(consent: Consent) -> consent_pb2.Consent:
    """The public representation of a consent."""
    message = consent_pb2.Consent(
        name=consent.name,
        type=CONSENT_TYPES[consent.type],
        state=consent_pb2.CONSENT_STATE_GRANTED if consent.granted else consent_pb2.CONSENT_STATE_REVOKED,
        version=consent.version,
        grant_time=timestamp(consent.grant_time),
        update_time=timestamp(consent.update_time),
        etag=consent.etag,
    )
    if consent.revoke_time is not None and not consent.granted:
        message.revoke_time.CopyFrom(timestamp(consent.revoke_time))
    return message


def consent_event_to_proto(event: ConsentEvent) -> consent_pb2.ConsentEvent:
    """The public representation of a consent event."""
    return consent_pb2.ConsentEvent(
        name=event.name,
        action=consent_pb2.CONSENT_ACTION_GRANT
        if event.action == "grant"
        else consent_pb2.CONSENT_ACTION_REVOKE,
        type=CONSENT_TYPES[event.type],
        version=event.version,
        occur_time=timestamp(event.occur_time),
        user_agent=event.user_agent,
        client_ip=event.client_ip,
    )


def grant_to_proto(grant: ShareGrant, *, now: Any) -> share_grant_pb2.ShareGrant:
    """The public representation of a share grant."""
    message = share_grant_pb2.ShareGrant(
        name=grant.name,
        owner=f"users/{grant.owner_id}",
        grantee=f"users/{grant.grantee_id}",
        grantee_email=grant.grantee_email,
        grantee_display_name=grant.grantee_display_name,
        owner_display_name=grant.owner_display_name,
        scopes=[SCOPES[s] for s in grant.scopes],
        expire_time=timestamp(grant.expire_time),
        note=grant.note,
        state=GRANT_STATES[grant.state(now)],
        create_time=timestamp(grant.create_time),
        etag=grant.etag,
    )
    if grant.revoke_time is not None:
        message.revoke_time.CopyFrom(timestamp(grant.revoke_time))
    return message


def _status(error: JobError | None) -> status_pb2.Status | None:
    return status_pb2.Status(code=error.code, message=error.message) if error else None


def _progress(progress: ServiceProgress) -> data_rights_pb2.ServiceJobProgress:
    message = data_rights_pb2.ServiceJobProgress(
        service=progress.service,
        state=JOB_STATES[progress.state],
        item_count=progress.item_count,
        byte_count=progress.byte_count,
    )
    if (status := _status(progress.error)) is not None:
        message.error.CopyFrom(status)
    return message


def _job_times(job: DataRightsJob, message: Any) -> None:
    message.create_time.CopyFrom(timestamp(job.create_time))
    if job.start_time is not None:
        message.start_time.CopyFrom(timestamp(job.start_time))
    if job.end_time is not None:
        message.end_time.CopyFrom(timestamp(job.end_time))
    if (status := _status(job.error)) is not None and job.state is JobState.FAILED:
        message.error.CopyFrom(status)


def export_job_to_proto(job: DataRightsJob) -> data_rights_pb2.ExportJob:
    """The public representation of an export job."""
    message = data_rights_pb2.ExportJob(
        name=job.name,
        state=JOB_STATES[job.state],
        services=[_progress(p) for p in job.services],
        archive_content_type="application/zip",
        archive_size_bytes=job.archive_size_bytes,
        archive_sha256=job.archive_sha256,
    )
    _job_times(job, message)
    if job.expire_time is not None:
        message.expire_time.CopyFrom(timestamp(job.expire_time))
    return message


def erasure_job_to_proto(job: DataRightsJob) -> data_rights_pb2.ErasureJob:
    """The public representation of an erasure job."""
    assert job.trigger is not None
    message = data_rights_pb2.ErasureJob(
        name=job.name,
        state=JOB_STATES[job.state],
        trigger=TRIGGERS[job.trigger],
        services=[_progress(p) for p in job.services],
    )
    _job_times(job, message)
    return message


def audit_entry_to_proto(entry: AuditEntry) -> audit_log_pb2.AuditLogEntry:
    """The public representation of an audit log entry."""
    return audit_log_pb2.AuditLogEntry(
        name=entry.name,
        user=f"users/{entry.user_id}",
        occur_time=timestamp(entry.occur_time),
        actor=entry.actor,
        action=AUDIT_ACTIONS[entry.action],
        service=entry.service,
        method=entry.method,
        resource=entry.resource,
        share_grant=entry.share_grant,
        client_ip=entry.client_ip,
        user_agent=entry.user_agent,
        request_id=entry.request_id,
        trace_id=entry.trace_id,
        status_code=entry.status_code,
        insert_id=entry.insert_id,
    )


def enum_names(values: Mapping[Any, int], enum_type: Any) -> dict[str, Any]:
    """Filter values: the proto enum names mapped to the domain values stored."""
    return {enum_type.Name(number): domain for domain, number in values.items()}
