"""Fixtures of the ingestion tests: a migrated schema, the service in-process on port 0, user tokens."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from vitalis.ingestion.v1 import source_pb2, source_service_pb2, source_service_pb2_grpc
from vitalis_client import create_channel
from vitalis_ingestion.server import SERVICE_NAMES, IngestionApp
from vitalis_runtime.db import Database
from vitalis_runtime.migrations import load_migrations, migrate
from vitalis_runtime.pagination import PageTokens
from vitalis_runtime.service_auth import ServiceCredentials, accepting_service_tokens
from vitalis_runtime.testing_auth import LocalSigningKey
from vitalis_runtime.testing_grpc import running_server

SERVICE_SECRET = "s" * 40
FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
Metadata = tuple[tuple[str, str], ...]


@pytest.fixture
async def db(admin_database_url: str, app_role: str) -> AsyncIterator[Database]:
    """A pool acting as the application role on a freshly migrated ingestion schema."""
    await migrate(
        admin_database_url,
        schema="ingestion",
        app_role=app_role,
        migrations=load_migrations("vitalis_ingestion"),
    )
    database = await Database.connect(admin_database_url, role=app_role, schema="ingestion", max_size=8)
    yield database
    await database.close()


@dataclass
class Service:
    """The running service, a channel to it and a way to act as users."""

    app: IngestionApp
    channel: grpc.aio.Channel
    key: LocalSigningKey
    user_id: uuid.UUID

    def as_user(self, user_id: uuid.UUID | None = None) -> Metadata:
        """Call metadata with a bearer token for ``user_id`` (the default user when not given)."""
        return (("authorization", f"Bearer {self.key.mint(user_id or self.user_id)}"),)

    def as_service(self, name: str = "identity") -> Metadata:
        """Call metadata of another Vitalis service acting for the default user."""
        return ServiceCredentials(SERVICE_SECRET, name).metadata(self.user_id)

    @property
    def me(self) -> Metadata:
        """Call metadata for the default user."""
        return self.as_user()

    @property
    def user(self) -> str:
        """The default user's name."""
        return f"users/{self.user_id}"


@pytest.fixture
async def service(db: Database, tmp_path: Path) -> AsyncIterator[Service]:
    """The ingestion service in-process on a free port, with a real token verifier."""
    key = LocalSigningKey.generate()
    app = IngestionApp.assemble(db, page_tokens=PageTokens(b"p" * 32), spool_dir=tmp_path / "spool")
    async with (
        running_server(
            service_name="ingestion",
            register=app.register,
            service_names=SERVICE_NAMES,
            verifier=accepting_service_tokens(key.verifier(), SERVICE_SECRET),
        ) as running,
        create_channel(running.target) as channel,
    ):
        yield Service(app=app, channel=channel, key=key, user_id=uuid.uuid4())
        await app.close()


@pytest.fixture
def make_source(service: Service) -> Callable[..., object]:
    """Create a source of the default user (or another) and return its name."""

    async def create(source_id: str, *, user_id: uuid.UUID | None = None, platform: int = 14) -> str:
        stub = source_service_pb2_grpc.SourceServiceStub(service.channel)
        created = await stub.CreateSource(
            source_service_pb2.CreateSourceRequest(
                parent=f"users/{user_id or service.user_id}",
                source=source_pb2.Source(display_name=source_id.title(), platform=platform),  # type: ignore[arg-type]
                source_id=source_id,
            ),
            metadata=service.as_user(user_id),
        )
        return str(created.name)

    return create
