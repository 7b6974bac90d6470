"""Password rules and hashing (argon2id)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from vitalis_runtime.errors import InvalidArgument

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256


def check_password_rules(password: str) -> None:
    """Reject passwords too short to resist guessing or too long to hash cheaply."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidArgument.for_field(
            "password", f"must be at least {MIN_PASSWORD_LENGTH} characters", reason="PASSWORD_TOO_SHORT"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidArgument.for_field("password", f"must be at most {MAX_PASSWORD_LENGTH} characters")


class Passwords:
    """Hashes and verifies passwords off the event loop."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        # A real hash to verify against when the user does not exist, so timing does not
        # reveal which e-mail addresses have accounts.
        self._decoy = self._hasher.hash("decoy password that never matches")

    async def hash(self, password: str) -> str:
        """An argon2id hash of ``password``."""
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches; a missing hash costs the same time and fails."""
        target = password_hash or self._decoy
        try:
            await asyncio.to_thread(self._hasher.verify, target, password)
        except (VerificationError, InvalidHashError):
            return False
        return password_hash is not None
