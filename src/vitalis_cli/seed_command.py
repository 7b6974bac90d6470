"""``vitalis seed``: a demo user and demo data, loaded only through the services' contracts.

Each fixture kind is loaded by the RPC that accepts it. A kind whose RPC the contracts or the
running services do not offer yet is reported as such rather than skipped silently, and seeding
twice adds nothing the second time (the writes are idempotent).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import grpc

from vitalis.ingestion.v1 import (
    sample_service_pb2,
    sample_service_pb2_grpc,
    source_pb2,
    source_service_pb2,
    source_service_pb2_grpc,
)
from vitalis_cli.demo_fixtures import GARMIN_RUN_RECORDS, default_fixtures_root, heart_rate_samples
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

CALL_TIMEOUT_SECONDS = 30.0
DEMO_PROFILE = Profile(given_name="Demo", family_name="User", time_zone="America/Los_Angeles")
DEMO_GARMIN_SOURCE_ID = "demo-garmin-fenix-5"


class NotAcceptedError(Exception):
    """The running services (or the contracts) do not accept this kind of data yet."""


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
class SeedContext:
    """What a loader needs: whose data, the caller's token, the fixtures and a channel per service."""

    user: str
    access_token: str
    fixtures: Path
    channels: Mapping[str, grpc.aio.Channel]

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The call metadata carrying the access token."""
        return (("authorization", f"Bearer {self.access_token}"),)


@dataclass(frozen=True)
class FixtureKind:
    """One kind of demo data: where it comes from and how it is loaded (``None``: no contract yet)."""

    description: str
    files: tuple[Path, ...]
    load: Callable[[SeedContext], Awaitable[str]] | None
    missing_contract: str = ""


@dataclass(frozen=True)
class Outcome:
    """What happened to one kind."""

    kind: FixtureKind
    status: str
    """``loaded``, ``not accepted`` or ``failed``."""
    detail: str


async def _demo_garmin_source(context: SeedContext) -> str:
    sources = source_service_pb2_grpc.SourceServiceStub(context.channels["ingestion"])
    request = source_service_pb2.CreateSourceRequest(
        parent=context.user,
        source=source_pb2.Source(
            display_name="Garmin Fenix 5 (demo)", platform=source_pb2.SOURCE_PLATFORM_GARMIN
        ),
        source_id=DEMO_GARMIN_SOURCE_ID,
    )
    try:
        created = await sources.CreateSource(request, metadata=context.metadata, timeout=CALL_TIMEOUT_SECONDS)
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
        return f"{context.user}/sources/{DEMO_GARMIN_SOURCE_ID}"
    return created.name


async def load_garmin_heart_rate(context: SeedContext) -> str:
    """Heart-rate samples of a Garmin run, through ``SampleService.BatchCreateSamples``."""
    source = await _demo_garmin_source(context)
    samples = heart_rate_samples(context.fixtures / GARMIN_RUN_RECORDS, source=source)
    stub = sample_service_pb2_grpc.SampleServiceStub(context.channels["ingestion"])
    reply = await stub.BatchCreateSamples(
        sample_service_pb2.BatchCreateSamplesRequest(parent=context.user, samples=samples),
        metadata=context.metadata,
        timeout=CALL_TIMEOUT_SECONDS,
    )
    counts = reply.counts
    return (
        f"{counts.received_count} samples: {counts.new_count} new, {counts.duplicate_count} already there, "
        f"{counts.rejected_count} rejected"
    )


DEMO_KINDS: tuple[FixtureKind, ...] = (
    FixtureKind("heart rate of a Garmin run", (GARMIN_RUN_RECORDS,), load_garmin_heart_rate),
    FixtureKind(
        "Apple Health export",
        (Path("apple-health") / "export-small.xml",),
        None,
        "vitalis.ingestion.v1 has no import RPC yet",
    ),
    FixtureKind(
        "Garmin FIT files (activity, daily monitoring, weight scale)",
        tuple(
            Path("fit") / name for name in ("Activity.fit", "MonitoringFile.fit", "WeightScaleSingleUser.fit")
        ),
        None,
        "vitalis.ingestion.v1 has no import RPC yet",
    ),
    FixtureKind(
        "blood panel (the PhenoAge test vector)",
        (Path("reference") / "phenoage.md",),
        None,
        "vitalis.biomarkers.v1 has no panel RPC yet",
    ),
)


async def load_kind(kind: FixtureKind, context: SeedContext) -> Outcome:
    """Load one kind and say what happened; a kind the services do not accept is not an error."""
    missing = [str(path) for path in kind.files if not (context.fixtures / path).is_file()]
    if missing:
        return Outcome(
            kind, "failed", f"fixture files missing under {context.fixtures}: {', '.join(missing)}"
        )
    if kind.load is None:
        return Outcome(kind, "not accepted", kind.missing_contract)
    try:
        return Outcome(kind, "loaded", await kind.load(context))
    except NotAcceptedError as error:
        return Outcome(kind, "not accepted", str(error))
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.UNIMPLEMENTED:
            return Outcome(
                kind, "not accepted", f"the running service does not implement it yet ({error.details()})"
            )
        return Outcome(kind, "failed", f"{error.code().name}: {error.details()}")


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
