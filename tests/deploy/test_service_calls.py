"""The network policies open exactly the calls services make to each other, one allow per caller."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vitalis_deploy.flows import SERVICE_CALLS, SERVICES
from vitalis_deploy.network import Endpoint, NetworkModel
from vitalis_deploy.policy import check_policies
from vitalis_deploy.render import find_kubectl, render
from vitalis_deploy.workloads import pod_workloads

NAME = "app.kubernetes.io/name"
# Written out rather than derived: documents -> biomarkers (panels from parsed reports),
# identity -> every service (UserDataService), insights -> ingestion and biomarkers, and every
# service -> identity (JWKS, share grants).
EXPECTED_CALLS = {
    ("documents", "biomarkers"),
    ("identity", "ingestion"),
    ("identity", "biomarkers"),
    ("identity", "documents"),
    ("identity", "insights"),
    ("insights", "ingestion"),
    ("insights", "biomarkers"),
    ("ingestion", "identity"),
    ("biomarkers", "identity"),
    ("documents", "identity"),
    ("insights", "identity"),
}


@pytest.fixture(scope="module", params=["dev", "prod"])
def objects(request: pytest.FixtureRequest) -> list[Any]:
    """One overlay, rendered."""
    root = Path(__file__).resolve().parents[2] / "deploy/k8s/overlays"
    return list(render(root / request.param, kubectl=find_kubectl()))


def _service_endpoints(objects: list[Any]) -> dict[str, Endpoint]:
    return {
        w.name: Endpoint(w.subject, w.namespace, w.pod_labels, w.named_ports())
        for w in pod_workloads(objects)
        if w.kind == "Deployment" and w.name in SERVICES
    }


def test_the_validator_expects_exactly_the_intended_calls() -> None:
    assert set(SERVICE_CALLS) == EXPECTED_CALLS


@pytest.mark.parametrize("port", ["grpc", "metrics"])
def test_rendered_policies_allow_exactly_the_intended_calls(objects: list[Any], port: str) -> None:
    model = NetworkModel(
        (o for o in objects if o["kind"] == "NetworkPolicy"),
        {o["metadata"]["name"]: o["metadata"].get("labels", {}) for o in objects if o["kind"] == "Namespace"},
    )
    pods = _service_endpoints(objects)

    allowed = {
        (caller, callee)
        for caller in SERVICES
        for callee in SERVICES
        if caller != callee and model.allows(pods[caller], pods[callee], port)
    }

    assert allowed == (EXPECTED_CALLS if port == "grpc" else set())


def test_each_service_has_one_egress_policy_of_its_own_naming_its_callees(objects: list[Any]) -> None:
    own_egress = {
        name: [
            o
            for o in objects
            if o["kind"] == "NetworkPolicy"
            and "Egress" in o["spec"].get("policyTypes", [])
            and o["spec"]["podSelector"].get("matchLabels", {}).get(NAME) == name
        ]
        for name in SERVICES
    }

    for name, policies in own_egress.items():
        assert [p["metadata"]["name"] for p in policies] == [f"{name}-egress"]
        callees = {
            peer["podSelector"]["matchLabels"][NAME]
            for rule in policies[0]["spec"]["egress"]
            for peer in rule.get("to", [])
            if "podSelector" in peer
        }
        assert callees == {callee for caller, callee in EXPECTED_CALLS if caller == name}


def _append_to_policy(path: Path, policy_name: str, addition: str) -> None:
    """Insert a peer right after the first ``- from:``/``- to:`` line of the named policy."""
    text = path.read_text()
    start = text.index(f"  name: {policy_name}\n")
    for marker in ("    - from:\n", "    - to:\n"):
        at = text.find(marker, start)
        if at != -1:
            at += len(marker)
            path.write_text(text[:at] + addition + text[at:])
            return
    raise AssertionError(f"no peer list in {policy_name}")


def test_an_extra_call_opened_on_both_sides_is_caught(k8s_copy: Path) -> None:
    policies = k8s_copy / "components" / "network-policies"
    peer = (
        "        - podSelector:\n"
        "            matchLabels:\n"
        "              app.kubernetes.io/name: {name}\n"
        "              app.kubernetes.io/component: service\n"
    )
    _append_to_policy(policies / "ingress.yaml", "insights-ingress", peer.format(name="documents"))
    _append_to_policy(policies / "egress.yaml", "documents-egress", peer.format(name="insights"))

    findings = check_policies(render(k8s_copy / "overlays" / "prod", kubectl=find_kubectl()))

    assert [str(f) for f in findings] == [
        "NetworkPolicy: [network-policy] Deployment/vitalis/documents -> Deployment/vitalis/insights "
        "port grpc/TCP must be blocked but is allowed (not a call any service makes)"
    ]
