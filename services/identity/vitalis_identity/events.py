"""The events identity publishes, written to its outbox in the transaction of the change.

Payloads carry resource names and the facts consumers need, never passwords, tokens or e-mail
addresses (see ``protos/vitalis/identity/v1/events.proto``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

import asyncpg
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from vitalis.identity.v1 import (
    account_pb2,
    consent_pb2,
    data_rights_pb2,
    events_pb2,
    session_pb2,
    share_grant_pb2,
    user_pb2,
)
from vitalis_identity.domain.accounts import Account, AccountTier
from vitalis_identity.domain.consents import Consent
from vitalis_identity.domain.grants import ShareGrant
from vitalis_identity.domain.jobs import ErasureTrigger, JobState
from vitalis_identity.domain.users import User
from vitalis_runtime.outbox import add_to_outbox

SCHEMA = "identity"
PRODUCER = "identity"


def _now() -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(UTC))
    return stamp


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


async def publish(conn: asyncpg.Connection, user_id: uuid.UUID | None, message: Message) -> None:
    """Write one event (about ``user_id``, or about no user) to the outbox."""
    await add_to_outbox(conn, schema=SCHEMA, producer=PRODUCER, message=message, user_id=user_id)


async def user_created(conn: asyncpg.Connection, user: User) -> None:
    """UserCreated."""
    await publish(
        conn,
        user.user_id,
        events_pb2.UserCreated(
            user=user.name, account=f"accounts/{user.account_id}", time_zone=user.time_zone, occur_time=_now()
        ),
    )


async def user_updated(conn: asyncpg.Connection, user: User, changed: Iterable[str]) -> None:
    """UserUpdated."""
    sex = user_pb2.Sex.Value(f"SEX_{user.sex.name}")
    await publish(
        conn,
        user.user_id,
        events_pb2.UserUpdated(
            user=user.name,
            changed_fields=sorted(set(changed)),
            time_zone=user.time_zone,
            sex=sex,
            occur_time=_now(),
        ),
    )


async def user_deleted(conn: asyncpg.Connection, user: User) -> None:
    """UserDeleted."""
    assert user.expire_time is not None
    await publish(
        conn,
        user.user_id,
        events_pb2.UserDeleted(user=user.name, expire_time=_timestamp(user.expire_time), occur_time=_now()),
    )


async def user_undeleted(conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
    """UserUndeleted."""
    await publish(conn, user_id, events_pb2.UserUndeleted(user=f"users/{user_id}", occur_time=_now()))


async def erasure_started(
    conn: asyncpg.Connection, user_id: uuid.UUID, job: str, trigger: ErasureTrigger
) -> None:
    """UserErasureStarted."""
    await publish(
        conn,
        user_id,
        events_pb2.UserErasureStarted(
            user=f"users/{user_id}",
            erasure_job=job,
            trigger=data_rights_pb2.ErasureTrigger.Value(f"ERASURE_TRIGGER_{trigger.name}"),
            occur_time=_now(),
        ),
    )


async def user_erased(conn: asyncpg.Connection, user_id: uuid.UUID, job: str) -> None:
    """UserErased."""
    await publish(
        conn, user_id, events_pb2.UserErased(user=f"users/{user_id}", erasure_job=job, occur_time=_now())
    )


async def export_completed(conn: asyncpg.Connection, user_id: uuid.UUID, job: str, state: JobState) -> None:
    """ExportJobCompleted."""
    await publish(
        conn,
        user_id,
        events_pb2.ExportJobCompleted(
            user=f"users/{user_id}",
            export_job=job,
            state=data_rights_pb2.JobState.Value(f"JOB_STATE_{state.name}"),
            occur_time=_now(),
        ),
    )


async def tier_changed(conn: asyncpg.Connection, account: Account, previous: AccountTier) -> None:
    """AccountTierChanged (about the account's owner)."""
    await publish(
        conn,
        account.owner_user_id,
        events_pb2.AccountTierChanged(
            user=f"users/{account.owner_user_id}" if account.owner_user_id else "",
            account=account.name,
            previous_tier=account_pb2.AccountTier.Value(f"ACCOUNT_TIER_{previous.name}"),
            tier=account_pb2.AccountTier.Value(f"ACCOUNT_TIER_{account.tier.name}"),
            occur_time=_now(),
        ),
    )


async def consent_changed(conn: asyncpg.Connection, consent: Consent) -> None:
    """ConsentGranted or ConsentRevoked."""
    consent_type = consent_pb2.ConsentType.Value(f"CONSENT_TYPE_{consent.type.name}")
    user = f"users/{consent.user_id}"
    message: Message = (
        events_pb2.ConsentGranted(
            user=user, consent=consent.name, type=consent_type, version=consent.version, occur_time=_now()
        )
        if consent.granted
        else events_pb2.ConsentRevoked(user=user, consent=consent.name, type=consent_type, occur_time=_now())
    )
    await publish(conn, consent.user_id, message)


async def grant_created(conn: asyncpg.Connection, grant: ShareGrant) -> None:
    """ShareGrantCreated."""
    await publish(
        conn,
        grant.owner_id,
        events_pb2.ShareGrantCreated(
            user=f"users/{grant.owner_id}",
            share_grant=grant.name,
            grantee=f"users/{grant.grantee_id}",
            scopes=[share_grant_pb2.ShareScope.Value(f"SHARE_SCOPE_{s.name}") for s in grant.scopes],
            expire_time=_timestamp(grant.expire_time),
            occur_time=_now(),
        ),
    )


async def grant_revoked(conn: asyncpg.Connection, grant: ShareGrant) -> None:
    """ShareGrantRevoked."""
    await publish(
        conn,
        grant.owner_id,
        events_pb2.ShareGrantRevoked(
            user=f"users/{grant.owner_id}",
            share_grant=grant.name,
            grantee=f"users/{grant.grantee_id}",
            occur_time=_now(),
        ),
    )


async def session_revoked(
    conn: asyncpg.Connection, user_id: uuid.UUID, session_id: uuid.UUID, reason: str
) -> None:
    """SessionRevoked."""
    await publish(
        conn,
        user_id,
        events_pb2.SessionRevoked(
            user=f"users/{user_id}",
            session=f"users/{user_id}/sessions/{session_id}",
            reason=session_pb2.SessionRevokeReason.Value(f"SESSION_REVOKE_REASON_{reason.upper()}"),
            occur_time=_now(),
        ),
    )


async def preferences_updated(conn: asyncpg.Connection, user_id: uuid.UUID, changed: Iterable[str]) -> None:
    """PreferencesUpdated."""
    await publish(
        conn,
        user_id,
        events_pb2.PreferencesUpdated(
            user=f"users/{user_id}",
            preferences=f"users/{user_id}/preferences",
            changed_fields=sorted(set(changed)),
            occur_time=_now(),
        ),
    )


async def signing_key_rotated(conn: asyncpg.Connection, kid: str, activate_time: datetime) -> None:
    """SigningKeyRotated (about no user)."""
    await publish(
        conn,
        None,
        events_pb2.SigningKeyRotated(
            signing_key=f"signingKeys/{kid}", activate_time=_timestamp(activate_time), occur_time=_now()
        ),
    )
