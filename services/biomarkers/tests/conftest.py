"""Fixtures of the biomarkers tests: identity and biomarkers in-process on free ports, over one
database migrated once for the session, and people signed up through identity for each test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date

import grpc
import pytest
import redis.asyncio as aioredis
from google.protobuf import field_mask_pb2
from google.type import date_pb2  # type: ignore[import-untyped]

from vitalis.identity.v1 import (
    auth_service_pb2,
    auth_service_pb2_grpc,
    user_pb2,
    user_service_pb2,
    user_service_pb2_grpc,
)
from vitalis_biomarkers.server import create_biomarkers_server
from vitalis_biomarkers.settings import BiomarkersSettings
from vitalis_client import create_channel
from vitalis_identity.server import create_identity_server
from vitalis_identity.settings import IdentitySettings
from vitalis_runtime.bootstrap import Dependencies, ServiceParts
from vitalis_runtime.db import Database
from vitalis_runtime.migrations import load_migrations, migrate
from vitalis_runtime.service_auth import ServiceCredentials
from vitalis_runtime.testing import TestServers

SERVICE_SECRET = "s" * 40
Metadata = tuple[tuple[str, str], ...]
PASSWORD = "correct horse battery staple"
SEXES = {"female": user_pb2.SEX_FEMALE, "male": user_pb2.SEX_MALE, "other": user_pb2.SEX_OTHER}


@dataclass(frozen=True)
class Person:
    """A signed-up user with a bearer token."""

    user_id: uuid.UUID
    token: str

    @property
    def name(self) -> str:
        """``users/{id}``."""
        return f"users/{self.user_id}"

    @property
    def auth(self) -> Metadata:
        """Call metadata with the user's access token."""
        return (("authorization", f"Bearer {self.token}"),)


@dataclass
class Platform:
    """Identity and biomarkers running in-process, with channels to both and the database URL."""

    database_url: str
    identity: grpc.aio.Channel
    biomarkers: grpc.aio.Channel
    credentials: ServiceCredentials

    async def person(
        self, *, sex: str | None = "female", birth_date: date | None = date(1979, 6, 1)
    ) -> Person:
        """Sign a new user up through identity and set their sex and birth date."""
        auth = auth_service_pb2_grpc.AuthServiceStub(self.identity)
        signed_up = await auth.SignUp(
            auth_service_pb2.SignUpRequest(
                email=f"{uuid.uuid4().hex[:12]}@example.com",
                password=PASSWORD,
                given_name="Test",
                time_zone="UTC",
            )
        )
        person = Person(uuid.UUID(signed_up.user.name.removeprefix("users/")), signed_up.tokens.access_token)
        user = user_pb2.User(name=person.name)
        paths = []
        if sex is not None:
            user.sex = SEXES[sex]
            paths.append("sex")
        if birth_date is not None:
            user.birth_date.CopyFrom(
                date_pb2.Date(year=birth_date.year, month=birth_date.month, day=birth_date.day)
            )
            paths.append("birth_date")
        if paths:
            await user_service_pb2_grpc.UserServiceStub(self.identity).UpdateUser(
                user_service_pb2.UpdateUserRequest(
                    user=user, update_mask=field_mask_pb2.FieldMask(paths=paths)
                ),
                metadata=person.auth,
            )
        return person

    def as_service(self, person: Person) -> Metadata:
        """Call metadata of another service acting for ``person``."""
        return self.credentials.metadata(person.user_id)


async def _dependencies(url: str, redis_url: str, schema: str) -> Dependencies:
    db = await Database.connect(url, role=f"vitalis_{schema}_app", schema=schema, max_size=6)
    return Dependencies(db=db, redis=aioredis.Redis.from_url(redis_url))


async def _start(parts: ServiceParts) -> None:
    await parts.server.start()
    await parts.health.start()


@pytest.fixture(scope="session")
async def platform(test_servers: TestServers) -> AsyncIterator[Platform]:
    """Identity and biomarkers for the whole session, in a database of their own."""
    async with test_servers.temporary_database("vitalis_biomarkers_t") as url:
        for schema in ("identity", "biomarkers"):
            await migrate(
                url,
                schema=schema,
                app_role=f"vitalis_{schema}_app",
                migrations=load_migrations(f"vitalis_{schema}"),
            )
        common = {
            "database_url": url,
            "redis_url": test_servers.redis_url,
            "grpc_host": "127.0.0.1",
            "grpc_port": 0,
            "page_token_secret": "p" * 40,
            "service_token_secret": SERVICE_SECRET,
            "log_format": "console",
        }
        identity_deps = await _dependencies(url, test_servers.redis_url, "identity")
        identity = await create_identity_server(
            IdentitySettings(signing_key_secret="k" * 40, **common),  # type: ignore[arg-type]
            identity_deps,
        )
        await _start(identity)
        target = f"127.0.0.1:{identity.port}"
        biomarkers_deps = await _dependencies(url, test_servers.redis_url, "biomarkers")
        biomarkers = await create_biomarkers_server(
            BiomarkersSettings(identity_target=target, **common),  # type: ignore[arg-type]
            biomarkers_deps,
        )
        await _start(biomarkers)
        try:
            async with (
                create_channel(target) as identity_channel,
                create_channel(f"127.0.0.1:{biomarkers.port}") as biomarkers_channel,
            ):
                yield Platform(
                    database_url=url,
                    identity=identity_channel,
                    biomarkers=biomarkers_channel,
                    credentials=ServiceCredentials(SERVICE_SECRET, "documents"),
                )
        finally:
            for parts, deps in ((biomarkers, biomarkers_deps), (identity, identity_deps)):
                await parts.server.stop(None)
                for hook in parts.on_stop:
                    await hook()
                await deps.redis.aclose()
                await deps.db.close()


@pytest.fixture(scope="session")
async def someone(platform: Platform) -> Person:
    """One user shared by the tests that store nothing (dictionary reads, evaluations, refusals)."""
    return await platform.person()
