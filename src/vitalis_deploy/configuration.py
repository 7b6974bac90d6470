"""Policies for configuration objects: no secret values in the manifests, ConfigMaps that fit."""

from __future__ import annotations

from collections.abc import Iterable

from vitalis_deploy.containers import SECRET_NAME
from vitalis_deploy.findings import Finding, Manifest, describe

CONFIG_MAP_LIMIT_BYTES = 1024 * 1024
"""The API server rejects a ConfigMap whose data exceeds 1 MiB."""


def check_configuration(objects: Iterable[Manifest]) -> list[Finding]:
    """Secrets carry no literal data; ConfigMaps hold no credentials and stay under the size limit."""
    findings: list[Finding] = []
    for manifest in objects:
        kind = manifest.get("kind")
        if kind == "Secret" and (manifest.get("data") or manifest.get("stringData")):
            findings.append(
                Finding(
                    describe(manifest),
                    "secrets",
                    "Secret with literal data in the manifests: create it with `kubectl create secret` "
                    "(or an external secret store) and reference it by name",
                )
            )
        if kind == "ConfigMap":
            findings.extend(_config_map_problems(manifest))
    return findings


def _config_map_problems(manifest: Manifest) -> list[Finding]:
    findings = []
    data = manifest.get("data") or {}
    binary = manifest.get("binaryData") or {}
    for key in (*data, *binary):
        if SECRET_NAME.search(str(key)):
            findings.append(
                Finding(
                    describe(manifest), "secrets", f"key {key} looks like a credential: put it in a Secret"
                )
            )
    size = sum(len(str(key)) + len(str(value).encode()) for key, value in (*data.items(), *binary.items()))
    if size > CONFIG_MAP_LIMIT_BYTES:
        findings.append(
            Finding(
                describe(manifest),
                "config-size",
                f"holds {size} bytes; the API server accepts at most {CONFIG_MAP_LIMIT_BYTES}",
            )
        )
    return findings
