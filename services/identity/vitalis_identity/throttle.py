"""Failed sign-ins counted per e-mail address in Redis, shared by every replica.

The key is a hash of the address, so Redis holds no address in the clear. Known and unknown
addresses are counted alike, so the throttle is no oracle for which addresses have accounts. When
Redis cannot be reached the throttle lets sign-ins through: passwords are still checked, and
locking everyone out during an outage would be worse.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

import redis.asyncio as aioredis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


class RedisSignInThrottle:
    """At most ``max_failures`` failed sign-ins per address within ``window``."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        max_failures: int = 10,
        window: timedelta = timedelta(minutes=15),
        prefix: str = "vitalis:identity:sign-in-failures:",
    ) -> None:
        self._redis = redis
        self._max = max_failures
        self._window = int(window.total_seconds())
        self._prefix = prefix

    def _key(self, email: str) -> str:
        return self._prefix + hashlib.sha256(email.encode()).hexdigest()

    async def blocked(self, email: str) -> bool:
        """Whether the address has used up its failed attempts."""
        try:
            count = await self._redis.get(self._key(email))
        except (RedisError, OSError):
            logger.warning("the sign-in throttle cannot reach Redis; not throttling", exc_info=True)
            return False
        return count is not None and int(count) >= self._max

    async def forget(self, email: str) -> bool:
        """Drop the address's count (erasure); whether there was one."""
        try:
            return bool(await self._redis.delete(self._key(email)))
        except (RedisError, OSError):
            logger.warning("the sign-in throttle cannot reach Redis; count left to expire", exc_info=True)
            return False

    async def failed(self, email: str) -> None:
        """Count one failed attempt; the count expires ``window`` after the first."""
        key = self._key(email)
        try:
            if await self._redis.incr(key) == 1:
                await self._redis.expire(key, self._window)
        except (RedisError, OSError):
            logger.warning("the sign-in throttle cannot reach Redis; not counting", exc_info=True)
