"""An in-process identity that knows SignUp and SignIn, for testing the commands that call it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import grpc

from vitalis.identity.v1 import auth_service_pb2, user_pb2


@dataclass
class FakeIdentity:
    """Users by email; every session's access token is ``token-for-<email>``."""

    passwords: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    sign_up_calls: int = 0

    async def sign_up(
        self, request: auth_service_pb2.SignUpRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.SignUpResponse:
        self.sign_up_calls += 1
        if request.email in self.passwords:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, "a user with this email exists")
        self.passwords[request.email] = request.password
        self.names[request.email] = f"users/{uuid.uuid4()}"
        return auth_service_pb2.SignUpResponse(
            user=user_pb2.User(name=self.names[request.email], given_name=request.given_name),
            tokens=auth_service_pb2.AuthTokens(
                access_token=f"token-for-{request.email}", token_type="Bearer"
            ),
        )

    async def sign_in(
        self, request: auth_service_pb2.SignInRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.SignInResponse:
        if self.passwords.get(request.email) != request.password:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "wrong email or password")
        return auth_service_pb2.SignInResponse(
            user=self.names[request.email],
            tokens=auth_service_pb2.AuthTokens(
                access_token=f"token-for-{request.email}", token_type="Bearer"
            ),
        )


@asynccontextmanager
async def serving(identity: FakeIdentity) -> AsyncIterator[str]:
    """Serve ``identity`` on a free loopback port; yield its target."""
    handlers = {
        "SignUp": grpc.unary_unary_rpc_method_handler(
            identity.sign_up,
            request_deserializer=auth_service_pb2.SignUpRequest.FromString,
            response_serializer=auth_service_pb2.SignUpResponse.SerializeToString,
        ),
        "SignIn": grpc.unary_unary_rpc_method_handler(
            identity.sign_in,
            request_deserializer=auth_service_pb2.SignInRequest.FromString,
            response_serializer=auth_service_pb2.SignInResponse.SerializeToString,
        ),
    }
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("vitalis.identity.v1.AuthService", handlers),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)
