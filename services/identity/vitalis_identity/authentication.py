"""Sign-up, sign-in, refresh and sign-out: the unit-of-work layer between the API and the stores."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import asyncpg

from vitalis_identity import events
from vitalis_identity.audit import AuditTrail
from vitalis_identity.domain.audit import AuditAction
from vitalis_identity.domain.passwords import Passwords, check_password_rules
from vitalis_identity.domain.sessions import RevokeReason
from vitalis_identity.domain.tokens import IssuedTokens, RefreshToken
from vitalis_identity.domain.users import User, normalize_email, validate_name, validate_time_zone
from vitalis_identity.keyring import KeyRing
from vitalis_identity.store import SessionStore, UserStore
from vitalis_runtime.db import Database
from vitalis_runtime.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unauthenticated,
)

WRONG_CREDENTIALS = "the e-mail address or the password is wrong"


@dataclass(frozen=True)
class SessionPolicy:
    """How long refresh tokens and sessions live."""

    refresh_token_ttl: timedelta = timedelta(days=30)
    session_ttl: timedelta = timedelta(days=90)


@dataclass(frozen=True)
class NewUser:
    """What a person gives to sign up."""

    email: str
    password: str
    given_name: str
    family_name: str
    time_zone: str
    request_id: str = ""


def validate_request_id(value: str) -> str | None:
    """A request id is a UUID (kept in its canonical form), or absent."""
    if not value:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidArgument.for_field("request_id", f"{value!r} is not a UUID") from None


class SignInThrottle(Protocol):
    """Counts failed sign-ins per e-mail address."""

    async def blocked(self, email: str) -> bool:
        """Whether too many attempts failed recently."""
        ...

    async def failed(self, email: str) -> None:
        """Record one failed attempt."""
        ...


class Authentication:
    """Creates users and issues, rotates and revokes their tokens."""

    def __init__(
        self,
        db: Database,
        keyring: KeyRing,
        *,
        passwords: Passwords | None = None,
        policy: SessionPolicy | None = None,
        users: UserStore | None = None,
        sessions: SessionStore | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        throttle: SignInThrottle | None = None,
        audit: AuditTrail | None = None,
    ) -> None:
        self._db = db
        self._throttle = throttle
        self._audit = audit
        self._keyring = keyring
        self._passwords = passwords or Passwords()
        self._policy = policy or SessionPolicy()
        self._users = users or UserStore()
        self._sessions = sessions or SessionStore()
        self._clock = clock

    async def sign_up(
        self, new_user: NewUser, *, user_agent: str = "", client_ip: str = ""
    ) -> tuple[User, IssuedTokens]:
        """Create an account and its user with a password, and start a session."""
        email = normalize_email(new_user.email)
        check_password_rules(new_user.password)
        given_name = validate_name(new_user.given_name, "given_name")
        family_name = validate_name(new_user.family_name, "family_name")
        time_zone = validate_time_zone(new_user.time_zone)
        request_id = validate_request_id(new_user.request_id)
        password_hash = await self._passwords.hash(new_user.password)
        user_id = uuid.uuid4()
        try:
            async with self._db.transaction(user_id=user_id) as conn:
                user = await self._users.create_user(
                    conn,
                    user_id=user_id,
                    account_id=uuid.uuid4(),
                    email=email,
                    given_name=given_name,
                    family_name=family_name,
                    time_zone=time_zone,
                    password_hash=password_hash,
                    signup_request_id=request_id,
                )
                await events.user_created(conn, user)
                tokens = await self._start_session(conn, user, user_agent=user_agent, client_ip=client_ip)
        except AlreadyExists:
            if request_id is None:
                raise
            return await self._repeated_sign_up(email, new_user.password, request_id, user_agent, client_ip)
        return user, tokens

    async def _repeated_sign_up(
        self, email: str, password: str, request_id: str, user_agent: str, client_ip: str
    ) -> tuple[User, IssuedTokens]:
        # A retry of a sign-up that succeeded: the first user, with fresh tokens. Anything else
        # keeps the answer of a taken address.
        taken = AlreadyExists(
            "an account with this e-mail address already exists; sign in instead",
            reason="EMAIL_ALREADY_REGISTERED",
        )
        async with self._db.transaction(user_id=None) as conn:
            found = await self._users.find_credentials_by_email(conn, email)
            if found is None:
                raise taken
            user_id, password_hash = found
            user = await self._users.get_user(conn, user_id)
            if user is None or user.signup_request_id != request_id:
                raise taken
            if not await self._passwords.verify(password_hash, password):
                raise taken
            tokens = await self._start_session(conn, user, user_agent=user_agent, client_ip=client_ip)
        return user, tokens

    async def sign_in(
        self, email: str, password: str, *, user_agent: str = "", client_ip: str = ""
    ) -> IssuedTokens:
        """Check a password and start a session; one message for every kind of failure."""
        try:
            normalized = normalize_email(email)
        except InvalidArgument:
            raise Unauthenticated(WRONG_CREDENTIALS, reason="INVALID_CREDENTIALS") from None
        if self._throttle is not None and await self._throttle.blocked(normalized):
            raise ResourceExhausted(
                "too many failed sign-ins for this e-mail address; wait a few minutes",
                reason="TOO_MANY_SIGN_IN_ATTEMPTS",
            )
        async with self._db.transaction(user_id=None) as conn:
            found = await self._users.find_credentials_by_email(conn, normalized)
            user_id, password_hash = found if found else (None, None)
            if not await self._passwords.verify(password_hash, password) or user_id is None:
                if self._throttle is not None:
                    await self._throttle.failed(normalized)
                raise Unauthenticated(WRONG_CREDENTIALS, reason="INVALID_CREDENTIALS")
            user = await self._users.get_user(conn, user_id)
            if user is None:
                raise Unauthenticated(WRONG_CREDENTIALS, reason="INVALID_CREDENTIALS")
            return await self._start_session(conn, user, user_agent=user_agent, client_ip=client_ip)

    async def refresh(self, refresh_token: str) -> IssuedTokens:
        """Exchange a refresh token for new tokens; reusing a spent one revokes the whole session."""
        token = RefreshToken.decode(refresh_token)
        now = self._clock()
        async with self._db.transaction(user_id=token.user_id) as conn:
            row = await self._sessions.lock_refresh_token(conn, token.user_id, token.token_id)
            if row is None or not token.matches(row["token_hash"]):
                raise Unauthenticated("the refresh token is not valid", reason="INVALID_REFRESH_TOKEN")
            session_id: uuid.UUID = row["session_id"]
            if row["use_time"] is None:
                if row["revoke_time"] is not None:
                    raise Unauthenticated("the session was signed out", reason="SESSION_REVOKED")
                if row["expire_time"] <= now or row["session_expire_time"] <= now:
                    raise Unauthenticated(
                        "the refresh token has expired; sign in again", reason="REFRESH_TOKEN_EXPIRED"
                    )
                await self._sessions.mark_used(conn, token.user_id, token.token_id)
                user = await self._users.get_user(conn, token.user_id)
                if user is None or (user.expire_time is not None and user.expire_time <= now):
                    raise Unauthenticated("the user no longer exists", reason="USER_DELETED")
                await self._sessions.touch(conn, token.user_id, session_id)
                return await self._issue(conn, user, session_id, now=now)
            # A spent token presented again: the session is revoked (committed) before refusing.
            if await self._sessions.revoke_session(
                conn, token.user_id, session_id, RevokeReason.REFRESH_TOKEN_REUSE.value
            ):
                await events.session_revoked(
                    conn, token.user_id, session_id, RevokeReason.REFRESH_TOKEN_REUSE.value
                )
        raise Unauthenticated(
            "this refresh token was already used; the session has been revoked — sign in again",
            reason="REFRESH_TOKEN_REUSED",
        )

    async def sign_out(self, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        """Revoke the caller's session (idempotent)."""
        async with self._db.transaction(user_id=user_id) as conn:
            if await self._sessions.revoke_session(conn, user_id, session_id, RevokeReason.SIGN_OUT.value):
                await events.session_revoked(conn, user_id, session_id, RevokeReason.SIGN_OUT.value)
                if self._audit is not None:
                    await self._audit.record(
                        conn, user_id, AuditAction.AUTHENTICATE, f"users/{user_id}/sessions/{session_id}"
                    )

    async def session_of(self, token: RefreshToken) -> uuid.UUID:
        """The session a (valid, possibly spent) refresh token was issued in."""
        async with self._db.transaction(user_id=token.user_id) as conn:
            row = await self._sessions.lock_refresh_token(conn, token.user_id, token.token_id)
        if row is None or not token.matches(row["token_hash"]):
            raise Unauthenticated("the refresh token is not valid", reason="INVALID_REFRESH_TOKEN")
        session_id: uuid.UUID = row["session_id"]
        return session_id

    async def change_password(
        self, user_id: uuid.UUID, current_session: uuid.UUID | None, current: str, new: str
    ) -> None:
        """Replace the password after checking the current one; every other session is revoked."""
        check_password_rules(new, field="new_password")
        async with self._db.transaction(user_id=user_id) as conn:
            stored = await self._users.password_hash(conn, user_id)
            if stored is None:
                if await self._users.get_user(conn, user_id) is None:
                    raise NotFound(f"user 'users/{user_id}' was not found", reason="USER_NOT_FOUND")
                raise FailedPrecondition(
                    "this user signs in through an external identity provider and has no password",
                    reason="NO_PASSWORD",
                )
            if not await self._passwords.verify(stored, current):
                raise Unauthenticated("the current password is wrong", reason="INVALID_CREDENTIALS")
            await self._users.set_password_hash(conn, user_id, await self._passwords.hash(new))
            if self._audit is not None:
                await self._audit.record(conn, user_id, AuditAction.UPDATE, f"users/{user_id}/password")
            await self._sessions.revoke_other_sessions(
                conn, user_id, current_session, RevokeReason.PASSWORD_CHANGED.value
            )

    async def start_external_session(self, user: User, *, user_agent: str = "") -> IssuedTokens:
        """Open a session for a user who proved who they are through an external provider."""
        async with self._db.transaction(user_id=user.user_id) as conn:
            return await self._start_session(conn, user, user_agent=user_agent, auth_method="external")

    async def _start_session(
        self,
        conn: asyncpg.Connection,
        user: User,
        *,
        user_agent: str,
        client_ip: str = "",
        auth_method: str = "password",
    ) -> IssuedTokens:
        now = self._clock()
        session_id = uuid.uuid4()
        await self._sessions.create_session(
            conn,
            user_id=user.user_id,
            session_id=session_id,
            expire_time=now + self._policy.session_ttl,
            user_agent=user_agent,
            client_ip=client_ip,
            auth_method=auth_method,
        )
        if self._audit is not None:
            await self._audit.record(
                conn,
                user.user_id,
                AuditAction.AUTHENTICATE,
                f"{user.name}/sessions/{session_id}",
                user_agent=user_agent,
                client_ip=client_ip,
                actor=user.name,
            )
        return await self._issue(conn, user, session_id, now=now)

    async def _issue(
        self, conn: asyncpg.Connection, user: User, session_id: uuid.UUID, *, now: datetime
    ) -> IssuedTokens:
        refresh = RefreshToken.issue(user.user_id)
        refresh_expire = now + self._policy.refresh_token_ttl
        await self._sessions.add_refresh_token(
            conn,
            user_id=user.user_id,
            token_id=refresh.token_id,
            session_id=session_id,
            token_hash=refresh.secret_hash,
            expire_time=refresh_expire,
        )
        access, access_expire = await self._keyring.sign_access_token(
            user_id=user.user_id, session_id=session_id, account_id=user.account_id
        )
        return IssuedTokens(
            access_token=access,
            access_expire_time=access_expire,
            refresh_token=refresh.encode(),
            refresh_expire_time=refresh_expire,
            user_id=user.user_id,
            session_id=session_id,
        )
