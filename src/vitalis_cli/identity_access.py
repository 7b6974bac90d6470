"""Signing in (or up) through identity's contract, over gRPC or through the gateway's REST API.

Both ways speak the same protobuf messages; the REST path and verb come from the method's own
``google.api.http`` annotation, so nothing here repeats what the contract says.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar

import grpc
import httpx
from google.protobuf import json_format
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from vitalis.identity.v1 import auth_service_pb2, auth_service_pb2_grpc
from vitalis_cli.ports import catalog_target
from vitalis_gateway.api import HttpBinding, http_bindings

CALL_TIMEOUT_SECONDS = 15.0
_AUTH_SERVICE = auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"]
_CODES_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}

ResponseT = TypeVar("ResponseT", bound=Message)


class IdentityCallError(Exception):
    """Identity refused a call or could not be reached; ``code`` is the gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class IdentityAccess(Protocol):
    """The two calls a development token needs."""

    async def sign_up(self, request: auth_service_pb2.SignUpRequest) -> auth_service_pb2.SignUpResponse:
        """Create a user and open a session."""
        ...

    async def sign_in(self, request: auth_service_pb2.SignInRequest) -> auth_service_pb2.SignInResponse:
        """Open a session for an existing user."""
        ...


class GrpcIdentity:
    """Identity's ``AuthService`` over a gRPC channel (a service port or the gateway)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = auth_service_pb2_grpc.AuthServiceStub(channel)

    async def sign_up(self, request: auth_service_pb2.SignUpRequest) -> auth_service_pb2.SignUpResponse:
        """``AuthService.SignUp``."""
        try:
            return await self._stub.SignUp(request, timeout=CALL_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as error:
            raise IdentityCallError(error.code(), error.details() or "") from None

    async def sign_in(self, request: auth_service_pb2.SignInRequest) -> auth_service_pb2.SignInResponse:
        """``AuthService.SignIn``."""
        try:
            return await self._stub.SignIn(request, timeout=CALL_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as error:
            raise IdentityCallError(error.code(), error.details() or "") from None


def rest_binding(method: MethodDescriptor) -> HttpBinding:
    """The method's primary ``google.api.http`` binding, verb upper-cased; ``ValueError`` if none."""
    bindings = http_bindings(method.GetOptions())
    if not bindings:
        raise ValueError(f"{method.full_name} has no HTTP binding")
    return replace(bindings[0], verb=bindings[0].verb.upper())


def auth_rest_binding(method_name: str) -> HttpBinding:
    """The REST binding of one ``AuthService`` method, e.g. ``SignUp``."""
    return rest_binding(_AUTH_SERVICE.methods_by_name[method_name])


class GatewayIdentity:
    """Identity's ``AuthService`` through the gateway's REST/JSON transcoding."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def sign_up(self, request: auth_service_pb2.SignUpRequest) -> auth_service_pb2.SignUpResponse:
        """``POST`` the SignUp binding."""
        return await self._call("SignUp", request, auth_service_pb2.SignUpResponse())

    async def sign_in(self, request: auth_service_pb2.SignInRequest) -> auth_service_pb2.SignInResponse:
        """``POST`` the SignIn binding."""
        return await self._call("SignIn", request, auth_service_pb2.SignInResponse())

    async def _call(self, method_name: str, request: Message, response: ResponseT) -> ResponseT:
        binding = auth_rest_binding(method_name)
        if binding.body != "*" or "{" in binding.path:
            raise ValueError(
                f"AuthService.{method_name} is bound to {binding.path} with body {binding.body!r}"
            )
        try:
            reply = await self._client.request(
                binding.verb,
                binding.path,
                json=json_format.MessageToDict(request),
                timeout=CALL_TIMEOUT_SECONDS,
            )
        except httpx.HTTPError as error:
            raise IdentityCallError(
                grpc.StatusCode.UNAVAILABLE, f"the gateway is not reachable: {error}"
            ) from None
        if reply.is_success:
            return json_format.ParseDict(reply.json(), response, ignore_unknown_fields=True)
        raise _status_error(reply)


def _status_error(reply: httpx.Response) -> IdentityCallError:
    try:
        status = reply.json()
    except ValueError:
        status = {}
    if not isinstance(status, dict):
        status = {}
    code = _CODES_BY_NUMBER.get(status.get("code", -1), grpc.StatusCode.UNKNOWN)
    message = status.get("message") or f"HTTP {reply.status_code}: {reply.text[:200]}"
    return IdentityCallError(code, str(message))


@dataclass(frozen=True)
class IdentityEndpoint:
    """Where identity is reached: the gateway's REST API or a gRPC target."""

    gateway_url: str | None = None
    grpc_target: str = field(default_factory=lambda: catalog_target("identity"))

    @property
    def description(self) -> str:
        """For messages: ``the gateway at URL`` or ``identity at HOST:PORT``."""
        return f"the gateway at {self.gateway_url}" if self.gateway_url else f"identity at {self.grpc_target}"


def identity_endpoint(
    gateway: str | None, identity: str | None, environ: Mapping[str, str]
) -> IdentityEndpoint:
    """The endpoint chosen on the command line, else ``VITALIS_IDENTITY_TARGET``, else the local default."""
    if gateway:
        return IdentityEndpoint(gateway_url=gateway.rstrip("/"))
    return IdentityEndpoint(
        grpc_target=identity or environ.get("VITALIS_IDENTITY_TARGET") or catalog_target("identity")
    )


@contextlib.asynccontextmanager
async def connect_identity(endpoint: IdentityEndpoint) -> AsyncIterator[IdentityAccess]:
    """An :class:`IdentityAccess` for the endpoint, closed on exit."""
    if endpoint.gateway_url:
        async with httpx.AsyncClient(base_url=endpoint.gateway_url, trust_env=False) as client:
            yield GatewayIdentity(client)
    else:
        async with grpc.aio.insecure_channel(endpoint.grpc_target) as channel:
            yield GrpcIdentity(channel)


@dataclass(frozen=True)
class Profile:
    """What a sign-up records about the new user."""

    given_name: str = ""
    family_name: str = ""
    time_zone: str = "UTC"


@dataclass(frozen=True)
class Session:
    """An opened session: the access token and whose it is."""

    access_token: str
    user: str
    created_user: bool


async def open_session(
    identity: IdentityAccess, *, email: str, password: str, sign_up: bool, profile: Profile = Profile()
) -> Session:
    """Sign in; with ``sign_up``, create the user first (and sign in instead if it already exists)."""
    if sign_up:
        try:
            created = await identity.sign_up(
                auth_service_pb2.SignUpRequest(
                    email=email,
                    password=password,
                    given_name=profile.given_name,
                    family_name=profile.family_name,
                    time_zone=profile.time_zone,
                )
            )
        except IdentityCallError as error:
            if error.code != grpc.StatusCode.ALREADY_EXISTS:
                raise
        else:
            return Session(created.tokens.access_token, created.user.name, created_user=True)
    signed_in = await identity.sign_in(auth_service_pb2.SignInRequest(email=email, password=password))
    return Session(signed_in.tokens.access_token, signed_in.user, created_user=False)
