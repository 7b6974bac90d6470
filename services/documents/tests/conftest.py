"""Fixtures of the documents tests: a migrated schema, storage backends, an in-process server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
import redis.asyncio
from prometheus_client import CollectorRegistry

from vitalis.documents.v1 import (
    document_service_pb2_grpc,
    extraction_service_pb2_grpc,
)
from vitalis_client import create_channel
from vitalis_documents.server import DocumentsApplication
from vitalis_documents.settings import DocumentsSettings
from vitalis_documents.storage.base import ObjectStorage
from vitalis_documents.storage.disk import DiskStorage
from vitalis_documents.storage.s3 import S3Location, S3Storage
from vitalis_runtime.bootstrap import Dependencies
from vitalis_runtime.db import Database
from vitalis_runtime.migrations import load_migrations, migrate
from vitalis_runtime.testing import TestServers
from vitalis_runtime.testing_auth import LocalSigningKey
from vitalis_runtime.testing_grpc import running_server

SERVICE_SECRET = "s" * 40


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server (moto in server mode) on a free loopback port.

    It runs in a process of its own, so that the memory it uses to hold objects is not counted
    as the documents service's when a test measures that.
    """
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the S3 test server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


async def _s3_storage(endpoint: str) -> S3Storage:
    location = S3Location(
        bucket=f"documents-{uuid.uuid4().hex[:12]}",
        endpoint_url=endpoint,
        access_key_id="testing",
        secret_access_key="testing",
        key_prefix="documents/",
    )
    storage = await S3Storage.connect(location)
    await storage._client.create_bucket(Bucket=location.bucket)
    return storage


@pytest.fixture(params=["disk", "s3"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ObjectStorage]:
    """Each storage backend in turn, so every test using it runs against both."""
    if request.param == "disk":
        backend: ObjectStorage = DiskStorage(tmp_path / "objects")
    else:
        backend = await _s3_storage(request.getfixturevalue("s3_endpoint"))
    yield backend
    await backend.close()


@pytest.fixture
async def disk_storage(tmp_path: Path) -> DiskStorage:
    """Local-disk storage only, for tests that are not about storage."""
    return DiskStorage(tmp_path / "objects")


@dataclass(frozen=True)
class MigratedDatabase:
    """The documents schema migrated in the test's database."""

    admin_url: str
    app_role: str


@pytest.fixture(scope="module")
async def migrated(test_servers: TestServers) -> AsyncIterator[MigratedDatabase]:
    """The documents schema in a database of the test module's own, with a role of its own.

    Tests share it within a module and keep apart by acting for users of their own.
    """
    async with test_servers.temporary_database("vitalis_t_documents") as admin_database_url:
        role = f"vitalis_t_documents_{uuid.uuid4().hex[:10]}"
        await migrate(
            admin_database_url,
            schema="documents",
            app_role=role,
            migrations=load_migrations("vitalis_documents"),
        )
        try:
            yield MigratedDatabase(admin_database_url, role)
        finally:
            admin = await asyncpg.connect(admin_database_url)
            try:
                await admin.execute(f'DROP OWNED BY "{role}"')
                await admin.execute(f'DROP ROLE "{role}"')
            finally:
                await admin.close()


@pytest.fixture
async def db(migrated: MigratedDatabase) -> AsyncIterator[Database]:
    """A pool acting as the application role."""
    database = await Database.connect(
        migrated.admin_url, role=migrated.app_role, schema="documents", max_size=6
    )
    yield database
    await database.close()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A bytes-returning Redis client."""
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


SettingsFactory = Callable[..., DocumentsSettings]


@pytest.fixture
def make_settings(migrated: MigratedDatabase, redis_url: str, tmp_path: Path) -> SettingsFactory:
    """Settings for a test server; keyword arguments override fields."""

    def build(**overrides: Any) -> DocumentsSettings:
        values: dict[str, Any] = {
            "database_url": migrated.admin_url,
            "redis_url": redis_url,
            "page_token_secret": "p" * 40,
            "service_token_secret": SERVICE_SECRET,
            "grpc_port": 0,
            "storage_root": str(tmp_path / "objects"),
            "parse_timeout_seconds": 20.0,
        }
        values.update(overrides)
        return DocumentsSettings(**values)

    return build


@pytest.fixture
def signing_key() -> LocalSigningKey:
    """The key user tokens of the test are signed with."""
    return LocalSigningKey.generate()


@dataclass
class Client:
    """Stubs of a running documents server and tokens to call them with."""

    channel: grpc.aio.Channel
    documents: document_service_pb2_grpc.DocumentServiceStub
    extraction: extraction_service_pb2_grpc.ExtractionServiceStub
    app: DocumentsApplication
    key: LocalSigningKey
    target: str
    registry: CollectorRegistry

    def auth(self, user_id: uuid.UUID) -> tuple[tuple[str, str], ...]:
        """Metadata carrying a user token."""
        return (("authorization", f"Bearer {self.key.mint(user_id)}"),)

    def calls_finished(self, method: str, code: str) -> int:
        """How many calls of ``method`` (``DocumentService/UploadDocument``) ended with ``code``."""
        service, _, name = method.partition("/")
        labels = {"grpc_service": f"vitalis.documents.v1.{service}", "grpc_method": name, "grpc_code": code}
        return int(self.registry.get_sample_value("grpc_server_handled_total", labels) or 0)


@pytest.fixture
def start_client(
    db: Database,
    redis_client: redis.asyncio.Redis,
    make_settings: SettingsFactory,
    signing_key: LocalSigningKey,
) -> Callable[..., Any]:
    """Start an in-process server over the given storage (and settings overrides); yields a Client.

    ``register`` (``(app, server) -> None``) replaces the application's own registration of its servicers.
    """
    from contextlib import asynccontextmanager

    from vitalis_runtime.service_auth import accepting_service_tokens

    @asynccontextmanager
    async def start(storage: ObjectStorage, **kwargs: Any) -> AsyncIterator[Client]:
        biomarkers = kwargs.pop("biomarkers", None)
        background = kwargs.pop("background", False)
        grants = kwargs.pop("grants", None)
        register: Callable[[DocumentsApplication, grpc.aio.Server], None] = kwargs.pop(
            "register", DocumentsApplication.register
        )
        settings = make_settings(**kwargs)
        app = DocumentsApplication(
            settings, Dependencies(db=db, redis=redis_client), storage, grants=grants, biomarkers=biomarkers
        )
        if background:
            app.start_background()
        verifier = accepting_service_tokens(signing_key.verifier(), SERVICE_SECRET)
        async with (
            running_server(
                service_name="documents",
                register=lambda server: register(app, server),
                service_names=app.service_names,
                verifier=verifier,  # type: ignore[arg-type]
            ) as running,
            create_channel(running.target, max_message_bytes=16 * 1024 * 1024) as channel,
        ):
            try:
                yield Client(
                    channel=channel,
                    documents=document_service_pb2_grpc.DocumentServiceStub(channel),
                    extraction=extraction_service_pb2_grpc.ExtractionServiceStub(channel),
                    app=app,
                    key=signing_key,
                    target=running.target,
                    registry=running.registry,
                )
            finally:
                await app.stop()

    return start
