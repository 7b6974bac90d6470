"""Users, passwords, preferences and accounts over gRPC against the real service and PostgreSQL."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2
from grpc_status import rpc_status

from vitalis.identity.v1 import (
    account_internal_service_pb2,
    account_internal_service_pb2_grpc,
    account_pb2,
    account_service_pb2,
    account_service_pb2_grpc,
    auth_service_pb2,
    auth_service_pb2_grpc,
    events_pb2,
    preferences_pb2,
    user_pb2,
    user_service_pb2,
    user_service_pb2_grpc,
)

pytestmark = pytest.mark.timeout(60)
PASSWORD = "correct horse battery staple"


def reason_of(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)
    assert status is not None
    from google.rpc import error_details_pb2

    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return ""


def violations_of(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    status = rpc_status.from_call(error)
    assert status is not None
    from google.rpc import error_details_pb2

    found = []
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found += [(v.field, v.description) for v in bad.field_violations]
    return found


async def test_sign_up_with_a_weak_password_names_the_rule(identity) -> None:
    stub = auth_service_pb2_grpc.AuthServiceStub(identity.channel)
    cases = {
        "short": "PASSWORD_TOO_SHORT",
        "x" * 129: "PASSWORD_TOO_LONG",
        "password1234": "PASSWORD_TOO_COMMON",
    }
    for password, rule in cases.items():
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.SignUp(
                auth_service_pb2.SignUpRequest(email=f"{uuid.uuid4().hex}@example.com", password=password)
            )
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert reason_of(raised.value) == rule
        assert violations_of(raised.value)[0][0] == "password"


async def test_duplicate_email_is_already_exists(identity) -> None:
    ada = await identity.sign_up()
    stub = auth_service_pb2_grpc.AuthServiceStub(identity.channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.SignUp(auth_service_pb2.SignUpRequest(email=ada.email.upper(), password=PASSWORD))
    assert raised.value.code() is grpc.StatusCode.ALREADY_EXISTS


async def test_wrong_password_and_unknown_email_answer_identically(identity) -> None:
    ada = await identity.sign_up()
    stub = auth_service_pb2_grpc.AuthServiceStub(identity.channel)
    errors = []
    for email, password in ((ada.email, "not the password at all"), ("nobody-" + ada.email, PASSWORD)):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.SignIn(auth_service_pb2.SignInRequest(email=email, password=password))
        errors.append((raised.value.code(), raised.value.details(), reason_of(raised.value)))
    assert errors[0] == errors[1]
    assert errors[0][0] is grpc.StatusCode.UNAUTHENTICATED


async def test_change_password_revokes_other_sessions_and_checks_the_current_one(identity) -> None:
    ada = await identity.sign_up()
    stub = auth_service_pb2_grpc.AuthServiceStub(identity.channel)
    other = await stub.SignIn(auth_service_pb2.SignInRequest(email=ada.email, password=PASSWORD))
    with pytest.raises(grpc.aio.AioRpcError) as wrong:
        await stub.ChangePassword(
            auth_service_pb2.ChangePasswordRequest(
                user="users/me", current_password="wrong password!", new_password="a new long passphrase"
            ),
            metadata=ada.auth,
        )
    assert wrong.value.code() is grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as weak:
        await stub.ChangePassword(
            auth_service_pb2.ChangePasswordRequest(
                user="users/me", current_password=PASSWORD, new_password="short"
            ),
            metadata=ada.auth,
        )
    assert weak.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert violations_of(weak.value)[0][0] == "new_password"
    with pytest.raises(grpc.aio.AioRpcError) as someone_else:
        await stub.ChangePassword(
            auth_service_pb2.ChangePasswordRequest(
                user=f"users/{uuid.uuid4()}", current_password=PASSWORD, new_password="a new long passphrase"
            ),
            metadata=ada.auth,
        )
    assert someone_else.value.code() is grpc.StatusCode.NOT_FOUND
    await stub.ChangePassword(
        auth_service_pb2.ChangePasswordRequest(
            user="users/me", current_password=PASSWORD, new_password="a new long passphrase"
        ),
        metadata=ada.auth,
    )
    with pytest.raises(grpc.aio.AioRpcError) as revoked:
        await stub.RefreshSession(
            auth_service_pb2.RefreshSessionRequest(refresh_token=other.tokens.refresh_token)
        )
    assert revoked.value.code() is grpc.StatusCode.UNAUTHENTICATED
    await stub.RefreshSession(auth_service_pb2.RefreshSessionRequest(refresh_token=ada.refresh_token))
    await stub.SignIn(auth_service_pb2.SignInRequest(email=ada.email, password="a new long passphrase"))


async def test_refresh_token_reuse_revokes_the_family(identity) -> None:
    ada = await identity.sign_up()
    stub = auth_service_pb2_grpc.AuthServiceStub(identity.channel)
    rotated = await stub.RefreshSession(
        auth_service_pb2.RefreshSessionRequest(refresh_token=ada.refresh_token)
    )
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await stub.RefreshSession(auth_service_pb2.RefreshSessionRequest(refresh_token=ada.refresh_token))
    assert reason_of(reused.value) == "REFRESH_TOKEN_REUSED"
    with pytest.raises(grpc.aio.AioRpcError) as descendant:
        await stub.RefreshSession(
            auth_service_pb2.RefreshSessionRequest(refresh_token=rotated.tokens.refresh_token)
        )
    assert descendant.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_update_user_with_a_stale_etag_is_aborted_and_changes_nothing(identity) -> None:
    ada = await identity.sign_up()
    users = user_service_pb2_grpc.UserServiceStub(identity.channel)
    before = await users.GetUser(user_service_pb2.GetUserRequest(name="users/me"), metadata=ada.auth)
    assert before.state == user_pb2.USER_STATE_ACTIVE
    assert before.has_password
    changed = await users.UpdateUser(
        user_service_pb2.UpdateUserRequest(
            user=user_pb2.User(name="users/me", given_name="Augusta", etag=before.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["given_name"]),
        ),
        metadata=ada.auth,
    )
    assert changed.given_name == "Augusta"
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await users.UpdateUser(
            user_service_pb2.UpdateUserRequest(
                user=user_pb2.User(name="users/me", given_name="Stale", etag=before.etag),
                update_mask=field_mask_pb2.FieldMask(paths=["given_name"]),
            ),
            metadata=ada.auth,
        )
    assert stale.value.code() is grpc.StatusCode.ABORTED
    after = await users.GetUser(user_service_pb2.GetUserRequest(name="users/me"), metadata=ada.auth)
    assert after.given_name == "Augusta"


async def test_delete_and_undelete_user(identity) -> None:
    ada = await identity.sign_up()
    users = user_service_pb2_grpc.UserServiceStub(identity.channel)
    current = await users.GetUser(user_service_pb2.GetUserRequest(name="users/me"), metadata=ada.auth)
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await users.DeleteUser(
            user_service_pb2.DeleteUserRequest(name="users/me", etag="stale"), metadata=ada.auth
        )
    assert stale.value.code() is grpc.StatusCode.ABORTED
    deleted = await users.DeleteUser(
        user_service_pb2.DeleteUserRequest(name="users/me", etag=current.etag), metadata=ada.auth
    )
    assert deleted.state == user_pb2.USER_STATE_DELETED
    assert deleted.expire_time.ToDatetime() > deleted.delete_time.ToDatetime()
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await users.DeleteUser(user_service_pb2.DeleteUserRequest(name="users/me"), metadata=ada.auth)
    assert again.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    # Sign-in stays possible during the grace period, so the user can restore themself.
    auth = auth_service_pb2_grpc.AuthServiceStub(identity.channel)
    await auth.SignIn(auth_service_pb2.SignInRequest(email=ada.email, password=PASSWORD))
    restored = await users.UndeleteUser(
        user_service_pb2.UndeleteUserRequest(name="users/me"), metadata=ada.auth
    )
    assert restored.state == user_pb2.USER_STATE_ACTIVE
    assert not restored.HasField("delete_time")
    with pytest.raises(grpc.aio.AioRpcError) as not_deleted:
        await users.UndeleteUser(user_service_pb2.UndeleteUserRequest(name="users/me"), metadata=ada.auth)
    assert not_deleted.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    bob = await identity.sign_up()
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await users.DeleteUser(user_service_pb2.DeleteUserRequest(name=bob.name), metadata=ada.auth)
    assert other.value.code() is grpc.StatusCode.NOT_FOUND


async def test_preferences_defaults_update_and_validation(identity) -> None:
    ada = await identity.sign_up()
    users = user_service_pb2_grpc.UserServiceStub(identity.channel)
    defaults = await users.GetPreferences(
        user_service_pb2.GetPreferencesRequest(name="users/me/preferences"), metadata=ada.auth
    )
    assert defaults.language_code == "en-US"
    assert defaults.notifications.alert_push_enabled
    updated = await users.UpdatePreferences(
        user_service_pb2.UpdatePreferencesRequest(
            preferences=preferences_pb2.Preferences(
                name="users/me/preferences",
                language_code="de-DE",
                unit_overrides={"glucose": "mmol/L"},
                notifications=preferences_pb2.NotificationPreferences(alert_email_enabled=True),
                etag=defaults.etag,
            ),
            update_mask=field_mask_pb2.FieldMask(
                paths=["language_code", "unit_overrides", "notifications.alert_email_enabled"]
            ),
        ),
        metadata=ada.auth,
    )
    assert updated.language_code == "de-DE"
    assert dict(updated.unit_overrides) == {"glucose": "mmol/L"}
    assert updated.notifications.alert_email_enabled
    assert updated.notifications.alert_push_enabled
    for preferences, field in (
        (
            preferences_pb2.Preferences(name="users/me/preferences", unit_overrides={"glucose": "kg"}),
            "glucose",
        ),
        (
            preferences_pb2.Preferences(name="users/me/preferences", language_code="not a tag"),
            "language_code",
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as invalid:
            await users.UpdatePreferences(
                user_service_pb2.UpdatePreferencesRequest(preferences=preferences), metadata=ada.auth
            )
        assert invalid.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert field in violations_of(invalid.value)[0][0]
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await users.UpdatePreferences(
            user_service_pb2.UpdatePreferencesRequest(
                preferences=preferences_pb2.Preferences(
                    name="users/me/preferences", language_code="fr-FR", etag=defaults.etag
                )
            ),
            metadata=ada.auth,
        )
    assert stale.value.code() is grpc.StatusCode.ABORTED


async def test_account_get_update_delete_undelete_and_tier(identity) -> None:
    ada = await identity.sign_up()
    bob = await identity.sign_up()
    users = user_service_pb2_grpc.UserServiceStub(identity.channel)
    me = await users.GetUser(user_service_pb2.GetUserRequest(name="users/me"), metadata=ada.auth)
    accounts = account_service_pb2_grpc.AccountServiceStub(identity.channel)
    account = await accounts.GetAccount(
        account_service_pb2.GetAccountRequest(name=me.account), metadata=ada.auth
    )
    assert account.owner == ada.name
    assert account.user_count == 1
    assert account.tier == account_pb2.ACCOUNT_TIER_FREE
    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await accounts.GetAccount(account_service_pb2.GetAccountRequest(name=me.account), metadata=bob.auth)
    assert foreign.value.code() is grpc.StatusCode.NOT_FOUND
    renamed = await accounts.UpdateAccount(
        account_service_pb2.UpdateAccountRequest(
            account=account_pb2.Account(name=me.account, display_name="Lovelace family", etag=account.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        ),
        metadata=ada.auth,
    )
    assert renamed.display_name == "Lovelace family"
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await accounts.UpdateAccount(
            account_service_pb2.UpdateAccountRequest(
                account=account_pb2.Account(name=me.account, display_name="x", etag=account.etag)
            ),
            metadata=ada.auth,
        )
    assert stale.value.code() is grpc.StatusCode.ABORTED
    with pytest.raises(grpc.aio.AioRpcError) as output_only:
        await accounts.UpdateAccount(
            account_service_pb2.UpdateAccountRequest(
                account=account_pb2.Account(name=me.account),
                update_mask=field_mask_pb2.FieldMask(paths=["tier"]),
            ),
            metadata=ada.auth,
        )
    assert output_only.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    deleted = await accounts.DeleteAccount(
        account_service_pb2.DeleteAccountRequest(name=me.account), metadata=ada.auth
    )
    assert deleted.state == account_pb2.ACCOUNT_STATE_DELETED
    me_deleted = await users.GetUser(user_service_pb2.GetUserRequest(name="users/me"), metadata=ada.auth)
    assert me_deleted.state == user_pb2.USER_STATE_DELETED
    restored = await accounts.UndeleteAccount(
        account_service_pb2.UndeleteAccountRequest(name=me.account), metadata=ada.auth
    )
    assert restored.state == account_pb2.ACCOUNT_STATE_ACTIVE
    internal = account_internal_service_pb2_grpc.AccountInternalServiceStub(identity.channel)
    with pytest.raises(grpc.aio.AioRpcError) as user_token:
        await internal.SetAccountTier(
            account_internal_service_pb2.SetAccountTierRequest(
                name=me.account, tier=account_pb2.ACCOUNT_TIER_PREMIUM
            ),
            metadata=ada.auth,
        )
    assert user_token.value.code() is grpc.StatusCode.PERMISSION_DENIED
    premium = await internal.SetAccountTier(
        account_internal_service_pb2.SetAccountTierRequest(
            name=me.account, tier=account_pb2.ACCOUNT_TIER_PREMIUM
        ),
        metadata=identity.as_service(service="billing"),
    )
    assert premium.tier == account_pb2.ACCOUNT_TIER_PREMIUM
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await internal.SetAccountTier(
            account_internal_service_pb2.SetAccountTierRequest(
                name=f"accounts/{uuid.uuid4()}", tier=account_pb2.ACCOUNT_TIER_PREMIUM
            ),
            metadata=identity.as_service(service="billing"),
        )
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND


async def test_a_retried_sign_up_with_its_request_id_returns_the_first_user(identity) -> None:
    stub = auth_service_pb2_grpc.AuthServiceStub(identity.channel)
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    request_id = str(uuid.uuid4())
    request = auth_service_pb2.SignUpRequest(email=email, password=PASSWORD, request_id=request_id)
    first = await stub.SignUp(request)
    second = await stub.SignUp(request)
    assert second.user.name == first.user.name
    assert second.tokens.session != first.tokens.session
    for other in (
        auth_service_pb2.SignUpRequest(email=email, password=PASSWORD, request_id=str(uuid.uuid4())),
        auth_service_pb2.SignUpRequest(
            email=email, password="another long passphrase", request_id=request_id
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as taken:
            await stub.SignUp(other)
        assert taken.value.code() is grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await stub.SignUp(auth_service_pb2.SignUpRequest(email=email, password=PASSWORD, request_id="nope"))
    assert malformed.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_too_many_failed_sign_ins_are_throttled_for_known_and_unknown_addresses_alike(
    identity_with,
) -> None:
    async with identity_with(sign_in_max_failures=3) as identity:
        await _throttled(identity)


async def _throttled(identity) -> None:
    ada = await identity.sign_up()
    stub = auth_service_pb2_grpc.AuthServiceStub(identity.channel)
    unknown = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    for email in (ada.email, unknown):
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError) as wrong:
                await stub.SignIn(auth_service_pb2.SignInRequest(email=email, password="not the password"))
            assert wrong.value.code() is grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as throttled:
            await stub.SignIn(auth_service_pb2.SignInRequest(email=email, password=PASSWORD))
        assert throttled.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert reason_of(throttled.value) == "TOO_MANY_SIGN_IN_ATTEMPTS"


async def test_changes_announce_their_events_through_the_outbox(identity) -> None:
    ada = await identity.sign_up()
    users = user_service_pb2_grpc.UserServiceStub(identity.channel)
    await users.UpdateUser(
        user_service_pb2.UpdateUserRequest(
            user=user_pb2.User(name="users/me", time_zone="Europe/Paris"),
            update_mask=field_mask_pb2.FieldMask(paths=["time_zone"]),
        ),
        metadata=ada.auth,
    )
    await users.DeleteUser(user_service_pb2.DeleteUserRequest(name="users/me"), metadata=ada.auth)
    await users.UndeleteUser(user_service_pb2.UndeleteUserRequest(name="users/me"), metadata=ada.auth)
    async with identity.db.transaction(user_id=None) as conn:
        rows = await conn.fetch(
            "SELECT event_type, payload FROM outbox WHERE event_user_id = $1 ORDER BY position", ada.user_id
        )
    assert [r["event_type"] for r in rows] == [
        "vitalis.identity.v1.UserCreated",
        "vitalis.identity.v1.UserUpdated",
        "vitalis.identity.v1.UserDeleted",
        "vitalis.identity.v1.UserUndeleted",
    ]
    updated = events_pb2.UserUpdated.FromString(rows[1]["payload"])
    assert (list(updated.changed_fields), updated.time_zone) == (["time_zone"], "Europe/Paris")
    assert all(ada.email.encode() not in r["payload"] for r in rows)
