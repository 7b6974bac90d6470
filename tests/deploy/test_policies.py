"""The project's policies, one broken rule at a time on an otherwise hardened application."""

from __future__ import annotations

from typing import Any

import pytest

from vitalis_deploy.findings import Finding
from vitalis_deploy.policy import check_policies

Objects = list[dict[str, Any]]


def _container(objects: Objects, find_object: Any) -> dict[str, Any]:
    container: dict[str, Any] = find_object(objects, "Deployment")["spec"]["template"]["spec"]["containers"][
        0
    ]
    return container


def _pod_spec(objects: Objects, find_object: Any) -> dict[str, Any]:
    spec: dict[str, Any] = find_object(objects, "Deployment")["spec"]["template"]["spec"]
    return spec


def _rules(findings: list[Finding]) -> set[str]:
    return {finding.rule for finding in findings}


def test_hardened_application_passes_every_policy(hardened_app: Objects) -> None:
    assert check_policies(hardened_app) == []


@pytest.mark.parametrize("probe", ["livenessProbe", "readinessProbe"])
def test_container_without_probe_is_caught(hardened_app: Objects, find_object: Any, probe: str) -> None:
    del _container(hardened_app, find_object)[probe]

    findings = check_policies(hardened_app)

    assert [f.message for f in findings] == [f"container demo: has no {probe}"]
    assert _rules(findings) == {"probes"}


def test_job_containers_need_no_probes(hardened_app: Objects, find_object: Any) -> None:
    deployment = find_object(hardened_app, "Deployment")
    template = deployment["spec"]["template"]
    container = template["spec"]["containers"][0]
    del container["livenessProbe"], container["readinessProbe"]
    template["spec"]["restartPolicy"] = "Never"
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "once", "namespace": "demo", "labels": {"app.kubernetes.io/part-of": "demo"}},
    }
    job["spec"] = {"template": template}
    hardened_app[:] = [o for o in hardened_app if o["kind"] not in ("Deployment", "Service")] + [job]

    assert check_policies(hardened_app) == []


@pytest.mark.parametrize(
    ("section", "resource"), [("requests", "cpu"), ("limits", "memory"), ("limits", "cpu")]
)
def test_container_without_resource_bound_is_caught(
    hardened_app: Objects, find_object: Any, section: str, resource: str
) -> None:
    del _container(hardened_app, find_object)["resources"][section][resource]

    findings = check_policies(hardened_app)

    assert _rules(findings) == {"resources"}
    assert f"no {resource} {section[:-1]}" in findings[0].message


def test_request_above_limit_is_caught(hardened_app: Objects, find_object: Any) -> None:
    _container(hardened_app, find_object)["resources"]["requests"]["memory"] = "1Gi"

    findings = check_policies(hardened_app)

    assert [f.message for f in findings] == ["container demo: memory request 1Gi exceeds its limit 256Mi"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("readOnlyRootFilesystem", False, "readOnlyRootFilesystem is not true"),
        ("allowPrivilegeEscalation", True, "allowPrivilegeEscalation is not false"),
        ("capabilities", {"drop": ["NET_RAW"]}, "does not drop ALL capabilities"),
        ("capabilities", {"drop": ["ALL"], "add": ["NET_ADMIN"]}, "adds capabilities ['NET_ADMIN']"),
        ("privileged", True, "is privileged"),
        ("runAsUser", 0, "runs as user 0"),
        ("runAsNonRoot", False, "runAsNonRoot is not true"),
    ],
)
def test_container_security_weakening_is_caught(
    hardened_app: Objects, find_object: Any, field: str, value: object, message: str
) -> None:
    _container(hardened_app, find_object)["securityContext"][field] = value

    findings = check_policies(hardened_app)

    assert f"container demo: {message}" in [f.message for f in findings]
    assert _rules(findings) == {"security-context"}


def test_missing_seccomp_profile_is_caught(hardened_app: Objects, find_object: Any) -> None:
    del _pod_spec(hardened_app, find_object)["securityContext"]["seccompProfile"]

    assert [f.message for f in check_policies(hardened_app)] == [
        "container demo: seccompProfile is not RuntimeDefault"
    ]


def test_unconfined_container_seccomp_overrides_the_pod_and_is_caught(
    hardened_app: Objects, find_object: Any
) -> None:
    _container(hardened_app, find_object)["securityContext"]["seccompProfile"] = {"type": "Unconfined"}

    assert _rules(check_policies(hardened_app)) == {"security-context"}


def test_host_network_is_caught(hardened_app: Objects, find_object: Any) -> None:
    _pod_spec(hardened_app, find_object)["hostNetwork"] = True

    assert [f.message for f in check_policies(hardened_app)] == ["pod sets hostNetwork: true"]


@pytest.mark.parametrize(
    "image", ["registry.example/demo", "registry.example/demo:latest", "localhost:5000/demo", ""]
)
def test_unpinned_image_is_caught(hardened_app: Objects, find_object: Any, image: str) -> None:
    _container(hardened_app, find_object)["image"] = image

    assert _rules(check_policies(hardened_app)) == {"image"}


@pytest.mark.parametrize("image", ["localhost:5000/demo:1.0", "demo@sha256:" + "a" * 64])
def test_tagged_or_digest_image_passes(hardened_app: Objects, find_object: Any, image: str) -> None:
    _container(hardened_app, find_object)["image"] = image

    assert check_policies(hardened_app) == []


def test_credential_as_literal_environment_value_is_caught(hardened_app: Objects, find_object: Any) -> None:
    _container(hardened_app, find_object)["env"] = [
        {"name": "DATABASE_URL", "value": "postgresql://u:pw@db/x"}
    ]

    findings = check_policies(hardened_app)

    assert _rules(findings) == {"secrets"}
    assert "DATABASE_URL must come from a Secret" in findings[0].message


def test_secret_with_literal_data_is_caught(hardened_app: Objects) -> None:
    hardened_app.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s", "namespace": "demo", "labels": {"app.kubernetes.io/part-of": "demo"}},
            "stringData": {"a": "b"},
        }
    )

    assert _rules(check_policies(hardened_app)) == {"secrets"}


def test_secret_object_without_data_passes(hardened_app: Objects) -> None:
    hardened_app.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s", "namespace": "demo", "labels": {"app.kubernetes.io/part-of": "demo"}},
        }
    )

    assert check_policies(hardened_app) == []


def test_credential_key_in_config_map_is_caught(hardened_app: Objects, find_object: Any) -> None:
    find_object(hardened_app, "ConfigMap", "demo-config")["data"]["VITALIS_PAGE_TOKEN_SECRET"] = "x" * 32

    assert _rules(check_policies(hardened_app)) == {"secrets"}


def test_config_map_over_one_mebibyte_is_caught(hardened_app: Objects, find_object: Any) -> None:
    find_object(hardened_app, "ConfigMap", "demo-config")["data"]["openapi.json"] = "x" * (1024 * 1024)

    assert _rules(check_policies(hardened_app)) == {"config-size"}


def test_deployment_without_disruption_budget_is_caught(hardened_app: Objects) -> None:
    hardened_app[:] = [o for o in hardened_app if o["kind"] != "PodDisruptionBudget"]

    assert [(f.rule, f.message) for f in check_policies(hardened_app)] == [
        ("disruption-budget", "no PodDisruptionBudget selects its pods")
    ]


def test_disruption_budget_selecting_other_pods_does_not_count(
    hardened_app: Objects, find_object: Any
) -> None:
    find_object(hardened_app, "PodDisruptionBudget")["spec"]["selector"] = {"matchLabels": {"app": "other"}}

    assert _rules(check_policies(hardened_app)) == {"disruption-budget"}


def test_deployment_without_autoscaler_is_caught(hardened_app: Objects) -> None:
    hardened_app[:] = [o for o in hardened_app if o["kind"] != "HorizontalPodAutoscaler"]

    assert [(f.rule, f.message) for f in check_policies(hardened_app)] == [
        ("autoscaling", "no HorizontalPodAutoscaler targets it")
    ]


def test_fixed_replicas_under_an_autoscaler_are_caught(hardened_app: Objects, find_object: Any) -> None:
    find_object(hardened_app, "Deployment")["spec"]["replicas"] = 3

    assert _rules(check_policies(hardened_app)) == {"autoscaling"}


def _run_as_vitalis_service(
    objects: Objects, find_object: Any, *, grace: str, pre_stop: int, period: int
) -> None:
    find_object(objects, "ConfigMap", "demo-config")["data"]["VITALIS_SHUTDOWN_GRACE_SECONDS"] = grace
    container = _container(objects, find_object)
    container["command"] = ["python", "-m", "vitalis_demo"]
    container["lifecycle"] = {"preStop": {"sleep": {"seconds": pre_stop}}}
    _pod_spec(objects, find_object)["terminationGracePeriodSeconds"] = period


def test_shutdown_that_fits_the_grace_period_passes(hardened_app: Objects, find_object: Any) -> None:
    # 5 s preStop + 2 x 10 s (in-flight calls, then background tasks) + 5 s margin.
    _run_as_vitalis_service(hardened_app, find_object, grace="10", pre_stop=5, period=30)

    assert check_policies(hardened_app) == []


def test_drain_longer_than_the_grace_period_is_caught(hardened_app: Objects, find_object: Any) -> None:
    _run_as_vitalis_service(hardened_app, find_object, grace="15", pre_stop=5, period=30)

    findings = check_policies(hardened_app)

    assert _rules(findings) == {"graceful-shutdown"}
    assert "needs 40 s but terminationGracePeriodSeconds is 30" in findings[0].message


def test_vitalis_service_without_pre_stop_hook_is_caught(hardened_app: Objects, find_object: Any) -> None:
    _run_as_vitalis_service(hardened_app, find_object, grace="10", pre_stop=5, period=30)
    del _container(hardened_app, find_object)["lifecycle"]

    assert _rules(check_policies(hardened_app)) == {"graceful-shutdown"}


def test_service_selecting_no_pods_is_caught(hardened_app: Objects, find_object: Any) -> None:
    find_object(hardened_app, "Service")["spec"]["selector"] = {"app.kubernetes.io/name": "typo"}

    assert [f.message for f in check_policies(hardened_app)] == ["its selector matches no long-running pods"]


def test_service_target_port_name_missing_from_pods_is_caught(
    hardened_app: Objects, find_object: Any
) -> None:
    find_object(hardened_app, "Service")["spec"]["ports"][0]["targetPort"] = "grpc"

    assert _rules(check_policies(hardened_app)) == {"references"}


def test_headless_service_port_must_equal_the_container_port(hardened_app: Objects, find_object: Any) -> None:
    find_object(hardened_app, "Service")["spec"]["clusterIP"] = "None"

    findings = check_policies(hardened_app)

    assert _rules(findings) == {"references"}
    assert "listens on 8080" in findings[0].message


def test_missing_config_map_and_service_account_are_caught(hardened_app: Objects) -> None:
    hardened_app[:] = [o for o in hardened_app if o["kind"] not in ("ConfigMap", "ServiceAccount")]

    assert sorted(f.message for f in check_policies(hardened_app)) == [
        "ConfigMap 'demo-config' is not in the render",
        "service account 'demo' is not in the render",
    ]


def test_service_monitor_port_must_exist_on_the_selected_services(hardened_app: Objects) -> None:
    monitor: dict[str, Any] = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "demo", "namespace": "demo", "labels": {"app.kubernetes.io/part-of": "demo"}},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": "demo"}},
            "endpoints": [{"port": "metrics"}],
        },
    }
    hardened_app.append(monitor)

    assert [f.message for f in check_policies(hardened_app)] == [
        "endpoint port 'metrics' is not a port of Service/demo/demo"
    ]
    monitor["spec"]["endpoints"] = [{"port": "http"}]
    assert check_policies(hardened_app) == []


def test_namespace_without_default_deny_is_caught(hardened_app: Objects) -> None:
    hardened_app[:] = [o for o in hardened_app if o["metadata"]["name"] != "default-deny"]

    assert [(f.subject, f.rule) for f in check_policies(hardened_app)] == [
        ("Namespace/demo", "network-policy")
    ]


def test_pod_without_dns_egress_is_caught(hardened_app: Objects) -> None:
    hardened_app[:] = [o for o in hardened_app if o["metadata"]["name"] != "dns"]

    findings = check_policies(hardened_app)

    assert _rules(findings) == {"network-policy"}
    assert "the cluster DNS port 53/UDP is required but blocked" in findings[0].message
