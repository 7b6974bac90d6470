"""What the benchmarks measure, started with the project's own machinery.

PostgreSQL and Redis come from ``start_test_servers`` (the local ones, else embedded ones), the
platform — five services and Envoy — from :class:`Platform` on free ports in a temporary database.
The gateway is rendered from the project's ``gateway.yaml`` with one change: the local rate limit
is lifted, because a benchmark measures what the pipeline costs, not the policy that caps it.
A second Envoy, rendered from the same source with the measured read exempt from ``jwt_authn``,
separates the cost of the edge's token check from the cost of transcoding (B4).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import yaml

from vitalis_cli.children import ChildProcess
from vitalis_cli.envoy import GATEWAY_SOURCE, prepare_envoy
from vitalis_cli.local_secrets import generate_secrets
from vitalis_cli.platform import LOOPBACK, Platform, PlatformConfig
from vitalis_cli.ports import PortPlan
from vitalis_cli.project import find_project_root
from vitalis_cli.readiness import Readiness, gateway_ready_probe, wait_until_ready
from vitalis_runtime.catalog import SERVICES
from vitalis_runtime.embedded import free_port
from vitalis_runtime.testing import TestServers, start_test_servers

UNLIMITED_RATE = {"max_tokens": 1_000_000, "tokens_per_fill": 1_000_000, "fill_interval": "1s"}
EDGE_JWT_EXEMPT_FOR_DECOMPOSITION = ("vitalis.identity.v1.UserService/GetUser",)
PASSWORD = "bench horse battery staple"
INHERITED_ENV = ("PATH", "HOME", "LANG", "PYTHONPATH")


@contextlib.contextmanager
def database_servers() -> Iterator[TestServers]:
    """The PostgreSQL and Redis the tests use: configured ones, else local ones, else embedded ones."""
    with start_test_servers(
        database_url=os.environ.get("VITALIS_TEST_DATABASE_URL"),
        redis_url=os.environ.get("VITALIS_TEST_REDIS_URL"),
    ) as servers:
        yield servers


def bench_project_root(work_dir: Path, *, exempt: tuple[str, ...] = ()) -> Path:
    """A copy of the project's gateway source with the rate limit lifted (and ``exempt`` methods added).

    The generated descriptor set is shared with the checkout through a symbolic link.
    """
    checkout = find_project_root(Path.cwd())
    root = work_dir / ("gateway-edge-exempt" if exempt else "gateway-bench")
    (root / "gateway").mkdir(parents=True, exist_ok=True)
    source: dict[str, Any] = yaml.safe_load((checkout / GATEWAY_SOURCE).read_text(encoding="utf-8"))
    source["limits"]["rate_limit"] = UNLIMITED_RATE
    source["authentication"]["exempt_methods"] = [*source["authentication"]["exempt_methods"], *exempt]
    source["descriptor_set"] = str(
        (checkout / GATEWAY_SOURCE).parent.joinpath(source["descriptor_set"]).resolve()
    )
    (root / GATEWAY_SOURCE).write_text(yaml.safe_dump(source, sort_keys=False), encoding="utf-8")
    generated = root / "gen"
    if not generated.exists():
        generated.symlink_to(checkout / "gen", target_is_directory=True)
    return root


@dataclass
class BenchUser:
    """A user signed up through the gateway, with its access token."""

    user_id: uuid.UUID
    name: str
    token: str

    @property
    def bearer(self) -> dict[str, str]:
        """The Authorization header for REST calls."""
        return {"authorization": f"Bearer {self.token}"}

    @property
    def metadata(self) -> list[list[str]]:
        """The same token as gRPC metadata (JSON-friendly for the driver's spec)."""
        return [["authorization", f"Bearer {self.token}"]]


@dataclass
class Stack:
    """The running platform and what the benchmarks need to reach it."""

    servers: TestServers
    database_url: str
    database_name: str
    platform: Platform
    exempt_gateway_url: str
    exempt_envoy: ChildProcess
    work_dir: Path
    """Scratch space removed when the benchmarks end (generated exports live here)."""

    def target(self, service: str) -> str:
        """``host:port`` of a service's gRPC server."""
        return self.platform.service_target(service)

    @property
    def gateway_url(self) -> str:
        """The gateway (JWT checked at the edge)."""
        return self.platform.gateway_url

    @property
    def gateway_target(self) -> str:
        """The gateway as a gRPC target."""
        return f"{LOOPBACK}:{self.platform.config.ports.gateway}"

    @property
    def exempt_gateway_target(self) -> str:
        """The second Envoy as a gRPC target."""
        return self.exempt_gateway_url.removeprefix("http://")

    def process_labels(self) -> dict[str, list[int]]:
        """The pids of Envoy (both) and of each service."""
        pids: dict[str, list[int]] = {"envoy": []}
        for child in [*self.platform.children(), self.exempt_envoy]:
            if child.pid is None:
                continue
            if child.name == "envoy":
                pids["envoy"].append(child.pid)
            else:
                pids[child.name] = [child.pid]
        return pids

    async def postgres_backends(self) -> list[int]:
        """The server processes serving the benchmark database (the meter's own connection excluded)."""
        connection = await asyncpg.connect(self.servers.database_url)
        try:
            rows = await connection.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                self.database_name,
            )
        finally:
            await connection.close()
        return [int(row["pid"]) for row in rows]

    async def all_processes(self) -> dict[str, list[int]]:
        """Every process of the platform that does work during a measurement."""
        return {**self.process_labels(), "postgres": await self.postgres_backends()}

    async def sign_up(self) -> BenchUser:
        """A new user through the gateway's REST sign-up."""
        async with httpx.AsyncClient(base_url=self.gateway_url, timeout=30) as client:
            response = await client.post(
                "/v1/auth:signUp",
                json={
                    "email": f"bench-{uuid.uuid4().hex[:12]}@example.com",
                    "password": PASSWORD,
                    "givenName": "Bench",
                    "timeZone": "UTC",
                },
            )
            response.raise_for_status()
            body = response.json()
        name = body["user"]["name"]
        return BenchUser(
            user_id=uuid.UUID(name.removeprefix("users/")), name=name, token=body["tokens"]["accessToken"]
        )


@contextlib.asynccontextmanager
async def running_stack(servers: TestServers, work_dir: Path) -> AsyncIterator[Stack]:
    """The whole platform, Envoy with JWT at the edge, and Envoy without it for the measured read."""
    async with servers.temporary_database("vitalis_bench") as database_url:
        config = PlatformConfig(
            database_url=database_url,
            redis_url=servers.redis_url,
            secrets=generate_secrets(),
            work_dir=work_dir / "platform",
            ports=PortPlan.free(),
            base_env={key: os.environ[key] for key in INHERITED_ENV if key in os.environ},
            log_format="json",
            project_root=bench_project_root(work_dir),
        )
        async with Platform(config) as platform:
            envoy, exempt_port = await _start_exempt_envoy(platform, work_dir)
            try:
                yield Stack(
                    servers=servers,
                    database_url=database_url,
                    database_name=database_url.rsplit("/", 1)[-1],
                    platform=platform,
                    exempt_gateway_url=f"http://{LOOPBACK}:{exempt_port}",
                    exempt_envoy=envoy,
                    work_dir=work_dir,
                )
            finally:
                await envoy.stop(grace=5)


async def _start_exempt_envoy(platform: Platform, work_dir: Path) -> tuple[ChildProcess, int]:
    root = bench_project_root(work_dir, exempt=EDGE_JWT_EXEMPT_FOR_DECOMPOSITION)
    services: Mapping[str, Any] = platform.config.ports.services
    ports = PortPlan(services=services, gateway=free_port(), gateway_admin=free_port())
    addresses = {spec.name: (LOOPBACK, ports.of(spec.name).grpc) for spec in SERVICES}
    launch = prepare_envoy(
        project_root=root, work_dir=work_dir / "exempt-gateway", ports=ports, service_addresses=addresses
    )
    child = ChildProcess("envoy", launch.argv, env=dict(platform.config.base_env))
    await child.start()
    await wait_until_ready(
        child,
        Readiness(
            gateway_ready_probe(
                f"http://{LOOPBACK}:{ports.gateway}", f"http://{LOOPBACK}:{ports.gateway_admin}"
            ),
            "ready on /healthz",
            60.0,
        ),
    )
    return child, ports.gateway
