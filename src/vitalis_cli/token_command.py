"""``vitalis token``: sign in (or up) and print a development access token, nothing else."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

import grpc

from vitalis_cli.identity_access import (
    IdentityCallError,
    IdentityEndpoint,
    Profile,
    connect_identity,
    open_session,
)

PASSWORD_VARIABLE = "VITALIS_PASSWORD"  # noqa: S105 - the variable's name, not a password


@dataclass(frozen=True)
class TokenOptions:
    """What ``vitalis token`` was asked for."""

    email: str
    password: str | None
    sign_up: bool
    profile: Profile
    endpoint: IdentityEndpoint


def resolve_password(given: str | None, environ: Mapping[str, str], *, interactive: bool) -> str | None:
    """``--password``, else ``$VITALIS_PASSWORD``, else a prompt on a terminal, else ``None``."""
    if given:
        return given
    if environ.get(PASSWORD_VARIABLE):
        return environ[PASSWORD_VARIABLE]
    if interactive:
        return getpass.getpass("password: ")
    return None


async def run_token(options: TokenOptions, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """The ``vitalis token`` command; prints only the token on success, so it can be captured."""
    if not options.password:
        print(f"vitalis token: give --password or set {PASSWORD_VARIABLE}", file=err)
        return 2
    try:
        async with connect_identity(options.endpoint) as identity:
            session = await open_session(
                identity,
                email=options.email,
                password=options.password,
                sign_up=options.sign_up,
                profile=options.profile,
            )
    except IdentityCallError as error:
        print(f"vitalis token: {describe_identity_error(error, options.endpoint)}", file=err)
        return 1
    if session.created_user:
        print(f"created {session.user}", file=err)
    print(session.access_token, file=out)
    return 0


def describe_identity_error(error: IdentityCallError, endpoint: IdentityEndpoint) -> str:
    """A sentence saying what went wrong and what to try."""
    if error.code == grpc.StatusCode.UNAVAILABLE:
        return f"{endpoint.description} is not reachable ({error.message}); is `vitalis run` running?"
    if error.code == grpc.StatusCode.UNAUTHENTICATED:
        return "wrong email or password (use --sign-up to create the user)"
    return f"identity refused the call: {error}"
