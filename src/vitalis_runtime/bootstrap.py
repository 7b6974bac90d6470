"""Starting a service: the steps every entry point shares, so each ``__main__`` stays a few lines.

A service provides a *build* function that receives its settings and open dependencies and returns
the :class:`ServiceParts` (a bound gRPC server, its health reporter, background tasks). Everything
else — logging, tracing, metrics, pools, JWKS-backed token verification, graceful shutdown — is done
here once.
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import redis.asyncio as aioredis

from vitalis_runtime.auth import JwksCache, TokenVerifier
from vitalis_runtime.db import Database
from vitalis_runtime.events import translate_redis_errors
from vitalis_runtime.external_tokens import ExternalTokenVerifier, RemoteSubjectResolver, http_jwks
from vitalis_runtime.logs import configure_logging
from vitalis_runtime.metrics import start_metrics_server
from vitalis_runtime.server import HealthReporter, ReadinessCheck, create_server, serve
from vitalis_runtime.service_auth import CallerVerifier, ServiceCredentials, accepting_service_tokens
from vitalis_runtime.settings import ServiceSettings
from vitalis_runtime.telemetry import configure_tracing

S = TypeVar("S", bound=ServiceSettings)
JWKS_METHOD = "/vitalis.identity.v1.AuthService/GetJwks"


@dataclass
class ServiceParts:
    """A bound, started gRPC server and what runs beside it until shutdown."""

    server: grpc.aio.Server
    port: int
    health: HealthReporter
    background: Sequence[Callable[[asyncio.Event], Awaitable[None]]] = field(default_factory=list)
    on_stop: Sequence[Callable[[], Awaitable[None]]] = field(default_factory=list)


@dataclass(frozen=True)
class Dependencies:
    """The connections a service holds for its lifetime."""

    db: Database
    redis: aioredis.Redis

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        """Readiness is tied to PostgreSQL and Redis."""

        async def postgresql() -> None:
            await self.db.ping()

        async def redis() -> None:
            with translate_redis_errors():
                await asyncio.wait_for(self.redis.ping(), timeout=2.0)

        return {"postgresql": postgresql, "redis": redis}


@asynccontextmanager
async def open_dependencies(settings: ServiceSettings) -> AsyncIterator[Dependencies]:
    """Connect the database pool and Redis; close both on exit."""
    db = await Database.connect(
        settings.database_url,
        role=settings.database_role,
        schema=settings.service_name,
        application_name=settings.service_name,
    )
    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        yield Dependencies(db=db, redis=redis)
    finally:
        await redis.aclose()
        await db.close()


def identity_jwks_fetcher(channel: grpc.aio.Channel) -> Callable[[], Awaitable[dict[str, Any]]]:
    """Fetch the JWKS from identity's ``GetJwks`` (a ``google.api.HttpBody`` of JSON)."""
    from google.api import httpbody_pb2  # type: ignore[import-untyped]
    from google.protobuf import empty_pb2

    call = channel.unary_unary(
        JWKS_METHOD,
        request_serializer=empty_pb2.Empty.SerializeToString,
        response_deserializer=httpbody_pb2.HttpBody.FromString,
    )

    async def fetch() -> dict[str, Any]:
        body = await call(empty_pb2.Empty(), timeout=5.0)
        document: dict[str, Any] = json.loads(body.data)
        return document

    return fetch


def remote_verifier(settings: ServiceSettings, channel: grpc.aio.Channel) -> TokenVerifier:
    """Verify bearer tokens against identity's JWKS, cached and refreshed on unknown key ids."""
    return TokenVerifier(
        JwksCache(identity_jwks_fetcher(channel)), issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )


def with_external_issuers(
    settings: ServiceSettings, vitalis: CallerVerifier, identity: grpc.aio.Channel
) -> CallerVerifier:
    """``vitalis`` extended to the tokens of the configured external issuers, resolved by identity."""
    jwks_uris = settings.external_jwks_uris()
    if not jwks_uris:
        return vitalis
    credentials = ServiceCredentials.of(settings)
    if credentials is None:
        raise ValueError("VITALIS_SERVICE_TOKEN_SECRET is required to resolve external issuers' subjects")
    resolver = RemoteSubjectResolver(identity, credentials)
    jwks = {issuer: http_jwks(uri) for issuer, uri in jwks_uris.items()}
    return ExternalTokenVerifier(vitalis, resolver, jwks, audience=settings.external_token_audience)


async def run_service(settings: S, build: Callable[[S, Dependencies], Awaitable[ServiceParts]]) -> None:
    """Configure telemetry, open dependencies, build the server and serve until SIGTERM/SIGINT."""
    # A crash inside a C extension (grpc, asyncpg, lxml) then leaves every thread's Python stack
    # on stderr instead of a bare exit status.
    faulthandler.enable()
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    configure_tracing(settings.service_name, settings.otlp_endpoint)
    metrics = start_metrics_server(settings.metrics_port) if settings.metrics_port else None
    try:
        async with open_dependencies(settings) as deps:
            parts = await build(settings, deps)
            await serve(
                parts.server,
                parts.health,
                grace_seconds=settings.shutdown_grace_seconds,
                background=parts.background,
                on_stop=parts.on_stop,
            )
    finally:
        if metrics is not None:
            metrics.close()


async def create_service_server(
    settings: ServiceSettings,
    deps: Dependencies,
    *,
    register: Callable[[grpc.aio.Server], None],
    service_names: Sequence[str],
    public_methods: Sequence[str] = (),
    verifier: CallerVerifier | None = None,
    server_options: Sequence[tuple[str, int]] = (),
) -> ServiceParts:
    """Bind a service's gRPC server with the shared interceptors, health and reflection.

    Without an explicit ``verifier`` tokens are verified against identity's JWKS, reached at
    ``settings.identity_target``. With ``settings.service_token_secret`` set, other services' tokens
    are accepted too, signed with it or with one of ``settings.service_token_previous_secrets``
    (see :mod:`vitalis_runtime.service_auth`).
    """
    from vitalis_client import create_channel

    on_stop: list[Callable[[], Awaitable[None]]] = []
    if verifier is None:
        if not settings.identity_target:
            raise ValueError("VITALIS_IDENTITY_TARGET is required to verify tokens")
        channel = create_channel(settings.identity_target)
        verifier = with_external_issuers(settings, remote_verifier(settings, channel), channel)

        async def close_channel() -> None:
            await channel.close()

        on_stop.append(close_channel)
    server, port, health = await create_server(
        f"{settings.grpc_host}:{settings.grpc_port}",
        service_name=settings.service_name,
        register=register,
        service_names=service_names,
        verifier=accepting_service_tokens(
            verifier,
            settings.service_token_secret,
            previous_secrets=settings.service_token_previous_secrets,
        ),
        public_methods=public_methods,
        readiness_checks=deps.readiness_checks(),
        extra_options=server_options,
    )
    return ServiceParts(server=server, port=port, health=health, on_stop=on_stop)
