"""Conventions every rendered object keeps: recommended labels, spread replicas, named Service ports,
and, where Prometheus Operator monitoring is rendered, a ServiceMonitor for every metrics port.

The ``app.kubernetes.io/*`` labels are what the network policies, ServiceMonitors and the
runbook's ``kubectl -l`` commands select on, so a pod without them silently falls outside all three.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from vitalis_deploy.findings import Finding, Manifest, describe
from vitalis_deploy.workloads import PodWorkload, selector_matches

PART_OF = "app.kubernetes.io/part-of"
POD_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/component", PART_OF)
"""Labels every pod carries: what it is, which role it plays, which application it belongs to."""
HOSTNAME = "kubernetes.io/hostname"
METRICS_PORT = "metrics"


def check_conventions(objects: Sequence[Manifest], workloads: Iterable[PodWorkload]) -> list[Finding]:
    """Labels on every object and pod, node spread for every Deployment, a name on every Service port."""
    findings = [
        Finding(describe(manifest), "labels", f"has no {PART_OF} label")
        for manifest in objects
        if PART_OF not in ((manifest.get("metadata") or {}).get("labels") or {})
    ]
    for workload in workloads:
        findings.extend(_pod_labels(workload))
        if workload.kind == "Deployment":
            findings.extend(_spread_over_nodes(workload))
    monitors = [o for o in objects if o.get("kind") == "ServiceMonitor"]
    for manifest in objects:
        if manifest.get("kind") == "Service":
            findings.extend(_named_ports(manifest))
            if monitors:
                findings.extend(_monitored(manifest, monitors))
    return findings


def _pod_labels(workload: PodWorkload) -> Iterator[Finding]:
    missing = [label for label in POD_LABELS if label not in workload.pod_labels]
    if missing:
        yield Finding(workload.subject, "labels", f"its pods lack {', '.join(missing)}")


def _spread_over_nodes(workload: PodWorkload) -> Iterator[Finding]:
    spread = any(
        constraint.get("topologyKey") == HOSTNAME
        and selector_matches(constraint.get("labelSelector"), workload.pod_labels)
        for constraint in workload.pod_spec.get("topologySpreadConstraints") or ()
    )
    if not spread:
        yield Finding(
            workload.subject,
            "topology-spread",
            f"no topologySpreadConstraint over {HOSTNAME} selects its own pods, so one node can hold "
            "every replica",
        )


def _named_ports(service: Manifest) -> Iterator[Finding]:
    for port in (service.get("spec") or {}).get("ports") or ():
        if not port.get("name"):
            yield Finding(
                describe(service),
                "service-ports",
                f"port {port.get('port')} has no name (grpc, http, metrics, ...): network policies, "
                "ServiceMonitors and protocol detection refer to ports by name",
            )


def _monitored(service: Manifest, monitors: Sequence[Manifest]) -> Iterator[Finding]:
    ports = {port.get("name") for port in (service.get("spec") or {}).get("ports") or ()}
    if METRICS_PORT not in ports:
        return
    labels = (service.get("metadata") or {}).get("labels") or {}
    namespace = (service.get("metadata") or {}).get("namespace")
    scraped = any(
        (monitor.get("metadata") or {}).get("namespace") == namespace
        and selector_matches((monitor.get("spec") or {}).get("selector"), labels)
        and any(e.get("port") == METRICS_PORT for e in (monitor.get("spec") or {}).get("endpoints") or ())
        for monitor in monitors
    )
    if not scraped:
        yield Finding(
            describe(service),
            "monitoring",
            f"no ServiceMonitor scrapes its port {METRICS_PORT!r}, though the render monitors others",
        )
