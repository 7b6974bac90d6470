"""Reading another user's data needs a live share grant for the scope; a refusal looks like absence."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import grpc.aio
import pytest

from vitalis.identity.v1 import share_grant_internal_service_pb2 as messages
from vitalis.identity.v1 import share_grant_internal_service_pb2_grpc as stubs
from vitalis_runtime.auth import Principal, current_principal
from vitalis_runtime.errors import InvalidArgument, NotFound
from vitalis_runtime.service_auth import ServiceCredentials, accepting_service_tokens
from vitalis_runtime.sharing import RemoteShareGrantChecker, authorize_read, scope_value
from vitalis_runtime.testing_auth import LocalSigningKey
from vitalis_runtime.testing_grpc import running_server

SECRET = "k" * 40
OWNER = uuid.uuid4()
GRANTEE = uuid.uuid4()


def principal(user_id: uuid.UUID) -> Principal:
    return Principal(
        user_id=user_id,
        subject=str(user_id),
        session_id=None,
        account_id=None,
        scopes=frozenset(),
        token="t",
        expire_time=datetime.now(UTC) + timedelta(minutes=5),
    )


class GrantBook:
    """The grants a test has given, as (owner, grantee, scope) triples."""

    def __init__(self) -> None:
        self.grants: set[tuple[uuid.UUID, uuid.UUID, str]] = set()
        self.calls = 0

    async def allows(self, *, owner_id: uuid.UUID, grantee_id: uuid.UUID, scope: str) -> bool:
        self.calls += 1
        return (owner_id, grantee_id, scope) in self.grants


async def test_the_owner_reads_without_asking() -> None:
    book = GrantBook()
    await authorize_read(principal(OWNER), OWNER, "biomarkers", book)
    assert book.calls == 0


async def test_a_grantee_reads_only_within_the_granted_scope() -> None:
    book = GrantBook()
    book.grants.add((OWNER, GRANTEE, "biomarkers"))
    await authorize_read(principal(GRANTEE), OWNER, "biomarkers", book)
    with pytest.raises(NotFound):
        await authorize_read(principal(GRANTEE), OWNER, "documents", book)


async def test_every_check_asks_afresh_so_a_revocation_works_at_once() -> None:
    book = GrantBook()
    book.grants.add((OWNER, GRANTEE, "wearables"))
    await authorize_read(principal(GRANTEE), OWNER, "wearables", book)
    book.grants.clear()
    with pytest.raises(NotFound):
        await authorize_read(principal(GRANTEE), OWNER, "wearables", book)
    assert book.calls == 2


async def test_without_a_checker_only_the_owner_reads() -> None:
    with pytest.raises(NotFound):
        await authorize_read(principal(GRANTEE), OWNER, "insights", None)


def test_an_unknown_scope_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="unknown share scope"):
        scope_value("everything")


class IdentityGrants(stubs.ShareGrantInternalServiceServicer):
    """Identity's internal grant check over a grant book, recording who asked."""

    def __init__(self, book: GrantBook) -> None:
        self.book = book
        self.callers: list[str | None] = []

    async def CheckShareGrant(
        self, request: messages.CheckShareGrantRequest, context: Any
    ) -> messages.CheckShareGrantResponse:
        self.callers.append(current_principal().service)
        owner = uuid.UUID(request.owner.removeprefix("users/"))
        grantee = uuid.UUID(request.grantee.removeprefix("users/"))
        scope = {value: name for name, value in [("biomarkers", 3), ("wearables", 2)]}.get(request.scope, "?")
        return messages.CheckShareGrantResponse(
            allowed=await self.book.allows(owner_id=owner, grantee_id=grantee, scope=scope)
        )


@pytest.fixture
async def identity() -> AsyncIterator[tuple[IdentityGrants, grpc.aio.Channel]]:
    servicer = IdentityGrants(GrantBook())
    async with (
        running_server(
            service_name="identity",
            register=lambda server: stubs.add_ShareGrantInternalServiceServicer_to_server(servicer, server),
            service_names=["vitalis.identity.v1.ShareGrantInternalService"],
            verifier=accepting_service_tokens(LocalSigningKey.generate().verifier(), SECRET),
        ) as running,
        grpc.aio.insecure_channel(running.target) as channel,
    ):
        yield servicer, channel


async def test_the_remote_checker_asks_identity_as_a_service(
    identity: tuple[IdentityGrants, grpc.aio.Channel],
) -> None:
    servicer, channel = identity
    checker = RemoteShareGrantChecker(channel, ServiceCredentials(SECRET, "biomarkers"))
    servicer.book.grants.add((OWNER, GRANTEE, "biomarkers"))
    assert await checker.allows(owner_id=OWNER, grantee_id=GRANTEE, scope="biomarkers")
    assert not await checker.allows(owner_id=OWNER, grantee_id=GRANTEE, scope="wearables")
    assert servicer.callers == ["biomarkers", "biomarkers"]


async def test_the_remote_checker_fails_closed_when_identity_refuses_it(
    identity: tuple[IdentityGrants, grpc.aio.Channel],
) -> None:
    _, channel = identity
    checker = RemoteShareGrantChecker(channel, ServiceCredentials("w" * 40, "biomarkers"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await checker.allows(owner_id=OWNER, grantee_id=GRANTEE, scope="biomarkers")
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
