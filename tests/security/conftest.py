"""The running platform an adversary attacks: five services and Envoy, users signed up through it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from vitalis_cli.platform import Platform
from vitalis_cli.testing import running_platform
from vitalis_runtime.testing import TestServers


@pytest.fixture(scope="package")
async def platform(
    test_servers: TestServers, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Platform]:
    """One platform for the security suite, in a database of its own."""
    work_dir = Path(tmp_path_factory.mktemp("security-platform"))
    async with running_platform(test_servers, work_dir, database_prefix="vitalis_sec") as running:
        yield running


@pytest.fixture
async def gateway(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the gateway."""
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=15.0) as client:
        yield client
