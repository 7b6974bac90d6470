"""``python -m vitalis_deploy.validate``: render every overlay, validate its objects, apply the policies.

Exit status 0 when every overlay renders and passes, 1 when anything is found (each finding is
printed on its own line), 2 when the command is used wrongly.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vitalis_deploy.findings import Finding, Manifest
from vitalis_deploy.policy import check_policies
from vitalis_deploy.render import RenderError, find_kubectl, render
from vitalis_deploy.schema import DEFAULT_KUBERNETES_VERSIONS, check_schemas

DEFAULT_ROOT = Path("deploy/k8s")


@dataclass(frozen=True)
class OverlayReport:
    """What the validator found in one overlay."""

    overlay: Path
    object_count: int
    findings: tuple[Finding, ...]

    @property
    def passed(self) -> bool:
        """Whether the overlay rendered and nothing was found."""
        return not self.findings


def discover_overlays(root: Path) -> list[Path]:
    """Every overlay directory under ``<root>/overlays`` (one with a kustomization file)."""
    overlays_dir = root / "overlays"
    return (
        sorted(
            path
            for path in overlays_dir.iterdir()
            if path.is_dir()
            and any((path / name).is_file() for name in ("kustomization.yaml", "kustomization.yml"))
        )
        if overlays_dir.is_dir()
        else []
    )


def validate_objects(objects: Sequence[Manifest], *, versions: Sequence[str]) -> list[Finding]:
    """Schema and policy findings for one rendered overlay."""
    return [*check_schemas(objects, versions=versions), *check_policies(objects)]


def validate_overlay(overlay: Path, *, kubectl: Path, versions: Sequence[str]) -> OverlayReport:
    """Render one overlay and validate what it renders; a render failure is a finding too."""
    try:
        objects = render(overlay, kubectl=kubectl)
    except RenderError as error:
        return OverlayReport(overlay, 0, (Finding(str(overlay), "render", str(error)),))
    return OverlayReport(overlay, len(objects), tuple(validate_objects(objects, versions=versions)))


def _parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m vitalis_deploy.validate",
        description="Render every kustomize overlay and validate it against the Kubernetes schemas "
        "and the project's policies.",
    )
    parser.add_argument(
        "overlays", nargs="*", type=Path, help="overlay directories (default: every one under ROOT/overlays)"
    )
    parser.add_argument(
        "--root", type=Path, default=DEFAULT_ROOT, help="the kustomize tree (default: %(default)s)"
    )
    parser.add_argument(
        "--kubernetes-version",
        dest="versions",
        action="append",
        help="validate against this Kubernetes version; repeatable "
        f"(default: {', '.join(DEFAULT_KUBERNETES_VERSIONS)})",
    )
    parser.add_argument("--kubectl", type=Path, help="the kubectl binary (default: the virtualenv's)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Validate the overlays and print one line per finding and a summary per overlay."""
    arguments = _parse_arguments(argv)
    overlays = list(arguments.overlays) or discover_overlays(arguments.root)
    if not overlays:
        print(f"no overlays found under {arguments.root / 'overlays'}", file=sys.stderr)
        return 2
    try:
        kubectl = arguments.kubectl or find_kubectl()
    except RenderError as error:
        print(error, file=sys.stderr)
        return 2
    versions = tuple(arguments.versions or DEFAULT_KUBERNETES_VERSIONS)
    reports = [validate_overlay(overlay, kubectl=kubectl, versions=versions) for overlay in overlays]
    for report in reports:
        for finding in report.findings:
            print(f"{report.overlay}: {finding}")
    for report in reports:
        verdict = "ok" if report.passed else f"{len(report.findings)} finding(s)"
        print(f"{report.overlay}: {report.object_count} objects, Kubernetes {', '.join(versions)}: {verdict}")
    return 0 if all(report.passed for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
