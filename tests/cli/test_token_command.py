"""``vitalis token``: the token alone on stdout, clear messages otherwise."""

from __future__ import annotations

import asyncio
import io

from tests.cli.fake_identity import FakeIdentity, serving
from vitalis_cli.identity_access import IdentityEndpoint, Profile
from vitalis_cli.ports import PortPlan
from vitalis_cli.token_command import TokenOptions, resolve_password, run_token

PASSWORD = "correct horse battery staple"


def _options(target: str, *, password: str | None = PASSWORD, sign_up: bool = False) -> TokenOptions:
    return TokenOptions(
        email="a@example.com",
        password=password,
        sign_up=sign_up,
        profile=Profile(),
        endpoint=IdentityEndpoint(grpc_target=target),
    )


async def test_sign_up_prints_only_the_token_on_stdout() -> None:
    out, err = io.StringIO(), io.StringIO()
    async with serving(FakeIdentity()) as target:
        code = await asyncio.wait_for(run_token(_options(target, sign_up=True), out=out, err=err), timeout=30)

    assert code == 0
    assert out.getvalue() == "token-for-a@example.com\n"
    assert "created users/" in err.getvalue()


async def test_signing_in_an_unknown_user_suggests_sign_up() -> None:
    out, err = io.StringIO(), io.StringIO()
    async with serving(FakeIdentity()) as target:
        code = await asyncio.wait_for(run_token(_options(target), out=out, err=err), timeout=30)

    assert code == 1
    assert out.getvalue() == ""
    assert "--sign-up" in err.getvalue()


async def test_an_unreachable_identity_is_named() -> None:
    unused = PortPlan.free().gateway
    err = io.StringIO()

    code = await asyncio.wait_for(
        run_token(_options(f"127.0.0.1:{unused}"), out=io.StringIO(), err=err), timeout=30
    )

    assert code == 1
    assert f"identity at 127.0.0.1:{unused} is not reachable" in err.getvalue()


async def test_no_password_is_a_usage_error() -> None:
    err = io.StringIO()

    code = await run_token(_options("127.0.0.1:1", password=None), out=io.StringIO(), err=err)

    assert code == 2
    assert "VITALIS_PASSWORD" in err.getvalue()


def test_password_comes_from_the_flag_then_the_environment() -> None:
    assert resolve_password("flag", {"VITALIS_PASSWORD": "env"}, interactive=False) == "flag"
    assert resolve_password(None, {"VITALIS_PASSWORD": "env"}, interactive=False) == "env"
    assert resolve_password(None, {}, interactive=False) is None
