"""Services call each other with short-lived service tokens; internal methods accept nothing else."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import jwt
import pytest
from google.protobuf import wrappers_pb2

from vitalis_runtime.auth import current_principal
from vitalis_runtime.bootstrap import create_service_server, open_dependencies
from vitalis_runtime.errors import Unauthenticated
from vitalis_runtime.service_auth import (
    ServiceCredentials,
    ServiceTokenVerifier,
    accepting_service_tokens,
    is_internal_method,
)
from vitalis_runtime.settings import ServiceSettings
from vitalis_runtime.testing_auth import LocalSigningKey
from vitalis_runtime.testing_grpc import RunningServer, generic_service, running_server

S = wrappers_pb2.StringValue
PUBLIC_SERVICE = "vitalis.test.v1.PanelService"
INTERNAL_SERVICE = "vitalis.test.v1.PanelInternalService"
DATA_SERVICE = "vitalis.test.v1.UserDataService"
SECRET = "s" * 40


async def who(request: S, context: Any) -> S:
    principal = current_principal()
    return S(value=f"{principal.user_id} {principal.service}")


HANDLERS = {"Who": grpc.unary_unary_rpc_method_handler(who, S.FromString, S.SerializeToString)}


def register_all(server: grpc.aio.Server) -> None:
    for service in (PUBLIC_SERVICE, INTERNAL_SERVICE, DATA_SERVICE):
        generic_service(service, HANDLERS)(server)


@pytest.fixture
def key() -> LocalSigningKey:
    return LocalSigningKey.generate()


@pytest.fixture
async def server(key: LocalSigningKey) -> AsyncIterator[RunningServer]:
    async with running_server(
        service_name="panels",
        register=register_all,
        service_names=[PUBLIC_SERVICE, INTERNAL_SERVICE, DATA_SERVICE],
        verifier=accepting_service_tokens(key.verifier(), SECRET),
    ) as running:
        yield running


@pytest.fixture
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.target) as channel:
        yield channel


async def call(channel: grpc.aio.Channel, service: str, metadata: tuple[tuple[str, str], ...]) -> str:
    response: S = await channel.unary_unary(f"/{service}/Who", S.SerializeToString, S.FromString)(
        S(), metadata=metadata, timeout=5
    )
    return response.value


async def refused_with(
    channel: grpc.aio.Channel, service: str, metadata: tuple[tuple[str, str], ...]
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(channel, service, metadata)
    return raised.value


async def test_a_service_token_acts_for_the_named_user(channel: grpc.aio.Channel) -> None:
    user = uuid.uuid4()
    credentials = ServiceCredentials(SECRET, "documents")
    for service in (PUBLIC_SERVICE, INTERNAL_SERVICE, DATA_SERVICE):
        assert await call(channel, service, credentials.metadata(user)) == f"{user} documents"


async def test_a_users_own_token_is_refused_on_internal_methods(
    channel: grpc.aio.Channel, key: LocalSigningKey
) -> None:
    user = uuid.uuid4()
    metadata = (("authorization", f"Bearer {key.mint(user)}"),)
    assert await call(channel, PUBLIC_SERVICE, metadata) == f"{user} None"
    for service in (INTERNAL_SERVICE, DATA_SERVICE):
        error = await refused_with(channel, service, metadata)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "only callable by its services" in (error.details() or "")


async def test_a_service_token_signed_with_another_secret_is_refused(channel: grpc.aio.Channel) -> None:
    forged = ServiceCredentials("f" * 40, "documents").metadata(uuid.uuid4())
    error = await refused_with(channel, INTERNAL_SERVICE, forged)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_an_expired_service_token_is_refused(channel: grpc.aio.Channel) -> None:
    now = int(time.time())
    claims = {
        "iss": "vitalis-services",
        "aud": "vitalis-internal",
        "sub": "service:documents",
        "act_for": str(uuid.uuid4()),
        "iat": now - 600,
        "exp": now - 300,
    }
    token = jwt.encode(claims, SECRET.encode(), algorithm="HS256")
    error = await refused_with(channel, INTERNAL_SERVICE, (("authorization", f"Bearer {token}"),))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "expired" in (error.details() or "")


async def test_a_token_that_names_no_service_is_refused(channel: grpc.aio.Channel) -> None:
    now = int(time.time())
    claims = {
        "iss": "vitalis-services",
        "aud": "vitalis-internal",
        "sub": str(uuid.uuid4()),
        "act_for": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 60,
    }
    token = jwt.encode(claims, SECRET.encode(), algorithm="HS256")
    error = await refused_with(channel, PUBLIC_SERVICE, (("authorization", f"Bearer {token}"),))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_without_a_configured_secret_service_tokens_are_refused(key: LocalSigningKey) -> None:
    async with (
        running_server(
            service_name="panels",
            register=register_all,
            service_names=[PUBLIC_SERVICE, INTERNAL_SERVICE],
            verifier=accepting_service_tokens(key.verifier(), None),
        ) as running,
        grpc.aio.insecure_channel(running.target) as channel,
    ):
        metadata = ServiceCredentials(SECRET, "documents").metadata(uuid.uuid4())
        error = await refused_with(channel, INTERNAL_SERVICE, metadata)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        ServiceCredentials("short", "documents").token(uuid.uuid4())


@pytest.mark.parametrize(
    ("method", "internal"),
    [
        ("/vitalis.biomarkers.v1.PanelInternalService/CreatePanel", True),
        ("/vitalis.identity.v1.UserDataService/ExportUserData", True),
        ("/vitalis.biomarkers.v1.PanelService/GetPanel", False),
        ("/grpc.health.v1.Health/Check", False),
    ],
)
def test_internal_methods_are_recognised_by_their_service_name(method: str, internal: bool) -> None:
    assert is_internal_method(method) is internal


NEW_SECRET = "n" * 40


async def test_old_and_new_secret_interoperate_while_a_rotation_rolls_out(key: LocalSigningKey) -> None:
    # Step one of a rotation: pods still sign with the old secret and already accept the new one.
    # Step two: pods sign with the new secret and still accept the old one. Both kinds run at once.
    accepting_new = accepting_service_tokens(key.verifier(), SECRET, previous_secrets=[NEW_SECRET])
    accepting_old = accepting_service_tokens(key.verifier(), NEW_SECRET, previous_secrets=[SECRET])
    user = uuid.uuid4()
    for verifier in (accepting_new, accepting_old):
        async with (
            running_server(
                service_name="panels",
                register=register_all,
                service_names=[INTERNAL_SERVICE],
                verifier=verifier,
            ) as running,
            grpc.aio.insecure_channel(running.target) as channel,
        ):
            for secret, caller in ((SECRET, "documents"), (NEW_SECRET, "insights")):
                metadata = ServiceCredentials(secret, caller).metadata(user)
                assert await call(channel, INTERNAL_SERVICE, metadata) == f"{user} {caller}"
            forged = ServiceCredentials("f" * 40, "documents").metadata(user)
            error = await refused_with(channel, INTERNAL_SERVICE, forged)
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_an_expired_token_of_a_previous_secret_is_refused_as_expired() -> None:
    now = int(time.time())
    claims = {
        "iss": "vitalis-services",
        "aud": "vitalis-internal",
        "sub": "service:documents",
        "act_for": str(uuid.uuid4()),
        "iat": now - 600,
        "exp": now - 300,
    }
    token = jwt.encode(claims, SECRET.encode(), algorithm="HS256")
    verifier = ServiceTokenVerifier(NEW_SECRET, previous_secrets=[SECRET])

    with pytest.raises(Unauthenticated, match="expired"):
        await verifier.verify(token)


def test_a_short_previous_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        ServiceTokenVerifier(SECRET, previous_secrets=["short"])


async def test_a_service_built_from_settings_accepts_its_previous_service_token_secrets(
    admin_database_url: str, redis_url: str, key: LocalSigningKey
) -> None:
    settings = ServiceSettings(
        service_name="panels",
        grpc_host="127.0.0.1",
        grpc_port=0,
        database_url=admin_database_url,
        redis_url=redis_url,
        page_token_secret="p" * 40,
        service_token_secret=NEW_SECRET,
        service_token_previous_secrets=SECRET,
    )
    user = uuid.uuid4()
    async with open_dependencies(settings) as deps:
        parts = await create_service_server(
            settings, deps, register=register_all, service_names=[INTERNAL_SERVICE], verifier=key.verifier()
        )
        await parts.server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{parts.port}") as channel:
                for secret in (SECRET, NEW_SECRET):
                    metadata = ServiceCredentials(secret, "documents").metadata(user)
                    assert await call(channel, INTERNAL_SERVICE, metadata) == f"{user} documents"
        finally:
            await parts.server.stop(None)
