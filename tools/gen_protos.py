"""Generate every artefact derived from the contracts in ``protos/``.

One command, one output folder (``gen/``):

* ``gen/third_party/googleapis/google/{api,type,rpc}/*.proto`` — Google's common protos taken from the
  ``googleapis-common-protos`` wheel, so buf and protoc resolve imports without a registry;
* ``gen/python/`` — Python messages, gRPC stubs and their type stubs (mypy-protobuf);
* ``gen/descriptors/vitalis.binpb`` — the descriptor set (with imports and comments) that Envoy's
  JSON transcoder, the gateway generator and the OpenAPI generator read.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import google.api  # type: ignore[import-untyped]
import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GEN = ROOT / "gen"
THIRD_PARTY = GEN / "third_party" / "googleapis"
PYTHON_OUT = GEN / "python"
DESCRIPTOR_OUT = GEN / "descriptors" / "vitalis.binpb"
GOOGLE_PACKAGES = ("api", "type", "rpc")


def copy_google_protos() -> Path:
    """Copy the ``google/{api,type,rpc}`` protos from the wheel into ``gen/third_party``."""
    wheel_root = Path(next(iter(google.api.__path__))).parent
    for package in GOOGLE_PACKAGES:
        target = THIRD_PARTY / "google" / package
        target.mkdir(parents=True, exist_ok=True)
        for proto in (wheel_root / package).glob("*.proto"):
            shutil.copyfile(proto, target / proto.name)
    return THIRD_PARTY


def run_protoc(args: list[str]) -> None:
    """Run the bundled protoc and stop on its first error."""
    well_known = Path(next(iter(grpc_tools.__path__))) / "_proto"
    code = protoc.main(["protoc", f"-I{PROTOS}", f"-I{THIRD_PARTY}", f"-I{well_known}", *args])
    if code != 0:
        sys.exit(f"protoc failed with exit code {code}")


def main() -> None:
    """Regenerate ``gen/`` from ``protos/``."""
    copy_google_protos()
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    if not sources:
        sys.exit("no .proto files under protos/")
    if PYTHON_OUT.exists():
        shutil.rmtree(PYTHON_OUT)
    PYTHON_OUT.mkdir(parents=True)
    DESCRIPTOR_OUT.parent.mkdir(parents=True, exist_ok=True)
    run_protoc(
        [
            f"--python_out={PYTHON_OUT}",
            f"--grpc_python_out={PYTHON_OUT}",
            f"--mypy_out=quiet:{PYTHON_OUT}",
            f"--mypy_grpc_out=quiet:{PYTHON_OUT}",
            *sources,
        ]
    )
    run_protoc(
        [
            f"--descriptor_set_out={DESCRIPTOR_OUT}",
            "--include_imports",
            "--include_source_info",
            *sources,
        ]
    )
    print(f"generated {len(sources)} protos into {GEN.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
