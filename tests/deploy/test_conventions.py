"""Recommended labels, replicas spread over nodes, named Service ports: broken one at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vitalis_deploy.policy import check_policies
from vitalis_deploy.render import find_kubectl, render

Objects = list[dict[str, Any]]


def _pod_spec(objects: Objects, find_object: Any) -> dict[str, Any]:
    spec: dict[str, Any] = find_object(objects, "Deployment")["spec"]["template"]["spec"]
    return spec


def test_object_without_part_of_label_is_caught(hardened_app: Objects, find_object: Any) -> None:
    del find_object(hardened_app, "ConfigMap", "demo-config")["metadata"]["labels"]

    assert [(f.subject, f.rule, f.message) for f in check_policies(hardened_app)] == [
        ("ConfigMap/demo/demo-config", "labels", "has no app.kubernetes.io/part-of label")
    ]


def test_pods_without_component_label_are_caught(hardened_app: Objects, find_object: Any) -> None:
    template = find_object(hardened_app, "Deployment")["spec"]["template"]
    del template["metadata"]["labels"]["app.kubernetes.io/component"]

    findings = [(f.rule, f.message) for f in check_policies(hardened_app)]

    assert ("labels", "its pods lack app.kubernetes.io/component") in findings


def test_deployment_not_spread_over_nodes_is_caught(hardened_app: Objects, find_object: Any) -> None:
    _pod_spec(hardened_app, find_object)["topologySpreadConstraints"][0]["topologyKey"] = (
        "topology.kubernetes.io/zone"
    )

    findings = check_policies(hardened_app)

    assert [(f.subject, f.rule) for f in findings] == [("Deployment/demo/demo", "topology-spread")]


def test_spread_selecting_other_pods_does_not_count(hardened_app: Objects, find_object: Any) -> None:
    constraint = _pod_spec(hardened_app, find_object)["topologySpreadConstraints"][0]
    constraint["labelSelector"] = {"matchLabels": {"app.kubernetes.io/name": "other"}}

    assert {f.rule for f in check_policies(hardened_app)} == {"topology-spread"}


def test_unnamed_service_port_is_caught(hardened_app: Objects, find_object: Any) -> None:
    del find_object(hardened_app, "Service")["spec"]["ports"][0]["name"]

    assert {f.rule for f in check_policies(hardened_app)} == {"service-ports"}


def test_real_overlay_with_a_deployment_not_spread_over_nodes_fails(k8s_copy: Path) -> None:
    manifest = k8s_copy / "base" / "ingestion.yaml"
    text = manifest.read_text()
    node_spread = "          topologyKey: kubernetes.io/hostname\n"
    assert text.count(node_spread) == 1
    manifest.write_text(text.replace(node_spread, "          topologyKey: topology.kubernetes.io/region\n"))

    findings = check_policies(render(k8s_copy / "overlays" / "dev", kubectl=find_kubectl()))

    assert [(f.subject, f.rule) for f in findings] == [("Deployment/vitalis/ingestion", "topology-spread")]


def _with_metrics_port(objects: Objects, find_object: Any) -> None:
    find_object(objects, "Service")["spec"]["ports"].append(
        {"name": "metrics", "port": 9464, "targetPort": "metrics"}
    )
    _pod_spec(objects, find_object)["containers"][0]["ports"].append(
        {"name": "metrics", "containerPort": 9464}
    )


def _monitor(name: str, selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": name, "namespace": "demo", "labels": {"app.kubernetes.io/part-of": "demo"}},
        "spec": {"selector": {"matchLabels": selector}, "endpoints": [{"port": "metrics"}]},
    }


def test_metrics_port_no_service_monitor_scrapes_is_caught(hardened_app: Objects, find_object: Any) -> None:
    _with_metrics_port(hardened_app, find_object)
    other = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "other",
            "namespace": "demo",
            "labels": {"app.kubernetes.io/part-of": "demo", "app": "other"},
        },
        "spec": {
            "selector": find_object(hardened_app, "Service")["spec"]["selector"],
            "ports": [{"name": "metrics", "port": 9464, "targetPort": "metrics"}],
        },
    }
    hardened_app += [other, _monitor("other", {"app": "other"})]

    findings = check_policies(hardened_app)

    assert [(f.subject, f.rule) for f in findings] == [("Service/demo/demo", "monitoring")]


def test_metrics_ports_need_no_monitor_where_none_is_rendered(
    hardened_app: Objects, find_object: Any
) -> None:
    _with_metrics_port(hardened_app, find_object)

    assert check_policies(hardened_app) == []


def test_real_prod_overlay_without_the_gateway_monitor_fails(k8s_copy: Path) -> None:
    monitors = k8s_copy / "components" / "service-monitors" / "service-monitors.yaml"
    text = monitors.read_text()
    monitors.write_text(text[: text.index("---\n")])

    findings = check_policies(render(k8s_copy / "overlays" / "prod", kubectl=find_kubectl()))

    assert [(f.subject, f.rule) for f in findings] == [("Service/vitalis/gateway", "monitoring")]
