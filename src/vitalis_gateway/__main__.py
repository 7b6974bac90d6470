"""``python -m vitalis_gateway render --target local|kubernetes [--check]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vitalis_gateway.artifacts import render_gateway_files
from vitalis_gateway.plan import plan_gateway
from vitalis_gateway.source import TARGETS, load_source

DEFAULT_SOURCE = Path("gateway/gateway.yaml")
DEFAULT_OUT = {"local": Path("gen/gateway"), "kubernetes": Path("deploy/k8s/base/gateway")}


def main(argv: list[str] | None = None) -> int:
    """Render (or, with ``--check``, verify) the gateway files of one target; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m vitalis_gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser(
        "render", help="render envoy.yaml, openapi.json, docs.html, descriptor.binpb"
    )
    render.add_argument("--target", choices=TARGETS, default="local")
    render.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    render.add_argument("--descriptor-set", type=Path, help="override the source's descriptor_set")
    render.add_argument(
        "--out", type=Path, help="output directory (default: gen/gateway or deploy/k8s/base/gateway)"
    )
    render.add_argument("--listen-port", type=int)
    render.add_argument("--admin-port", type=int)
    render.add_argument("--check", action="store_true", help="fail when the files on disk are stale")
    args = parser.parse_args(argv)

    source = load_source(args.source, descriptor_set=args.descriptor_set)
    for name in plan_gateway(source).absent_names:
        print(f"note: {name} is named in {args.source} but absent from the contracts", file=sys.stderr)
    out_dir: Path = (args.out or DEFAULT_OUT[args.target]).resolve()
    files_dir = out_dir if args.target == "local" else Path(source.target(args.target).files_dir or out_dir)
    files = render_gateway_files(
        source,
        target=args.target,
        files_dir=files_dir,
        listen_port=args.listen_port,
        admin_port=args.admin_port,
    )
    if args.check:
        stale = files.stale_files(out_dir)
        if stale:
            print(
                f"stale gateway files in {out_dir}: {', '.join(stale)}; run "
                f"`python -m vitalis_gateway render --target {args.target}`",
                file=sys.stderr,
            )
            return 1
        print(f"gateway files in {out_dir} are up to date")
        return 0
    for path in files.write(out_dir).values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
