"""Inside a service, identity comes only from a verified bearer token, never from made-up metadata."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import wrappers_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from vitalis_runtime.auth import current_principal, optional_principal
from vitalis_runtime.testing_auth import LocalSigningKey
from vitalis_runtime.testing_grpc import RunningServer, generic_service, running_server

S = wrappers_pb2.StringValue
SERVICE = "vitalis.test.v1.ProfileService"
WHO_AM_I = f"/{SERVICE}/WhoAmI"
WATCH_ME = f"/{SERVICE}/WatchMe"
PUBLIC = f"/{SERVICE}/Public"


async def who_am_i(request: S, context: Any) -> S:
    principal = current_principal()
    return S(value=f"{principal.user_id} {principal.session_id}")


async def watch_me(request: S, context: Any) -> AsyncIterator[S]:
    for _ in range(2):
        yield S(value=str(current_principal().user_id))


async def public(request: S, context: Any) -> S:
    return S(value=f"anonymous={optional_principal() is None}")


HANDLERS = {
    "WhoAmI": grpc.unary_unary_rpc_method_handler(who_am_i, S.FromString, S.SerializeToString),
    "WatchMe": grpc.unary_stream_rpc_method_handler(watch_me, S.FromString, S.SerializeToString),
    "Public": grpc.unary_unary_rpc_method_handler(public, S.FromString, S.SerializeToString),
}


@pytest.fixture
def key() -> LocalSigningKey:
    return LocalSigningKey.generate()


@pytest.fixture
async def server(key: LocalSigningKey) -> AsyncIterator[RunningServer]:
    async with running_server(
        service_name="profiles",
        register=generic_service(SERVICE, HANDLERS),
        service_names=[SERVICE],
        verifier=key.verifier(),
        public_methods=[PUBLIC],
    ) as running:
        yield running


@pytest.fixture
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.target) as channel:
        yield channel


async def who_am_i_with(channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...]) -> str:
    response: S = await channel.unary_unary(WHO_AM_I, S.SerializeToString, S.FromString)(
        S(), metadata=metadata, timeout=5
    )
    return response.value


async def refusal(channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...]) -> str:
    """The ErrorInfo reason of the UNAUTHENTICATED status the call must end with."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await who_am_i_with(channel, metadata)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    status = rpc_status.from_call(raised.value)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.domain == "profiles.vitalis"
    return info.reason


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def test_a_valid_token_binds_its_principal_for_the_handler(
    channel: grpc.aio.Channel, key: LocalSigningKey
) -> None:
    user_id = uuid.uuid4()
    token = key.mint(user_id, sid="session-7")

    assert await who_am_i_with(channel, bearer(token)) == f"{user_id} session-7"


async def test_a_call_without_a_token_is_unauthenticated(channel: grpc.aio.Channel) -> None:
    assert await refusal(channel, ()) == "MISSING_TOKEN"


@pytest.mark.parametrize(
    "forged",
    [
        (("x-user-id", "00000000-0000-0000-0000-000000000001"),),
        (("x-vitalis-user-id", "00000000-0000-0000-0000-000000000001"), ("x-jwt-payload", "eyJzdWIiOiIxIn0")),
    ],
)
async def test_identity_metadata_made_up_on_a_direct_connection_is_worthless(
    channel: grpc.aio.Channel, forged: tuple[tuple[str, str], ...]
) -> None:
    assert await refusal(channel, forged) == "MISSING_TOKEN"


async def test_made_up_identity_metadata_cannot_override_the_tokens_user(
    channel: grpc.aio.Channel, key: LocalSigningKey
) -> None:
    user_id = uuid.uuid4()
    forged = (("x-user-id", str(uuid.uuid4())), *bearer(key.mint(user_id)))

    assert (await who_am_i_with(channel, forged)).startswith(str(user_id))


async def test_an_expired_token_is_unauthenticated(channel: grpc.aio.Channel, key: LocalSigningKey) -> None:
    token = key.mint(issued_at=datetime.now(UTC) - timedelta(hours=1), lifetime=timedelta(minutes=5))

    assert await refusal(channel, bearer(token)) == "TOKEN_EXPIRED"


async def test_a_token_with_a_wrong_signature_is_unauthenticated(
    channel: grpc.aio.Channel, key: LocalSigningKey
) -> None:
    forged = LocalSigningKey.generate(kid=key.kid).mint()

    assert await refusal(channel, bearer(forged)) == "INVALID_TOKEN"


async def test_an_alg_none_token_is_unauthenticated(channel: grpc.aio.Channel, key: LocalSigningKey) -> None:
    header = {"alg": "none", "typ": "JWT", "kid": key.kid}
    claims = json.loads(base64.urlsafe_b64decode(key.mint().split(".")[1] + "=="))
    token = ".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode() for part in (header, claims)
    )

    assert await refusal(channel, bearer(token + ".")) == "INVALID_TOKEN"


async def test_a_token_of_an_unknown_key_is_unauthenticated(channel: grpc.aio.Channel) -> None:
    token = LocalSigningKey.generate(kid="not-published").mint()

    assert await refusal(channel, bearer(token)) == "UNKNOWN_SIGNING_KEY"


@pytest.mark.parametrize(
    "metadata",
    [
        (("authorization", "Basic dXNlcjpwYXNz"),),
        (("authorization", "Bearer "),),
        (("authorization", "Bearer a"), ("authorization", "Bearer b")),
    ],
)
async def test_a_malformed_authorization_header_is_unauthenticated(
    channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...]
) -> None:
    assert await refusal(channel, metadata) == "INVALID_TOKEN"


async def test_a_streaming_call_is_authenticated_too(channel: grpc.aio.Channel, key: LocalSigningKey) -> None:
    user_id = uuid.uuid4()
    method = channel.unary_stream(WATCH_ME, S.SerializeToString, S.FromString)

    received = [m.value async for m in method(S(), metadata=bearer(key.mint(user_id)), timeout=5)]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await method(S(), timeout=5).read()

    assert received == [str(user_id)] * 2
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_public_method_needs_no_token_and_sees_no_principal(channel: grpc.aio.Channel) -> None:
    response = await channel.unary_unary(PUBLIC, S.SerializeToString, S.FromString)(S(), timeout=5)

    assert response.value == "anonymous=True"


async def test_health_checks_need_no_token(channel: grpc.aio.Channel) -> None:
    response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)

    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_service_without_a_verifier_refuses_every_non_public_method() -> None:
    async with (
        running_server(
            service_name="profiles",
            register=generic_service(SERVICE, HANDLERS),
            service_names=[SERVICE],
            verifier=None,
            public_methods=[PUBLIC],
        ) as running,
        grpc.aio.insecure_channel(running.target) as channel,
    ):
        token = LocalSigningKey.generate().mint()
        assert await refusal(channel, bearer(token)) == "NO_VERIFIER"
