"""The identity service's signing keys: creation, rotation, signing and the published JWKS."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import jwt
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from vitalis_identity import events
from vitalis_identity.domain.keys import KeyInfo, KeySchedule, StoredKey, signing_key, successor_due
from vitalis_identity.store import KeyStore
from vitalis_runtime.background import run_until_stopped
from vitalis_runtime.db import Database
from vitalis_runtime.errors import FailedPrecondition, NotFound, Unavailable

ALGORITHM = "ES256"


def fernet_for(secret: str) -> Fernet:
    """The cipher that protects private keys at rest, derived from the configured secret."""
    digest = hashlib.sha256(b"vitalis.identity.signing-keys\x00" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


@dataclass(frozen=True)
class _LoadedKey:
    info: KeyInfo
    private_key: ec.EllipticCurvePrivateKey
    public_jwk: Mapping[str, Any]


class KeyRing:
    """Signs access tokens with the current key and serves every published key as a JWKS."""

    def __init__(
        self,
        db: Database,
        *,
        secret: str,
        schedule: KeySchedule,
        issuer: str,
        audience: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        store: KeyStore | None = None,
    ) -> None:
        self._db = db
        self._cipher = fernet_for(secret)
        self._schedule = schedule
        self._issuer = issuer
        self._audience = audience
        self._clock = clock
        self._store = store or KeyStore()
        self._keys: list[_LoadedKey] = []
        self._lock = asyncio.Lock()

    @property
    def issuer(self) -> str:
        """The ``iss`` of every token this ring signs."""
        return self._issuer

    @property
    def audience(self) -> str:
        """The ``aud`` of every token this ring signs."""
        return self._audience

    async def refresh(self) -> None:
        """Reload keys, creating the first one or a scheduled successor when due."""
        async with self._lock:
            async with self._db.transaction(user_id=None) as conn:
                await self._store.lock_rotation(conn)
                rows = await self._store.list_keys(conn)
                now = self._clock()
                due = successor_due([info for info, _, _ in rows], now, self._schedule)
                if due is not None:
                    await self._create_key(conn, activate_time=due)
                    rows = await self._store.list_keys(conn)
            self._keys = [self._load(info, encrypted, jwk) for info, encrypted, jwk in rows]

    async def run_rotation(self, stop: asyncio.Event, *, interval: float = 60.0) -> None:
        """Keep keys current until ``stop`` is set (a background task of the service).

        A database outage delays rotation (retried with backoff) but never stops the service.
        """

        async def step() -> bool:
            await self.refresh()
            return False

        await run_until_stopped(step, stop, name="signing-key rotation", idle_delay=interval)

    async def describe(self) -> tuple[list[StoredKey], str | None]:
        """Every key ever created, newest first, and the id of the one signing now."""
        async with self._db.transaction(user_id=None, readonly=True) as conn:
            keys = await self._store.describe_keys(conn)
        now = self._clock()
        current = signing_key(
            [KeyInfo(k.kid, k.activate_time, k.retire_time) for k in keys if k.revoke_time is None], now
        )
        return keys, current.kid if current else None

    async def rotate(self, request_id: str | None, *, immediately: bool = False) -> StoredKey:
        """Create a successor now; it signs from ``publish_ahead`` later (or at once)."""
        async with self._lock:
            async with self._db.transaction(user_id=None) as conn:
                await self._store.lock_rotation(conn)
                if request_id:
                    earlier = await self._store.describe_keys(conn, request_id=request_id)
                    if earlier:
                        return earlier[0]
                now = self._clock()
                live = [k for k in await self._store.describe_keys(conn) if k.revoke_time is None]
                if not immediately and any(k.activate_time > now for k in live):
                    raise FailedPrecondition(
                        "a key is already pending; the rotation is in progress", reason="KEY_PENDING"
                    )
                activate = now if immediately else now + self._schedule.publish_ahead
                kid = await self._create_key(conn, activate_time=activate, request_id=request_id)
                created = next(k for k in await self._store.describe_keys(conn) if k.kid == kid)
            await self._reload()
        return created

    async def revoke(self, kid: str) -> StoredKey:
        """Take a key out of the JWKS at once; revoking the signing key first rotates immediately."""
        keys, current = await self.describe()
        found = next((k for k in keys if k.kid == kid), None)
        if found is None:
            raise NotFound(f"signing key 'signingKeys/{kid}' was not found", reason="SIGNING_KEY_NOT_FOUND")
        if found.state(self._clock(), current) in {"revoked", "expired"}:
            raise FailedPrecondition("the key is already expired or revoked", reason="SIGNING_KEY_ENDED")
        if kid == current:
            await self.rotate(None, immediately=True)
        async with self._lock:
            async with self._db.transaction(user_id=None) as conn:
                await self._store.lock_rotation(conn)
                await self._store.revoke_key(conn, kid)
                revoked = next(k for k in await self._store.describe_keys(conn) if k.kid == kid)
            await self._reload()
        return revoked

    async def _reload(self) -> None:
        async with self._db.transaction(user_id=None, readonly=True) as conn:
            rows = await self._store.list_keys(conn)
        self._keys = [self._load(info, encrypted, jwk) for info, encrypted, jwk in rows]

    async def _create_key(
        self, conn: asyncpg.Connection, *, activate_time: datetime, request_id: str | None = None
    ) -> str:
        private_key = ec.generate_private_key(ec.SECP256R1())
        kid = f"{activate_time:%Y%m%d%H%M}-{secrets.token_hex(4)}"
        jwk = json.loads(ECAlgorithm.to_jwk(private_key.public_key()))
        jwk.update({"kid": kid, "use": "sig", "alg": ALGORITHM})
        pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        info = KeyInfo(kid, activate_time, activate_time + self._schedule.lifetime())
        await self._store.add_key(
            conn,
            info=info,
            algorithm=ALGORITHM,
            encrypted_private_key=self._cipher.encrypt(pem),
            public_jwk=jwk,
            request_id=request_id,
        )
        await events.signing_key_rotated(conn, kid, activate_time)
        return kid

    def _load(self, info: KeyInfo, encrypted: bytes, jwk: Mapping[str, Any]) -> _LoadedKey:
        try:
            pem = self._cipher.decrypt(encrypted)
        except InvalidToken:
            raise Unavailable(
                "the signing keys cannot be decrypted: VITALIS_SIGNING_KEY_SECRET differs from the one "
                "they were created with",
                reason="SIGNING_KEY_UNREADABLE",
            ) from None
        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return _LoadedKey(info, key, jwk)

    def jwks(self) -> dict[str, Any]:
        """Every published key (active, upcoming and recently rotated out)."""
        now = self._clock()
        return {"keys": [dict(k.public_jwk) for k in self._keys if k.info.retire_time > now]}

    async def sign_access_token(
        self, *, user_id: uuid.UUID, session_id: uuid.UUID, account_id: uuid.UUID
    ) -> tuple[str, datetime]:
        """A short-lived access token for a user's session, and when it expires."""
        now = self._clock()
        current = signing_key([k.info for k in self._keys], now)
        if current is None:
            await self.refresh()
            current = signing_key([k.info for k in self._keys], now)
            if current is None:
                raise Unavailable("no signing key is active", reason="NO_SIGNING_KEY")
        loaded = next(k for k in self._keys if k.info.kid == current.kid)
        expire_time = now + self._schedule.access_token_ttl
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user_id),
            "sid": str(session_id),
            "acc": str(account_id),
            "iat": int(now.timestamp()),
            "nbf": int((now - timedelta(seconds=5)).timestamp()),
            "exp": int(expire_time.timestamp()),
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(claims, loaded.private_key, algorithm=ALGORITHM, headers={"kid": current.kid})
        return token, expire_time
