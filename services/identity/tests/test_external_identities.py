"""Clerk webhooks (deliveries signed with svix's own Webhook class) and OIDC subjects."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.api import httpbody_pb2
from svix.webhooks import Webhook

from vitalis.identity.v1 import (
    external_identity_internal_service_pb2 as external_pb2,
)
from vitalis.identity.v1 import (
    external_identity_internal_service_pb2_grpc as external_grpc,
)
from vitalis.identity.v1 import (
    user_service_pb2,
    user_service_pb2_grpc,
    webhook_service_pb2,
    webhook_service_pb2_grpc,
)
from vitalis_runtime.testing_auth import LocalSigningKey

pytestmark = pytest.mark.timeout(90)
CLERK_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CLERK_ISSUER = "https://clerk.example.test"
OIDC_ISSUER = "https://login.example.test"


def clerk_user(clerk_id: str, email: str, first: str = "Grace", last: str = "Hopper") -> dict[str, Any]:
    return {
        "id": clerk_id,
        "object": "user",
        "first_name": first,
        "last_name": last,
        "primary_email_address_id": "idn_1",
        "email_addresses": [
            {"id": "idn_0", "email_address": f"old-{email}", "verification": {"status": "verified"}},
            {"id": "idn_1", "email_address": email, "verification": {"status": "verified"}},
        ],
    }


def delivery(
    event: dict[str, Any],
    *,
    secret: str = CLERK_SECRET,
    message_id: str | None = None,
    sent: datetime | None = None,
) -> tuple[bytes, list[tuple[str, str]]]:
    body = json.dumps(event)
    message_id = message_id or f"msg_{uuid.uuid4().hex}"
    sent = sent or datetime.now(UTC)
    signature = Webhook(secret).sign(message_id, sent, body)
    headers = [
        ("svix-id", message_id),
        ("svix-timestamp", str(int(sent.timestamp()))),
        ("svix-signature", signature),
    ]
    return body.encode(), headers


async def post(identity, body: bytes, headers: list[tuple[str, str]]) -> None:
    stub = webhook_service_pb2_grpc.WebhookServiceStub(identity.channel)
    await stub.HandleClerkWebhook(
        webhook_service_pb2.HandleClerkWebhookRequest(
            http_body=httpbody_pb2.HttpBody(content_type="application/json", data=body)
        ),
        metadata=headers,
    )


async def resolve(identity, subject: str, issuer: str = CLERK_ISSUER, **claims: str) -> Any:
    stub = external_grpc.ExternalIdentityInternalServiceStub(identity.channel)
    return await stub.ResolveExternalIdentity(
        external_pb2.ResolveExternalIdentityRequest(issuer=issuer, subject=subject, **claims),
        metadata=identity.as_service(service="ingestion"),
    )


async def count_users(identity, email: str) -> int:
    async with identity.db.transaction(user_id=None) as conn:
        await conn.execute("SELECT set_config('app.lookup_email', $1, true)", email)
        found: int = await conn.fetchval("SELECT count(*) FROM users WHERE lower(email) = $1", email)
        return found


async def test_user_created_provisions_once_even_with_ten_concurrent_replays(identity) -> None:
    clerk_id = f"user_{uuid.uuid4().hex}"
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    body, headers = delivery({"type": "user.created", "object": "event", "data": clerk_user(clerk_id, email)})
    await asyncio.gather(*(post(identity, body, headers) for _ in range(10)))
    assert await count_users(identity, email) == 1
    resolved = await resolve(identity, clerk_id)
    assert not resolved.provisioned
    user_id = uuid.UUID(resolved.user.removeprefix("users/"))
    async with identity.db.transaction(user_id=user_id) as conn:
        row = await conn.fetchrow(
            """SELECT u.given_name, u.email_verified,
                      (SELECT count(*) FROM preferences p WHERE p.user_id = u.user_id) AS preferences,
                      (SELECT count(*) FROM credentials c WHERE c.user_id = u.user_id) AS credentials
               FROM users u WHERE u.user_id = $1""",
            user_id,
        )
    assert (row["given_name"], row["email_verified"], row["preferences"], row["credentials"]) == (
        "Grace",
        True,
        1,
        0,
    )
    # Another delivery (a new svix-id) about the same Clerk user provisions nothing more.
    body, headers = delivery({"type": "user.created", "data": clerk_user(clerk_id, email)})
    await post(identity, body, headers)
    assert await count_users(identity, email) == 1


async def test_user_updated_changes_email_and_names(identity) -> None:
    clerk_id = f"user_{uuid.uuid4().hex}"
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    await post(identity, *delivery({"type": "user.created", "data": clerk_user(clerk_id, email)}))
    new_email = f"new-{email}"
    await post(
        identity,
        *delivery({"type": "user.updated", "data": clerk_user(clerk_id, new_email, first="Amazing Grace")}),
    )
    user_id = uuid.UUID((await resolve(identity, clerk_id)).user.removeprefix("users/"))
    async with identity.db.transaction(user_id=user_id) as conn:
        row = await conn.fetchrow("SELECT email, given_name FROM users WHERE user_id = $1", user_id)
    assert (row["email"], row["given_name"]) == (new_email, "Amazing Grace")


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("tampered body", "WEBHOOK_SIGNATURE_INVALID"),
        ("wrong secret", "WEBHOOK_SIGNATURE_INVALID"),
        ("stale timestamp", "WEBHOOK_TIMESTAMP_OUT_OF_TOLERANCE"),
        ("future timestamp", "WEBHOOK_TIMESTAMP_OUT_OF_TOLERANCE"),
        ("missing svix-id", "WEBHOOK_HEADERS_MISSING"),
        ("missing svix-signature", "WEBHOOK_HEADERS_MISSING"),
        ("missing svix-timestamp", "WEBHOOK_HEADERS_MISSING"),
    ],
)
async def test_forged_or_stale_deliveries_are_rejected_and_change_nothing(
    identity, case: str, reason: str
) -> None:
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    event = {"type": "user.created", "data": clerk_user(f"user_{uuid.uuid4().hex}", email)}
    if case == "wrong secret":
        body, headers = delivery(event, secret="whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY")
    elif case == "stale timestamp":
        body, headers = delivery(event, sent=datetime.now(UTC) - timedelta(minutes=6))
    elif case == "future timestamp":
        body, headers = delivery(event, sent=datetime.now(UTC) + timedelta(minutes=6))
    else:
        body, headers = delivery(event)
    if case == "tampered body":
        body = body.replace(b"Grace", b"Evil!")
    if case.startswith("missing "):
        missing = case.removeprefix("missing ")
        headers = [h for h in headers if h[0] != missing]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await post(identity, body, headers)
    assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert reason_of(raised.value) == reason
    assert await count_users(identity, email) == 0


def reason_of(error: grpc.aio.AioRpcError) -> str:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(error)
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return ""


async def test_a_verified_body_that_is_no_clerk_event_is_invalid_argument(identity) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await post(identity, *delivery({"hello": "world"}))
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    await post(identity, *delivery({"type": "session.created", "data": {"id": "sess_1"}}))


async def test_user_deleted_starts_an_erasure(identity) -> None:
    clerk_id = f"user_{uuid.uuid4().hex}"
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    await post(identity, *delivery({"type": "user.created", "data": clerk_user(clerk_id, email)}))
    user_id = uuid.UUID((await resolve(identity, clerk_id)).user.removeprefix("users/"))
    await post(identity, *delivery({"type": "user.deleted", "data": {"id": clerk_id, "deleted": True}}))
    for _ in range(100):
        async with identity.db.transaction(user_id=user_id) as conn:
            job = await conn.fetchrow("SELECT state, trigger FROM erasure_jobs WHERE user_id = $1", user_id)
        if job is not None and job["state"] == "succeeded":
            break
        await asyncio.sleep(0.1)
    assert job is not None
    assert (job["state"], job["trigger"]) == ("succeeded", "external_provider")
    assert await count_users(identity, email) == 0
    # The link went with the user: the subject is unknown again, so a later sign-in starts afresh.
    again = await resolve(identity, clerk_id, email=email)
    assert again.provisioned
    assert again.user != f"users/{user_id}"


async def test_external_subjects_resolve_to_their_user_and_provision_once(identity) -> None:
    subject = f"oidc-{uuid.uuid4().hex}"
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    results = await asyncio.gather(
        *(resolve(identity, subject, OIDC_ISSUER, email=email, given_name="Lin") for _ in range(5))
    )
    assert len({r.user for r in results}) == 1
    assert [r.provisioned for r in results].count(True) == 1
    assert (await resolve(identity, subject, OIDC_ISSUER)).user == results[0].user
    with pytest.raises(grpc.aio.AioRpcError) as unknown_issuer:
        await resolve(identity, subject, "https://evil.example")
    assert unknown_issuer.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as no_subject:
        await resolve(identity, "", OIDC_ISSUER)
    assert no_subject.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    ada = await identity.sign_up()
    with pytest.raises(grpc.aio.AioRpcError) as user_token:
        await external_grpc.ExternalIdentityInternalServiceStub(identity.channel).ResolveExternalIdentity(
            external_pb2.ResolveExternalIdentityRequest(issuer=OIDC_ISSUER, subject=subject),
            metadata=ada.auth,
        )
    assert user_token.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_provider_names_are_made_to_fit_the_profile(identity) -> None:
    clerk_id = f"user_{uuid.uuid4().hex}"
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    await post(
        identity,
        *delivery({"type": "user.created", "data": clerk_user(clerk_id, email, first="G\x07" + "r" * 150)}),
    )
    user_id = uuid.UUID((await resolve(identity, clerk_id)).user.removeprefix("users/"))
    async with identity.db.transaction(user_id=user_id) as conn:
        given_name = await conn.fetchval("SELECT given_name FROM users WHERE user_id = $1", user_id)
    assert given_name == "G" + "r" * 99


@contextlib.asynccontextmanager
async def jwks_server(document: dict[str, Any]) -> AsyncIterator[str]:
    """A plain HTTP server answering every request with ``document`` as JSON."""
    body = json.dumps(document).encode()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/.well-known/jwks.json"
    finally:
        server.close()
        await server.wait_closed()


async def test_a_first_request_with_an_external_token_resolves_to_the_internal_user(identity_with) -> None:
    issuer = "https://accounts.example.test"
    key = LocalSigningKey.generate()
    async with (
        jwks_server(key.jwks()) as jwks_uri,
        identity_with(oidc_jwks_uris={issuer: jwks_uri}, external_token_audience="vitalis-web") as identity,
    ):
        users = user_service_pb2_grpc.UserServiceStub(identity.channel)
        email = f"{uuid.uuid4().hex[:10]}@example.com"
        suffix = uuid.uuid4().hex

        def token(**claims: Any) -> tuple[tuple[str, str], ...]:
            minted = key.mint("ext-" + suffix, issuer=issuer, audience="vitalis-web", email=email, **claims)
            return (("authorization", f"Bearer {minted}"),)

        first = await users.GetUser(user_service_pb2.GetUserRequest(name="users/me"), metadata=token())
        again = await users.GetUser(user_service_pb2.GetUserRequest(name="users/me"), metadata=token())
        assert first.name == again.name
        assert first.email == email
        assert [(i.issuer, i.subject) for i in first.external_identities] == [(issuer, f"ext-{suffix}")]
        # Vitalis's own tokens keep working beside the external ones.
        ada = await identity.sign_up()
        assert (
            await users.GetUser(user_service_pb2.GetUserRequest(name="users/me"), metadata=ada.auth)
        ).name == ada.name
        forged = LocalSigningKey.generate(kid=key.kid).mint(
            "ext-x", issuer=issuer, audience="vitalis-web", email=email
        )
        wrong_audience = key.mint("ext-y", issuer=issuer, audience="someone-else", email=email)
        unknown_issuer = key.mint("ext-z", issuer="https://elsewhere.example", audience="vitalis-web")
        for bad in (forged, wrong_audience, unknown_issuer):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await users.GetUser(
                    user_service_pb2.GetUserRequest(name="users/me"),
                    metadata=(("authorization", f"Bearer {bad}"),),
                )
            assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_reordered_deliveries_keep_the_newest_profile_and_never_revive_a_deleted_user(
    identity,
) -> None:
    clerk_id = f"user_{uuid.uuid4().hex}"
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    updated = delivery({"type": "user.updated", "data": clerk_user(clerk_id, email, first="Amazing Grace")})
    created = delivery({"type": "user.created", "data": clerk_user(clerk_id, email)})
    for body, headers in (updated, created):
        await post(identity, body, headers)
    assert await count_users(identity, email) == 1
    user_id = uuid.UUID((await resolve(identity, clerk_id)).user.removeprefix("users/"))
    async with identity.db.transaction(user_id=user_id) as conn:
        assert (
            await conn.fetchval("SELECT given_name FROM users WHERE user_id = $1", user_id) == "Amazing Grace"
        )

    deleted = delivery({"type": "user.deleted", "data": {"id": clerk_id, "deleted": True, "object": "user"}})
    late_update = delivery({"type": "user.updated", "data": clerk_user(clerk_id, email, first="Ghost")})
    for body, headers in (deleted, late_update):
        await post(identity, body, headers)
    async with identity.db.transaction(user_id=user_id) as conn:
        given_name = await conn.fetchval("SELECT given_name FROM users WHERE user_id = $1", user_id)
    assert given_name != "Ghost"


async def test_without_a_webhook_secret_deliveries_are_refused_as_not_configured(identity_with) -> None:
    async with identity_with(clerk_webhook_secret=None) as identity:
        email = f"{uuid.uuid4().hex[:10]}@example.com"
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await post(identity, *delivery({"type": "user.created", "data": clerk_user("user_x", email)}))
        assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "not configured" in (raised.value.details() or "")
        assert await count_users(identity, email) == 0
