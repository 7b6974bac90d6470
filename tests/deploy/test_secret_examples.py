"""``deploy/k8s/secrets/*.env.example`` lists exactly the keys of every Secret the manifests reference."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from vitalis_deploy.render import find_kubectl, render

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
SECRET_HEADER = re.compile(r"^# Secret `([a-z0-9<>-]+)`", re.MULTILINE)
KEY_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=", re.MULTILINE)
SERVICES = ("identity", "ingestion", "biomarkers", "documents", "insights")


def _examples() -> dict[str, set[str]]:
    """Secret name -> the keys its example file lists (``<service>-database`` expanded)."""
    found: dict[str, set[str]] = {}
    for path in sorted((K8S / "secrets").glob("*.env.example")):
        text = path.read_text()
        header = SECRET_HEADER.search(text)
        assert header, f"{path.name} does not say which Secret it fills"
        names = (
            [header.group(1).replace("<service>", s) for s in SERVICES]
            if "<service>" in header.group(1)
            else [header.group(1)]
        )
        for name in names:
            found[name] = set(KEY_LINE.findall(text))
    return found


def _secret_keys(manifest: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(Secret, key) pairs a pod template reads, from env and from volumes."""
    template = (manifest.get("spec") or {}).get("template") or {}
    spec = template.get("spec") or {}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for entry in container.get("env") or []:
            reference = (entry.get("valueFrom") or {}).get("secretKeyRef")
            if reference:
                yield reference["name"], reference["key"]


def _referenced(*overlays: Path) -> dict[str, set[str]]:
    referenced: dict[str, set[str]] = {}
    for overlay in overlays:
        for manifest in render(overlay, kubectl=find_kubectl()):
            for name, key in _secret_keys(manifest):
                referenced.setdefault(name, set()).add(key)
    return referenced


@pytest.fixture(scope="module")
def referenced(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Every Secret key the dev and prod overlays and the optional insights-llm component read."""
    copy = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, copy)
    prod = copy / "overlays" / "prod" / "kustomization.yaml"
    components = "components:\n"
    assert components in prod.read_text()
    prod.write_text(
        prod.read_text().replace(components, components + "  - ../../components/insights-llm\n", 1)
    )
    return _referenced(K8S / "overlays" / "dev", copy / "overlays" / "prod")


def test_every_referenced_secret_key_is_in_an_example(referenced: dict[str, set[str]]) -> None:
    examples = _examples()

    missing = {name: keys - examples.get(name, set()) for name, keys in referenced.items()}

    assert {name: keys for name, keys in missing.items() if keys} == {}


def test_every_example_key_is_read_by_some_pod(referenced: dict[str, set[str]]) -> None:
    unread = {name: keys - referenced.get(name, set()) for name, keys in _examples().items()}

    assert {name: keys for name, keys in unread.items() if keys} == {}
