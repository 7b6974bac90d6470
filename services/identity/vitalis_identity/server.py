"""The identity service's composition root: wires real dependencies once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import grpc
import redis.asyncio as aioredis

from vitalis.identity.v1 import auth_service_pb2, auth_service_pb2_grpc, user_service_pb2, user_service_pb2_grpc
from vitalis_identity.api.auth import AuthServicer
from vitalis_identity.api.users import UserServicer
from vitalis_identity.authentication import Authentication, SessionPolicy
from vitalis_identity.domain.keys import KeySchedule
from vitalis_identity.keyring import KeyRing
from vitalis_identity.profiles import Profiles
from vitalis_identity.settings import IdentitySettings
from vitalis_runtime.auth import JwksCache, TokenVerifier
from vitalis_runtime.db import Database
from vitalis_runtime.server import HealthReporter, create_server

SERVICE_NAMES = (
    auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
    user_service_pb2.DESCRIPTOR.services_by_name["UserService"].full_name,
)
PUBLIC_METHODS = frozenset(
    f"/{auth_service_pb2.DESCRIPTOR.services_by_name['AuthService'].full_name}/{method}"
    for method in ("SignUp", "SignIn", "RefreshSession", "GetJwks")
)


@dataclass
class IdentityServer:
    """A started (not yet serving-forever) identity server and what must run beside it."""

    server: grpc.aio.Server
    port: int
    health: HealthReporter
    background: Sequence[Callable[[asyncio.Event], Awaitable[None]]] = field(default_factory=list)
    on_stop: Sequence[Callable[[], Awaitable[None]]] = field(default_factory=list)


@asynccontextmanager
async def identity_dependencies(settings: IdentitySettings) -> AsyncIterator[tuple[Database, aioredis.Redis]]:
    """The database pool and Redis client, closed on exit."""
    db = await Database.connect(settings.database_url, role=settings.database_role)
    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        yield db, redis
    finally:
        await redis.aclose()
        await db.close()


async def create_identity_server(
    settings: IdentitySettings, db: Database, redis: aioredis.Redis[Any]
) -> IdentityServer:
    """Build the identity server bound to ``settings.grpc_port`` (0 → a free port)."""
    schedule = KeySchedule(
        rotation_period=timedelta(days=settings.key_rotation_days),
        access_token_ttl=timedelta(seconds=settings.access_token_ttl_seconds),
    )
    keyring = KeyRing(
        db,
        secret=settings.signing_key_secret.get_secret_value(),
        schedule=schedule,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    await keyring.refresh()

    async def local_jwks() -> dict[str, Any]:
        return keyring.jwks()

    verifier = TokenVerifier(JwksCache(local_jwks), issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    authentication = Authentication(
        db,
        keyring,
        policy=SessionPolicy(
            refresh_token_ttl=timedelta(days=settings.refresh_token_ttl_days),
            session_ttl=timedelta(days=settings.session_ttl_days),
        ),
    )
    profiles = Profiles(db)

    def register(server: grpc.aio.Server) -> None:
        auth_service_pb2_grpc.add_AuthServiceServicer_to_server(AuthServicer(authentication, keyring), server)
        user_service_pb2_grpc.add_UserServiceServicer_to_server(UserServicer(profiles), server)

    async def database_ready() -> None:
        await db.ping()

    async def redis_ready() -> None:
        await redis.ping()

    server, port, health = await create_server(
        f"{settings.grpc_host}:{settings.grpc_port}",
        service_name=settings.service_name,
        register=register,
        service_names=SERVICE_NAMES,
        verifier=verifier,
        public_methods=PUBLIC_METHODS,
        readiness_checks={"postgresql": database_ready, "redis": redis_ready},
    )
    return IdentityServer(server=server, port=port, health=health, background=[keyring.run_rotation])
