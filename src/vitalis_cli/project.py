"""Where the checkout's generated artefacts are: the descriptor set and the gateway's source."""

from __future__ import annotations

from pathlib import Path

MARKER = Path("gateway") / "gateway.yaml"
DESCRIPTOR = Path("gen") / "descriptors" / "vitalis.binpb"


class ProjectNotFoundError(FileNotFoundError):
    """Neither the working directory nor the installed package is inside a Vitalis checkout."""


def find_project_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` (else above this package) holding ``gateway/gateway.yaml``."""
    for origin in (start.resolve(), Path(__file__).resolve().parent):
        for folder in (origin, *origin.parents):
            if (folder / MARKER).is_file():
                return folder
    raise ProjectNotFoundError(
        f"no {MARKER} found above {start} or the installed vitalis_cli package; run from a Vitalis checkout"
    )


def descriptor_path(root: Path) -> Path:
    """The descriptor set produced by ``make protos``; a clear error if it has not been generated."""
    path = root / DESCRIPTOR
    if not path.is_file():
        raise ProjectNotFoundError(f"{path} is missing: run `make protos` first")
    return path
