"""The gateway on Kubernetes runs the configuration the generator renders from gateway/gateway.yaml,
and the manifests around it (mounts, ports, Services, shutdown) agree with that configuration."""

from __future__ import annotations

import base64
import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from vitalis_deploy.render import find_kubectl, render
from vitalis_gateway import GatewayFiles, load_source, render_gateway_files

REPOSITORY = Path(__file__).resolve().parents[2]
FILES_DIR = Path("/etc/vitalis/gateway")
BAKED_INTO_IMAGE = {FILES_DIR / "vitalis.binpb"}
# What the kubernetes target adds to the local one, besides addresses: Prometheus scraping of Envoy,
# tracing to the collector; the local target adds CORS for the dev servers and a /readyz that
# waits for every backend (on Kubernetes each backend has its own readiness).
KUBERNETES_ONLY_LISTENERS = {"envoy_metrics"}
KUBERNETES_ONLY_CLUSTERS = {"envoy_admin", "opentelemetry_collector"}


@pytest.fixture(scope="module")
def prod_objects() -> list[dict[str, Any]]:
    """The prod overlay, rendered."""
    return [dict(o) for o in render(REPOSITORY / "deploy/k8s/overlays/prod", kubectl=find_kubectl())]


@pytest.fixture(scope="module")
def generated() -> dict[str, GatewayFiles]:
    """The generator's files for both targets, from the one source, with the same file locations."""
    source = load_source(REPOSITORY / "gateway" / "gateway.yaml")
    return {
        target: render_gateway_files(source, target=target, files_dir=FILES_DIR)
        for target in ("local", "kubernetes")
    }


def _one(objects: list[dict[str, Any]], kind: str, name_pattern: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and re.fullmatch(name_pattern, o["metadata"]["name"])]
    assert len(matches) == 1, (kind, name_pattern, [m["metadata"]["name"] for m in matches])
    return matches[0]


def _envoy_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = _one(objects, "Deployment", "gateway")["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


def _config_map_files(objects: list[dict[str, Any]]) -> dict[str, bytes]:
    config_map = _one(objects, "ConfigMap", r"gateway-config-\w+")
    files = {name: text.encode() for name, text in (config_map.get("data") or {}).items()}
    files.update(
        {name: base64.b64decode(data) for name, data in (config_map.get("binaryData") or {}).items()}
    )
    return files


def _envoy_config(objects: list[dict[str, Any]]) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(_config_map_files(objects)["envoy.yaml"])
    return config


def test_gateway_config_map_holds_exactly_what_the_generator_renders(
    prod_objects: list[dict[str, Any]], generated: dict[str, GatewayFiles]
) -> None:
    assert _config_map_files(prod_objects) == dict(generated["kubernetes"].contents)


def test_kubernetes_and_local_configs_differ_only_in_addresses_and_target_features(
    generated: dict[str, GatewayFiles],
) -> None:
    kubernetes = _comparable(yaml.safe_load(generated["kubernetes"].contents["envoy.yaml"]))
    local = _comparable(yaml.safe_load(generated["local"].contents["envoy.yaml"]))

    assert set(kubernetes["listeners"]) - set(local["listeners"]) == KUBERNETES_ONLY_LISTENERS
    assert set(kubernetes["clusters"]) - set(local["clusters"]) == KUBERNETES_ONLY_CLUSTERS
    for name in KUBERNETES_ONLY_LISTENERS:
        del kubernetes["listeners"][name]
    for name in KUBERNETES_ONLY_CLUSTERS:
        del kubernetes["clusters"][name]
    assert kubernetes == local


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """The config with addresses blanked and target-specific settings removed, keyed by name."""
    config = copy.deepcopy(config)
    del config["node"]["id"]
    _blank_addresses(config)
    resources = config.pop("static_resources")
    clusters = {c["name"]: c for c in resources["clusters"]}
    for cluster in clusters.values():
        for discovery_setting in ("type", "dns_lookup_family", "dns_refresh_rate", "respect_dns_ttl"):
            cluster.pop(discovery_setting, None)
    listeners = {listener["name"]: listener for listener in resources["listeners"]}
    for listener in listeners.values():
        for chain in listener["filter_chains"]:
            for network_filter in chain["filters"]:
                manager = network_filter["typed_config"]
                manager.pop("tracing", None)
                for virtual_host in manager.get("route_config", {}).get("virtual_hosts", []):
                    virtual_host.pop("typed_per_filter_config", None)
                for http_filter in manager.get("http_filters", []):
                    if http_filter["name"] == "envoy.filters.http.health_check":
                        http_filter["typed_config"].pop("cluster_min_healthy_percentages", None)
    return {**config, "listeners": listeners, "clusters": clusters}


def _blank_addresses(node: object) -> None:
    if isinstance(node, dict):
        if "socket_address" in node:
            node["socket_address"]["address"] = "<address>"
        for value in node.values():
            _blank_addresses(value)
    elif isinstance(node, list):
        for item in node:
            _blank_addresses(item)


def test_every_file_envoy_reads_is_mounted_or_baked_into_the_image(
    prod_objects: list[dict[str, Any]],
) -> None:
    envoy_yaml = _config_map_files(prod_objects)["envoy.yaml"].decode()
    referenced = {Path(p) for p in re.findall(r"/etc/vitalis/gateway/[\w.\-]+", envoy_yaml)}
    container = _envoy_container(prod_objects)
    mounted = {
        Path(mount["mountPath"])
        for mount in container["volumeMounts"]
        if mount["name"] == "config" and Path(mount["mountPath"]).name == mount.get("subPath")
    }

    assert referenced, "the generated config names no file under /etc/vitalis/gateway"
    assert referenced <= mounted | BAKED_INTO_IMAGE
    assert container["command"][:3] == ["envoy", "-c", str(FILES_DIR / "envoy.yaml")]


def test_container_and_service_ports_are_the_listeners_and_admin_stays_on_loopback(
    prod_objects: list[dict[str, Any]],
) -> None:
    config = _envoy_config(prod_objects)
    listener_ports = {
        listener["name"]: listener["address"]["socket_address"]["port_value"]
        for listener in config["static_resources"]["listeners"]
    }
    container_ports = {port["containerPort"] for port in _envoy_container(prod_objects)["ports"]}
    service_ports = {port["port"] for port in _one(prod_objects, "Service", "gateway")["spec"]["ports"]}
    admin = config["admin"]["address"]["socket_address"]

    assert set(listener_ports.values()) == container_ports == service_ports
    assert admin["address"] == "127.0.0.1"
    pre_stop = "\n".join(_envoy_container(prod_objects)["lifecycle"]["preStop"]["exec"]["command"])
    assert f"http://127.0.0.1:{admin['port_value']}" in pre_stop


def test_backend_clusters_resolve_the_headless_services_of_the_manifests(
    prod_objects: list[dict[str, Any]],
) -> None:
    services = {o["metadata"]["name"]: o for o in prod_objects if o["kind"] == "Service"}
    clusters = _envoy_config(prod_objects)["static_resources"]["clusters"]
    backends = {cluster["name"]: cluster for cluster in clusters if cluster.get("type") == "STRICT_DNS"}

    assert {"identity", "ingestion", "biomarkers", "documents", "insights", "opentelemetry_collector"} <= set(
        backends
    )
    for name, cluster in backends.items():
        address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        host, port = address["socket_address"]["address"], address["socket_address"]["port_value"]
        assert host in services, f"cluster {name} resolves {host}, which no Service provides"
        assert port in {p["port"] for p in services[host]["spec"]["ports"]}
        if name != "opentelemetry_collector":
            # Per-pod addresses, so Envoy balances each request rather than each connection.
            assert services[host]["spec"].get("clusterIP") == "None", host
