"""What a check reports: one problem with one object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Manifest = Mapping[str, Any]
"""One rendered Kubernetes object, as parsed from YAML."""


@dataclass(frozen=True, order=True)
class Finding:
    """A problem the validator found: which object, which rule and what is wrong."""

    subject: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.subject}: [{self.rule}] {self.message}"


def describe(manifest: Manifest) -> str:
    """``Kind/name`` (with the namespace when there is one) for messages."""
    metadata = manifest.get("metadata") or {}
    name = metadata.get("name", "<unnamed>")
    namespace = metadata.get("namespace")
    kind = manifest.get("kind", "<no kind>")
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"
