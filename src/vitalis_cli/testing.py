"""Test support: the whole platform (five services and Envoy) on free ports in a database of its own."""

from __future__ import annotations

import importlib
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message as ProtoMessage

import vitalis
from vitalis_cli.local_secrets import generate_secrets
from vitalis_cli.platform import Platform, PlatformConfig
from vitalis_cli.ports import PortPlan
from vitalis_runtime.testing import TestServers

PASSED_THROUGH_ENV = ("PATH", "HOME", "LANG")
PASSWORD = "correct horse battery staple"  # noqa: S105 - a test account's password


@asynccontextmanager
async def running_platform(
    test_servers: TestServers,
    work_dir: Path,
    *,
    database_prefix: str = "vitalis_e2e",
    extra_env: Mapping[str, str] | None = None,
) -> AsyncIterator[Platform]:
    """Start the platform against ``test_servers`` in a fresh database; stop and drop it on exit."""
    async with test_servers.temporary_database(database_prefix) as database_url:
        config = PlatformConfig(
            database_url=database_url,
            redis_url=test_servers.redis_url,
            secrets=generate_secrets(),
            work_dir=work_dir,
            ports=PortPlan.free(),
            base_env={key: os.environ[key] for key in PASSED_THROUGH_ENV if key in os.environ},
            # Platforms of concurrent test runs may share one Redis: each keeps its events apart.
            extra_env={
                "VITALIS_EVENT_STREAM_PREFIX": f"vitalis-test-{uuid.uuid4().hex[:12]}",
                **(extra_env or {}),
            },
            log_format="json",
        )
        async with Platform(config) as running:
            yield running


@dataclass(frozen=True)
class SignedUpUser:
    """A user of the platform and the access token the gateway issued to them."""

    user_id: str
    email: str
    access_token: str

    @property
    def name(self) -> str:
        """The user's resource name."""
        return f"users/{self.user_id}"

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers that authenticate as this user."""
        return {"authorization": f"Bearer {self.access_token}"}

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """gRPC metadata that authenticates as this user."""
        return (("authorization", f"Bearer {self.access_token}"),)


async def sign_up(gateway: httpx.AsyncClient) -> SignedUpUser:
    """A new user, signed up through the gateway like any client would."""
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    response = await gateway.post(
        "/v1/auth:signUp",
        json={"email": email, "password": PASSWORD, "givenName": "Eve", "timeZone": "Europe/Berlin"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    user_id = body["user"]["name"].removeprefix("users/")
    return SignedUpUser(user_id=user_id, email=email, access_token=body["tokens"]["accessToken"])


def import_generated_modules() -> None:
    """Import every generated ``*_pb2`` module, so the default pool knows every contract message."""
    for root in map(Path, vitalis.__path__):
        for module in sorted(root.rglob("*_pb2.py")):
            relative = module.relative_to(root.parent).with_suffix("")
            importlib.import_module(".".join(relative.parts))


def message_class(full_name: str) -> type[ProtoMessage]:
    """The message class of a fully qualified protobuf type name."""
    descriptor = descriptor_pool.Default().FindMessageTypeByName(full_name)
    cls: type[ProtoMessage] = message_factory.GetMessageClass(descriptor)
    return cls
