"""The whole platform — five services and a real Envoy — on free ports for the end-to-end tests."""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from vitalis_cli.local_secrets import SIGNING_KEY_SECRET
from vitalis_cli.platform import Platform
from vitalis_cli.testing import running_platform
from vitalis_runtime.testing import TestServers


@pytest.fixture(scope="package")
async def platform(
    test_servers: TestServers, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Platform]:
    """One platform for the package, in a database of its own."""
    webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    async with running_platform(
        test_servers,
        Path(tmp_path_factory.mktemp("platform")),
        extra_env={"VITALIS_CLERK_WEBHOOK_SECRET": webhook_secret},
    ) as running:
        yield running


@pytest.fixture
async def gateway(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the gateway."""
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=10.0) as client:
        yield client


@pytest.fixture
def signing_secret(platform: Platform) -> str:
    """The secret identity encrypts its signing keys with (to mint edge-case tokens in tests)."""
    return platform.config.secrets[SIGNING_KEY_SECRET]
