"""Test support: the whole platform (five services and Envoy) on free ports in a database of its own."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from vitalis_cli.local_secrets import generate_secrets
from vitalis_cli.platform import Platform, PlatformConfig
from vitalis_cli.ports import PortPlan
from vitalis_runtime.testing import TestServers

PASSED_THROUGH_ENV = ("PATH", "HOME", "LANG")


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
            extra_env=dict(extra_env or {}),
            log_format="json",
        )
        async with Platform(config) as running:
            yield running
