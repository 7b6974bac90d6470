"""Password rules and hashing (argon2id)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from vitalis_runtime.errors import InvalidArgument

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 128
# The most used passwords of public breach corpora that are long enough to pass the length rule.
COMMON_PASSWORDS = frozenset(
    {
        "123456789012",
        "1234567890123",
        "12345678901234",
        "qwertyuiop123",
        "password1234",
        "password12345",
        "password123456",
        "passwordpassword",
        "iloveyou1234",
        "qwertyuiopasdf",
        "111111111111",
        "000000000000",
        "abc123456789",
        "letmein12345",
        "welcome12345",
        "administrator",
        "1q2w3e4r5t6y",
        "qwerty123456",
        "football1234",
        "baseball1234",
        "sunshine1234",
        "princess1234",
        "trustno1trustno1",
        "changeme1234",
        "monkey123456",
        "dragon123456",
        "master123456",
        "aaaaaaaaaaaa",
        "asdfghjkl123",
        "zxcvbnm12345",
    }
)


def check_password_rules(password: str, *, field: str = "password") -> None:
    """Reject passwords too short to resist guessing, too long to hash cheaply, or commonly used."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidArgument.for_field(
            field, f"must be at least {MIN_PASSWORD_LENGTH} characters", reason="PASSWORD_TOO_SHORT"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidArgument.for_field(
            field, f"must be at most {MAX_PASSWORD_LENGTH} characters", reason="PASSWORD_TOO_LONG"
        )
    if password.lower() in COMMON_PASSWORDS or len(set(password)) < 4:
        raise InvalidArgument.for_field(
            field, "is a commonly used password; choose another", reason="PASSWORD_TOO_COMMON"
        )


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
