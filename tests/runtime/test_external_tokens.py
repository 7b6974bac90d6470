"""Every service accepts an external issuer's token as the internal user identity links it to."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import wrappers_pb2

from vitalis.identity.v1 import external_identity_internal_service_pb2 as messages
from vitalis.identity.v1 import external_identity_internal_service_pb2_grpc as stubs
from vitalis_runtime.auth import current_principal
from vitalis_runtime.errors import NotFound
from vitalis_runtime.external_tokens import ExternalTokenVerifier, RemoteSubjectResolver
from vitalis_runtime.service_auth import ServiceCredentials, accepting_service_tokens
from vitalis_runtime.settings import ServiceSettings
from vitalis_runtime.testing_auth import LocalSigningKey
from vitalis_runtime.testing_grpc import generic_service, running_server

S = wrappers_pb2.StringValue
SECRET = "x" * 40
ISSUER = "https://clerk.example.test"
SERVICE = "vitalis.test.v1.SampleService"


class LinkedSubjects(stubs.ExternalIdentityInternalServiceServicer):
    """Identity's subject resolution over a table the test fills, counting the questions."""

    def __init__(self) -> None:
        self.links: dict[tuple[str, str], uuid.UUID] = {}
        self.calls = 0
        self.callers: list[str | None] = []

    async def ResolveExternalIdentity(
        self, request: messages.ResolveExternalIdentityRequest, context: Any
    ) -> messages.ResolveExternalIdentityResponse:
        self.calls += 1
        self.callers.append(current_principal().service)
        user = self.links.get((request.issuer, request.subject))
        if user is None:
            raise NotFound("no user is linked to this external subject")
        return messages.ResolveExternalIdentityResponse(user=f"users/{user}")


async def who(request: S, context: Any) -> S:
    return S(value=str(current_principal().user_id))


@pytest.fixture
def external_key() -> LocalSigningKey:
    return LocalSigningKey.generate()


@pytest.fixture
def vitalis_key() -> LocalSigningKey:
    return LocalSigningKey.generate()


@pytest.fixture
async def service(
    external_key: LocalSigningKey, vitalis_key: LocalSigningKey
) -> AsyncIterator[tuple[LinkedSubjects, grpc.aio.Channel]]:
    subjects = LinkedSubjects()
    jwks = external_key.jwks()

    async def fetch() -> Mapping[str, Any]:
        return jwks

    async with (
        running_server(
            service_name="identity",
            register=lambda server: stubs.add_ExternalIdentityInternalServiceServicer_to_server(
                subjects, server
            ),
            service_names=["vitalis.identity.v1.ExternalIdentityInternalService"],
            verifier=accepting_service_tokens(vitalis_key.verifier(), SECRET),
        ) as identity,
        grpc.aio.insecure_channel(identity.target) as identity_channel,
    ):
        resolver = RemoteSubjectResolver(identity_channel, ServiceCredentials(SECRET, "ingestion"))
        verifier = ExternalTokenVerifier(vitalis_key.verifier(), resolver, {ISSUER: fetch})
        handlers = {"Who": grpc.unary_unary_rpc_method_handler(who, S.FromString, S.SerializeToString)}
        async with (
            running_server(
                service_name="ingestion",
                register=generic_service(SERVICE, handlers),
                service_names=[SERVICE],
                verifier=accepting_service_tokens(verifier, SECRET),
            ) as ingestion,
            grpc.aio.insecure_channel(ingestion.target) as channel,
        ):
            yield subjects, channel


async def call(channel: grpc.aio.Channel, token: str) -> str:
    response: S = await channel.unary_unary(f"/{SERVICE}/Who", S.SerializeToString, S.FromString)(
        S(), metadata=(("authorization", f"Bearer {token}"),), timeout=5
    )
    return response.value


def external_token(key: LocalSigningKey, subject: str, **claims: Any) -> str:
    return key.mint(subject, issuer=ISSUER, audience="clerk-frontend", **claims)


async def test_an_external_token_acts_as_the_linked_user_and_the_link_is_remembered(
    service: tuple[LinkedSubjects, grpc.aio.Channel], external_key: LocalSigningKey
) -> None:
    subjects, channel = service
    user = uuid.uuid4()
    subjects.links[(ISSUER, "user_2abc")] = user
    token = external_token(external_key, "user_2abc")
    assert await call(channel, token) == str(user)
    assert await call(channel, token) == str(user)
    assert subjects.calls == 1
    assert subjects.callers == ["ingestion"]


async def test_vitalis_tokens_still_work_beside_external_ones(
    service: tuple[LinkedSubjects, grpc.aio.Channel], vitalis_key: LocalSigningKey
) -> None:
    _, channel = service
    user = uuid.uuid4()
    assert await call(channel, vitalis_key.mint(user)) == str(user)


@pytest.mark.parametrize("forgery", ["another key", "unknown issuer", "unlinked subject", "expired"])
async def test_a_bad_external_token_is_unauthenticated(
    service: tuple[LinkedSubjects, grpc.aio.Channel], external_key: LocalSigningKey, forgery: str
) -> None:
    subjects, channel = service
    subjects.links[(ISSUER, "user_2abc")] = uuid.uuid4()
    token = {
        "another key": lambda: external_token(LocalSigningKey.generate(kid=external_key.kid), "user_2abc"),
        "unknown issuer": lambda: external_key.mint("user_2abc", issuer="https://elsewhere.test"),
        "unlinked subject": lambda: external_token(external_key, "user_unknown"),
        "expired": lambda: external_key.mint(
            "user_2abc", issuer=ISSUER, lifetime=timedelta(seconds=-120), audience="clerk-frontend"
        ),
    }[forgery]()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(channel, token)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_clerk_and_other_issuers_are_configured_together() -> None:
    settings = ServiceSettings(
        service_name="ingestion",
        grpc_port=0,
        database_url="postgresql://localhost/vitalis",
        redis_url="redis://localhost:6379/0",
        page_token_secret="p" * 40,
        clerk_jwks_uri="https://clerk.example.test/.well-known/jwks.json",
        oidc_jwks_uris={"https://login.example.test": "https://login.example.test/jwks"},
    )
    assert settings.external_jwks_uris() == {
        "clerk": "https://clerk.example.test/.well-known/jwks.json",
        "https://login.example.test": "https://login.example.test/jwks",
    }
