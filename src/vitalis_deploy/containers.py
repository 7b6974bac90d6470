"""Policies for every container of every pod: hardening, probes, resources, images, secrets."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from vitalis_deploy.findings import Finding
from vitalis_deploy.workloads import PodWorkload, parse_quantity

RESOURCE_NAMES = ("cpu", "memory")
ALLOWED_SECCOMP_TYPES = frozenset({"RuntimeDefault", "Localhost"})
SECRET_NAME = re.compile(
    r"SECRET|PASSWORD|PASSPHRASE|TOKEN|CREDENTIAL|AUTHORIZATION|ACCESS_KEY|PRIVATE_KEY|_DSN$|DATABASE_URL$|REDIS_URL$"
)
"""Environment variable (and ConfigMap key) names that carry credentials."""


def check_containers(workloads: Iterable[PodWorkload]) -> list[Finding]:
    """Every container policy, for every container of every workload."""
    findings: list[Finding] = []
    for workload in workloads:
        findings.extend(_check_pod(workload))
        for is_init, containers in ((True, "initContainers"), (False, "containers")):
            for container in workload.pod_spec.get(containers) or ():
                name = str(container.get("name", "<unnamed>"))
                for rule, message in _container_problems(workload, container, is_init=is_init):
                    findings.append(Finding(workload.subject, rule, f"container {name}: {message}"))
    return findings


def _check_pod(workload: PodWorkload) -> Iterator[Finding]:
    spec = workload.pod_spec
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            yield Finding(workload.subject, "security-context", f"pod sets {field}: true")


def _container_problems(
    workload: PodWorkload, container: Mapping[str, Any], *, is_init: bool
) -> Iterator[tuple[str, str]]:
    # Init containers cannot have probes, except sidecars (restartPolicy Always), which serve.
    serves = not is_init or container.get("restartPolicy") == "Always"
    if workload.long_running and serves:
        for probe in ("livenessProbe", "readinessProbe"):
            if not container.get(probe):
                yield "probes", f"has no {probe}"
    yield from _resource_problems(container.get("resources") or {})
    yield from _security_problems(workload.pod_spec.get("securityContext") or {}, container)
    yield from _image_problems(container.get("image"))
    yield from _secret_problems(container)


def _resource_problems(resources: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    for resource in RESOURCE_NAMES:
        if resource not in requests:
            yield "resources", f"has no {resource} request"
        if resource not in limits:
            yield "resources", f"has no {resource} limit"
        if resource in requests and resource in limits:
            try:
                over = parse_quantity(requests[resource]) > parse_quantity(limits[resource])
            except ValueError as error:
                yield "resources", str(error)
                continue
            if over:
                yield (
                    "resources",
                    f"{resource} request {requests[resource]} exceeds its limit {limits[resource]}",
                )


def _security_problems(
    pod_context: Mapping[str, Any], container: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    context = container.get("securityContext") or {}
    run_as_non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
    if run_as_non_root is not True:
        yield "security-context", "runAsNonRoot is not true"
    if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
        yield "security-context", "runs as user 0"
    if context.get("readOnlyRootFilesystem") is not True:
        yield "security-context", "readOnlyRootFilesystem is not true"
    if context.get("allowPrivilegeEscalation") is not False:
        yield "security-context", "allowPrivilegeEscalation is not false"
    if context.get("privileged"):
        yield "security-context", "is privileged"
    capabilities = context.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or ()):
        yield "security-context", "does not drop ALL capabilities"
    if capabilities.get("add"):
        yield "security-context", f"adds capabilities {capabilities['add']}"
    seccomp = context.get("seccompProfile") or pod_context.get("seccompProfile") or {}
    if seccomp.get("type") not in ALLOWED_SECCOMP_TYPES:
        yield "security-context", "seccompProfile is not RuntimeDefault"


def _image_problems(image: object) -> Iterator[tuple[str, str]]:
    if not isinstance(image, str) or not image:
        yield "image", "has no image"
        return
    if "@sha256:" in image:
        return
    last_segment = image.rsplit("/", 1)[-1]
    if ":" not in last_segment:
        yield "image", f"image {image} has no tag (that means :latest)"
    elif last_segment.rsplit(":", 1)[1] == "latest":
        yield "image", f"image {image} uses the :latest tag"


def _secret_problems(container: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for entry in container.get("env") or ():
        name = str(entry.get("name", ""))
        if not SECRET_NAME.search(name):
            continue
        value_from = entry.get("valueFrom") or {}
        if "secretKeyRef" not in value_from:
            yield "secrets", f"{name} must come from a Secret (valueFrom.secretKeyRef), not a literal"
