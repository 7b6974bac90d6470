"""Fixtures of the identity tests: a migrated schema and the whole service in-process on port 0."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis

from vitalis.identity.v1 import auth_service_pb2, auth_service_pb2_grpc
from vitalis_client import create_channel
from vitalis_identity.server import create_identity_server
from vitalis_identity.settings import IdentitySettings
from vitalis_runtime.bootstrap import Dependencies, ServiceParts
from vitalis_runtime.db import Database
from vitalis_runtime.migrations import load_migrations, migrate
from vitalis_runtime.service_auth import ServiceCredentials

Metadata = tuple[tuple[str, str], ...]
PASSWORD = "correct horse battery staple"
SERVICE_SECRET = "s" * 40
CLERK_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CLERK_ISSUER = "https://clerk.example.test"
OIDC_ISSUER = "https://login.example.test"


@pytest.fixture
async def db(admin_database_url: str, app_role: str) -> AsyncIterator[Database]:
    """A pool acting as the application role on a freshly migrated identity schema."""
    await migrate(
        admin_database_url,
        schema="identity",
        app_role=app_role,
        migrations=load_migrations("vitalis_identity"),
    )
    database = await Database.connect(admin_database_url, role=app_role, schema="identity", max_size=12)
    yield database
    await database.close()


@dataclass
class Person:
    """A signed-up user and their tokens."""

    user_id: uuid.UUID
    email: str
    access_token: str
    refresh_token: str
    session: str

    @property
    def name(self) -> str:
        """``users/{user}``."""
        return f"users/{self.user_id}"

    @property
    def auth(self) -> Metadata:
        """Call metadata with the access token."""
        return (("authorization", f"Bearer {self.access_token}"),)


@dataclass
class Identity:
    """The running service and ways to call it."""

    parts: ServiceParts
    channel: grpc.aio.Channel
    db: Database
    settings: IdentitySettings
    people: list[Person] = field(default_factory=list)

    def stub(self, factory: Callable[[grpc.aio.Channel], Any]) -> Any:
        """A stub of one of identity's services."""
        return factory(self.channel)

    def as_service(self, on_behalf_of: uuid.UUID | None = None, service: str = "biomarkers") -> Metadata:
        """Metadata of another Vitalis service acting for a user."""
        return ServiceCredentials(SERVICE_SECRET, service).metadata(on_behalf_of or uuid.uuid4())

    async def sign_up(self, *, given_name: str = "Ada", family_name: str = "Lovelace") -> Person:
        """A new user with a password, signed in."""
        email = f"{uuid.uuid4().hex[:12]}@example.com"
        stub = auth_service_pb2_grpc.AuthServiceStub(self.channel)
        response = await stub.SignUp(
            auth_service_pb2.SignUpRequest(
                email=email, password=PASSWORD, given_name=given_name, family_name=family_name
            )
        )
        person = Person(
            user_id=uuid.UUID(response.user.name.removeprefix("users/")),
            email=email,
            access_token=response.tokens.access_token,
            refresh_token=response.tokens.refresh_token,
            session=response.tokens.session,
        )
        self.people.append(person)
        return person


def identity_settings(database_url: str, redis_url: str, **overrides: Any) -> IdentitySettings:
    """Settings of an in-process identity on a free port."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "grpc_host": "127.0.0.1",
        "grpc_port": 0,
        "page_token_secret": "p" * 40,
        "signing_key_secret": "k" * 40,
        "service_token_secret": SERVICE_SECRET,
        "clerk_webhook_secret": CLERK_SECRET,
        "clerk_issuer": CLERK_ISSUER,
        "oidc_issuers": (OIDC_ISSUER,),
        **overrides,
    }
    return IdentitySettings(**values)


@contextlib.asynccontextmanager
async def running_identity(db: Database, settings: IdentitySettings) -> AsyncIterator[Identity]:
    """Identity with its background work, stopped on exit."""
    redis = aioredis.Redis.from_url(settings.redis_url)
    parts = await create_identity_server(settings, Dependencies(db=db, redis=redis))
    await parts.server.start()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(task(stop)) for task in parts.background]
    try:
        async with create_channel(f"127.0.0.1:{parts.port}") as channel:
            yield Identity(parts=parts, channel=channel, db=db, settings=settings)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=10)
        await parts.server.stop(None)
        for hook in parts.on_stop:
            await hook()
        await redis.aclose()


@pytest.fixture
async def identity(db: Database, admin_database_url: str, redis_url: str) -> AsyncIterator[Identity]:
    """Identity in-process with every other service's address unset."""
    async with running_identity(db, identity_settings(admin_database_url, redis_url)) as running:
        yield running


@pytest.fixture
def identity_with(
    db: Database, admin_database_url: str, redis_url: str
) -> Callable[..., contextlib.AbstractAsyncContextManager[Identity]]:
    """Start identity with settings overridden (for example another service's address)."""

    def start(**overrides: Any) -> contextlib.AbstractAsyncContextManager[Identity]:
        return running_identity(db, identity_settings(admin_database_url, redis_url, **overrides))

    return start
