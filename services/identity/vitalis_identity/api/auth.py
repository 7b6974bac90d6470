"""vitalis.identity.v1.AuthService."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from google.api import httpbody_pb2  # type: ignore[import-untyped]
from google.protobuf import empty_pb2

from vitalis.identity.v1 import auth_service_pb2, auth_service_pb2_grpc
from vitalis_identity.api.context import Context, client_ip, cookie, user_agent
from vitalis_identity.api.convert import tokens_to_proto, user_to_proto
from vitalis_identity.api.names import own_user, split_user
from vitalis_identity.authentication import Authentication, NewUser
from vitalis_identity.domain.tokens import IssuedTokens, RefreshToken
from vitalis_identity.keyring import KeyRing
from vitalis_runtime.auth import current_principal
from vitalis_runtime.errors import InvalidArgument, Unauthenticated

ACCESS_COOKIE = "vitalis_access_token"
REFRESH_COOKIE = "vitalis_refresh_token"
REFRESH_COOKIE_PATH = "/v1/auth"


def _cookie_headers(tokens: IssuedTokens | None) -> list[tuple[str, str]]:
    """``Set-Cookie`` values delivering (or, with ``None``, clearing) a session's tokens."""
    flags = "HttpOnly; Secure; SameSite=Strict"
    if tokens is None:
        return [
            ("set-cookie", f"{ACCESS_COOKIE}=; Path=/; Max-Age=0; {flags}"),
            ("set-cookie", f"{REFRESH_COOKIE}=; Path={REFRESH_COOKIE_PATH}; Max-Age=0; {flags}"),
        ]
    now = datetime.now(UTC)
    access_age = max(0, int((tokens.access_expire_time - now).total_seconds()))
    refresh_age = max(0, int((tokens.refresh_expire_time - now).total_seconds()))
    return [
        ("set-cookie", f"{ACCESS_COOKIE}={tokens.access_token}; Path=/; Max-Age={access_age}; {flags}"),
        (
            "set-cookie",
            f"{REFRESH_COOKIE}={tokens.refresh_token}; Path={REFRESH_COOKIE_PATH}; "
            f"Max-Age={refresh_age}; {flags}",
        ),
    ]


async def _deliver(
    tokens: IssuedTokens, delivery: int, message: auth_service_pb2.AuthTokens, context: Context
) -> None:
    tokens_to_proto(tokens, message)
    if delivery == auth_service_pb2.TOKEN_DELIVERY_COOKIE:
        await context.send_initial_metadata(_cookie_headers(tokens))
        message.access_token = ""
        message.refresh_token = ""


class AuthServicer(auth_service_pb2_grpc.AuthServiceServicer):
    """Sign-up, sign-in, token refresh, sign-out, password change and the JWKS."""

    def __init__(self, authentication: Authentication, keyring: KeyRing) -> None:
        self._authentication = authentication
        self._keyring = keyring

    async def SignUp(
        self, request: auth_service_pb2.SignUpRequest, context: Context
    ) -> auth_service_pb2.SignUpResponse:
        """Create an account and sign in."""
        user, tokens = await self._authentication.sign_up(
            NewUser(
                email=request.email,
                password=request.password,
                given_name=request.given_name,
                family_name=request.family_name,
                time_zone=request.time_zone,
                request_id=request.request_id,
            ),
            user_agent=user_agent(context),
            client_ip=client_ip(context),
        )
        response = auth_service_pb2.SignUpResponse(user=user_to_proto(user))
        await _deliver(tokens, request.token_delivery, response.tokens, context)
        return response

    async def SignIn(
        self, request: auth_service_pb2.SignInRequest, context: Context
    ) -> auth_service_pb2.SignInResponse:
        """Exchange an e-mail address and password for tokens."""
        if not request.email or not request.password:
            raise InvalidArgument.for_field(
                "email" if not request.email else "password", "is required to sign in"
            )
        tokens = await self._authentication.sign_in(
            request.email, request.password, user_agent=user_agent(context), client_ip=client_ip(context)
        )
        response = auth_service_pb2.SignInResponse(user=f"users/{tokens.user_id}")
        await _deliver(tokens, request.token_delivery, response.tokens, context)
        return response

    async def RefreshSession(
        self, request: auth_service_pb2.RefreshSessionRequest, context: Context
    ) -> auth_service_pb2.RefreshSessionResponse:
        """Rotate the refresh token (from the body or the refresh cookie)."""
        presented = request.refresh_token or cookie(context, REFRESH_COOKIE)
        if not presented:
            raise InvalidArgument.for_field(
                "refresh_token", "is required (in the body or the vitalis_refresh_token cookie)"
            )
        tokens = await self._authentication.refresh(presented)
        response = auth_service_pb2.RefreshSessionResponse()
        delivery = request.token_delivery
        if not request.refresh_token and delivery == auth_service_pb2.TOKEN_DELIVERY_UNSPECIFIED:
            delivery = auth_service_pb2.TOKEN_DELIVERY_COOKIE
        await _deliver(tokens, delivery, response.tokens, context)
        return response

    async def SignOut(self, request: auth_service_pb2.SignOutRequest, context: Context) -> empty_pb2.Empty:
        """Revoke the session of the refresh token (or the caller's current one) and clear cookies."""
        principal = current_principal()
        presented = request.refresh_token or cookie(context, REFRESH_COOKIE)
        session_id: uuid.UUID | None = None
        if presented:
            token = RefreshToken.decode(presented)
            if token.user_id != principal.user_id:
                raise Unauthenticated(
                    "the refresh token belongs to another user", reason="INVALID_REFRESH_TOKEN"
                )
            session_id = await self._authentication.session_of(token)
        elif principal.session_id is not None:
            session_id = uuid.UUID(principal.session_id)
        if session_id is None:
            raise InvalidArgument.for_field(
                "refresh_token", "is required (in the body or the vitalis_refresh_token cookie)"
            )
        await self._authentication.sign_out(principal.user_id, session_id)
        if cookie(context, REFRESH_COOKIE) or cookie(context, ACCESS_COOKIE):
            await context.send_initial_metadata(_cookie_headers(None))
        return empty_pb2.Empty()

    async def GetJwks(
        self, request: auth_service_pb2.GetJwksRequest, context: Context
    ) -> httpbody_pb2.HttpBody:
        """The published signing keys as a JWKS document."""
        return httpbody_pb2.HttpBody(
            content_type="application/json", data=json.dumps(self._keyring.jwks()).encode()
        )

    async def ChangePassword(
        self, request: auth_service_pb2.ChangePasswordRequest, context: Context
    ) -> empty_pb2.Empty:
        """Change the caller's password; every other session ends."""
        user_id = own_user(split_user(request.user, field="user"), field="user", name=request.user)
        if not request.current_password:
            raise InvalidArgument.for_field("current_password", "is required")
        principal = current_principal()
        current_session = uuid.UUID(principal.session_id) if principal.session_id else None
        await self._authentication.change_password(
            user_id, current_session, request.current_password, request.new_password
        )
        return empty_pb2.Empty()
