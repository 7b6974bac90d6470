"""Operators' control of the signing keys: list, rotate and revoke, with the JWKS following."""

from __future__ import annotations

import json

import grpc
import pytest

from vitalis.identity.v1 import (
    auth_service_pb2,
    auth_service_pb2_grpc,
    signing_key_pb2,
    user_service_pb2,
    user_service_pb2_grpc,
)
from vitalis.identity.v1 import signing_key_internal_service_pb2 as keys_pb2
from vitalis.identity.v1 import signing_key_internal_service_pb2_grpc as keys_grpc

pytestmark = pytest.mark.timeout(60)


async def jwks_kids(identity) -> set[str]:
    body = await auth_service_pb2_grpc.AuthServiceStub(identity.channel).GetJwks(
        auth_service_pb2.GetJwksRequest()
    )
    return {key["kid"] for key in json.loads(body.data)["keys"]}


async def test_rotate_publishes_a_pending_key_once_per_request_and_revoke_removes_it(identity) -> None:
    keys = keys_grpc.SigningKeyInternalServiceStub(identity.channel)
    operator = identity.as_service(service="operator")
    listed = await keys.ListSigningKeys(keys_pb2.ListSigningKeysRequest(), metadata=operator)
    assert [k.state for k in listed.signing_keys] == [signing_key_pb2.SIGNING_KEY_STATE_ACTIVE]
    active = listed.signing_keys[0]
    assert json.loads(active.public_jwk)["kid"] == active.key_id
    pending = await keys.RotateSigningKey(
        keys_pb2.RotateSigningKeyRequest(request_id="r1"), metadata=operator
    )
    assert pending.state == signing_key_pb2.SIGNING_KEY_STATE_PENDING
    assert pending.activate_time.ToDatetime() > pending.create_time.ToDatetime()
    repeated = await keys.RotateSigningKey(
        keys_pb2.RotateSigningKeyRequest(request_id="r1"), metadata=operator
    )
    assert repeated.key_id == pending.key_id
    with pytest.raises(grpc.aio.AioRpcError) as in_progress:
        await keys.RotateSigningKey(keys_pb2.RotateSigningKeyRequest(), metadata=operator)
    assert in_progress.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert await jwks_kids(identity) == {active.key_id, pending.key_id}
    only_pending = await keys.ListSigningKeys(
        keys_pb2.ListSigningKeysRequest(filter="state = SIGNING_KEY_STATE_PENDING"), metadata=operator
    )
    assert [k.key_id for k in only_pending.signing_keys] == [pending.key_id]
    revoked = await keys.RevokeSigningKey(
        keys_pb2.RevokeSigningKeyRequest(name=pending.name), metadata=operator
    )
    assert revoked.state == signing_key_pb2.SIGNING_KEY_STATE_REVOKED
    assert await jwks_kids(identity) == {active.key_id}
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await keys.RevokeSigningKey(keys_pb2.RevokeSigningKeyRequest(name=pending.name), metadata=operator)
    assert twice.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await keys.RevokeSigningKey(
            keys_pb2.RevokeSigningKeyRequest(name="signingKeys/nope"), metadata=operator
        )
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND


async def test_revoking_the_active_key_rotates_at_once_and_old_tokens_stop(identity) -> None:
    ada = await identity.sign_up()
    keys = keys_grpc.SigningKeyInternalServiceStub(identity.channel)
    operator = identity.as_service(service="operator")
    active = (await keys.ListSigningKeys(keys_pb2.ListSigningKeysRequest(), metadata=operator)).signing_keys[
        0
    ]
    await keys.RevokeSigningKey(keys_pb2.RevokeSigningKeyRequest(name=active.name), metadata=operator)
    states = {
        k.key_id: k.state
        for k in (
            await keys.ListSigningKeys(keys_pb2.ListSigningKeysRequest(), metadata=operator)
        ).signing_keys
    }
    assert states[active.key_id] == signing_key_pb2.SIGNING_KEY_STATE_REVOKED
    assert sorted(states.values()) == [
        signing_key_pb2.SIGNING_KEY_STATE_ACTIVE,
        signing_key_pb2.SIGNING_KEY_STATE_REVOKED,
    ]
    assert active.key_id not in await jwks_kids(identity)
    signed_in = await auth_service_pb2_grpc.AuthServiceStub(identity.channel).SignIn(
        auth_service_pb2.SignInRequest(email=ada.email, password="correct horse battery staple")
    )
    users = user_service_pb2_grpc.UserServiceStub(identity.channel)
    fresh = (("authorization", f"Bearer {signed_in.tokens.access_token}"),)
    assert (
        await users.GetUser(user_service_pb2.GetUserRequest(name="users/me"), metadata=fresh)
    ).email == ada.email
    with pytest.raises(grpc.aio.AioRpcError) as old:
        await users.GetUser(user_service_pb2.GetUserRequest(name="users/me"), metadata=ada.auth)
    assert old.value.code() is grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as user_token:
        await keys.ListSigningKeys(keys_pb2.ListSigningKeysRequest(), metadata=fresh)
    assert user_token.value.code() is grpc.StatusCode.PERMISSION_DENIED
