"""External identity providers: Clerk webhooks (verified with svix) and OIDC subjects.

A webhook delivery is applied exactly once: its ``svix-id`` is recorded in the same transaction
as its effect, and provisioning is serialised per subject, so concurrent replays of one delivery
(or two deliveries about one user) create one account, one user and one set of preferences.
"""

from __future__ import annotations

import binascii
import json
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from svix.webhooks import Webhook, WebhookVerificationError

from vitalis_identity import events
from vitalis_identity.domain.users import MAX_NAME_LENGTH, User, normalize_email, validate_name
from vitalis_identity.store import UserStore
from vitalis_identity.store_people import ExternalIdentityStore, WebhookDeliveryStore
from vitalis_runtime.db import Database
from vitalis_runtime.errors import FailedPrecondition, InvalidArgument, NotFound, Unauthenticated
from vitalis_runtime.external_tokens import ExternalProfile

SVIX_HEADERS = ("svix-id", "svix-timestamp", "svix-signature")
CLERK = "clerk"
REPLAY_WINDOW = timedelta(days=7)

StartErasure = Callable[[uuid.UUID], Awaitable[object]]


class ExternalIdentities:
    """Links provider subjects to users, provisioning them on first sight."""

    def __init__(
        self,
        db: Database,
        *,
        clerk_issuer: str,
        oidc_issuers: Collection[str],
        provision_on_first_use: bool,
        users: UserStore | None = None,
        links: ExternalIdentityStore | None = None,
    ) -> None:
        self._db = db
        self.clerk_issuer = clerk_issuer
        self._oidc_issuers = frozenset(oidc_issuers)
        self._provision = provision_on_first_use
        self._users = users or UserStore()
        self._links = links or ExternalIdentityStore()

    def provider_of(self, issuer: str) -> str:
        """``clerk`` or ``oidc``; INVALID_ARGUMENT for an issuer that is not configured."""
        if issuer == self.clerk_issuer:
            return CLERK
        if issuer in self._oidc_issuers:
            return "oidc"
        raise InvalidArgument.for_field("issuer", f"{issuer!r} is not a configured identity provider")

    async def resolve(self, issuer: str, subject: str, profile: ExternalProfile) -> uuid.UUID:
        """The user linked to a subject (a :class:`SubjectResolver` for identity's own token check)."""
        user_id, _ = await self.link(issuer, subject, profile)
        return user_id

    async def link(self, issuer: str, subject: str, profile: ExternalProfile) -> tuple[uuid.UUID, bool]:
        """The user linked to a subject, provisioned if allowed; (user id, provisioned now)."""
        provider = self.provider_of(issuer)
        if not subject:
            raise InvalidArgument.for_field("subject", "is required")
        async with self._db.transaction(user_id=None) as conn:
            await self._links.lock_subject(conn, issuer, subject)
            user_id = await self._links.find_user(conn, issuer, subject)
            if user_id is not None:
                await self._act_as(conn, user_id)
                user = await self._users.get_user(conn, user_id)
                if user is None or user.deleted:
                    raise FailedPrecondition("the linked user is deleted", reason="USER_DELETED")
                return user_id, False
            if not self._provision:
                raise NotFound(
                    f"no user is linked to {subject!r} at {issuer!r}", reason="EXTERNAL_IDENTITY_NOT_FOUND"
                )
            user = await self._provision_user(conn, issuer, subject, provider, profile)
            return user.user_id, True

    async def provision_in(
        self, conn: asyncpg.Connection, issuer: str, subject: str, provider: str, profile: ExternalProfile
    ) -> User | None:
        """Provision a subject inside the caller's transaction; ``None`` when it is already linked."""
        await self._links.lock_subject(conn, issuer, subject)
        if await self._links.find_user(conn, issuer, subject) is not None:
            return None
        return await self._provision_user(conn, issuer, subject, provider, profile)

    async def linked_user(self, conn: asyncpg.Connection, issuer: str, subject: str) -> uuid.UUID | None:
        """The user linked to a subject, with the transaction switched to act as them."""
        user_id = await self._links.find_user(conn, issuer, subject)
        if user_id is not None:
            await self._act_as(conn, user_id)
        return user_id

    async def _provision_user(
        self, conn: asyncpg.Connection, issuer: str, subject: str, provider: str, profile: ExternalProfile
    ) -> User:
        if not profile.email:
            raise InvalidArgument.for_field("email", "is required to provision a user")
        email = normalize_email(profile.email)
        existing = await self._users.find_user_id_by_email(conn, email)
        if existing is not None and profile.email_verified:
            # The provider vouches for the address: the subject joins the user who already has it.
            await self._act_as(conn, existing)
            await self._links.link(conn, existing, issuer, subject, provider)
            user = await self._users.get_user(conn, existing)
            assert user is not None
            return user
        user_id = uuid.uuid4()
        await self._act_as(conn, user_id)
        user = await self._users.create_user(
            conn,
            user_id=user_id,
            account_id=uuid.uuid4(),
            email=email,
            given_name=provider_name(profile.given_name),
            family_name=provider_name(profile.family_name),
            time_zone="UTC",
            password_hash=None,
            email_verified=profile.email_verified,
        )
        await self._links.link(conn, user_id, issuer, subject, provider)
        await events.user_created(conn, user)
        return user

    @staticmethod
    async def _act_as(conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
        await conn.execute("SELECT set_config('app.current_user_id', $1, true)", str(user_id))


def provider_name(value: str) -> str:
    """A name as a provider sent it, made to fit a profile: printable, at most 100 characters."""
    printable = "".join(ch for ch in value if ord(ch) >= 32)
    return validate_name(printable.strip()[:MAX_NAME_LENGTH], "name")


def verify_svix(secret: str, body: bytes, headers: Mapping[str, str]) -> None:
    """Check a delivery's signature and timestamp with svix; UNAUTHENTICATED saying what is wrong."""
    missing = [name for name in SVIX_HEADERS if not headers.get(name)]
    if missing:
        raise Unauthenticated(
            f"the webhook delivery lacks the {', '.join(missing)} header(s)", reason="WEBHOOK_HEADERS_MISSING"
        )
    try:
        Webhook(secret).verify(body, {name: headers[name] for name in SVIX_HEADERS})
    except WebhookVerificationError as error:
        if "timestamp" in str(error).lower():
            raise Unauthenticated(
                "the webhook timestamp is outside the 5-minute tolerance",
                reason="WEBHOOK_TIMESTAMP_OUT_OF_TOLERANCE",
            ) from None
        raise Unauthenticated(
            "the webhook signature does not verify", reason="WEBHOOK_SIGNATURE_INVALID"
        ) from None
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Unauthenticated(
            "the webhook signature does not verify", reason="WEBHOOK_SIGNATURE_INVALID"
        ) from None


def clerk_profile(data: Mapping[str, Any]) -> ExternalProfile:
    """The primary e-mail address and names of a Clerk user object."""
    addresses = data.get("email_addresses") or []
    primary_id = data.get("primary_email_address_id")
    chosen: Mapping[str, Any] = next(
        (a for a in addresses if isinstance(a, Mapping) and a.get("id") == primary_id),
        addresses[0] if addresses and isinstance(addresses[0], Mapping) else {},
    )
    verification = chosen.get("verification") or {}
    return ExternalProfile(
        email=str(chosen.get("email_address") or ""),
        given_name=str(data.get("first_name") or ""),
        family_name=str(data.get("last_name") or ""),
        email_verified=isinstance(verification, Mapping) and verification.get("status") == "verified",
    )


class ClerkWebhooks:
    """Applies verified Clerk deliveries exactly once."""

    def __init__(
        self,
        db: Database,
        identities: ExternalIdentities,
        start_erasure: StartErasure,
        *,
        secret: str | None,
        users: UserStore | None = None,
        deliveries: WebhookDeliveryStore | None = None,
    ) -> None:
        self._db = db
        self._identities = identities
        self._start_erasure = start_erasure
        self._secret = secret
        self._users = users or UserStore()
        self._deliveries = deliveries or WebhookDeliveryStore()

    async def handle(self, body: bytes, headers: Mapping[str, str]) -> str:
        """Verify and apply one delivery; what happened (``provisioned``, ``replayed``, ...)."""
        if not self._secret:
            raise FailedPrecondition(
                "Clerk webhooks are not configured (VITALIS_CLERK_WEBHOOK_SECRET)",
                reason="WEBHOOK_NOT_CONFIGURED",
            )
        verify_svix(self._secret, body, headers)
        try:
            event = json.loads(body)
        except ValueError:
            raise InvalidArgument.for_field("http_body", "is not JSON") from None
        if (
            not isinstance(event, dict)
            or not isinstance(event.get("type"), str)
            or not isinstance(event.get("data"), dict)
        ):
            raise InvalidArgument.for_field("http_body", "is not a Clerk event (type and data are required)")
        event_type: str = event["type"]
        data: dict[str, Any] = event["data"]
        subject = data.get("id")
        if event_type.startswith("user.") and (not isinstance(subject, str) or not subject):
            raise InvalidArgument.for_field("http_body", "data.id (the Clerk user id) is required")
        erase: uuid.UUID | None = None
        issuer = self._identities.clerk_issuer
        async with self._db.transaction(user_id=None) as conn:
            if not await self._deliveries.claim(conn, CLERK, headers["svix-id"], event_type):
                return "replayed"
            await self._deliveries.forget_before(conn, datetime.now(UTC) - REPLAY_WINDOW)
            if event_type == "user.created":
                user = await self._identities.provision_in(
                    conn, issuer, str(subject), CLERK, clerk_profile(data)
                )
                outcome = "provisioned" if user else "already provisioned"
            elif event_type == "user.updated":
                outcome = await self._update(conn, issuer, str(subject), clerk_profile(data))
            elif event_type == "user.deleted":
                erase = await self._identities.linked_user(conn, issuer, str(subject))
                outcome = "erasing" if erase else "unknown user"
            else:
                outcome = "ignored"
        if erase is not None:
            await self._start_erasure(erase)
        return outcome

    async def _update(
        self, conn: asyncpg.Connection, issuer: str, subject: str, profile: ExternalProfile
    ) -> str:
        user_id = await self._identities.linked_user(conn, issuer, subject)
        if user_id is None:
            # Deliveries may arrive out of order: an update before its user.created provisions the
            # user from the newer profile, and the late user.created then finds it provisioned.
            provisioned = await self._identities.provision_in(conn, issuer, subject, CLERK, profile)
            return "provisioned from an update" if provisioned else "unknown user"
        user = await self._users.get_user(conn, user_id)
        if user is None or user.deleted:
            # A late update never brings personal data back to a user being erased.
            return "deleted user"
        await self._users.update_identity_fields(
            conn,
            user_id,
            email=normalize_email(profile.email) if profile.email else user.email,
            given_name=provider_name(profile.given_name),
            family_name=provider_name(profile.family_name),
        )
        return "updated"
