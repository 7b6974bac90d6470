"""Share grants (and the internal check every service calls), consents, sessions and the audit log."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest
from google.protobuf import timestamp_pb2

from vitalis.identity.v1 import (
    audit_log_internal_service_pb2,
    audit_log_internal_service_pb2_grpc,
    audit_log_pb2,
    audit_log_service_pb2,
    audit_log_service_pb2_grpc,
    consent_pb2,
    consent_service_pb2,
    consent_service_pb2_grpc,
    session_pb2,
    session_service_pb2,
    session_service_pb2_grpc,
    share_grant_internal_service_pb2,
    share_grant_internal_service_pb2_grpc,
    share_grant_pb2,
    share_grant_service_pb2,
    share_grant_service_pb2_grpc,
    user_service_pb2,
    user_service_pb2_grpc,
)

pytestmark = pytest.mark.timeout(60)
BIOMARKERS = share_grant_pb2.SHARE_SCOPE_BIOMARKERS
WEARABLES = share_grant_pb2.SHARE_SCOPE_WEARABLES


def in_future(**delta: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime.now(UTC) + timedelta(**delta))
    return stamp


async def check(identity, owner, grantee, scope=BIOMARKERS, *, caller=None):
    stub = share_grant_internal_service_pb2_grpc.ShareGrantInternalServiceStub(identity.channel)
    return await stub.CheckShareGrant(
        share_grant_internal_service_pb2.CheckShareGrantRequest(
            owner=owner.name, grantee=grantee.name, scope=scope
        ),
        metadata=identity.as_service(caller.user_id if caller else grantee.user_id),
    )


async def test_grant_allows_only_its_scopes_until_revoked(identity) -> None:
    owner, grantee, stranger = await identity.sign_up(), await identity.sign_up(), await identity.sign_up()
    grants = share_grant_service_pb2_grpc.ShareGrantServiceStub(identity.channel)
    assert not (await check(identity, owner, grantee)).allowed
    grant = await grants.CreateShareGrant(
        share_grant_service_pb2.CreateShareGrantRequest(
            parent="users/me",
            share_grant=share_grant_pb2.ShareGrant(
                grantee_email=grantee.email.upper(),
                scopes=[BIOMARKERS],
                expire_time=in_future(days=30),
                note="check-up",
            ),
        ),
        metadata=owner.auth,
    )
    assert grant.grantee == grantee.name
    assert grant.state == share_grant_pb2.SHARE_GRANT_STATE_ACTIVE
    assert grant.owner_display_name == "Ada Lovelace"
    allowed = await check(identity, owner, grantee)
    assert allowed.allowed
    assert allowed.share_grant == grant.name
    assert allowed.expire_time.ToDatetime() == grant.expire_time.ToDatetime()
    # The check does not depend on which user the calling service acts for.
    assert (await check(identity, owner, grantee, caller=owner)).allowed
    assert not (await check(identity, owner, grantee, WEARABLES)).allowed
    assert not (await check(identity, owner, stranger)).allowed
    assert not (await check(identity, grantee, owner)).allowed
    assert (await check(identity, owner, owner, WEARABLES)).allowed
    received = await grants.ListReceivedShareGrants(
        share_grant_service_pb2.ListReceivedShareGrantsRequest(grantee="users/me"), metadata=grantee.auth
    )
    assert [g.name for g in received.share_grants] == [grant.name]
    seen_by_grantee = await grants.GetShareGrant(
        share_grant_service_pb2.GetShareGrantRequest(name=grant.name), metadata=grantee.auth
    )
    assert seen_by_grantee.name == grant.name
    with pytest.raises(grpc.aio.AioRpcError) as stranger_read:
        await grants.GetShareGrant(
            share_grant_service_pb2.GetShareGrantRequest(name=grant.name), metadata=stranger.auth
        )
    assert stranger_read.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as grantee_revokes:
        await grants.RevokeShareGrant(
            share_grant_service_pb2.RevokeShareGrantRequest(name=grant.name), metadata=grantee.auth
        )
    assert grantee_revokes.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await grants.RevokeShareGrant(
            share_grant_service_pb2.RevokeShareGrantRequest(name=grant.name, etag="stale"),
            metadata=owner.auth,
        )
    assert stale.value.code() is grpc.StatusCode.ABORTED
    revoked = await grants.RevokeShareGrant(
        share_grant_service_pb2.RevokeShareGrantRequest(name=grant.name, etag=grant.etag), metadata=owner.auth
    )
    assert revoked.state == share_grant_pb2.SHARE_GRANT_STATE_REVOKED
    assert not (await check(identity, owner, grantee)).allowed
    again = await grants.RevokeShareGrant(
        share_grant_service_pb2.RevokeShareGrantRequest(name=grant.name), metadata=owner.auth
    )
    assert again.revoke_time == revoked.revoke_time


async def test_an_expired_grant_stops_at_once(identity) -> None:
    owner, grantee = await identity.sign_up(), await identity.sign_up()
    grants = share_grant_service_pb2_grpc.ShareGrantServiceStub(identity.channel)
    await grants.CreateShareGrant(
        share_grant_service_pb2.CreateShareGrantRequest(
            parent=owner.name,
            share_grant=share_grant_pb2.ShareGrant(
                grantee=grantee.name, scopes=[BIOMARKERS], expire_time=in_future(seconds=2)
            ),
        ),
        metadata=owner.auth,
    )
    assert (await check(identity, owner, grantee)).allowed
    await asyncio.sleep(2.2)
    assert not (await check(identity, owner, grantee)).allowed
    listed = await grants.ListShareGrants(
        share_grant_service_pb2.ListShareGrantsRequest(
            parent="users/me", filter="state = SHARE_GRANT_STATE_EXPIRED"
        ),
        metadata=owner.auth,
    )
    assert len(listed.share_grants) == 1


async def test_grant_profile_scope_lets_the_grantee_read_the_profile(identity) -> None:
    owner, grantee = await identity.sign_up(), await identity.sign_up()
    users = user_service_pb2_grpc.UserServiceStub(identity.channel)
    with pytest.raises(grpc.aio.AioRpcError) as before:
        await users.GetUser(user_service_pb2.GetUserRequest(name=owner.name), metadata=grantee.auth)
    assert before.value.code() is grpc.StatusCode.NOT_FOUND
    grants = share_grant_service_pb2_grpc.ShareGrantServiceStub(identity.channel)
    grant = await grants.CreateShareGrant(
        share_grant_service_pb2.CreateShareGrantRequest(
            parent="users/me",
            share_grant=share_grant_pb2.ShareGrant(
                grantee=grantee.name,
                scopes=[share_grant_pb2.SHARE_SCOPE_PROFILE],
                expire_time=in_future(days=1),
            ),
        ),
        metadata=owner.auth,
    )
    shared = await users.GetUser(user_service_pb2.GetUserRequest(name=owner.name), metadata=grantee.auth)
    assert shared.given_name == "Ada"
    assert not shared.email
    audit = audit_log_service_pb2_grpc.AuditLogServiceStub(identity.channel)
    reads = await audit.ListAuditLogEntries(
        audit_log_service_pb2.ListAuditLogEntriesRequest(parent="users/me", filter='actor != "users/me"'),
        metadata=owner.auth,
    )
    assert [(e.actor, e.share_grant) for e in reads.audit_log_entries] == [(grantee.name, grant.name)]
    await grants.RevokeShareGrant(
        share_grant_service_pb2.RevokeShareGrantRequest(name=grant.name), metadata=owner.auth
    )
    with pytest.raises(grpc.aio.AioRpcError) as after:
        await users.GetUser(user_service_pb2.GetUserRequest(name=owner.name), metadata=grantee.auth)
    assert after.value.code() is grpc.StatusCode.NOT_FOUND


async def test_invalid_grants_and_checks_are_rejected_precisely(identity) -> None:
    owner, grantee = await identity.sign_up(), await identity.sign_up()
    grants = share_grant_service_pb2_grpc.ShareGrantServiceStub(identity.channel)
    bad = {
        "neither grantee": share_grant_pb2.ShareGrant(scopes=[BIOMARKERS], expire_time=in_future(days=1)),
        "self": share_grant_pb2.ShareGrant(
            grantee=owner.name, scopes=[BIOMARKERS], expire_time=in_future(days=1)
        ),
        "no scopes": share_grant_pb2.ShareGrant(grantee=grantee.name, expire_time=in_future(days=1)),
        "past": share_grant_pb2.ShareGrant(
            grantee=grantee.name, scopes=[BIOMARKERS], expire_time=in_future(days=-1)
        ),
        "too far": share_grant_pb2.ShareGrant(
            grantee=grantee.name, scopes=[BIOMARKERS], expire_time=in_future(days=400)
        ),
    }
    for label, grant in bad.items():
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await grants.CreateShareGrant(
                share_grant_service_pb2.CreateShareGrantRequest(parent="users/me", share_grant=grant),
                metadata=owner.auth,
            )
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT, label
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await grants.CreateShareGrant(
            share_grant_service_pb2.CreateShareGrantRequest(
                parent="users/me",
                share_grant=share_grant_pb2.ShareGrant(
                    grantee_email="nobody@example.com", scopes=[BIOMARKERS], expire_time=in_future(days=1)
                ),
            ),
            metadata=owner.auth,
        )
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
    internal = share_grant_internal_service_pb2_grpc.ShareGrantInternalServiceStub(identity.channel)
    for request in (
        share_grant_internal_service_pb2.CheckShareGrantRequest(
            owner="users/me", grantee=grantee.name, scope=BIOMARKERS
        ),
        share_grant_internal_service_pb2.CheckShareGrantRequest(owner=owner.name, grantee=grantee.name),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as invalid:
            await internal.CheckShareGrant(request, metadata=identity.as_service())
        assert invalid.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    unknown_users = await internal.CheckShareGrant(
        share_grant_internal_service_pb2.CheckShareGrantRequest(
            owner=f"users/{uuid.uuid4()}", grantee=f"users/{uuid.uuid4()}", scope=BIOMARKERS
        ),
        metadata=identity.as_service(),
    )
    assert not unknown_users.allowed
    with pytest.raises(grpc.aio.AioRpcError) as user_token:
        await internal.CheckShareGrant(
            share_grant_internal_service_pb2.CheckShareGrantRequest(
                owner=owner.name, grantee=grantee.name, scope=BIOMARKERS
            ),
            metadata=grantee.auth,
        )
    assert user_token.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_create_share_grant_is_idempotent_per_request_id_and_pages(identity) -> None:
    owner = await identity.sign_up()
    grantees = [await identity.sign_up() for _ in range(3)]
    grants = share_grant_service_pb2_grpc.ShareGrantServiceStub(identity.channel)
    request_id = str(uuid.uuid4())
    first = second = None
    for _ in range(2):
        created = await grants.CreateShareGrant(
            share_grant_service_pb2.CreateShareGrantRequest(
                parent="users/me",
                request_id=request_id,
                share_grant=share_grant_pb2.ShareGrant(
                    grantee=grantees[0].name, scopes=[BIOMARKERS], expire_time=in_future(days=2)
                ),
            ),
            metadata=owner.auth,
        )
        first, second = second, created
    assert first is not None
    assert second is not None
    assert first.name == second.name
    for grantee in grantees[1:]:
        await grants.CreateShareGrant(
            share_grant_service_pb2.CreateShareGrantRequest(
                parent="users/me",
                share_grant=share_grant_pb2.ShareGrant(
                    grantee=grantee.name, scopes=[WEARABLES, BIOMARKERS], expire_time=in_future(days=2)
                ),
            ),
            metadata=owner.auth,
        )
    names, token = [], ""
    while True:
        page = await grants.ListShareGrants(
            share_grant_service_pb2.ListShareGrantsRequest(parent="users/me", page_size=2, page_token=token),
            metadata=owner.auth,
        )
        names += [g.name for g in page.share_grants]
        token = page.next_page_token
        if not token:
            break
    assert len(names) == len(set(names)) == 3
    wearables = await grants.ListShareGrants(
        share_grant_service_pb2.ListShareGrantsRequest(
            parent="users/me", filter="scopes: SHARE_SCOPE_WEARABLES"
        ),
        metadata=owner.auth,
    )
    assert len(wearables.share_grants) == 2
    with pytest.raises(grpc.aio.AioRpcError) as bad_filter:
        await grants.ListShareGrants(
            share_grant_service_pb2.ListShareGrantsRequest(
                parent="users/me", filter="state = A OR state = B"
            ),
            metadata=owner.auth,
        )
    assert bad_filter.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as negative:
        await grants.ListShareGrants(
            share_grant_service_pb2.ListShareGrantsRequest(parent="users/me", page_size=-1),
            metadata=owner.auth,
        )
    assert negative.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_consents_grant_revoke_and_history(identity) -> None:
    ada = await identity.sign_up()
    consents = consent_service_pb2_grpc.ConsentServiceStub(identity.channel)
    health = consent_pb2.CONSENT_TYPE_HEALTH_DATA_PROCESSING
    with pytest.raises(grpc.aio.AioRpcError) as never:
        await consents.GetConsent(
            consent_service_pb2.GetConsentRequest(name="users/me/consents/health-data-processing"),
            metadata=ada.auth,
        )
    assert never.value.code() is grpc.StatusCode.NOT_FOUND
    granted = await consents.GrantConsent(
        consent_service_pb2.GrantConsentRequest(
            parent="users/me", type=health, version="2025-01-15", request_id="r1"
        ),
        metadata=ada.auth,
    )
    assert granted.name == f"{ada.name}/consents/health-data-processing"
    assert granted.state == consent_pb2.CONSENT_STATE_GRANTED
    await consents.GrantConsent(
        consent_service_pb2.GrantConsentRequest(
            parent="users/me", type=health, version="2025-01-15", request_id="r1"
        ),
        metadata=ada.auth,
    )
    await consents.GrantConsent(
        consent_service_pb2.GrantConsentRequest(parent="users/me", type=health, version="2025-01-15"),
        metadata=ada.auth,
    )
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await consents.RevokeConsent(
            consent_service_pb2.RevokeConsentRequest(name=granted.name, etag="old"), metadata=ada.auth
        )
    assert stale.value.code() is grpc.StatusCode.ABORTED
    revoked = await consents.RevokeConsent(
        consent_service_pb2.RevokeConsentRequest(name=granted.name, etag=granted.etag), metadata=ada.auth
    )
    assert revoked.state == consent_pb2.CONSENT_STATE_REVOKED
    assert revoked.HasField("revoke_time")
    await consents.GrantConsent(
        consent_service_pb2.GrantConsentRequest(
            parent="users/me", type=consent_pb2.CONSENT_TYPE_TERMS_OF_SERVICE, version="v2"
        ),
        metadata=ada.auth,
    )
    listed = await consents.ListConsents(
        consent_service_pb2.ListConsentsRequest(parent="users/me"), metadata=ada.auth
    )
    assert [c.type for c in listed.consents] == [consent_pb2.CONSENT_TYPE_TERMS_OF_SERVICE, health]
    first_page = await consents.ListConsents(
        consent_service_pb2.ListConsentsRequest(parent="users/me", page_size=1), metadata=ada.auth
    )
    second_page = await consents.ListConsents(
        consent_service_pb2.ListConsentsRequest(
            parent="users/me", page_size=1, page_token=first_page.next_page_token
        ),
        metadata=ada.auth,
    )
    assert [c.type for c in (*first_page.consents, *second_page.consents)] == [
        consent_pb2.CONSENT_TYPE_TERMS_OF_SERVICE,
        health,
    ]
    assert not second_page.next_page_token
    history = await consents.ListConsentEvents(
        consent_service_pb2.ListConsentEventsRequest(parent="users/me/consents/-"), metadata=ada.auth
    )
    assert [e.action for e in history.consent_events] == [
        consent_pb2.CONSENT_ACTION_GRANT,
        consent_pb2.CONSENT_ACTION_REVOKE,
        consent_pb2.CONSENT_ACTION_GRANT,
    ]
    revocations = await consents.ListConsentEvents(
        consent_service_pb2.ListConsentEventsRequest(
            parent=granted.name,
            filter='action = CONSENT_ACTION_REVOKE AND occur_time > "2020-01-01T00:00:00Z"',
        ),
        metadata=ada.auth,
    )
    assert len(revocations.consent_events) == 1
    for bad in (
        consent_service_pb2.GrantConsentRequest(parent="users/me", version="v1"),
        consent_service_pb2.GrantConsentRequest(parent="users/me", type=health),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as invalid:
            await consents.GrantConsent(bad, metadata=ada.auth)
        assert invalid.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_sessions_list_get_and_revoke(identity) -> None:
    ada = await identity.sign_up()
    bob = await identity.sign_up()
    from vitalis.identity.v1 import auth_service_pb2, auth_service_pb2_grpc

    auth = auth_service_pb2_grpc.AuthServiceStub(identity.channel)
    second = await auth.SignIn(
        auth_service_pb2.SignInRequest(email=ada.email, password="correct horse battery staple"),
        metadata=(("user-agent", "phone"),),
    )
    sessions = session_service_pb2_grpc.SessionServiceStub(identity.channel)
    listed = await sessions.ListSessions(
        session_service_pb2.ListSessionsRequest(parent="users/me"), metadata=ada.auth
    )
    assert len(listed.sessions) == 2
    assert [s.current for s in listed.sessions].count(True) == 1
    current = next(s for s in listed.sessions if s.current)
    assert current.name == ada.session
    revoked = await sessions.RevokeSession(
        session_service_pb2.RevokeSessionRequest(name=second.tokens.session), metadata=ada.auth
    )
    assert revoked.state == session_pb2.SESSION_STATE_REVOKED
    assert revoked.revoke_reason == session_pb2.SESSION_REVOKE_REASON_USER_REVOKED
    with pytest.raises(grpc.aio.AioRpcError) as refresh:
        await auth.RefreshSession(
            auth_service_pb2.RefreshSessionRequest(refresh_token=second.tokens.refresh_token)
        )
    assert refresh.value.code() is grpc.StatusCode.UNAUTHENTICATED
    active = await sessions.ListSessions(
        session_service_pb2.ListSessionsRequest(parent="users/me", filter="state = SESSION_STATE_ACTIVE"),
        metadata=ada.auth,
    )
    assert [s.name for s in active.sessions] == [ada.session]
    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await sessions.GetSession(session_service_pb2.GetSessionRequest(name=ada.session), metadata=bob.auth)
    assert foreign.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as foreign_list:
        await sessions.ListSessions(
            session_service_pb2.ListSessionsRequest(parent=ada.name), metadata=bob.auth
        )
    assert foreign_list.value.code() is grpc.StatusCode.NOT_FOUND
    fetched = await sessions.GetSession(
        session_service_pb2.GetSessionRequest(name=ada.session), metadata=ada.auth
    )
    assert fetched.state == session_pb2.SESSION_STATE_ACTIVE


async def test_audit_log_is_written_by_services_idempotently_and_append_only(
    identity, admin_database_url
) -> None:
    ada = await identity.sign_up()
    bob = await identity.sign_up()
    internal = audit_log_internal_service_pb2_grpc.AuditLogInternalServiceStub(identity.channel)
    when = timestamp_pb2.Timestamp()
    when.FromDatetime(datetime.now(UTC))

    def entry(user, insert_id: str) -> audit_log_pb2.AuditLogEntry:
        return audit_log_pb2.AuditLogEntry(
            user=user.name,
            occur_time=when,
            actor=bob.name,
            action=audit_log_pb2.AUDIT_ACTION_READ,
            service="biomarkers",
            method="/vitalis.biomarkers.v1.PanelService/GetPanel",
            resource=f"{user.name}/panels/p1",
            insert_id=insert_id,
        )

    first = await internal.WriteAuditLogEntries(
        audit_log_internal_service_pb2.WriteAuditLogEntriesRequest(
            entries=[entry(ada, "a"), entry(bob, "b")]
        ),
        metadata=identity.as_service(),
    )
    assert (first.written_count, first.duplicate_count) == (2, 0)
    replay = await internal.WriteAuditLogEntries(
        audit_log_internal_service_pb2.WriteAuditLogEntriesRequest(entries=[entry(ada, "a")]),
        metadata=identity.as_service(),
    )
    assert (replay.written_count, replay.duplicate_count) == (0, 1)
    with pytest.raises(grpc.aio.AioRpcError) as incomplete:
        await internal.WriteAuditLogEntries(
            audit_log_internal_service_pb2.WriteAuditLogEntriesRequest(
                entries=[entry(ada, "c"), audit_log_pb2.AuditLogEntry(user="users/x")]
            ),
            metadata=identity.as_service(),
        )
    assert incomplete.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "entries[1]" in incomplete.value.details()
    audit = audit_log_service_pb2_grpc.AuditLogServiceStub(identity.channel)
    mine = await audit.ListAuditLogEntries(
        audit_log_service_pb2.ListAuditLogEntriesRequest(parent="users/me", filter='service = "biomarkers"'),
        metadata=ada.auth,
    )
    assert [e.resource for e in mine.audit_log_entries] == [f"{ada.name}/panels/p1"]
    # The application role can append but never change or remove an entry.
    role = await identity.db.pool.fetchval("SELECT current_user")
    conn = await asyncpg.connect(admin_database_url)
    try:
        await conn.execute(f'SET ROLE "{role}"')
        await conn.execute("SELECT set_config('app.current_user_id', $1, false)", str(ada.user_id))
        for statement in ("UPDATE identity.audit_log SET actor = 'x'", "DELETE FROM identity.audit_log"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
    finally:
        await conn.close()


async def test_sign_in_and_sign_out_are_audited_as_authentication(identity) -> None:
    ada = await identity.sign_up()
    from vitalis.identity.v1 import auth_service_pb2, auth_service_pb2_grpc

    await auth_service_pb2_grpc.AuthServiceStub(identity.channel).SignOut(
        auth_service_pb2.SignOutRequest(), metadata=ada.auth
    )
    audit = audit_log_service_pb2_grpc.AuditLogServiceStub(identity.channel)
    entries = await audit.ListAuditLogEntries(
        audit_log_service_pb2.ListAuditLogEntriesRequest(
            parent="users/me", filter="action = AUDIT_ACTION_AUTHENTICATE", order_by="occur_time"
        ),
        metadata=ada.auth,
    )
    assert [(e.actor, e.resource, e.method) for e in entries.audit_log_entries] == [
        (ada.name, ada.session, "/vitalis.identity.v1.AuthService/SignUp"),
        (ada.name, ada.session, "/vitalis.identity.v1.AuthService/SignOut"),
    ]
