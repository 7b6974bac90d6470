"""Test support for gRPC: a service's server, in-process on a free port, with the full interceptor chain.

::

    async with running_server(service_name="identity", register=..., service_names=[...],
                              verifier=key.verifier()) as running:
        async with create_channel(running.target) as channel:
            ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from prometheus_client import CollectorRegistry

from vitalis_runtime.health import HealthReporter, ReadinessCheck
from vitalis_runtime.metrics import RpcMetrics, rpc_metrics
from vitalis_runtime.server import NO_READINESS_CHECKS, create_server
from vitalis_runtime.service_auth import CallerVerifier


def generic_service(
    service: str, handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
) -> Callable[[grpc.aio.Server], None]:
    """A ``register`` callback adding ``handlers`` (by method name) as the service ``service``."""

    def register(server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, dict(handlers)),))

    return register


@dataclass(frozen=True)
class RunningServer:
    """A started server, where to reach it, and its health reporter and metrics."""

    server: grpc.aio.Server
    port: int
    health: HealthReporter
    metrics: RpcMetrics
    registry: CollectorRegistry

    @property
    def target(self) -> str:
        """``host:port`` for a channel."""
        return f"127.0.0.1:{self.port}"


@asynccontextmanager
async def running_server(
    *,
    service_name: str,
    register: Callable[[grpc.aio.Server], None],
    service_names: Sequence[str],
    verifier: CallerVerifier | None,
    public_methods: Collection[str] = (),
    readiness_checks: Mapping[str, ReadinessCheck] = NO_READINESS_CHECKS,
) -> AsyncIterator[RunningServer]:
    """Start a server on 127.0.0.1 with a free port and metrics of its own; stop it on exit."""
    registry = CollectorRegistry()
    metrics = rpc_metrics(registry)
    server, port, health = await create_server(
        "127.0.0.1:0",
        service_name=service_name,
        register=register,
        service_names=service_names,
        verifier=verifier,
        public_methods=public_methods,
        readiness_checks=readiness_checks,
        metrics=metrics,
    )
    await server.start()
    await health.start()
    try:
        yield RunningServer(server=server, port=port, health=health, metrics=metrics, registry=registry)
    finally:
        await server.stop(None)
