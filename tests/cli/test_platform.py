"""The platform for real: five services and Envoy against the test PostgreSQL and Redis.

These start real processes, so they are few and each one checks a whole behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from vitalis_cli.local_secrets import generate_secrets
from vitalis_cli.platform import ChildExitedError, Platform, PlatformConfig, StartupError
from vitalis_cli.ports import PortPlan
from vitalis_runtime.catalog import SERVICES, service
from vitalis_runtime.embedded import free_port_block

pytestmark = pytest.mark.timeout(300)
PROJECT_ROOT = Path(__file__).resolve().parents[2]
VITALIS = [sys.executable, "-m", "vitalis_cli.main"]
PASSWORD = "correct horse battery staple"


def _secrets() -> dict[str, str]:
    return generate_secrets()


def _base_env() -> dict[str, str]:
    return {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}


def _is_listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def test_a_service_that_cannot_start_is_named_with_its_last_output(tmp_path: Path) -> None:
    config = PlatformConfig(
        database_url="postgresql://postgres@127.0.0.1:5432/postgres",
        redis_url="redis://127.0.0.1:6379/0",
        secrets=_secrets(),
        work_dir=tmp_path,
        ports=PortPlan.free(services=[service("identity")]),
        services=(service("identity"),),
        base_env=_base_env(),
        extra_env={"REDIS_URL": "ftp://not-a-redis"},
        with_gateway=False,
        run_migrations=False,
    )
    platform = Platform(config)

    with pytest.raises(StartupError, match=r"(?s)identity exited with status \d+ before SERVING.*REDIS_URL"):
        async with platform:
            pytest.fail("the platform must not start")

    assert all(child.returncode is not None for child in platform.children())


async def test_a_child_that_dies_is_reported_by_name(
    tmp_path: Path, admin_database_url: str, redis_url: str
) -> None:
    identity = service("identity")
    config = PlatformConfig(
        database_url=admin_database_url,
        redis_url=redis_url,
        secrets=_secrets(),
        work_dir=tmp_path,
        ports=PortPlan.free(services=[identity]),
        services=(identity,),
        base_env=_base_env(),
        with_gateway=False,
    )
    async with Platform(config) as platform:
        assert "identity" in platform.applied_migrations
        (child,) = platform.children()
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)

        with pytest.raises(ChildExitedError, match="identity exited unexpectedly with status -9"):
            await asyncio.wait_for(platform.wait_for_unexpected_exit(), timeout=30)


@contextlib.asynccontextmanager
async def _vitalis_run(
    data_dir: Path, base_port: int, env: dict[str, str]
) -> AsyncIterator[tuple[list[str], asyncio.subprocess.Process]]:
    process = await asyncio.create_subprocess_exec(
        *VITALIS,
        "run",
        "--data-dir",
        str(data_dir),
        "--base-port",
        str(base_port),
        "--log-format",
        "json",
        cwd=PROJECT_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        process_group=0,
    )
    lines: list[str] = []

    async def collect() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            lines.append(raw.decode(errors="replace").rstrip())

    collector = asyncio.create_task(collect())
    try:
        yield lines, process
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        await asyncio.wait_for(collector, timeout=30)


async def _wait_for_line(
    lines: list[str], text: str, process: asyncio.subprocess.Process, seconds: float
) -> None:
    async with asyncio.timeout(seconds):
        while not any(text in line for line in lines):
            assert process.returncode is None, "\n".join(lines[-40:])
            await asyncio.sleep(0.2)


async def _run_command(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *VITALIS,
        *args,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_vitalis_run_serves_the_gateway_until_interrupted_then_stops_everything(
    tmp_path: Path, admin_database_url: str, redis_url: str
) -> None:
    base = free_port_block(2 + 2 * len(SERVICES))
    plan = PortPlan.from_base(base)
    env = {**_base_env(), "DATABASE_URL": admin_database_url, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"}
    gateway = f"http://127.0.0.1:{plan.gateway}"
    data_dir = tmp_path / "data"

    async with _vitalis_run(data_dir, base, env) as (lines, process):
        await _wait_for_line(lines, "Press Ctrl-C to stop.", process, 240)
        banner = "\n".join(lines)
        assert f"gateway    {gateway}" in banner
        assert f"API docs   {gateway}/docs" in banner
        assert f"curl -s -X POST {gateway}/v1/auth:signUp" in banner
        async with httpx.AsyncClient(base_url=gateway, timeout=10, trust_env=False) as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/openapi.json")).json()["openapi"].startswith("3.")

        code, token, err = await _run_command(
            "token",
            "--email",
            "runner@example.com",
            "--password",
            PASSWORD,
            "--sign-up",
            "--gateway",
            gateway,
            env=env,
        )
        assert code == 0, err
        assert token.count(".") == 2

        targets = [f"--target={spec.name}=127.0.0.1:{plan.of(spec.name).grpc}" for spec in SERVICES]
        identity = f"127.0.0.1:{plan.of('identity').grpc}"
        code, report, err = await _run_command("seed", "--identity", identity, *targets, env=env)
        assert "demo user demo@vitalis.dev (users/" in report, err
        assert "heart rate of a Garmin run" in report

        # What a terminal's Ctrl-C does: SIGINT to the whole foreground process group.
        os.killpg(process.pid, signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), timeout=60) == 0

    assert "platform stopped" in lines[-1]
    assert stat.S_IMODE((data_dir / "secrets.env").stat().st_mode) == 0o600
    ports = [plan.gateway, *(plan.of(spec.name).grpc for spec in SERVICES)]
    assert not [port for port in ports if _is_listening(port)]


def _child_running(parent: int, module: str) -> int:
    """The pid of ``parent``'s child started as ``python -m <module>``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat_fields[1]) == parent and module.encode() in command:
            return int(entry.name)
    raise LookupError(f"no child {module} of {parent}")


async def test_vitalis_run_stops_everything_and_fails_when_a_service_dies(
    tmp_path: Path, admin_database_url: str, redis_url: str
) -> None:
    base = free_port_block(2 + 2 * len(SERVICES))
    plan = PortPlan.from_base(base)
    env = {**_base_env(), "DATABASE_URL": admin_database_url, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"}

    async with _vitalis_run(tmp_path / "data", base, env) as (lines, process):
        await _wait_for_line(lines, "Press Ctrl-C to stop.", process, 240)
        os.kill(_child_running(process.pid, "vitalis_insights"), signal.SIGKILL)

        assert await asyncio.wait_for(process.wait(), timeout=60) == 1

    output = "\n".join(lines)
    assert "insights exited unexpectedly with status -9" in output
    assert "platform stopped" in lines[-1]
    assert not [port for port in (plan.gateway, plan.of("identity").grpc) if _is_listening(port)]
