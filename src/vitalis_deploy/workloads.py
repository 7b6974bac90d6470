"""Reading rendered objects: pod templates, label selectors, container environments, quantities."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from vitalis_deploy.findings import Manifest, describe

LONG_RUNNING_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})
"""Workloads whose pods serve until replaced: they need probes."""

_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_MULTIPLIERS = {
    None: Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


@dataclass(frozen=True)
class PodWorkload:
    """An object that creates pods (Deployment, StatefulSet, DaemonSet, Job, CronJob)."""

    manifest: Manifest
    pod_spec: Mapping[str, Any]
    pod_labels: Mapping[str, str]

    @property
    def kind(self) -> str:
        """The workload's kind."""
        return str(self.manifest["kind"])

    @property
    def name(self) -> str:
        """The workload's name."""
        return str(self.manifest["metadata"]["name"])

    @property
    def namespace(self) -> str:
        """The workload's namespace (``default`` when the manifest names none)."""
        return str(self.manifest.get("metadata", {}).get("namespace") or "default")

    @property
    def subject(self) -> str:
        """``Kind/namespace/name`` for findings."""
        return describe(self.manifest)

    @property
    def long_running(self) -> bool:
        """Whether the pods serve until replaced (as opposed to running to completion)."""
        return self.kind in LONG_RUNNING_KINDS

    def containers(self, *, include_init: bool = True) -> Iterator[Mapping[str, Any]]:
        """The pod's containers, init containers first when asked for."""
        if include_init:
            yield from self.pod_spec.get("initContainers") or ()
        yield from self.pod_spec.get("containers") or ()

    def named_ports(self) -> dict[str, int]:
        """Container port names to numbers, across the pod's containers."""
        ports: dict[str, int] = {}
        for container in self.containers(include_init=False):
            for port in container.get("ports") or ():
                if "name" in port:
                    ports[str(port["name"])] = int(port["containerPort"])
        return ports


def pod_workloads(objects: Iterable[Manifest]) -> list[PodWorkload]:
    """Every object in the render that creates pods, with its pod template."""
    workloads = []
    for manifest in objects:
        template = _pod_template(manifest)
        if template is None:
            continue
        labels = (template.get("metadata") or {}).get("labels") or {}
        workloads.append(PodWorkload(manifest, template.get("spec") or {}, dict(labels)))
    return workloads


def _pod_template(manifest: Manifest) -> Mapping[str, Any] | None:
    kind = manifest.get("kind")
    spec = manifest.get("spec") or {}
    if kind in LONG_RUNNING_KINDS or kind == "Job":
        template = spec.get("template")
    elif kind == "CronJob":
        template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template")
    else:
        return None
    return template if isinstance(template, Mapping) else None


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a ``LabelSelector`` (matchLabels and matchExpressions) selects these labels.

    A missing selector selects nothing; an empty one selects everything, as in the API.
    """
    if selector is None:
        return False
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    return all(
        _expression_matches(expression, labels) for expression in selector.get("matchExpressions") or ()
    )


def _expression_matches(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, operator = expression["key"], expression["operator"]
    values = expression.get("values") or ()
    if operator == "In":
        return labels.get(key) in values
    if operator == "NotIn":
        return labels.get(key) not in values
    if operator == "Exists":
        return key in labels
    # The API server rejects any other operator; such a selector selects nothing here.
    return operator == "DoesNotExist" and key not in labels


def map_selector_matches(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    """Whether a plain label map (a Service's selector) selects these labels; empty selects nothing."""
    if not selector:
        return False
    return all(labels.get(key) == value for key, value in selector.items())


def config_maps_by_name(objects: Iterable[Manifest]) -> dict[tuple[str, str], Mapping[str, str]]:
    """The rendered ConfigMaps' data, keyed by (namespace, name)."""
    found: dict[tuple[str, str], Mapping[str, str]] = {}
    for manifest in objects:
        if manifest.get("kind") == "ConfigMap":
            metadata = manifest.get("metadata") or {}
            key = (str(metadata.get("namespace") or "default"), str(metadata.get("name")))
            found[key] = manifest.get("data") or {}
    return found


def resolved_environment(
    container: Mapping[str, Any],
    *,
    namespace: str,
    config_maps: Mapping[tuple[str, str], Mapping[str, str]],
) -> dict[str, str]:
    """The literal environment a container starts with, as far as the render can tell.

    ``envFrom`` ConfigMaps come first in order, then ``env`` entries override them; values taken
    from Secrets or the downward API are unknown here and left out.
    """
    environment: dict[str, str] = {}
    for source in container.get("envFrom") or ():
        reference = source.get("configMapRef")
        if reference is None:
            continue
        prefix = source.get("prefix", "")
        data = config_maps.get((namespace, reference["name"]), {})
        environment.update({f"{prefix}{key}": str(value) for key, value in data.items()})
    for entry in container.get("env") or ():
        if "value" in entry:
            environment[entry["name"]] = str(entry["value"])
            continue
        reference = (entry.get("valueFrom") or {}).get("configMapKeyRef")
        if reference is not None:
            data = config_maps.get((namespace, reference["name"]), {})
            if reference["key"] in data:
                environment[entry["name"]] = str(data[reference["key"]])
                continue
        environment.pop(entry["name"], None)
    return environment


def parse_quantity(quantity: object) -> Decimal:
    """A Kubernetes resource quantity (``250m``, ``1.5Gi``, ``2``) as a number of base units."""
    match = _QUANTITY.match(str(quantity).strip())
    if match is None:
        raise ValueError(f"not a Kubernetes quantity: {quantity!r}")
    try:
        return Decimal(match.group(1)) * _MULTIPLIERS[match.group(2)]
    except InvalidOperation as error:
        raise ValueError(f"not a Kubernetes quantity: {quantity!r}") from error
