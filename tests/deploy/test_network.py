"""The NetworkPolicy evaluator follows the API's semantics."""

from __future__ import annotations

from typing import Any

from vitalis_deploy.network import Endpoint, NetworkModel, outside

API = Endpoint("api", "app", {"role": "api"}, {"http": 8080, "metrics": 9000})
WORKER = Endpoint("worker", "app", {"role": "worker"}, {"http": 8081})
STRANGER = Endpoint("stranger", "other", {"role": "api"}, {"http": 8080})
INTERNET = outside("internet")


def _policy(name: str, spec: dict[str, Any], namespace: str = "app") -> dict[str, Any]:
    return {"kind": "NetworkPolicy", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


DENY_ALL = _policy("deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
WORKER_EGRESS_TO_API = _policy(
    "worker-egress",
    {
        "podSelector": {"matchLabels": {"role": "worker"}},
        "policyTypes": ["Egress"],
        "egress": [{"to": [{"podSelector": {"matchLabels": {"role": "api"}}}], "ports": [{"port": "http"}]}],
    },
)
API_INGRESS_FROM_WORKER = _policy(
    "api-ingress",
    {
        "podSelector": {"matchLabels": {"role": "api"}},
        "policyTypes": ["Ingress"],
        "ingress": [
            {"from": [{"podSelector": {"matchLabels": {"role": "worker"}}}], "ports": [{"port": 8080}]}
        ],
    },
)


def test_without_policies_everything_is_allowed() -> None:
    assert NetworkModel([], {}).allows(WORKER, API, "http")


def test_default_deny_blocks_everything_and_is_recognised() -> None:
    model = NetworkModel([DENY_ALL], {})

    assert not model.allows(WORKER, API, "http")
    assert model.is_default_deny("app")
    assert not model.is_default_deny("other")


def test_a_connection_needs_both_egress_and_ingress() -> None:
    assert not NetworkModel([DENY_ALL, WORKER_EGRESS_TO_API], {}).allows(WORKER, API, "http")
    assert not NetworkModel([DENY_ALL, API_INGRESS_FROM_WORKER], {}).allows(WORKER, API, "http")
    assert NetworkModel([DENY_ALL, WORKER_EGRESS_TO_API, API_INGRESS_FROM_WORKER], {}).allows(
        WORKER, API, "http"
    )


def test_ports_match_by_number_and_by_destination_port_name() -> None:
    model = NetworkModel([DENY_ALL, WORKER_EGRESS_TO_API, API_INGRESS_FROM_WORKER], {})

    assert model.allows(WORKER, API, 8080)
    assert not model.allows(WORKER, API, "metrics")
    assert not model.allows(WORKER, API, "no-such-port")


def test_port_ranges_and_protocols_are_respected() -> None:
    egress = _policy(
        "range",
        {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"ports": [{"protocol": "TCP", "port": 8000, "endPort": 8100}]}],
        },
    )
    model = NetworkModel([egress], {})

    assert model.allows(WORKER, INTERNET, 8050)
    assert not model.allows(WORKER, INTERNET, 8101)
    assert not model.allows(WORKER, INTERNET, 8050, "UDP")


def test_pod_selector_alone_means_the_policys_own_namespace() -> None:
    model = NetworkModel([DENY_ALL, API_INGRESS_FROM_WORKER], {})
    other_worker = Endpoint("other worker", "other", {"role": "worker"})

    assert not model.allows(other_worker, API, "http")


def test_namespace_selector_matches_namespace_labels_and_name() -> None:
    from_monitoring = _policy(
        "metrics",
        {
            "podSelector": {"matchLabels": {"role": "api"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "sre"}}}]}],
        },
    )
    prometheus = Endpoint("prometheus", "monitoring", {"app": "prometheus"})

    assert NetworkModel([from_monitoring], {"monitoring": {"team": "sre"}}).allows(prometheus, API, "metrics")
    assert not NetworkModel([from_monitoring], {}).allows(prometheus, API, "metrics")


def test_ip_blocks_stand_for_addresses_outside_the_cluster() -> None:
    egress = _policy(
        "egress",
        {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}],
        },
    )
    model = NetworkModel([egress], {})

    assert model.allows(WORKER, INTERNET, 443)
    assert not model.allows(WORKER, API, "http")


def test_policy_types_default_to_ingress_plus_egress_when_egress_rules_exist() -> None:
    ingress_only = _policy("i", {"podSelector": {"matchLabels": {"role": "api"}}, "ingress": []})
    model = NetworkModel([ingress_only], {})

    assert not model.allows(WORKER, API, "http")
    assert model.allows(API, INTERNET, 443)


def test_match_expressions_select_pods() -> None:
    egress = _policy(
        "e",
        {
            "podSelector": {"matchExpressions": [{"key": "role", "operator": "In", "values": ["worker"]}]},
            "policyTypes": ["Egress"],
        },
    )
    model = NetworkModel([egress], {})

    assert not model.allows(WORKER, INTERNET, 443)
    assert model.allows(API, INTERNET, 443)


def test_policies_apply_only_to_pods_of_their_namespace() -> None:
    model = NetworkModel([_policy("deny", DENY_ALL["spec"], namespace="other")], {})

    assert model.allows(WORKER, API, "http")
    assert not model.allows(STRANGER, API, "http")
