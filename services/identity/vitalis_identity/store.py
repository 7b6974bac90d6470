"""All SQL of the identity service. Returns domain objects; knows nothing of gRPC."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from vitalis_identity.domain.keys import KeyInfo, StoredKey
from vitalis_identity.domain.sessions import Session
from vitalis_identity.domain.users import ExternalIdentity, Sex, UnitSystem, User
from vitalis_identity.listing import ListQuery
from vitalis_runtime.errors import AlreadyExists

_USER_COLUMNS = """user_id, account_id, email, given_name, family_name, birth_date, sex, time_zone,
    unit_system, version, create_time, update_time, delete_time, expire_time, email_verified,
    signup_request_id,
    EXISTS (SELECT 1 FROM credentials c WHERE c.user_id = users.user_id) AS has_password"""
# A user who may still sign in and use the API: live, or soft-deleted within the grace period.
LIVE_OR_RESTORABLE = "(delete_time IS NULL OR expire_time > now())"


def _user(row: asyncpg.Record, identities: tuple[ExternalIdentity, ...] = ()) -> User:
    return User(
        user_id=row["user_id"],
        account_id=row["account_id"],
        email=row["email"],
        given_name=row["given_name"],
        family_name=row["family_name"],
        birth_date=row["birth_date"],
        sex=Sex(row["sex"]),
        time_zone=row["time_zone"],
        unit_system=UnitSystem(row["unit_system"]),
        version=row["version"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        delete_time=row["delete_time"],
        expire_time=row["expire_time"],
        email_verified=row["email_verified"],
        has_password=row["has_password"],
        signup_request_id=row["signup_request_id"],
        external_identities=identities,
    )


class UserStore:
    """Accounts, users and password credentials."""

    async def create_user(
        self,
        conn: asyncpg.Connection,
        *,
        user_id: uuid.UUID,
        account_id: uuid.UUID,
        email: str,
        given_name: str,
        family_name: str,
        time_zone: str,
        password_hash: str | None,
        email_verified: bool = False,
        signup_request_id: str | None = None,
    ) -> User:
        """Insert an account owned by the new user, the user, default preferences and a credential."""
        display_name = " ".join(p for p in (given_name, family_name) if p) or email
        await conn.execute(
            """INSERT INTO accounts (account_id, display_name, owner_user_id, billing_email)
               VALUES ($1, $2, $3, $4)""",
            account_id,
            display_name,
            user_id,
            email,
        )
        try:
            await conn.execute(
                """INSERT INTO users (user_id, account_id, email, given_name, family_name, time_zone,
                                      email_verified, signup_request_id)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
                user_id,
                account_id,
                email,
                given_name,
                family_name,
                time_zone,
                email_verified,
                signup_request_id,
            )
        except asyncpg.UniqueViolationError:
            raise AlreadyExists(
                "an account with this e-mail address already exists; sign in instead",
                reason="EMAIL_ALREADY_REGISTERED",
            ) from None
        if password_hash is not None:
            await conn.execute(
                "INSERT INTO credentials (user_id, password_hash) VALUES ($1, $2)", user_id, password_hash
            )
        await conn.execute("INSERT INTO preferences (user_id) VALUES ($1)", user_id)
        user = await self.get_user(conn, user_id)
        assert user is not None
        return user

    async def find_user_id_by_email(self, conn: asyncpg.Connection, email: str) -> uuid.UUID | None:
        """The id of the live (or restorable) user with this e-mail address, whoever the caller is."""
        await conn.execute("SELECT set_config('app.lookup_email', $1, true)", email)
        user_id: uuid.UUID | None = await conn.fetchval(
            f"SELECT user_id FROM users WHERE lower(email) = $1 AND {LIVE_OR_RESTORABLE}", email
        )
        await conn.execute("SELECT set_config('app.lookup_email', '', true)")
        return user_id

    async def find_credentials_by_email(
        self, conn: asyncpg.Connection, email: str
    ) -> tuple[uuid.UUID, str] | None:
        """The user id and password hash for an e-mail address, switching the unit of work to that user."""
        user_id = await self.find_user_id_by_email(conn, email)
        if user_id is None:
            return None
        await conn.execute("SELECT set_config('app.current_user_id', $1, true)", str(user_id))
        password_hash = await self.password_hash(conn, user_id)
        if password_hash is None:
            return None
        return user_id, password_hash

    async def password_hash(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> str | None:
        """The user's password hash; ``None`` when they sign in only through a provider."""
        value: str | None = await conn.fetchval(
            "SELECT password_hash FROM credentials WHERE user_id = $1", user_id
        )
        return value

    async def set_password_hash(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, password_hash: str
    ) -> None:
        """Replace the user's password hash."""
        await conn.execute(
            "UPDATE credentials SET password_hash = $2, update_time = now() WHERE user_id = $1",
            user_id,
            password_hash,
        )

    async def get_user(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, *, include_deleted: bool = True
    ) -> User | None:
        """A user (soft-deleted ones too unless ``include_deleted`` is false), or ``None``."""
        condition = "" if include_deleted else f" AND {LIVE_OR_RESTORABLE} AND delete_time IS NULL"
        row = await conn.fetchrow(f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = $1{condition}", user_id)
        if row is None:
            return None
        links = await conn.fetch(
            """SELECT issuer, subject, provider, link_time FROM external_identities
               WHERE user_id = $1 ORDER BY link_time""",
            user_id,
        )
        identities = tuple(
            ExternalIdentity(r["issuer"], r["subject"], r["provider"], r["link_time"]) for r in links
        )
        return _user(row, identities)

    async def save_profile(
        self, conn: asyncpg.Connection, user: User, *, expected_version: int
    ) -> User | None:
        """Write the profile fields if the stored version is still ``expected_version``."""
        status: str = await conn.execute(
            """UPDATE users SET given_name = $3, family_name = $4, birth_date = $5, sex = $6,
                    time_zone = $7, unit_system = $8, version = version + 1, update_time = now()
                WHERE user_id = $1 AND version = $2 AND delete_time IS NULL""",
            user.user_id,
            expected_version,
            user.given_name,
            user.family_name,
            user.birth_date,
            user.sex.value,
            user.time_zone,
            user.unit_system.value,
        )
        return await self.get_user(conn, user.user_id) if status.endswith(" 1") else None

    async def update_identity_fields(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, *, email: str, given_name: str, family_name: str
    ) -> None:
        """Overwrite the e-mail address and names (an external provider's update)."""
        await conn.execute(
            """UPDATE users SET email = $2, given_name = $3, family_name = $4, version = version + 1,
                    update_time = now()
               WHERE user_id = $1""",
            user_id,
            email,
            given_name,
            family_name,
        )

    async def set_deleted(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        *,
        expected_version: int,
        delete_time: datetime | None,
        expire_time: datetime | None,
    ) -> User | None:
        """Soft-delete (times set) or restore (``None``) a user at ``expected_version``."""
        status: str = await conn.execute(
            """UPDATE users SET delete_time = $3, expire_time = $4, version = version + 1, update_time = now()
               WHERE user_id = $1 AND version = $2""",
            user_id,
            expected_version,
            delete_time,
            expire_time,
        )
        return await self.get_user(conn, user_id) if status.endswith(" 1") else None

    async def users_due_for_erasure(self, conn: asyncpg.Connection, limit: int) -> list[uuid.UUID]:
        """Soft-deleted users whose grace period ended (a system query across users)."""
        rows = await conn.fetch(
            """SELECT user_id FROM users WHERE delete_time IS NOT NULL AND expire_time <= now()
               LIMIT $1""",
            limit,
        )
        return [r["user_id"] for r in rows]

    async def erase_user(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> int:
        """Delete the user and everything that cascades from it, and their account if now empty."""
        account_id: uuid.UUID | None = await conn.fetchval(
            "SELECT account_id FROM users WHERE user_id = $1", user_id
        )
        if account_id is None:
            return 0
        erased = 0
        for table in (
            "refresh_tokens",
            "sessions",
            "credentials",
            "preferences",
            "consent_events",
            "consents",
            "external_identities",
            "export_jobs",
        ):
            status: str = await conn.execute(f"DELETE FROM {table} WHERE user_id = $1", user_id)
            erased += int(status.rsplit(maxsplit=1)[-1])
        status = await conn.execute("DELETE FROM share_grants WHERE user_id = $1 OR grantee_id = $1", user_id)
        erased += int(status.split()[-1])
        await conn.execute("SELECT set_config('app.lookup_account', $1, true)", str(account_id))
        await conn.execute("DELETE FROM users WHERE user_id = $1", user_id)
        erased += 1
        remaining = await conn.fetchval("SELECT count(*) FROM users WHERE account_id = $1", account_id)
        if not remaining:
            await conn.execute("DELETE FROM accounts WHERE account_id = $1", account_id)
            erased += 1
        else:
            await conn.execute(
                "UPDATE accounts SET owner_user_id = NULL WHERE account_id = $1 AND owner_user_id = $2",
                account_id,
                user_id,
            )
        await conn.execute("SELECT set_config('app.lookup_account', '', true)")
        return erased


_SESSION_COLUMNS = """session_id, user_id, auth_method, user_agent, client_ip, create_time,
    coalesce(last_refresh_time, create_time) AS last_refresh_time, expire_time, revoke_time, revoke_reason"""


def _session(row: asyncpg.Record) -> Session:
    return Session(
        user_id=row["user_id"],
        session_id=row["session_id"],
        auth_method=row["auth_method"],
        user_agent=row["user_agent"],
        client_ip=row["client_ip"],
        create_time=row["create_time"],
        last_refresh_time=row["last_refresh_time"],
        expire_time=row["expire_time"],
        revoke_time=row["revoke_time"],
        revoke_reason=row["revoke_reason"],
    )


class SessionStore:
    """Sessions and their rotating refresh tokens."""

    async def create_session(
        self,
        conn: asyncpg.Connection,
        *,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        expire_time: datetime,
        user_agent: str,
        client_ip: str = "",
        auth_method: str = "password",
    ) -> None:
        """Start a session."""
        await conn.execute(
            """INSERT INTO sessions (user_id, session_id, expire_time, user_agent, client_ip, auth_method)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            user_id,
            session_id,
            expire_time,
            user_agent[:256],
            client_ip[:64],
            auth_method,
        )

    async def get_session(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, session_id: uuid.UUID
    ) -> Session | None:
        """One session of the user."""
        row = await conn.fetchrow(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND session_id = $2",
            user_id,
            session_id,
        )
        return _session(row) if row else None

    async def list_sessions(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, query: ListQuery, limit: int
    ) -> list[Session]:
        """A page of the user's sessions, most recently refreshed first."""
        query.where("user_id = {}", user_id)
        query.where("create_time > now() - interval '90 days'")
        rows = await conn.fetch(
            query.sql(
                f"SELECT {_SESSION_COLUMNS} FROM sessions",
                "coalesce(last_refresh_time, create_time)",
                "session_id",
                descending=True,
                limit=limit,
            ),
            *query.params,
        )
        return [_session(r) for r in rows]

    async def revoke_other_sessions(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, keep: uuid.UUID | None, reason: str
    ) -> int:
        """Revoke every live session of the user except ``keep``."""
        status: str = await conn.execute(
            """UPDATE sessions SET revoke_time = now(), revoke_reason = $3
               WHERE user_id = $1 AND revoke_time IS NULL AND session_id IS DISTINCT FROM $2""",
            user_id,
            keep,
            reason,
        )
        return int(status.rsplit(maxsplit=1)[-1])

    async def touch(self, conn: asyncpg.Connection, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        """Record a refresh of the session."""
        await conn.execute(
            "UPDATE sessions SET last_refresh_time = now() WHERE user_id = $1 AND session_id = $2",
            user_id,
            session_id,
        )

    async def add_refresh_token(
        self,
        conn: asyncpg.Connection,
        *,
        user_id: uuid.UUID,
        token_id: uuid.UUID,
        session_id: uuid.UUID,
        token_hash: bytes,
        expire_time: datetime,
    ) -> None:
        """Store the hash of a refresh token issued in a session."""
        await conn.execute(
            """INSERT INTO refresh_tokens (user_id, token_id, session_id, token_hash, expire_time)
               VALUES ($1, $2, $3, $4, $5)""",
            user_id,
            token_id,
            session_id,
            token_hash,
            expire_time,
        )

    async def lock_refresh_token(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, token_id: uuid.UUID
    ) -> Mapping[str, Any] | None:
        """The token row with its session's state, locked for this transaction."""
        row = await conn.fetchrow(
            """SELECT t.session_id, t.token_hash, t.expire_time, t.use_time,
                      s.revoke_time, s.expire_time AS session_expire_time
               FROM refresh_tokens t JOIN sessions s USING (user_id, session_id)
               WHERE t.user_id = $1 AND t.token_id = $2
               FOR UPDATE OF t, s""",
            user_id,
            token_id,
        )
        return dict(row) if row else None

    async def mark_used(self, conn: asyncpg.Connection, user_id: uuid.UUID, token_id: uuid.UUID) -> None:
        """Spend a refresh token."""
        await conn.execute(
            "UPDATE refresh_tokens SET use_time = now() WHERE user_id = $1 AND token_id = $2",
            user_id,
            token_id,
        )

    async def revoke_session(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, session_id: uuid.UUID, reason: str
    ) -> bool:
        """Revoke a session and so every refresh token issued in it."""
        status: str = await conn.execute(
            """UPDATE sessions SET revoke_time = now(), revoke_reason = $3
               WHERE user_id = $1 AND session_id = $2 AND revoke_time IS NULL""",
            user_id,
            session_id,
            reason,
        )
        return status.endswith(" 1")

    async def session_is_live(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, session_id: uuid.UUID
    ) -> bool:
        """Whether a session exists, has not expired and was not revoked."""
        live: bool = await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM sessions WHERE user_id = $1 AND session_id = $2
                              AND revoke_time IS NULL AND expire_time > now())""",
            user_id,
            session_id,
        )
        return live


class KeyStore:
    """Signing keys (platform data, outside row-level security)."""

    async def list_keys(self, conn: asyncpg.Connection) -> list[tuple[KeyInfo, bytes, dict[str, Any]]]:
        """Every key not yet retired, with its encrypted private key and public JWK."""
        rows = await conn.fetch(
            """SELECT kid, activate_time, retire_time, private_key, public_jwk
               FROM signing_keys WHERE retire_time > now() AND revoke_time IS NULL ORDER BY activate_time"""
        )
        return [
            (KeyInfo(r["kid"], r["activate_time"], r["retire_time"]), r["private_key"], r["public_jwk"])
            for r in rows
        ]

    async def add_key(
        self,
        conn: asyncpg.Connection,
        *,
        info: KeyInfo,
        algorithm: str,
        encrypted_private_key: bytes,
        public_jwk: Mapping[str, Any],
        request_id: str | None = None,
    ) -> None:
        """Store a new key."""
        await conn.execute(
            """INSERT INTO signing_keys (kid, algorithm, private_key, public_jwk, activate_time, retire_time,
                                         request_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            info.kid,
            algorithm,
            encrypted_private_key,
            dict(public_jwk),
            info.activate_time,
            info.retire_time,
            request_id,
        )

    async def describe_keys(
        self, conn: asyncpg.Connection, *, request_id: str | None = None
    ) -> list[StoredKey]:
        """Every key ever created (or the one created for ``request_id``), newest first."""
        rows = await conn.fetch(
            """SELECT kid, algorithm, public_jwk, create_time, activate_time, retire_time, revoke_time
               FROM signing_keys WHERE ($1::text IS NULL OR request_id = $1)
               ORDER BY activate_time DESC, kid DESC""",
            request_id,
        )
        return [
            StoredKey(
                kid=r["kid"],
                algorithm=r["algorithm"],
                public_jwk=r["public_jwk"],
                create_time=r["create_time"],
                activate_time=r["activate_time"],
                retire_time=r["retire_time"],
                revoke_time=r["revoke_time"],
            )
            for r in rows
        ]

    async def revoke_key(self, conn: asyncpg.Connection, kid: str) -> bool:
        """Take a key out of the JWKS at once."""
        status: str = await conn.execute(
            "UPDATE signing_keys SET revoke_time = now() WHERE kid = $1 AND revoke_time IS NULL", kid
        )
        return status.endswith(" 1")

    async def lock_rotation(self, conn: asyncpg.Connection) -> None:
        """Serialise key rotation across replicas for the rest of the transaction."""
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('vitalis.identity.signing_keys'))")
