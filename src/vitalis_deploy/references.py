"""Policies that catch broken wiring: names and ports that point at nothing."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from vitalis_deploy.findings import Finding, Manifest, describe
from vitalis_deploy.workloads import PodWorkload, map_selector_matches, selector_matches


def check_references(objects: Sequence[Manifest], workloads: Sequence[PodWorkload]) -> list[Finding]:
    """Services select pods exposing their ports; ServiceMonitors select Services exposing theirs;
    pods refer to ConfigMaps and ServiceAccounts that the render contains."""
    names = _names_by_kind(objects)
    findings: list[Finding] = []
    services = [o for o in objects if o.get("kind") == "Service"]
    for service in services:
        findings.extend(_service_problems(service, workloads))
    for monitor in (o for o in objects if o.get("kind") == "ServiceMonitor"):
        findings.extend(_monitor_problems(monitor, services))
    for workload in workloads:
        findings.extend(_workload_reference_problems(workload, names))
    return findings


def _namespace(manifest: Manifest) -> str:
    return str((manifest.get("metadata") or {}).get("namespace") or "default")


def _names_by_kind(objects: Iterable[Manifest]) -> dict[str, set[tuple[str, str]]]:
    names: dict[str, set[tuple[str, str]]] = {}
    for manifest in objects:
        name = str((manifest.get("metadata") or {}).get("name"))
        names.setdefault(str(manifest.get("kind")), set()).add((_namespace(manifest), name))
    return names


def _service_problems(service: Manifest, workloads: Sequence[PodWorkload]) -> Iterator[Finding]:
    spec = service.get("spec") or {}
    if spec.get("type") == "ExternalName" or not spec.get("selector"):
        return
    selected = [
        workload
        for workload in workloads
        if workload.namespace == _namespace(service)
        and workload.long_running
        and map_selector_matches(spec["selector"], workload.pod_labels)
    ]
    if not selected:
        yield Finding(describe(service), "references", "its selector matches no long-running pods")
        return
    for port in spec.get("ports") or ():
        target = port.get("targetPort", port.get("port"))
        for workload in selected:
            if isinstance(target, str) and target not in workload.named_ports():
                yield Finding(
                    describe(service),
                    "references",
                    f"port {port.get('name')} targets {target!r}, which {workload.subject} does not name",
                )
            number = workload.named_ports().get(target) if isinstance(target, str) else target
            if spec.get("clusterIP") == "None" and number is not None and number != port.get("port"):
                yield Finding(
                    describe(service),
                    "references",
                    f"headless port {port.get('name')} is {port.get('port')} but {workload.subject} "
                    f"listens on {number}: clients of a headless Service dial the pods directly",
                )


def _monitor_problems(monitor: Manifest, services: Sequence[Manifest]) -> Iterator[Finding]:
    spec = monitor.get("spec") or {}
    namespace_selector = spec.get("namespaceSelector") or {}
    namespaces = (
        None
        if namespace_selector.get("any")
        else set(namespace_selector.get("matchNames") or [_namespace(monitor)])
    )
    selected = [
        service
        for service in services
        if (namespaces is None or _namespace(service) in namespaces)
        and selector_matches(spec.get("selector"), (service.get("metadata") or {}).get("labels") or {})
    ]
    if not selected:
        yield Finding(describe(monitor), "references", "its selector matches no Service")
        return
    for endpoint in spec.get("endpoints") or ():
        port = endpoint.get("port")
        for service in selected:
            port_names = {p.get("name") for p in (service.get("spec") or {}).get("ports") or ()}
            if port is not None and port not in port_names:
                yield Finding(
                    describe(monitor),
                    "references",
                    f"endpoint port {port!r} is not a port of {describe(service)}",
                )


def _workload_reference_problems(
    workload: PodWorkload, names: Mapping[str, set[tuple[str, str]]]
) -> Iterator[Finding]:
    namespace = workload.namespace
    account = workload.pod_spec.get("serviceAccountName")
    if account and (namespace, account) not in names.get("ServiceAccount", set()):
        yield Finding(workload.subject, "references", f"service account {account!r} is not in the render")
    for reference in _config_map_references(workload):
        if (namespace, reference) not in names.get("ConfigMap", set()):
            yield Finding(workload.subject, "references", f"ConfigMap {reference!r} is not in the render")


def _config_map_references(workload: PodWorkload) -> Iterator[str]:
    for volume in workload.pod_spec.get("volumes") or ():
        config_map: Mapping[str, Any] | None = volume.get("configMap")
        if config_map is not None and not config_map.get("optional"):
            yield str(config_map["name"])
    for container in workload.containers():
        for source in container.get("envFrom") or ():
            reference = source.get("configMapRef")
            if reference is not None and not reference.get("optional"):
                yield str(reference["name"])
        for entry in container.get("env") or ():
            reference = (entry.get("valueFrom") or {}).get("configMapKeyRef")
            if reference is not None and not reference.get("optional"):
                yield str(reference["name"])
