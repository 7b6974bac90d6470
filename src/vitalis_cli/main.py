"""The ``vitalis`` command line: parsing only; each subcommand lives in its own module.

This is the entry point, so it is the one place that reads the process environment.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from vitalis_cli.ports import DEFAULT_GATEWAY_PORT, catalog_target
from vitalis_runtime.catalog import SERVICES

DEFAULT_DATA_DIR = Path(".vitalis")
DEFAULT_DEMO_EMAIL = "demo@vitalis.dev"


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1-65535)")
    return value


def _add_identity_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--gateway",
        metavar="URL",
        help="reach identity through the gateway's REST API, e.g. http://127.0.0.1:8080",
    )
    where.add_argument(
        "--identity",
        metavar="HOST:PORT",
        help="reach identity's gRPC API directly "
        f"(default: $VITALIS_IDENTITY_TARGET or {catalog_target('identity')})",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``vitalis`` parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="vitalis",
        description="Run and operate the Vitalis platform locally.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="start the whole platform (services, gateway, and embedded PostgreSQL/Redis if needed)",
        description=(
            "Start PostgreSQL and Redis under the data folder unless DATABASE_URL / REDIS_URL are set, "
            "apply migrations, start the five services and the Envoy gateway, and stop everything on "
            "Ctrl-C."
        ),
    )
    run.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="folder for embedded databases, secrets and generated files (default: .vitalis)",
    )
    run.add_argument(
        "--gateway-port",
        type=_port,
        default=DEFAULT_GATEWAY_PORT,
        help="the gateway's HTTP port (default: 8080)",
    )
    run.add_argument(
        "--base-port",
        type=_port,
        help="use consecutive ports from here (gateway, admin, then gRPC and metrics per service) instead "
        "of the well-known ones; lets a second platform run beside the first",
    )
    run.add_argument(
        "--log-format", choices=("console", "json"), default="console", help="services' log format"
    )
    run.add_argument(
        "--startup-timeout",
        type=float,
        default=60.0,
        help="seconds each service and the gateway get to become ready (default: 60)",
    )

    migrate = commands.add_parser(
        "migrate",
        help="apply the services' schema migrations",
        description="Apply the schema migrations of the chosen services (all by default) to "
        "$VITALIS_MIGRATE_DATABASE_URL, else $DATABASE_URL.",
    )
    migrate.add_argument(
        "--service",
        dest="services",
        action="append",
        choices=[spec.name for spec in SERVICES],
        metavar="NAME",
        help="a service to migrate (repeatable; default: all of them)",
    )

    token = commands.add_parser(
        "token",
        help="sign in (or up) and print a development access token",
        description="Sign in through identity's contract and print the access token alone, "
        "so that TOKEN=$(vitalis token ...) works.",
    )
    token.add_argument("--email", required=True)
    token.add_argument("--password", help="the password (default: $VITALIS_PASSWORD, else prompt)")
    token.add_argument("--sign-up", action="store_true", help="create the user first (signs in if it exists)")
    token.add_argument("--given-name", default="Dev", help="given name for --sign-up")
    token.add_argument("--family-name", default="User", help="family name for --sign-up")
    token.add_argument("--time-zone", default="UTC", help="IANA time zone for --sign-up (default: UTC)")
    _add_identity_options(token)

    seed = commands.add_parser(
        "seed",
        help="create a demo user and load demo data through the services' contracts",
        description="Create the demo user (or sign in if it exists) and load the demo fixtures "
        "through the running services, reporting which kinds were loaded and which are not "
        "accepted yet.",
    )
    seed.add_argument(
        "--email", default=DEFAULT_DEMO_EMAIL, help=f"the demo user (default: {DEFAULT_DEMO_EMAIL})"
    )
    seed.add_argument("--password", default="vitalis-demo-password", help="the demo user's password")
    seed.add_argument(
        "--fixtures",
        type=Path,
        help="the fixtures folder (default: the project's fixtures/)",
    )
    _add_identity_options(seed)
    seed.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="SERVICE=HOST:PORT",
        help="where a service's gRPC API is (repeatable; default: the well-known local ports)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``vitalis`` command; returns the process exit status."""
    # The embedded PostgreSQL's lock directory falls back to /tmp without XDG_RUNTIME_DIR, as intended.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    parser = build_parser()
    args = parser.parse_args(argv)
    environ = dict(os.environ)
    if args.command == "run":
        return _run(args, environ)
    if args.command == "migrate":
        from vitalis_cli.migrate_command import run_migrate

        return asyncio.run(run_migrate(args.services, environ=environ))
    if args.command == "token":
        return _token(args, environ)
    try:
        return _seed(args, environ)
    except ValueError as error:
        parser.error(str(error))


def _run(args: argparse.Namespace, environ: dict[str, str]) -> int:
    from vitalis_cli.run_command import RunOptions, run_platform

    options = RunOptions(
        data_dir=args.data_dir,
        gateway_port=args.gateway_port,
        base_port=args.base_port,
        log_format=args.log_format,
        startup_timeout=args.startup_timeout,
    )
    return asyncio.run(run_platform(options, environ=environ, python=sys.executable))


def _token(args: argparse.Namespace, environ: dict[str, str]) -> int:
    from vitalis_cli.identity_access import Profile, identity_endpoint
    from vitalis_cli.token_command import TokenOptions, resolve_password, run_token

    options = TokenOptions(
        email=args.email,
        password=resolve_password(args.password, environ, interactive=sys.stdin.isatty()),
        sign_up=args.sign_up,
        profile=Profile(given_name=args.given_name, family_name=args.family_name, time_zone=args.time_zone),
        endpoint=identity_endpoint(args.gateway, args.identity, environ),
    )
    return asyncio.run(run_token(options))


def _seed(args: argparse.Namespace, environ: dict[str, str]) -> int:
    from vitalis_cli.identity_access import identity_endpoint
    from vitalis_cli.seed_command import SeedOptions, parse_targets, run_seed

    options = SeedOptions(
        email=args.email,
        password=args.password,
        fixtures=args.fixtures,
        identity=identity_endpoint(args.gateway, args.identity, environ),
        targets=parse_targets(args.target),
    )
    return asyncio.run(run_seed(options))


if __name__ == "__main__":
    sys.exit(main())
