"""The gRPC server every service runs: one factory to build it, one loop to serve it.

:func:`create_server` binds a ``grpc.aio`` server with the shared interceptors, ``grpc.health.v1``
and server reflection; tests bind it to port 0. :func:`serve` runs it with its background tasks
until SIGTERM or SIGINT, then shuts down in the order a rolling update needs: health NOT_SERVING
first, then no new calls, in-flight calls finish within the grace period, background tasks stop,
and finally the ``on_stop`` hooks close pools and channels.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from vitalis_runtime.auth_cache import CachingVerifier
from vitalis_runtime.health import HealthReporter, ReadinessCheck
from vitalis_runtime.interceptors import server_interceptors
from vitalis_runtime.metrics import RpcMetrics
from vitalis_runtime.service_auth import CallerVerifier

__all__ = [
    "BackgroundTask",
    "HealthReporter",
    "ReadinessCheck",
    "StopHook",
    "create_server",
    "serve",
    "service_full_names",
]

BackgroundTask = Callable[[asyncio.Event], Awaitable[None]]
"""Runs until the event is set (relays, consumers); it should return promptly once it is."""
StopHook = Callable[[], Awaitable[None]]

DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
NO_READINESS_CHECKS: Mapping[str, ReadinessCheck] = MappingProxyType({})

logger = logging.getLogger(__name__)


def service_full_names(*services: tuple[Any, str]) -> tuple[str, ...]:
    """Full names (``vitalis.ingestion.v1.SampleService``) of services of generated ``*_pb2`` modules."""
    return tuple(module.DESCRIPTOR.services_by_name[name].full_name for module, name in services)


BOUNDED_RECEIVE_OPTIONS: tuple[tuple[str, int], ...] = (("grpc.http2.bdp_probe", 0),)
"""For a service that receives large client streams (uploads, imports): without BDP probing gRPC
keeps each stream's receive window at its initial size instead of growing it, so a stream is read
ahead by a window rather than by megabytes and memory stays bounded by the message size. The cost
is throughput on links with a large bandwidth-delay product, which the gateway's own buffering in
front of the services hides."""


async def create_server(
    address: str,
    *,
    service_name: str,
    register: Callable[[grpc.aio.Server], None],
    service_names: Sequence[str],
    verifier: CallerVerifier | None,
    public_methods: Collection[str] = (),
    readiness_checks: Mapping[str, ReadinessCheck] = NO_READINESS_CHECKS,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    metrics: RpcMetrics | None = None,
    health_interval_seconds: float = 5.0,
    tracing: bool = True,
    extra_options: Sequence[tuple[str, int]] = (),
) -> tuple[grpc.aio.Server, int, HealthReporter]:
    """A bound (not yet started) server, the port it got, and its health reporter.

    ``register`` adds the service's servicers; ``service_names`` are their full names
    (``vitalis.identity.v1.AuthService``), reported by health and reflection. ``address`` with
    port 0 binds a free port. Health starts NOT_SERVING until the readiness checks first pass.
    The principals ``verifier`` accepts are remembered for a short while (see
    :mod:`vitalis_runtime.auth_cache`). ``extra_options`` are further gRPC channel arguments
    (``("grpc.http2.bdp_probe", 0)`` …).
    """
    server = grpc.aio.server(
        interceptors=server_interceptors(
            service_name=service_name,
            verifier=None if verifier is None else CachingVerifier(verifier),
            public_methods=public_methods,
            metrics=metrics,
            tracing=tracing,
        ),
        options=[*_server_options(max_message_bytes), *extra_options],
    )
    register(server)
    servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    reflection.enable_server_reflection(
        (*service_names, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(address)
    health = HealthReporter(
        servicer, service_names, readiness_checks, interval_seconds=health_interval_seconds
    )
    # Nothing is known about readiness until the first round of checks.
    for name in ("", *service_names):
        await servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    logger.info("%s bound to port %d", service_name, port)
    return server, port, health


def _server_options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        # Fail on a port already in use instead of silently sharing it with another process.
        ("grpc.so_reuseport", 0),
        # Accept the clients' keepalive pings (vitalis_client pings every 30 s, even when idle).
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 0),
        # Recycle connections now and then so load spreads onto new replicas.
        ("grpc.max_connection_age_ms", 30 * 60 * 1000),
        ("grpc.max_connection_age_grace_ms", 60 * 1000),
    ]


async def serve(
    server: grpc.aio.Server,
    health: HealthReporter,
    *,
    grace_seconds: float,
    background: Sequence[BackgroundTask] = (),
    on_stop: Sequence[StopHook] = (),
    stop: asyncio.Event | None = None,
    drain_seconds: float = 0.0,
) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set), then shut down gracefully.

    ``drain_seconds`` keeps accepting calls for a while after health turns NOT_SERVING, for load
    balancers that poll. A background task that fails before shutdown is logged and stops the
    server, so the orchestrator restarts the process; its exception is re-raised at the end.
    """
    shutdown = stop or asyncio.Event()
    background_stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, _on_signal, signum, shutdown)
    tasks: list[asyncio.Task[None]] = []
    failure: BaseException | None = None
    try:
        await server.start()
        await health.start()
        tasks.append(asyncio.create_task(health.run(background_stop), name="health"))
        for index, task in enumerate(background):
            tasks.append(
                asyncio.create_task(_run_background(task, background_stop), name=f"background-{index}")
            )
        failure = await _wait_for_shutdown(shutdown, tasks)
        await health.shutdown()
        if drain_seconds > 0:
            await asyncio.sleep(drain_seconds)
        logger.info("stopping: no new calls; in-flight calls have %.1f s to finish", grace_seconds)
        await server.stop(grace_seconds)
        logger.info("gRPC server stopped")
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        background_stop.set()
        await _finish(tasks, patience_seconds=max(grace_seconds, 1.0))
        await _run_hooks(on_stop)
    if failure is not None:
        raise failure


def _on_signal(signum: int, shutdown: asyncio.Event) -> None:
    logger.info("received %s: shutting down", signal.Signals(signum).name)
    shutdown.set()


async def _run_background(task: BackgroundTask, stop: asyncio.Event) -> None:
    await task(stop)


async def _wait_for_shutdown(
    shutdown: asyncio.Event, tasks: list[asyncio.Task[None]]
) -> BaseException | None:
    """Wait for the stop signal; return early with the error of a background task that failed."""
    waiter = asyncio.create_task(shutdown.wait(), name="shutdown-signal")
    pending: set[asyncio.Task[object]] = {waiter, *tasks}
    try:
        while True:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if waiter in done:
                return None
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    error = task.exception()
                    logger.error("background task %s failed; shutting down", task.get_name(), exc_info=error)
                    return error
    finally:
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter


async def _finish(tasks: Sequence[asyncio.Task[None]], *, patience_seconds: float) -> None:
    """Give background tasks some seconds to notice the stop event, then cancel them."""
    if not tasks:
        return
    _, late = await asyncio.wait(tasks, timeout=patience_seconds)
    for task in late:
        logger.warning("background task %s did not stop in time; cancelling it", task.get_name())
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _run_hooks(hooks: Sequence[StopHook]) -> None:
    for hook in hooks:
        try:
            await hook()
        except Exception:
            logger.exception("a stop hook failed")
