"""Clerk webhooks through a real Envoy: the route needs no bearer token, the raw body reaches
identity unchanged, and svix signatures decide (the platform is given ``VITALIS_CLERK_WEBHOOK_SECRET``)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from svix.webhooks import Webhook

from vitalis_cli.platform import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
SECRET_VARIABLE = "VITALIS_CLERK_WEBHOOK_SECRET"
PATH = "/v1/webhooks/clerk"


def signed(
    secret: str, event: dict[str, Any], *, sent: datetime | None = None
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event)
    message_id = f"msg_{uuid.uuid4().hex}"
    sent = sent or datetime.now(UTC)
    return body.encode(), {
        "content-type": "application/json",
        "svix-id": message_id,
        "svix-timestamp": str(int(sent.timestamp())),
        "svix-signature": Webhook(secret).sign(message_id, sent, body),
    }


def reason(response: httpx.Response) -> str:
    details = response.json().get("details", [])
    return next((d["reason"] for d in details if "reason" in d), "")


def user_created(email: str) -> dict[str, Any]:
    return {
        "type": "user.created",
        "object": "event",
        "data": {
            "id": f"user_{uuid.uuid4().hex}",
            "first_name": "Grace",
            "last_name": "Hopper",
            "primary_email_address_id": "idn_1",
            "email_addresses": [
                {"id": "idn_1", "email_address": email, "verification": {"status": "verified"}}
            ],
        },
    }


async def test_clerk_webhooks_through_the_gateway(gateway: httpx.AsyncClient, platform: Platform) -> None:
    secret = platform.config.extra_env[SECRET_VARIABLE]
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    body, headers = signed(secret, user_created(email))
    responses = await asyncio.gather(*(gateway.post(PATH, content=body, headers=headers) for _ in range(10)))
    assert [r.status_code for r in responses] == [200] * 10
    tampered = await gateway.post(PATH, content=body.replace(b"Grace", b"Mallory"), headers=headers)
    assert (tampered.status_code, reason(tampered)) == (401, "WEBHOOK_SIGNATURE_INVALID")
    stale_body, stale_headers = signed(
        secret, user_created(email), sent=datetime.now(UTC) - timedelta(minutes=10)
    )
    stale = await gateway.post(PATH, content=stale_body, headers=stale_headers)
    assert (stale.status_code, reason(stale)) == (401, "WEBHOOK_TIMESTAMP_OUT_OF_TOLERANCE")
    bare = await gateway.post(PATH, content=body, headers={"content-type": "application/json"})
    assert (bare.status_code, reason(bare)) == (401, "WEBHOOK_HEADERS_MISSING")
    # The provisioned user exists exactly once: signing up with the address is refused.
    taken = await gateway.post(
        "/v1/auth:signUp", json={"email": email, "password": "correct horse battery staple"}
    )
    assert taken.status_code == 409
