"""Validation of every object against the Kubernetes JSON schemas, offline and strict.

Strict means unknown fields are errors: a misspelt ``readinesProbe`` is caught here rather than
silently dropped by the API server. Custom resources have no schema in ``kubernetes-validate``;
the ones Vitalis uses on purpose are listed in :data:`KNOWN_CUSTOM_RESOURCES` and skipped here
(the policy checks still look at them). Any other kind without a schema is a finding.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import kubernetes_validate

from vitalis_deploy.findings import Finding, Manifest, describe

DEFAULT_KUBERNETES_VERSIONS = ("1.33.0", kubernetes_validate.latest_version())
"""The oldest Kubernetes release Vitalis supports and the newest one the schemas describe."""

KNOWN_CUSTOM_RESOURCES = frozenset(
    {
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("monitoring.coreos.com/v1", "PodMonitor"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
    }
)
"""Custom resources (apiVersion, kind) whose CRDs are expected in the cluster."""


def is_known_custom_resource(manifest: Manifest) -> bool:
    """Whether the object is one of the custom resources Vitalis deploys on purpose."""
    return (manifest.get("apiVersion"), manifest.get("kind")) in KNOWN_CUSTOM_RESOURCES


def check_schemas(objects: Iterable[Manifest], *, versions: Sequence[str]) -> list[Finding]:
    """Validate each object against each Kubernetes version's strict schema."""
    findings: list[Finding] = []
    for manifest in objects:
        if is_known_custom_resource(manifest):
            continue
        for version in versions:
            finding = _check_one(manifest, version)
            if finding is not None:
                findings.append(finding)
                break
    return findings


def _check_one(manifest: Manifest, version: str) -> Finding | None:
    subject = describe(manifest)
    if "apiVersion" not in manifest or "kind" not in manifest:
        return Finding(subject, "schema", "object has no apiVersion or kind")
    try:
        kubernetes_validate.validate(dict(manifest), version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(part) for part in error.path) or "<root>"
        return Finding(
            subject, "schema", f"invalid for Kubernetes {error.version} at {path}: {error.message}"
        )
    except kubernetes_validate.SchemaNotFoundError as error:
        return Finding(
            subject,
            "schema",
            f"{error.message}; if this is a custom resource deployed on purpose, "
            "add it to KNOWN_CUSTOM_RESOURCES",
        )
    return None
