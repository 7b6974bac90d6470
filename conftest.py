"""Fixtures shared by every test: a real PostgreSQL database and a real Redis per test session.

The servers come from ``VITALIS_TEST_DATABASE_URL`` / ``VITALIS_TEST_REDIS_URL`` (defaulting to the
local servers on 127.0.0.1); when none answers, embedded ones are started for the session.
Each test gets a fresh database of its own and a unique Redis key prefix; nothing else is dropped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import asyncpg
import pytest

from vitalis_runtime.testing import TestServers, start_test_servers


@pytest.fixture(scope="session")
def test_servers() -> Iterator[TestServers]:
    """PostgreSQL and Redis for the whole session: the configured ones or embedded ones."""
    with start_test_servers(
        database_url=os.environ.get("VITALIS_TEST_DATABASE_URL"),
        redis_url=os.environ.get("VITALIS_TEST_REDIS_URL"),
    ) as servers:
        yield servers


@pytest.fixture
async def admin_database_url(test_servers: TestServers) -> AsyncIterator[str]:
    """A fresh, empty database owned by this test, reached as a superuser (for migrations)."""
    async with test_servers.temporary_database() as url:
        yield url


@pytest.fixture
async def app_role(admin_database_url: str) -> AsyncIterator[str]:
    """A role name no other test uses; the role is dropped afterwards if it was created."""
    role = f"vitalis_t_app_{uuid.uuid4().hex[:12]}"
    yield role
    admin = await asyncpg.connect(admin_database_url)
    try:
        if await admin.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", role):
            await admin.execute(f'DROP OWNED BY "{role}"')
            await admin.execute(f'DROP ROLE "{role}"')
    finally:
        await admin.close()


@pytest.fixture
def redis_url(test_servers: TestServers) -> str:
    """The session's Redis server."""
    return test_servers.redis_url


@pytest.fixture
def key_prefix() -> str:
    """A Redis key prefix no other test uses."""
    return f"vitalis-test:{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Figure:
    """One measured figure of the security or chaos suite and the bound it must respect."""

    suite: str
    name: str
    value: str
    bound: str
    ok: bool


FIGURES = pytest.StashKey[list[Figure]]()


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Callable[[str, object, str, bool], None]:
    """Record a figure for the summary table printed at the end of the run."""
    suite = request.node.path.parent.name

    def record(name: str, value: object, bound: str, ok: bool) -> None:
        request.config.stash.setdefault(FIGURES, []).append(Figure(suite, name, str(value), bound, ok))

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Print the security and chaos figures as one table."""
    figures = config.stash.get(FIGURES, [])
    if not figures:
        return
    terminalreporter.section("security and reliability figures")
    widths = [max(len(f.suite) for f in figures), max(len(f.name) for f in figures)]
    for item in sorted(figures, key=lambda f: (f.suite, f.name)):
        verdict = "ok" if item.ok else "FAILED"
        label = f"{item.suite:<{widths[0]}}  {item.name:<{widths[1]}}"
        terminalreporter.write_line(f"{label}  {item.value:>12}  {item.bound:<16} {verdict}")
