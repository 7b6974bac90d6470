"""Fixtures for the deployment checks: the real kustomize tree, a scratch copy, a hardened sample app."""

from __future__ import annotations

import copy
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
K8S_ROOT = REPOSITORY / "deploy" / "k8s"


@pytest.fixture
def k8s_root() -> Path:
    """The project's kustomize tree."""
    return K8S_ROOT


@pytest.fixture
def k8s_copy(tmp_path: Path) -> Path:
    """A scratch copy of the kustomize tree that a test may break."""
    target = tmp_path / "k8s"
    shutil.copytree(K8S_ROOT, target)
    return target


_LABELS = {
    "app.kubernetes.io/name": "demo",
    "app.kubernetes.io/component": "worker",
    "app.kubernetes.io/part-of": "demo",
}
_HARDENED_APP: list[dict[str, Any]] = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}},
    {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "demo", "namespace": "demo"},
        "automountServiceAccountToken": False,
    },
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "demo-config", "namespace": "demo"},
        "data": {"LOG_LEVEL": "INFO"},
    },
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "demo", "namespace": "demo", "labels": dict(_LABELS)},
        "spec": {"selector": dict(_LABELS), "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    },
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "demo", "namespace": "demo", "labels": dict(_LABELS)},
        "spec": {
            "selector": {"matchLabels": dict(_LABELS)},
            "template": {
                "metadata": {"labels": dict(_LABELS)},
                "spec": {
                    "serviceAccountName": "demo",
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": dict(_LABELS)},
                        }
                    ],
                    "containers": [
                        {
                            "name": "demo",
                            "image": "registry.example/demo:1.2.3",
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "envFrom": [{"configMapRef": {"name": "demo-config"}}],
                            "env": [
                                {
                                    "name": "DATABASE_URL",
                                    "valueFrom": {"secretKeyRef": {"name": "demo", "key": "DATABASE_URL"}},
                                }
                            ],
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
                            "livenessProbe": {"httpGet": {"path": "/live", "port": "http"}},
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"cpu": "1", "memory": "256Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    },
    {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "demo", "namespace": "demo"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(_LABELS)}},
    },
    {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "demo", "namespace": "demo"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "demo"},
            "minReplicas": 2,
            "maxReplicas": 4,
        },
    },
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny", "namespace": "demo"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    },
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "dns", "namespace": "demo"},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                            },
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        }
                    ],
                    "ports": [{"protocol": "UDP", "port": 53}],
                }
            ],
        },
    },
]


@pytest.fixture
def hardened_app() -> list[dict[str, Any]]:
    """A small application that passes every policy; tests break one thing at a time."""
    objects = copy.deepcopy(_HARDENED_APP)
    for manifest in objects:
        manifest["metadata"].setdefault("labels", {})["app.kubernetes.io/part-of"] = "demo"
    return objects


def find(objects: list[dict[str, Any]], kind: str, name: str = "demo") -> dict[str, Any]:
    """The object of that kind and name in a list of manifests."""
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


@pytest.fixture
def find_object() -> Any:
    """``find(objects, kind, name="demo")``: one object of a manifest list, for editing in place."""
    return find


@dataclass(frozen=True)
class LocalGateway:
    """Envoy running the deployed gateway configuration, on free local ports instead of its own."""

    listener: int
    admin: int
    metrics: int

    @staticmethod
    def get(url: str, *, data: bytes | None = None, headers: Mapping[str, str] | None = None) -> bytes:
        """The body of a GET (or, with ``data``, a POST), whatever the status."""
        request = urllib.request.Request(url, data=data, headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as error:
            return error.read()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running_gateway(workdir: Path, *, identity: str | None = None) -> Iterator[LocalGateway]:
    """Run the deployed gateway configuration in ``workdir``; ``identity`` (host:port) relocates identity."""
    source = K8S_ROOT / "base" / "gateway"
    for name in ("descriptor.binpb", "openapi.json", "docs.html"):
        shutil.copy(source / name, workdir / name)
    gateway = LocalGateway(listener=_free_port(), admin=_free_port(), metrics=_free_port())
    config = (source / "envoy.yaml").read_text().replace("/etc/vitalis/gateway/", f"{workdir}/")
    if identity is not None:
        host, _, port = identity.rpartition(":")
        config, replaced = re.subn(
            r"address: identity\n(\s+)port_value: 50051\b", rf"address: {host}\n\1port_value: {port}", config
        )
        assert replaced == 1, "the identity cluster's address was not found"
    for deployed, local in ((8080, gateway.listener), (9901, gateway.admin), (9902, gateway.metrics)):
        config = re.sub(rf"port_value: {deployed}\b", f"port_value: {local}", config)
    (workdir / "envoy.yaml").write_text(config)
    envoy = Path(sys.executable).parent / "envoy"
    with (workdir / "envoy.log").open("w") as log:
        process = subprocess.Popen(
            [
                str(envoy),
                *("-c", str(workdir / "envoy.yaml"), "--disable-hot-restart", "--use-dynamic-base-id"),
                *("--concurrency", "1", "--log-level", "error"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                # Listeners open once Envoy has initialised; the admin port answers earlier.
                gateway.get(f"http://127.0.0.1:{gateway.metrics}/stats/prometheus")
                gateway.get(f"http://127.0.0.1:{gateway.listener}/healthz")
                break
            except OSError:
                assert process.poll() is None, (workdir / "envoy.log").read_text()
                assert time.monotonic() < deadline, "Envoy did not start"
                time.sleep(0.2)
        yield gateway
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def local_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGateway]:
    """The gateway's Envoy with ``deploy/k8s/base/gateway``'s files; no service is reachable from it."""
    with running_gateway(tmp_path_factory.mktemp("gateway")) as gateway:
        yield gateway


@pytest.fixture
def start_gateway() -> Any:
    """``running_gateway(workdir, identity="127.0.0.1:PORT")``: a gateway whose identity is reachable."""
    return running_gateway
