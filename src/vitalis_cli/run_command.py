"""``vitalis run``: the whole platform in one command, stopped cleanly by Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO
from urllib.parse import urlsplit, urlunsplit

from vitalis_cli.banner import BackingDescription, describe_running_platform
from vitalis_cli.console import prefixed_printer
from vitalis_cli.local_secrets import GENERATED_SECRETS, load_or_create_secrets
from vitalis_cli.platform import ChildExitedError, Platform, PlatformConfig
from vitalis_cli.ports import DEFAULT_GATEWAY_ADMIN_PORT, PortPlan
from vitalis_cli.readiness import StartupError
from vitalis_runtime.embedded import EmbeddedPostgres, EmbeddedRedis
from vitalis_runtime.errors import VitalisError
from vitalis_runtime.migrations import MigrationError


@dataclass(frozen=True)
class RunOptions:
    """What ``vitalis run`` was asked for."""

    data_dir: Path
    gateway_port: int
    base_port: int | None = None
    log_format: Literal["json", "console"] = "console"
    startup_timeout: float = 60.0


@dataclass(frozen=True)
class Backing:
    """The PostgreSQL and Redis the platform runs against, and how to describe them."""

    database_url: str
    redis_url: str
    description: BackingDescription


def without_password(url: str) -> str:
    """``url`` with any password replaced by ``***``, fit for printing."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@contextlib.asynccontextmanager
async def backing_servers(data_dir: Path, environ: Mapping[str, str], log: TextIO) -> AsyncIterator[Backing]:
    """Use ``DATABASE_URL`` / ``REDIS_URL`` when set; otherwise start embedded servers under ``data_dir``.

    Embedded servers keep their data between runs and are stopped on the way out, Redis first.
    """
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None
    try:
        database_url = environ.get("DATABASE_URL")
        if not database_url:
            print(f"starting embedded PostgreSQL in {data_dir / 'postgres'}", file=log)
            postgres = EmbeddedPostgres(data_dir / "postgres")
            database_url = await asyncio.to_thread(postgres.start)
        redis_url = environ.get("REDIS_URL")
        if not redis_url:
            print(f"starting embedded Redis in {data_dir / 'redis'}", file=log)
            redis = EmbeddedRedis(data_dir / "redis")
            redis_url = await asyncio.to_thread(redis.start)
        description = BackingDescription(
            database=f"embedded, in {data_dir / 'postgres'}" if postgres else without_password(database_url),
            redis=f"embedded, {redis_url}, in {data_dir / 'redis'}" if redis else without_password(redis_url),
        )
        yield Backing(database_url, redis_url, description)
    finally:
        if redis is not None:
            print("stopping embedded Redis", file=log)
            await asyncio.to_thread(redis.stop)
        if postgres is not None:
            print("stopping embedded PostgreSQL", file=log)
            await asyncio.to_thread(postgres.stop)


def plan_ports(options: RunOptions) -> PortPlan:
    """The catalog's ports with the chosen gateway port, or consecutive ports from ``--base-port``."""
    if options.base_port is not None:
        return PortPlan.from_base(options.base_port)
    admin = (
        DEFAULT_GATEWAY_ADMIN_PORT
        if options.gateway_port != DEFAULT_GATEWAY_ADMIN_PORT
        else options.gateway_port + 1
    )
    return PortPlan.catalog(gateway=options.gateway_port, gateway_admin=admin)


def platform_secrets(data_dir: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The secrets file's values, overridden by any set in the environment."""
    secrets = load_or_create_secrets(data_dir / "secrets.env")
    return {**secrets, **{name: environ[name] for name in GENERATED_SECRETS if environ.get(name)}}


async def _first_done(*tasks: asyncio.Task[Any]) -> set[asyncio.Task[Any]]:
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    return done


async def run_platform(
    options: RunOptions,
    *,
    environ: Mapping[str, str],
    python: str = sys.executable,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Run the platform until Ctrl-C / SIGTERM (exit 0) or until a child dies (exit 1)."""
    data_dir = options.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_requested.set)
    stop_wait = asyncio.create_task(stop_requested.wait())
    try:
        async with backing_servers(data_dir, environ, out) as backing:
            config = PlatformConfig(
                database_url=backing.database_url,
                redis_url=backing.redis_url,
                secrets=platform_secrets(data_dir, environ),
                work_dir=data_dir,
                ports=plan_ports(options),
                base_env=environ,
                python=python,
                log_format=options.log_format,
                startup_timeout=options.startup_timeout,
            )
            platform = Platform(config, log_sink=prefixed_printer(out, colour=out.isatty()))
            return await _supervise(platform, backing, stop_wait, out=out, err=err)
    finally:
        stop_wait.cancel()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def _supervise(
    platform: Platform, backing: Backing, stop_wait: asyncio.Task[bool], *, out: TextIO, err: TextIO
) -> int:
    starting = asyncio.create_task(platform.start())
    try:
        if starting not in await _first_done(starting, stop_wait):
            print("stop requested while starting; shutting down", file=out)
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
            return 0
        try:
            starting.result()
        # FileNotFoundError covers a checkout without generated code (`make protos`).
        except (StartupError, MigrationError, VitalisError, FileNotFoundError) as error:
            print(f"vitalis run: {error}", file=err)
            return 1
        print(describe_running_platform(platform, backing.description), file=out, flush=True)
        watching = asyncio.create_task(platform.wait_for_unexpected_exit())
        try:
            if watching in await _first_done(watching, stop_wait):
                try:
                    watching.result()
                except ChildExitedError as error:
                    print(f"vitalis run: {error}\nstopping everything", file=err)
                return 1
            print("stopping: gateway first, then the services", file=out)
            return 0
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError, ChildExitedError):
                await watching
    finally:
        await platform.stop()
        print("platform stopped", file=out)
