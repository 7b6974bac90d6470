"""Signing in or up through identity's contract, over gRPC and through the gateway's REST API."""

from __future__ import annotations

import asyncio
import json

import grpc
import httpx
import pytest

from tests.cli.fake_identity import FakeIdentity, serving
from vitalis_cli.identity_access import (
    GatewayIdentity,
    GrpcIdentity,
    IdentityCallError,
    IdentityEndpoint,
    Profile,
    auth_rest_binding,
    connect_identity,
    identity_endpoint,
    open_session,
)

PASSWORD = "correct horse battery staple"


def test_rest_binding_is_read_from_the_contract() -> None:
    binding = auth_rest_binding("SignIn")

    assert (binding.verb, binding.path, binding.body) == ("POST", "/v1/auth:signIn", "*")


def test_endpoint_prefers_the_gateway_then_the_flag_then_the_environment() -> None:
    environ = {"VITALIS_IDENTITY_TARGET": "identity:50051"}

    assert identity_endpoint("http://gw:8080/", "x:1", environ).gateway_url == "http://gw:8080"
    assert identity_endpoint(None, "x:1", environ).grpc_target == "x:1"
    assert identity_endpoint(None, None, environ).grpc_target == "identity:50051"
    assert identity_endpoint(None, None, {}).grpc_target == "127.0.0.1:50051"


async def test_sign_up_creates_the_user_and_returns_its_token() -> None:
    identity = FakeIdentity()
    async with serving(identity) as target, grpc.aio.insecure_channel(target) as channel:
        session = await asyncio.wait_for(
            open_session(
                GrpcIdentity(channel),
                email="a@example.com",
                password=PASSWORD,
                sign_up=True,
                profile=Profile("Ada"),
            ),
            timeout=30,
        )

    assert session.created_user
    assert session.access_token == "token-for-a@example.com"
    assert session.user == identity.names["a@example.com"]


async def test_sign_up_of_an_existing_user_signs_in_instead() -> None:
    identity = FakeIdentity(passwords={"a@example.com": PASSWORD}, names={"a@example.com": "users/1"})
    async with serving(identity) as target, connect_identity(IdentityEndpoint(grpc_target=target)) as access:
        session = await asyncio.wait_for(
            open_session(access, email="a@example.com", password=PASSWORD, sign_up=True), timeout=30
        )

    assert identity.sign_up_calls == 1
    assert not session.created_user
    assert session.user == "users/1"


async def test_a_wrong_password_is_reported_as_unauthenticated() -> None:
    identity = FakeIdentity(passwords={"a@example.com": PASSWORD}, names={"a@example.com": "users/1"})
    async with serving(identity) as target, grpc.aio.insecure_channel(target) as channel:
        with pytest.raises(IdentityCallError) as error:
            await asyncio.wait_for(
                open_session(GrpcIdentity(channel), email="a@example.com", password="nope", sign_up=False),
                timeout=30,
            )

    assert error.value.code == grpc.StatusCode.UNAUTHENTICATED


async def test_the_gateway_is_called_at_the_contracts_path_with_json_field_names() -> None:
    seen: list[httpx.Request] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"tokens": {"accessToken": "jwt", "tokenType": "Bearer"}, "user": "users/7"}
        )

    async with httpx.AsyncClient(base_url="http://gw", transport=httpx.MockTransport(gateway)) as client:
        session = await open_session(
            GatewayIdentity(client), email="a@example.com", password=PASSWORD, sign_up=False
        )

    assert session.access_token == "jwt"
    assert session.user == "users/7"
    assert seen[0].method == "POST"
    assert seen[0].url.path == "/v1/auth:signIn"
    assert json.loads(seen[0].content) == {"email": "a@example.com", "password": PASSWORD}


async def test_a_gateway_conflict_on_sign_up_falls_back_to_sign_in() -> None:
    def gateway(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/auth:signUp":
            return httpx.Response(409, json={"code": 6, "message": "a user with this email exists"})
        return httpx.Response(200, json={"tokens": {"accessToken": "jwt"}, "user": "users/7"})

    async with httpx.AsyncClient(base_url="http://gw", transport=httpx.MockTransport(gateway)) as client:
        session = await open_session(
            GatewayIdentity(client), email="a@example.com", password=PASSWORD, sign_up=True
        )

    assert session == session.__class__("jwt", "users/7", created_user=False)


async def test_a_gateway_that_does_not_answer_is_reported_as_unavailable() -> None:
    def gateway(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(base_url="http://gw", transport=httpx.MockTransport(gateway)) as client:
        with pytest.raises(IdentityCallError) as error:
            await open_session(
                GatewayIdentity(client), email="a@example.com", password=PASSWORD, sign_up=False
            )

    assert error.value.code == grpc.StatusCode.UNAVAILABLE
