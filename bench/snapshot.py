"""Measuring a commit instead of the working tree: ``python -m bench --from-commit HEAD``.

The commit is exported with ``git archive`` (the checkout is left untouched) and the harness runs
again inside the export, with ``PYTHONPATH`` putting the exported packages before the checkout's;
the services the platform starts inherit it. The generated code (``gen/``, never committed) is the
checkout's.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SOURCE_FOLDERS = (
    "src",
    "services/identity",
    "services/ingestion",
    "services/biomarkers",
    "services/documents",
    "services/insights",
)


def describe_source(checkout: Path) -> str:
    """The commit the working tree is at, and whether it has changes not committed."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=checkout,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "working tree (not a git checkout)"
    return f"working tree at {commit}" + (" with uncommitted changes" if dirty else "")


def export_commit(checkout: Path, revision: str, destination: Path) -> str:
    """Write ``revision``'s tree into ``destination``; return the commit it resolved to."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", f"{revision}^{{commit}}"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    destination.mkdir(parents=True, exist_ok=True)
    archive = subprocess.Popen(["git", "archive", commit], cwd=checkout, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(destination)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise RuntimeError(f"git archive {commit} failed")
    (destination / "gen").symlink_to(checkout / "gen", target_is_directory=True)
    return commit


def python_path(export: Path, checkout: Path) -> str:
    """The exported packages first, then the checkout's generated code, then what was there."""
    entries = [
        str(export),
        *(str(export / folder) for folder in SOURCE_FOLDERS),
        str(checkout / "gen" / "python"),
    ]
    inherited = os.environ.get("PYTHONPATH")
    return os.pathsep.join([*entries, inherited] if inherited else entries)
