"""vitalis.identity.v1.AuthService."""

from __future__ import annotations

import json
import uuid

import grpc
from google.api import httpbody_pb2  # type: ignore[import-untyped]
from google.protobuf import empty_pb2

from vitalis.identity.v1 import auth_service_pb2, auth_service_pb2_grpc
from vitalis_identity.api.convert import tokens_to_proto, user_to_proto
from vitalis_identity.authentication import Authentication, NewUser
from vitalis_identity.keyring import KeyRing
from vitalis_runtime.auth import current_principal
from vitalis_runtime.errors import InvalidArgument, Unauthenticated


def _user_agent(context: grpc.aio.ServicerContext[object, object]) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "user-agent":
            return str(value)
    return ""


class AuthServicer(auth_service_pb2_grpc.AuthServiceServicer):
    """Sign-up, sign-in, token refresh, sign-out and the JWKS."""

    def __init__(self, authentication: Authentication, keyring: KeyRing) -> None:
        self._authentication = authentication
        self._keyring = keyring

    async def SignUp(
        self, request: auth_service_pb2.SignUpRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> auth_service_pb2.SignUpResponse:
        """Create an account and sign in."""
        user, tokens = await self._authentication.sign_up(
            NewUser(
                email=request.email,
                password=request.password,
                given_name=request.given_name,
                family_name=request.family_name,
                time_zone=request.time_zone,
            ),
            user_agent=_user_agent(context),
        )
        response = auth_service_pb2.SignUpResponse(user=user_to_proto(user))
        tokens_to_proto(tokens, response.tokens)
        return response

    async def SignIn(
        self, request: auth_service_pb2.SignInRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> auth_service_pb2.SignInResponse:
        """Exchange an e-mail address and password for tokens."""
        if not request.email or not request.password:
            raise InvalidArgument.for_field(
                "email" if not request.email else "password", "is required to sign in"
            )
        tokens = await self._authentication.sign_in(
            request.email, request.password, user_agent=_user_agent(context)
        )
        response = auth_service_pb2.SignInResponse(user=f"users/{tokens.user_id}")
        tokens_to_proto(tokens, response.tokens)
        return response

    async def RefreshSession(
        self,
        request: auth_service_pb2.RefreshSessionRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> auth_service_pb2.RefreshSessionResponse:
        """Rotate the refresh token."""
        if not request.refresh_token:
            raise InvalidArgument.for_field("refresh_token", "is required")
        tokens = await self._authentication.refresh(request.refresh_token)
        response = auth_service_pb2.RefreshSessionResponse()
        tokens_to_proto(tokens, response.tokens)
        return response

    async def SignOut(
        self, request: auth_service_pb2.SignOutRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> empty_pb2.Empty:
        """Revoke the caller's current session."""
        principal = current_principal()
        if principal.session_id is None:
            raise Unauthenticated("the access token names no session", reason="NO_SESSION")
        await self._authentication.sign_out(principal.user_id, uuid.UUID(principal.session_id))
        return empty_pb2.Empty()

    async def GetJwks(
        self, request: auth_service_pb2.GetJwksRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> httpbody_pb2.HttpBody:
        """The published signing keys as a JWKS document."""
        return httpbody_pb2.HttpBody(
            content_type="application/json", data=json.dumps(self._keyring.jwks()).encode()
        )
