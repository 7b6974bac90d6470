"""``vitalis seed``: a demo user and demo data, loaded only through the services' contracts.

Each fixture kind is loaded by the RPC that accepts it. A kind whose RPC the contracts or the
running services do not offer yet is reported as such rather than skipped silently, and seeding
twice adds nothing the second time (the writes are idempotent).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import grpc

from vitalis_cli.demo_fixtures import FixtureFormatError, default_fixtures_root
from vitalis_cli.demo_loaders import DEMO_KINDS, FixtureKind, LoadFailedError, SeedContext
from vitalis_cli.identity_access import (
    IdentityCallError,
    IdentityEndpoint,
    Profile,
    connect_identity,
    open_session,
)
from vitalis_cli.ports import catalog_target
from vitalis_cli.project import ProjectNotFoundError, find_project_root
from vitalis_cli.token_command import describe_identity_error
from vitalis_runtime.catalog import SERVICES

DEMO_PROFILE = Profile(given_name="Demo", family_name="User", time_zone="America/Los_Angeles")


@dataclass(frozen=True)
class SeedOptions:
    """What ``vitalis seed`` was asked for."""

    email: str
    password: str
    fixtures: Path | None
    identity: IdentityEndpoint
    targets: Mapping[str, str] = field(default_factory=dict)


def parse_targets(values: Sequence[str]) -> dict[str, str]:
    """``SERVICE=HOST:PORT`` pairs; ``ValueError`` names a malformed pair or an unknown service."""
    known = {spec.name for spec in SERVICES}
    targets: dict[str, str] = {}
    for value in values:
        name, separator, target = value.partition("=")
        if not separator or not target or ":" not in target:
            raise ValueError(f"--target {value!r}: expected SERVICE=HOST:PORT")
        if name not in known:
            raise ValueError(
                f"--target {value!r}: unknown service {name!r}; known: {', '.join(sorted(known))}"
            )
        targets[name] = target
    return targets


@dataclass(frozen=True)
class Outcome:
    """What happened to one kind."""

    kind: FixtureKind
    status: str
    """``loaded``, ``not accepted`` or ``failed``."""
    detail: str


async def load_kind(kind: FixtureKind, context: SeedContext) -> Outcome:
    """Load one kind and say what happened; a kind the services do not accept is not an error."""
    missing = [str(path) for path in kind.files if not (context.fixtures / path).exists()]
    if missing:
        return Outcome(
            kind, "failed", f"fixture files missing under {context.fixtures}: {', '.join(missing)}"
        )
    if kind.load is None:
        return Outcome(kind, "not accepted", kind.missing_contract)
    try:
        detail = await kind.load(context)
    except (LoadFailedError, FixtureFormatError) as error:
        return Outcome(kind, "failed", str(error))
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.UNIMPLEMENTED:
            return Outcome(kind, "not accepted", "the running services do not implement its RPC yet")
        return Outcome(kind, "failed", f"{error.code().name}: {error.details()}")
    return Outcome(kind, "loaded", detail)


@contextlib.asynccontextmanager
async def service_channels(targets: Mapping[str, str]) -> AsyncIterator[dict[str, grpc.aio.Channel]]:
    """A channel to every service: the given target, else its well-known local port."""
    async with contextlib.AsyncExitStack() as stack:
        channels = {
            spec.name: await stack.enter_async_context(
                grpc.aio.insecure_channel(targets.get(spec.name) or catalog_target(spec.name))
            )
            for spec in SERVICES
        }
        yield channels


def format_report(user: str, email: str, created: bool, outcomes: Sequence[Outcome]) -> str:
    """The seed report: the demo user, then what was loaded and what was not."""
    lines = [f"demo user {email} ({user}, {'created' if created else 'already existed'})"]
    for status, heading in (
        ("loaded", "loaded:"),
        ("not accepted", "not accepted by the running services yet:"),
        ("failed", "failed:"),
    ):
        chosen = [outcome for outcome in outcomes if outcome.status == status]
        if chosen:
            lines.append(heading)
            for outcome in chosen:
                files = ", ".join(str(path) for path in outcome.kind.files)
                lines.append(f"  {outcome.kind.description} ({files}): {outcome.detail}")
    return "\n".join(lines)


async def run_seed(
    options: SeedOptions,
    *,
    kinds: Sequence[FixtureKind] = DEMO_KINDS,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """The ``vitalis seed`` command: exit 0 unless identity or a loader failed."""
    try:
        fixtures = options.fixtures or default_fixtures_root(find_project_root(Path.cwd()))
    except ProjectNotFoundError as error:
        print(f"vitalis seed: {error}; pass --fixtures", file=err)
        return 2
    try:
        async with connect_identity(options.identity) as identity:
            session = await open_session(
                identity, email=options.email, password=options.password, sign_up=True, profile=DEMO_PROFILE
            )
    except IdentityCallError as error:
        print(f"vitalis seed: {describe_identity_error(error, options.identity)}", file=err)
        return 1
    async with service_channels(options.targets) as channels:
        context = SeedContext(session.user, session.access_token, fixtures, channels)
        outcomes = [await load_kind(kind, context) for kind in kinds]
    print(format_report(session.user, options.email, session.created_user, outcomes), file=out)
    return 1 if any(outcome.status == "failed" for outcome in outcomes) else 0
