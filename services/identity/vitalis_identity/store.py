"""All SQL of the identity service. Returns domain objects; knows nothing of gRPC."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from vitalis_identity.domain.keys import KeyInfo
from vitalis_identity.domain.users import Sex, UnitSystem, User
from vitalis_runtime.errors import AlreadyExists

_USER_COLUMNS = """user_id, account_id, email, given_name, family_name, birth_date, sex, time_zone,
    unit_system, version, create_time, update_time"""


def _user(row: asyncpg.Record) -> User:
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
        password_hash: str,
    ) -> User:
        """Insert an account, its first user and the user's credential."""
        display_name = " ".join(p for p in (given_name, family_name) if p) or email
        await conn.execute(
            "INSERT INTO accounts (account_id, display_name) VALUES ($1, $2)", account_id, display_name
        )
        try:
            row = await conn.fetchrow(
                f"""INSERT INTO users (user_id, account_id, email, given_name, family_name, time_zone)
                    VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_USER_COLUMNS}""",
                user_id,
                account_id,
                email,
                given_name,
                family_name,
                time_zone,
            )
        except asyncpg.UniqueViolationError:
            raise AlreadyExists(
                "an account with this e-mail address already exists; sign in instead",
                reason="EMAIL_ALREADY_REGISTERED",
            ) from None
        await conn.execute(
            "INSERT INTO credentials (user_id, password_hash) VALUES ($1, $2)", user_id, password_hash
        )
        assert row is not None
        return _user(row)

    async def find_credentials_by_email(
        self, conn: asyncpg.Connection, email: str
    ) -> tuple[uuid.UUID, str] | None:
        """The user id and password hash for an e-mail address, switching the unit of work to that user."""
        await conn.execute("SELECT set_config('app.lookup_email', $1, true)", email)
        user_id = await conn.fetchval(
            "SELECT user_id FROM users WHERE lower(email) = $1 AND delete_time IS NULL", email
        )
        await conn.execute("SELECT set_config('app.lookup_email', '', true)")
        if user_id is None:
            return None
        await conn.execute("SELECT set_config('app.current_user_id', $1, true)", str(user_id))
        password_hash = await conn.fetchval(
            "SELECT password_hash FROM credentials WHERE user_id = $1", user_id
        )
        if password_hash is None:
            return None
        return user_id, password_hash

    async def get_user(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> User | None:
        """A live user, or ``None``."""
        row = await conn.fetchrow(
            f"SELECT {_USER_COLUMNS} FROM users WHERE user_id = $1 AND delete_time IS NULL", user_id
        )
        return _user(row) if row else None

    async def save_profile(
        self, conn: asyncpg.Connection, user: User, *, expected_version: int
    ) -> User | None:
        """Write the profile fields if the stored version is still ``expected_version``."""
        row = await conn.fetchrow(
            f"""UPDATE users SET given_name = $3, family_name = $4, birth_date = $5, sex = $6,
                    time_zone = $7, unit_system = $8, version = version + 1, update_time = now()
                WHERE user_id = $1 AND version = $2 AND delete_time IS NULL
                RETURNING {_USER_COLUMNS}""",
            user.user_id,
            expected_version,
            user.given_name,
            user.family_name,
            user.birth_date,
            user.sex.value,
            user.time_zone,
            user.unit_system.value,
        )
        return _user(row) if row else None


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
    ) -> None:
        """Start a session."""
        await conn.execute(
            """INSERT INTO sessions (user_id, session_id, expire_time, user_agent)
               VALUES ($1, $2, $3, $4)""",
            user_id,
            session_id,
            expire_time,
            user_agent[:300],
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
               FROM signing_keys WHERE retire_time > now() ORDER BY activate_time"""
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
    ) -> None:
        """Store a new key."""
        await conn.execute(
            """INSERT INTO signing_keys (kid, algorithm, private_key, public_jwk, activate_time, retire_time)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            info.kid,
            algorithm,
            encrypted_private_key,
            dict(public_jwk),
            info.activate_time,
            info.retire_time,
        )

    async def lock_rotation(self, conn: asyncpg.Connection) -> None:
        """Serialise key rotation across replicas for the rest of the transaction."""
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('vitalis.identity.signing_keys'))")
