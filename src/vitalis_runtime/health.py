"""Health for load balancers and Kubernetes' native gRPC probes, backed by ``grpc.health.v1``.

Readiness: the overall status (``""``) and each registered service name are SERVING only while
every readiness check (PostgreSQL, Redis, …) passes, and NOT_SERVING otherwise and from the start
of shutdown on. Liveness: :data:`LIVENESS_SERVICE` stays SERVING while the process runs, so a
database outage takes replicas out of rotation without getting them restarted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

ReadinessCheck = Callable[[], Awaitable[None]]
"""Returns when a dependency is usable; raises (anything) when it is not."""

LIVENESS_SERVICE = "liveness"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

logger = logging.getLogger(__name__)


class HealthReporter:
    """Keeps the health service's statuses in line with the readiness checks."""

    def __init__(
        self,
        servicer: health_aio.HealthServicer,
        service_names: Sequence[str],
        checks: Mapping[str, ReadinessCheck],
        *,
        interval_seconds: float = 5.0,
        check_timeout_seconds: float = 2.0,
    ) -> None:
        self.servicer = servicer
        self._service_names = ("", *service_names)
        self._checks = dict(checks)
        self._interval = interval_seconds
        self._check_timeout = check_timeout_seconds
        self._ready: bool | None = None
        self._failing: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        """Whether the last round of checks passed."""
        return bool(self._ready)

    async def start(self) -> None:
        """Publish the first statuses: liveness SERVING, readiness as the checks say."""
        await self.servicer.set(LIVENESS_SERVICE, SERVING)
        await self.check_once()

    async def check_once(self) -> bool:
        """Run every check concurrently and publish the outcome; True when all passed."""
        results = await asyncio.gather(*(self._run(name, check) for name, check in self._checks.items()))
        failing = tuple(name for name, passed in zip(self._checks, results, strict=True) if not passed)
        ready = not failing
        if ready != self._ready or failing != self._failing:
            if ready:
                logger.info("ready: every readiness check passes")
            else:
                logger.warning("not ready: failing readiness checks: %s", ", ".join(failing))
        self._ready, self._failing = ready, failing
        status = SERVING if ready else NOT_SERVING
        for name in self._service_names:
            await self.servicer.set(name, status)
        return ready

    async def run(self, stop: asyncio.Event) -> None:
        """Re-check every ``interval_seconds`` until ``stop`` is set."""
        while not stop.is_set():
            await self.check_once()
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._interval)
            except TimeoutError:
                continue

    async def shutdown(self) -> None:
        """Report NOT_SERVING for everything, for good: the server is about to stop."""
        logger.info("shutting down: health is NOT_SERVING from now on")
        await self.servicer.enter_graceful_shutdown()

    async def _run(self, name: str, check: ReadinessCheck) -> bool:
        try:
            await asyncio.wait_for(check(), timeout=self._check_timeout)
        except Exception as error:
            logger.debug("readiness check %s failed: %r", name, error)
            return False
        return True
