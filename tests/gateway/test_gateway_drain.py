"""The gateway's preStop drain (``python -m vitalis_gateway.drain``) against a real Envoy.

Envoy runs the local configuration with the gateway Deployment's ``--drain-strategy`` and a
``--drain-time-s`` shortened to ``DRAIN_SECONDS``. Every service cluster points at one gRPC backend
that answers health checks and holds ``AuthService/SignIn`` until the test lets it go, so a request
can be kept in flight across the whole drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio
import httpx
import pytest
import yaml
from grpc_health.v1 import health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from vitalis.identity.v1 import auth_service_pb2
from vitalis_gateway import GatewaySource, render_gateway_files
from vitalis_gateway.artifacts import ENVOY_CONFIG_FILE
from vitalis_gateway.drain import drain
from vitalis_gateway.envoy_process import running_envoy
from vitalis_runtime.embedded import free_port

GATEWAY_MANIFEST = (
    Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "base" / "gateway" / "gateway.yaml"
)
DRAIN_SECONDS = 2
"""Envoy's drain time here, and the hook's ``--seconds`` (the least the validator accepts)."""
SIGN_IN = "/v1/auth:signIn"
SIGNED_IN_USER = "users/in-flight"


class SlowBackend:
    """A gRPC server that is healthy and holds each ``SignIn`` until ``release`` is set."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()

    async def _sign_in(self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        self.arrived.set()
        await self.release.wait()
        return auth_service_pb2.SignInResponse(user=SIGNED_IN_USER).SerializeToString()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[int]:
        """Serve on a free port, yielded; stop on exit."""
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health_aio.HealthServicer(), server)
        handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(self._sign_in)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("vitalis.identity.v1.AuthService", {"SignIn": handler}),)
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            yield port
        finally:
            self.release.set()
            await server.stop(grace=None)


def envoy_drain_flags() -> list[str]:
    """The Deployment's ``--drain-strategy`` for Envoy, with ``--drain-time-s DRAIN_SECONDS``."""
    deployment = next(
        document
        for document in yaml.safe_load_all(GATEWAY_MANIFEST.read_text())
        if document["kind"] == "Deployment"
    )
    (envoy,) = deployment["spec"]["template"]["spec"]["containers"]
    command = [str(part) for part in envoy["command"]]
    strategy = command[command.index("--drain-strategy") + 1]
    return ["--drain-strategy", strategy, "--drain-time-s", str(DRAIN_SECONDS)]


@contextlib.asynccontextmanager
async def running_gateway(
    source: GatewaySource, workdir: Path, backend_port: int
) -> AsyncIterator[tuple[str, str]]:
    """Envoy on the local target, every service at ``backend_port``, ready; yields (listener, admin) URLs."""
    listen_port, admin_port = free_port(), free_port()
    files = render_gateway_files(
        source,
        target="local",
        files_dir=workdir,
        listen_port=listen_port,
        admin_port=admin_port,
        service_addresses=dict.fromkeys(source.services, ("127.0.0.1", backend_port)),
    )
    config = files.write(workdir)[ENVOY_CONFIG_FILE]
    listener = f"http://127.0.0.1:{listen_port}"
    async with (
        running_envoy(
            config, admin_port=admin_port, log_path=workdir / "envoy.log", extra_args=envoy_drain_flags()
        ),
        httpx.AsyncClient(base_url=listener, timeout=2) as client,
    ):
        # Ready once the backend's health check has passed too.
        while True:
            if (await client.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.1)
        yield listener, f"http://127.0.0.1:{admin_port}"


async def _readyz_while(hook: asyncio.subprocess.Process, client: httpx.AsyncClient) -> httpx.Response:
    """``/readyz`` once it answers 503, or its last answer when the hook ended without that."""
    while True:
        response = await client.get("/readyz")
        if response.status_code == 503 or hook.returncode is not None:
            return response
        await asyncio.sleep(0.05)


async def _accepts_connections(url: str) -> bool:
    """Whether the listener still accepts new connections a second after the hook returned."""
    port = int(url.rpartition(":")[2])
    deadline = asyncio.get_running_loop().time() + 1.0
    while asyncio.get_running_loop().time() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return False
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.05)
    return True


async def test_drain_takes_the_gateway_out_of_rotation_and_in_flight_requests_finish(
    project_source: GatewaySource, tmp_path: Path
) -> None:
    backend = SlowBackend()
    async with (
        asyncio.timeout(20),
        backend.serving() as backend_port,
        running_gateway(project_source, tmp_path, backend_port) as (gateway, admin),
        httpx.AsyncClient(base_url=gateway, timeout=10) as in_flight_client,
        httpx.AsyncClient(base_url=gateway, timeout=2) as client,
    ):
        kept_alive = await client.get("/healthz")
        in_flight = asyncio.create_task(in_flight_client.post(SIGN_IN, json={}))
        await asyncio.wait_for(backend.arrived.wait(), 5)

        hook = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "vitalis_gateway.drain"),
            *("--admin", admin, "--seconds", str(DRAIN_SECONDS)),
            stderr=subprocess.PIPE,
        )
        readyz = await _readyz_while(hook, client)
        closing = await client.get("/healthz")
        _, hook_errors = await hook.communicate()
        still_accepting = await _accepts_connections(gateway)
        in_flight_after_the_drain = not in_flight.done()
        backend.release.set()
        completed = await in_flight

    assert (kept_alive.status_code, kept_alive.headers.get("connection")) == (200, None)
    assert hook.returncode == 0, hook_errors.decode()
    assert readyz.status_code == 503
    assert (closing.status_code, closing.headers.get("connection")) == (200, "close")
    assert not still_accepting
    assert in_flight_after_the_drain
    assert completed.status_code == 200
    assert completed.json() == {"user": SIGNED_IN_USER}


def test_hook_still_waits_when_the_admin_interface_does_not_answer(caplog: pytest.LogCaptureFixture) -> None:
    admin = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()

    accepted = drain(admin, 0.5, timeout=0.2)

    assert time.monotonic() - started >= 0.5
    assert not accepted
    assert [record.getMessage().split(" failed:")[0] for record in caplog.records] == [
        f"POST {admin}/healthcheck/fail",
        f"POST {admin}/drain_listeners?graceful",
    ]
