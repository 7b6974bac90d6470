"""Fixtures for the deployment checks: the real kustomize tree, a scratch copy, a hardened sample app."""

from __future__ import annotations

import copy
import shutil
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
