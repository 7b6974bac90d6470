"""``vitalis seed``: the demo user, and an honest account of what was and was not loaded."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import grpc
import pytest

from tests.cli.fake_identity import FakeIdentity, serving
from vitalis_cli.demo_loaders import FixtureKind, LoadFailedError, SeedContext
from vitalis_cli.identity_access import IdentityEndpoint
from vitalis_cli.seed_command import SeedOptions, parse_targets, run_seed

PASSWORD = "correct horse battery staple"


async def _loaded(context: SeedContext) -> str:
    return f"3 records for {context.user} with {context.metadata[0][1]}"


async def _failed(context: SeedContext) -> str:
    raise LoadFailedError("import users/u/importJobs/1 failed: FILE_CORRUPT")


def _fixtures(tmp_path: Path) -> Path:
    (tmp_path / "present.csv").write_text("x\n")
    return tmp_path


KINDS = (
    FixtureKind("loadable", (Path("present.csv"),), _loaded),
    FixtureKind("broken", (Path("present.csv"),), _failed),
    FixtureKind("no contract", (Path("present.csv"),), None, "no import RPC yet"),
    FixtureKind("missing", (Path("absent.xml"),), _loaded),
)


def test_targets_are_service_host_port_pairs() -> None:
    assert parse_targets(["ingestion=10.0.0.1:6000"]) == {"ingestion": "10.0.0.1:6000"}


@pytest.mark.parametrize("value", ["ingestion", "ingestion=", "nutrition=h:1", "ingestion=host"])
def test_a_malformed_target_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="--target"):
        parse_targets([value])


async def test_report_says_which_kinds_were_loaded_and_which_are_not_accepted(tmp_path: Path) -> None:
    out = io.StringIO()
    identity = FakeIdentity()
    async with serving(identity) as target:
        options = SeedOptions(
            email="demo@vitalis.dev",
            password=PASSWORD,
            fixtures=_fixtures(tmp_path),
            identity=IdentityEndpoint(grpc_target=target),
        )
        code = await asyncio.wait_for(run_seed(options, kinds=KINDS, out=out, err=io.StringIO()), timeout=30)

    report = out.getvalue()
    user = identity.names["demo@vitalis.dev"]
    assert code == 1
    assert f"demo user demo@vitalis.dev ({user}, created)" in report
    loaded, not_accepted, failed = (report.index(h) for h in ("loaded:", "not accepted", "failed:"))
    assert (
        loaded
        < report.index(f"loadable (present.csv): 3 records for {user} with Bearer token-for-")
        < not_accepted
    )
    assert not_accepted < report.index("no contract (present.csv): no import RPC yet") < failed
    assert failed < report.index("broken (present.csv): import users/u/importJobs/1 failed: FILE_CORRUPT")
    assert failed < report.index("missing (absent.xml): fixture files missing")


async def test_seeding_again_signs_the_existing_demo_user_in(tmp_path: Path) -> None:
    identity = FakeIdentity()
    async with serving(identity) as target:
        options = SeedOptions(
            email="demo@vitalis.dev",
            password=PASSWORD,
            fixtures=_fixtures(tmp_path),
            identity=IdentityEndpoint(grpc_target=target),
        )
        kinds = KINDS[:1]
        await asyncio.wait_for(
            run_seed(options, kinds=kinds, out=io.StringIO(), err=io.StringIO()), timeout=30
        )
        out = io.StringIO()
        code = await asyncio.wait_for(run_seed(options, kinds=kinds, out=out, err=io.StringIO()), timeout=30)

    assert code == 0
    assert "already existed" in out.getvalue()


async def test_an_unimplemented_rpc_means_not_accepted_yet(tmp_path: Path) -> None:
    async def unimplemented(context: SeedContext) -> str:
        stub = context.channels["ingestion"].unary_unary("/vitalis.ingestion.v1.NoSuchService/Import")
        await stub(b"", timeout=10)
        return "unreachable"

    identity = FakeIdentity()
    out = io.StringIO()
    async with serving(identity) as target:
        options = SeedOptions(
            email="demo@vitalis.dev",
            password=PASSWORD,
            fixtures=_fixtures(tmp_path),
            identity=IdentityEndpoint(grpc_target=target),
            targets={"ingestion": target},
        )
        kinds = (FixtureKind("imports", (Path("present.csv"),), unimplemented),)
        code = await asyncio.wait_for(run_seed(options, kinds=kinds, out=out, err=io.StringIO()), timeout=30)

    assert code == 0
    assert (
        "not accepted by the running services yet:\n  imports (present.csv): the running services do not"
        in out.getvalue()
    )
    assert grpc.StatusCode.UNIMPLEMENTED.name not in out.getvalue()
