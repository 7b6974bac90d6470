"""A small evaluator of Kubernetes NetworkPolicies: may this pod open that connection?

It follows the API's semantics: a pod is isolated for a direction once any policy selecting it
lists that direction in ``policyTypes``; a connection needs the source's egress and the
destination's ingress to allow it; rules match peers by pod and namespace selectors and ports by
number or by the destination container's port name. ``ipBlock`` peers are taken to mean
"outside the cluster", since pod addresses are not known before deployment.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vitalis_deploy.findings import Manifest
from vitalis_deploy.workloads import selector_matches

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection: a pod (namespace and labels) or an address outside the cluster."""

    description: str
    namespace: str | None
    labels: Mapping[str, str] = field(default_factory=dict)
    named_ports: Mapping[str, int] = field(default_factory=dict)

    @property
    def in_cluster(self) -> bool:
        """Whether the endpoint is a pod (``False`` for addresses outside the cluster)."""
        return self.namespace is not None


def outside(description: str) -> Endpoint:
    """An address outside the cluster (the internet, a managed database)."""
    return Endpoint(description, None)


@dataclass(frozen=True)
class _Policy:
    namespace: str
    pod_selector: Mapping[str, Any]
    isolates_ingress: bool
    isolates_egress: bool
    ingress: Sequence[Mapping[str, Any]]
    egress: Sequence[Mapping[str, Any]]


class NetworkModel:
    """The NetworkPolicies of one render and the labels of the namespaces they live in."""

    def __init__(
        self, policies: Iterable[Manifest], namespace_labels: Mapping[str, Mapping[str, str]]
    ) -> None:
        self._policies = [_parse(policy) for policy in policies]
        self._namespace_labels = namespace_labels

    def allows(self, source: Endpoint, destination: Endpoint, port: int | str, protocol: str = "TCP") -> bool:
        """Whether ``source`` may connect to ``destination`` on ``port`` (a number or a port name)."""
        number = destination.named_ports.get(port) if isinstance(port, str) else port
        if number is None:
            return False
        return self._direction_allows(source, destination, number, protocol, egress=True) and (
            self._direction_allows(destination, source, number, protocol, egress=False)
        )

    def is_default_deny(self, namespace: str) -> bool:
        """Whether one policy isolates every pod of the namespace both ways and allows nothing."""
        return any(
            policy.namespace == namespace
            and not policy.pod_selector
            and policy.isolates_ingress
            and policy.isolates_egress
            and not policy.ingress
            and not policy.egress
            for policy in self._policies
        )

    def _direction_allows(
        self, pod: Endpoint, peer: Endpoint, port: int, protocol: str, *, egress: bool
    ) -> bool:
        if not pod.in_cluster:
            return True
        isolating = [
            policy
            for policy in self._policies
            if policy.namespace == pod.namespace
            and (policy.isolates_egress if egress else policy.isolates_ingress)
            and selector_matches(policy.pod_selector, pod.labels)
        ]
        if not isolating:
            return True
        destination = peer if egress else pod
        peers_key = "to" if egress else "from"
        return any(
            self._peers_match(rule.get(peers_key), peer, policy.namespace)
            and _ports_match(rule.get("ports"), port, protocol, destination)
            for policy in isolating
            for rule in (policy.egress if egress else policy.ingress)
        )

    def _peers_match(self, peers: Sequence[Mapping[str, Any]] | None, peer: Endpoint, namespace: str) -> bool:
        if not peers:
            return True
        return any(self._peer_matches(entry, peer, namespace) for entry in peers)

    def _peer_matches(self, entry: Mapping[str, Any], peer: Endpoint, namespace: str) -> bool:
        if "ipBlock" in entry:
            return not peer.in_cluster
        if not peer.in_cluster or peer.namespace is None:
            return False
        if "namespaceSelector" in entry:
            labels = {**self._namespace_labels.get(peer.namespace, {}), NAMESPACE_NAME_LABEL: peer.namespace}
            if not selector_matches(entry["namespaceSelector"], labels):
                return False
        elif peer.namespace != namespace:
            return False
        return "podSelector" not in entry or selector_matches(entry["podSelector"], peer.labels)


def _ports_match(
    ports: Sequence[Mapping[str, Any]] | None, port: int, protocol: str, destination: Endpoint
) -> bool:
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        wanted = entry.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str):
            if destination.named_ports.get(wanted) == port:
                return True
        elif int(wanted) <= port <= int(entry.get("endPort", wanted)):
            return True
    return False


def _parse(policy: Manifest) -> _Policy:
    spec = policy.get("spec") or {}
    ingress = spec.get("ingress") or []
    egress = spec.get("egress") or []
    types = spec.get("policyTypes") or (["Ingress", "Egress"] if egress else ["Ingress"])
    return _Policy(
        namespace=str((policy.get("metadata") or {}).get("namespace") or "default"),
        pod_selector=spec.get("podSelector") or {},
        isolates_ingress="Ingress" in types,
        isolates_egress="Egress" in types,
        ingress=ingress,
        egress=egress,
    )
