"""The connections Vitalis needs, the ones it must never allow, and the check of a render against both.

Each flow names its ends by pod labels; a flow whose end is not part of the render (the gateway
in a render without it, in-cluster PostgreSQL in production) is checked against the fallback the
flow names, usually "an address outside the cluster", or skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from vitalis_deploy.findings import Finding, Manifest
from vitalis_deploy.network import Endpoint, NetworkModel, outside
from vitalis_deploy.workloads import PodWorkload

NAME = "app.kubernetes.io/name"
COMPONENT = "app.kubernetes.io/component"
SERVICES = ("identity", "ingestion", "biomarkers", "documents", "insights")

SERVICE_CALLS: Mapping[tuple[str, str], str] = {
    **{
        (caller, "identity"): "token verification (JWKS) and share-grant checks"
        for caller in SERVICES
        if caller != "identity"
    },
    **{
        ("identity", callee): "data-subject rights: the callee's UserDataService exports and erases"
        for callee in SERVICES
        if callee != "identity"
    },
    ("insights", "ingestion"): "insights reads samples",
    ("insights", "biomarkers"): "insights reads markers",
    ("documents", "biomarkers"): "parsed reports become panels",
}
"""Every (caller, callee) pair of services that calls over gRPC, and why; no other pair may."""

INTERNET = outside("a client on the internet")
MANAGED_DATASTORE = outside("a managed datastore outside the cluster")
OBJECT_STORE = outside("S3-compatible object storage")
CLUSTER_DNS = Endpoint("the cluster DNS", "kube-system", {"k8s-app": "kube-dns"}, {"dns": 53})
PROMETHEUS = Endpoint("Prometheus", "monitoring", {NAME: "prometheus"})


@dataclass(frozen=True)
class Pods:
    """Pods of the render selected by labels; ``fallback`` stands in when none is rendered."""

    labels: Mapping[str, str]
    fallback: Endpoint | None = None


@dataclass(frozen=True)
class Flow:
    """A connection from one end to the other on a port (a number, or the destination's port name)."""

    source: Pods | Endpoint
    destination: Pods | Endpoint
    port: int | str
    protocol: str = "TCP"
    why: str = field(default="", compare=False)


def service(name: str) -> Pods:
    """The pods of one Vitalis service."""
    return Pods({NAME: name, COMPONENT: "service"})


GATEWAY = Pods({NAME: "gateway", COMPONENT: "gateway"})
ANY_SERVICE = Pods({COMPONENT: "service"})
MIGRATIONS = Pods({COMPONENT: "migration"})
POSTGRES = Pods({NAME: "postgres", COMPONENT: "datastore"}, fallback=MANAGED_DATASTORE)
REDIS = Pods({NAME: "redis", COMPONENT: "datastore"}, fallback=MANAGED_DATASTORE)
COLLECTOR = Pods({NAME: "otel-collector", COMPONENT: "telemetry"})
EVERY_POD = Pods({})

REQUIRED_FLOWS: tuple[Flow, ...] = (
    Flow(INTERNET, GATEWAY, "http", why="clients reach the gateway"),
    Flow(EVERY_POD, CLUSTER_DNS, 53, "UDP", why="name resolution"),
    *(Flow(GATEWAY, service(name), "grpc", why="the gateway routes to every service") for name in SERVICES),
    *(
        Flow(service(caller), service(callee), "grpc", why=why)
        for (caller, callee), why in SERVICE_CALLS.items()
    ),
    Flow(service("documents"), OBJECT_STORE, 443, why="document bytes live in object storage"),
    Flow(ANY_SERVICE, POSTGRES, 5432, why="each service owns a schema"),
    Flow(ANY_SERVICE, REDIS, 6379, why="events flow through Redis Streams"),
    Flow(MIGRATIONS, POSTGRES, 5432, why="migrations change the schemas"),
    Flow(ANY_SERVICE, COLLECTOR, "otlp-grpc", why="traces and metrics"),
    Flow(GATEWAY, COLLECTOR, "otlp-grpc", why="the gateway's traces"),
    Flow(PROMETHEUS, ANY_SERVICE, "metrics", why="Prometheus scrapes the services"),
    Flow(PROMETHEUS, GATEWAY, "metrics", why="Prometheus scrapes Envoy"),
)
"""Connections that must be open wherever both ends are deployed."""

FORBIDDEN_FLOWS: tuple[Flow, ...] = (
    *(
        Flow(INTERNET, service(name), "grpc", why="services are reached through the gateway")
        for name in SERVICES
    ),
    Flow(INTERNET, GATEWAY, "metrics", why="only Prometheus scrapes the gateway"),
    Flow(INTERNET, POSTGRES, 5432, why="the database is private"),
    Flow(INTERNET, REDIS, 6379, why="Redis is private"),
    *(
        Flow(service(caller), service(callee), "grpc", why="not a call any service makes")
        for caller in SERVICES
        for callee in SERVICES
        if caller != callee and (caller, callee) not in SERVICE_CALLS
    ),
    *(
        Flow(service(caller), service(callee), "metrics", why="only Prometheus scrapes the services")
        for caller in SERVICES
        for callee in SERVICES
        if caller != callee
    ),
    Flow(GATEWAY, POSTGRES, 5432, why="the gateway holds no data"),
    Flow(GATEWAY, REDIS, 6379, why="the gateway holds no data"),
    Flow(MIGRATIONS, service("identity"), "grpc", why="migrations talk to PostgreSQL only"),
    Flow(MIGRATIONS, REDIS, 6379, why="migrations talk to PostgreSQL only"),
    Flow(MIGRATIONS, INTERNET, 443, why="migrations talk to PostgreSQL only"),
)
"""Connections that must stay closed: between services, every pair outside :data:`SERVICE_CALLS`
and every metrics port; elsewhere a sample of what default deny is for."""


def check_flows(
    objects: Sequence[Manifest],
    workloads: Sequence[PodWorkload],
    *,
    required: Sequence[Flow] = REQUIRED_FLOWS,
    forbidden: Sequence[Flow] = FORBIDDEN_FLOWS,
) -> list[Finding]:
    """Default deny in every namespace with pods, required flows open, forbidden flows closed."""
    namespace_labels = {
        str(o["metadata"]["name"]): dict(o["metadata"].get("labels") or {})
        for o in objects
        if o.get("kind") == "Namespace"
    }
    model = NetworkModel((o for o in objects if o.get("kind") == "NetworkPolicy"), namespace_labels)
    findings = [
        Finding(
            f"Namespace/{namespace}", "network-policy", "no default-deny NetworkPolicy (ingress and egress)"
        )
        for namespace in sorted({w.namespace for w in workloads})
        if not model.is_default_deny(namespace)
    ]
    for flow in required:
        for source, destination in _pairs(flow, workloads):
            if not model.allows(source, destination, flow.port, flow.protocol):
                findings.append(_finding(flow, source, destination, "is required but blocked"))
    for flow in forbidden:
        for source, destination in _pairs(flow, workloads):
            if model.allows(source, destination, flow.port, flow.protocol):
                findings.append(_finding(flow, source, destination, "must be blocked but is allowed"))
    return findings


def _finding(flow: Flow, source: Endpoint, destination: Endpoint, verdict: str) -> Finding:
    reason = f" ({flow.why})" if flow.why else ""
    return Finding(
        "NetworkPolicy",
        "network-policy",
        f"{source.description} -> {destination.description} "
        f"port {flow.port}/{flow.protocol} {verdict}{reason}",
    )


def _pairs(flow: Flow, workloads: Sequence[PodWorkload]) -> Iterator[tuple[Endpoint, Endpoint]]:
    sources = _endpoints(flow.source, workloads)
    destinations = _endpoints(flow.destination, workloads)
    for source in sources:
        for destination in destinations:
            # Nothing in the manifests governs a connection between two outside addresses.
            if source != destination and (source.in_cluster or destination.in_cluster):
                yield source, destination


def _endpoints(end: Pods | Endpoint, workloads: Sequence[PodWorkload]) -> list[Endpoint]:
    if isinstance(end, Endpoint):
        return [end]
    matched = [
        Endpoint(workload.subject, workload.namespace, workload.pod_labels, workload.named_ports())
        for workload in workloads
        if all(workload.pod_labels.get(key) == value for key, value in end.labels.items())
    ]
    if matched:
        return matched
    return [end.fallback] if end.fallback is not None else []
