"""``python -m vitalis_deploy.validate`` on the real overlays and on deliberately broken copies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vitalis_deploy.render import find_kubectl, render
from vitalis_deploy.schema import DEFAULT_KUBERNETES_VERSIONS
from vitalis_deploy.validate import discover_overlays, main, validate_overlay


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def _findings_for(overlay: Path) -> list[str]:
    report = validate_overlay(overlay, kubectl=find_kubectl(), versions=DEFAULT_KUBERNETES_VERSIONS)
    return [str(finding) for finding in report.findings]


def test_both_overlays_are_found(k8s_root: Path) -> None:
    assert [p.name for p in discover_overlays(k8s_root)] == ["dev", "prod"]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_real_overlay_passes_schemas_and_policies(k8s_root: Path, overlay: str) -> None:
    assert _findings_for(k8s_root / "overlays" / overlay) == []


def test_command_exits_zero_on_the_real_tree(k8s_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(k8s_root)]) == 0

    output = capsys.readouterr().out
    assert re.search(r"overlays/dev: \d+ objects, Kubernetes 1\.33\.0.*: ok", output)
    assert re.search(r"overlays/prod: \d+ objects, Kubernetes 1\.33\.0.*: ok", output)


def test_command_fails_on_a_container_without_probes(
    k8s_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = k8s_copy / "base" / "biomarkers.yaml"
    text = manifest.read_text()
    start = text.index("          readinessProbe:")
    end = text.index("          lifecycle:")
    manifest.write_text(text[:start] + text[end:])

    assert main(["--root", str(k8s_copy)]) == 1

    output = capsys.readouterr().out
    assert "Deployment/vitalis/biomarkers: [probes] container biomarkers: has no livenessProbe" in output
    assert "Deployment/vitalis/biomarkers: [probes] container biomarkers: has no readinessProbe" in output


def test_misspelt_field_fails_schema_validation(k8s_copy: Path) -> None:
    _replace(
        k8s_copy / "base" / "insights.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true"
    )

    findings = _findings_for(k8s_copy / "overlays" / "prod")

    assert any("[schema]" in f and "'readOnlyRootFileSystem' was unexpected" in f for f in findings)


def test_overlay_without_network_policies_is_caught(k8s_copy: Path) -> None:
    _replace(
        k8s_copy / "overlays" / "prod" / "kustomization.yaml", "  - ../../components/network-policies\n", ""
    )

    findings = _findings_for(k8s_copy / "overlays" / "prod")

    assert (
        "Namespace/vitalis: [network-policy] no default-deny NetworkPolicy (ingress and egress)" in findings
    )
    assert any("a client on the internet -> Deployment/vitalis/identity port grpc" in f for f in findings)


def test_removed_internal_caller_is_caught(k8s_copy: Path) -> None:
    # The first policy is identity's ingress; drop insights from its callers.
    _replace(
        k8s_copy / "components" / "network-policies" / "ingress.yaml",
        """        - podSelector:
            matchLabels:
              app.kubernetes.io/name: insights
              app.kubernetes.io/component: service
      ports:
""",
        "      ports:\n",
    )

    findings = _findings_for(k8s_copy / "overlays" / "dev")

    assert findings == [
        "NetworkPolicy: [network-policy] Deployment/vitalis/insights -> Deployment/vitalis/identity "
        "port grpc/TCP is required but blocked (token verification (JWKS) and share-grant checks)"
    ]


def test_secret_generated_with_literals_is_caught(k8s_copy: Path) -> None:
    kustomization = k8s_copy / "overlays" / "prod" / "kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text()
        + "\nsecretGenerator:\n  - name: vitalis-common\n    literals:\n      - REDIS_URL=redis://:pw@redis:6379/0\n"
    )

    findings = _findings_for(k8s_copy / "overlays" / "prod")

    assert any(re.match(r"Secret/vitalis/vitalis-common-\w+: \[secrets\]", f) for f in findings)


def test_latest_image_tag_is_caught(k8s_copy: Path) -> None:
    _replace(k8s_copy / "base" / "kustomization.yaml", "newTag: 0.1.0", "newTag: latest")

    findings = _findings_for(k8s_copy / "overlays" / "dev")

    assert (
        "Deployment/vitalis/identity: [image] container identity: "
        "image ghcr.io/vitalis-health/vitalis:latest uses the :latest tag"
    ) in findings


def test_unknown_custom_resource_is_reported(k8s_copy: Path) -> None:
    (k8s_copy / "overlays" / "dev" / "widget.yaml").write_text(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n"
    )
    _replace(
        k8s_copy / "overlays" / "dev" / "kustomization.yaml",
        "  - ../../base\n",
        "  - ../../base\n  - widget.yaml\n",
    )

    findings = _findings_for(k8s_copy / "overlays" / "dev")

    assert len(findings) == 1
    assert findings[0].startswith("Widget/vitalis/w: [schema] Couldn't find schema for kind Widget")


def test_render_failure_is_a_finding(k8s_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (k8s_copy / "base" / "gateway" / "envoy.yaml").unlink()

    assert main(["--root", str(k8s_copy), str(k8s_copy / "overlays" / "dev")]) == 1

    assert "[render] kubectl kustomize" in capsys.readouterr().out


def test_every_overlay_object_is_namespaced_in_vitalis(k8s_root: Path) -> None:
    for overlay in discover_overlays(k8s_root):
        objects = render(overlay, kubectl=find_kubectl())
        outside = [
            f"{o['kind']}/{o['metadata']['name']}"
            for o in objects
            if o["kind"] != "Namespace" and o["metadata"].get("namespace") != "vitalis"
        ]
        assert outside == [], overlay
