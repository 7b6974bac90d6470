"""Waiting for a child to become ready, bounded, and failing with the reason when it does not."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
import httpx
from grpc_health.v1 import health_pb2

from vitalis_cli.children import ChildProcess

POLL_INTERVAL_SECONDS = 0.2
PROBE_TIMEOUT_SECONDS = 1.0
HEALTH_CHECK_METHOD = "/grpc.health.v1.Health/Check"
JWKS_FETCH_SUCCESS_STAT = r"jwt_authn\.jwks_fetch_success$"


class StartupError(RuntimeError):
    """A child died or did not become ready in time; the message names it and shows its last lines."""

    def __init__(self, child: ChildProcess, reason: str) -> None:
        self.child_name = child.name
        tail = "\n".join(f"    {line}" for line in child.tail()) or "    (no output)"
        super().__init__(f"{child.name} {reason}. Its last output:\n{tail}")


@dataclass(frozen=True)
class Readiness:
    """How to tell that a child is ready, and how long it may take."""

    probe: Callable[[], Awaitable[bool]]
    description: str
    """What the child reports once ready, e.g. ``SERVING on grpc.health.v1``."""
    limit_seconds: float


async def wait_until_ready(child: ChildProcess, readiness: Readiness) -> None:
    """Poll until the probe answers ``True``.

    Raises :class:`StartupError` if the child exits first or the time limit passes.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + readiness.limit_seconds
    while True:
        if child.returncode is not None:
            raise StartupError(child, f"exited with status {child.returncode} before {readiness.description}")
        if await readiness.probe():
            return
        if loop.time() >= deadline:
            raise StartupError(
                child, f"did not report {readiness.description} within {readiness.limit_seconds:g}s"
            )
        await asyncio.sleep(POLL_INTERVAL_SECONDS)


def grpc_serving_probe(target: str, service: str = "") -> Callable[[], Awaitable[bool]]:
    """A probe asking ``grpc.health.v1.Health/Check`` at ``target`` whether it is SERVING."""

    async def probe() -> bool:
        async with grpc.aio.insecure_channel(target) as channel:
            check = channel.unary_unary(
                HEALTH_CHECK_METHOD,
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )
            try:
                reply = await check(
                    health_pb2.HealthCheckRequest(service=service), timeout=PROBE_TIMEOUT_SECONDS
                )
            except grpc.aio.AioRpcError:
                return False
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    return probe


def http_ok_probe(url: str) -> Callable[[], Awaitable[bool]]:
    """A probe that is satisfied by a 200 answer to ``GET url``."""

    async def probe() -> bool:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_SECONDS, trust_env=False) as client:
            try:
                response = await client.get(url)
            except httpx.HTTPError:
                return False
            return response.status_code == 200

    return probe


def gateway_ready_probe(gateway_url: str, admin_url: str) -> Callable[[], Awaitable[bool]]:
    """Envoy answers ``/healthz`` and, if it verifies tokens, has fetched the signing keys once.

    The keys come through Envoy's own listener, so the first fetch can fail while it starts;
    until a later fetch succeeds, every token would be refused.
    """
    healthz = http_ok_probe(f"{gateway_url}/healthz")

    async def probe() -> bool:
        if not await healthz():
            return False
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_SECONDS, trust_env=False) as client:
            try:
                response = await client.get(f"{admin_url}/stats", params={"filter": JWKS_FETCH_SUCCESS_STAT})
            except httpx.HTTPError:
                return False
        counts = [line.rpartition(":")[2].strip() for line in response.text.splitlines() if ":" in line]
        return response.status_code == 200 and all(count.isdigit() and int(count) > 0 for count in counts)

    return probe
