"""SQL for accounts, preferences, external identities and webhook deliveries."""

# Like store.py: SQL is composed from constant column lists only; values are always bind parameters.
# ruff: noqa: S608

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from vitalis_identity.domain.accounts import Account, AccountTier
from vitalis_identity.domain.preferences import Preferences

_ACCOUNT_COLUMNS = """account_id, display_name, tier, owner_user_id, billing_email, version, create_time,
    update_time, delete_time, expire_time,
    (SELECT count(*) FROM users u WHERE u.account_id = accounts.account_id) AS user_count"""


def _account(row: asyncpg.Record) -> Account:
    return Account(
        account_id=row["account_id"],
        display_name=row["display_name"],
        tier=AccountTier(row["tier"]),
        owner_user_id=row["owner_user_id"],
        billing_email=row["billing_email"],
        user_count=row["user_count"],
        version=row["version"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        delete_time=row["delete_time"],
        expire_time=row["expire_time"],
    )


class AccountStore:
    """Accounts, visible to their members (or, for the back office, looked up by id)."""

    async def get(self, conn: asyncpg.Connection, account_id: uuid.UUID) -> Account | None:
        """The account if the unit of work may see it."""
        row = await conn.fetchrow(
            f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE account_id = $1", account_id
        )
        return _account(row) if row else None

    async def reveal(self, conn: asyncpg.Connection, account_id: uuid.UUID) -> None:
        """Let this transaction see one account whoever acts (back-office calls)."""
        await conn.execute("SELECT set_config('app.lookup_account', $1, true)", str(account_id))

    async def save(
        self, conn: asyncpg.Connection, account: Account, *, expected_version: int
    ) -> Account | None:
        """Write the mutable fields and lifecycle if the version still matches."""
        status: str = await conn.execute(
            """UPDATE accounts SET display_name = $3, billing_email = $4, tier = $5, delete_time = $6,
                    expire_time = $7, version = version + 1, update_time = now()
               WHERE account_id = $1 AND version = $2""",
            account.account_id,
            expected_version,
            account.display_name,
            account.billing_email,
            account.tier.value,
            account.delete_time,
            account.expire_time,
        )
        return await self.get(conn, account.account_id) if status.endswith(" 1") else None

    async def member_ids(self, conn: asyncpg.Connection, account_id: uuid.UUID) -> list[uuid.UUID]:
        """The users of an account the unit of work may see."""
        rows = await conn.fetch("SELECT user_id FROM users WHERE account_id = $1", account_id)
        return [r["user_id"] for r in rows]


_PREFERENCE_COLUMNS = """user_id, language_code, first_day_of_week, unit_overrides, alert_push_enabled,
    alert_email_enabled, weekly_summary_email_enabled, quiet_hours_start, quiet_hours_end, version,
    update_time"""


class PreferencesStore:
    """The preferences singleton of each user."""

    async def get(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> Preferences | None:
        """The user's preferences."""
        row = await conn.fetchrow(
            f"SELECT {_PREFERENCE_COLUMNS} FROM preferences WHERE user_id = $1", user_id
        )
        if row is None:
            return None
        return Preferences(**{key: row[key] for key in row.keys()})  # noqa: SIM118 - a Record, not a dict

    async def save(
        self, conn: asyncpg.Connection, preferences: Preferences, *, expected_version: int
    ) -> Preferences | None:
        """Write every field if the version still matches."""
        status: str = await conn.execute(
            """UPDATE preferences SET language_code = $3, first_day_of_week = $4, unit_overrides = $5,
                    alert_push_enabled = $6, alert_email_enabled = $7, weekly_summary_email_enabled = $8,
                    quiet_hours_start = $9, quiet_hours_end = $10, version = version + 1, update_time = now()
               WHERE user_id = $1 AND version = $2""",
            preferences.user_id,
            expected_version,
            preferences.language_code,
            preferences.first_day_of_week,
            dict(preferences.unit_overrides),
            preferences.alert_push_enabled,
            preferences.alert_email_enabled,
            preferences.weekly_summary_email_enabled,
            preferences.quiet_hours_start,
            preferences.quiet_hours_end,
        )
        return await self.get(conn, preferences.user_id) if status.endswith(" 1") else None


class ExternalIdentityStore:
    """Links between users and subjects of external identity providers."""

    async def find_user(self, conn: asyncpg.Connection, issuer: str, subject: str) -> uuid.UUID | None:
        """The user linked to ``subject`` at ``issuer``, whoever acts."""
        await conn.execute("SELECT set_config('app.lookup_external', $1, true)", f"{issuer}|{subject}")
        user_id: uuid.UUID | None = await conn.fetchval(
            "SELECT user_id FROM external_identities WHERE issuer = $1 AND subject = $2", issuer, subject
        )
        await conn.execute("SELECT set_config('app.lookup_external', '', true)")
        return user_id

    async def lock_subject(self, conn: asyncpg.Connection, issuer: str, subject: str) -> None:
        """Serialise provisioning of one subject across replicas for the rest of the transaction."""
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", f"{issuer}|{subject}")

    async def link(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, issuer: str, subject: str, provider: str
    ) -> None:
        """Link a subject to a user."""
        await conn.execute(
            """INSERT INTO external_identities (user_id, issuer, subject, provider)
               VALUES ($1, $2, $3, $4)""",
            user_id,
            issuer,
            subject,
            provider,
        )


class WebhookDeliveryStore:
    """The message ids of webhook deliveries already applied."""

    async def claim(self, conn: asyncpg.Connection, provider: str, message_id: str, event_type: str) -> bool:
        """Record a delivery; false when it was recorded before (a replay)."""
        inserted = await conn.fetchval(
            """INSERT INTO webhook_deliveries (provider, message_id, event_type) VALUES ($1, $2, $3)
               ON CONFLICT DO NOTHING RETURNING true""",
            provider,
            message_id,
            event_type,
        )
        return bool(inserted)

    async def forget_before(self, conn: asyncpg.Connection, cutoff: datetime) -> None:
        """Drop records older than any replay the signature tolerance still allows."""
        await conn.execute("DELETE FROM webhook_deliveries WHERE receive_time < $1", cutoff)
