"""Verified access tokens remembered for a short while, so a client repeating its token costs little.

Verifying an ES256 token (parsing it, checking the signature, the claims) is most of what a small
read spends in a service. A client sends the same token on every call until it expires, so the
principal a token was verified as is kept, keyed by the exact token text, until the earlier of the
token's own expiry and ``max_age_seconds`` after its verification. The bound on age is what lets a
change outside the token take effect: a signing key withdrawn from identity's JWKS, or an external
identity linked to another user, refuses the token again within ``max_age_seconds``.

Only successes are kept (a refused token is verified afresh every time) and only user tokens:
service tokens are minted per call and would only crowd the cache out. The cache holds at most
``max_entries`` tokens; when full, the oldest entry goes first.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from vitalis_runtime.auth import Principal
from vitalis_runtime.service_auth import CallerVerifier

DEFAULT_MAX_AGE_SECONDS = 30.0
DEFAULT_MAX_ENTRIES = 10_000

Clock = Callable[[], float]


class CachingVerifier:
    """A :class:`CallerVerifier` that remembers what ``verifier`` accepted, bounded in age and size."""

    def __init__(
        self,
        verifier: CallerVerifier,
        *,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Clock = time.time,
    ) -> None:
        """Remember ``verifier``'s principals for at most ``max_age_seconds`` each, ``max_entries`` in all.

        ``clock`` gives seconds since the epoch (tokens' expiry times are wall-clock times).
        """
        if max_age_seconds <= 0 or max_entries <= 0:
            raise ValueError("max_age_seconds and max_entries must be positive")
        self._verifier = verifier
        self._max_age = max_age_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[Principal, float]] = {}

    def __len__(self) -> int:
        """How many verified tokens are held (expired ones included until they are next looked up)."""
        return len(self._entries)

    async def verify(self, token: str) -> Principal:
        """The principal ``token`` was verified as, while remembered; otherwise verify it now."""
        now = self._clock()
        entry = self._entries.get(token)
        if entry is not None:
            principal, valid_until = entry
            if now < valid_until:
                return principal
            del self._entries[token]
        principal = await self._verifier.verify(token)
        if principal.service is None:
            self._remember(token, principal, now)
        return principal

    def _remember(self, token: str, principal: Principal, verified_at: float) -> None:
        valid_until = min(principal.expire_time.timestamp(), verified_at + self._max_age)
        if valid_until <= verified_at:
            return
        while len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[token] = (principal, valid_until)
