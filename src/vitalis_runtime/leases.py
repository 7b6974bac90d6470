"""Which shards of a consumer group each replica reads, so one user's events are handled in order.

Redis hands the entries of one stream to whichever consumer of a group asks first; two replicas
reading the same shard would handle one user's consecutive events concurrently. So each shard
stream is leased to one consumer of the group at a time (``SET NX PX`` on a key with the
stream's hash tag, renewed while the consumer lives), and the shards are spread evenly: every
consumer announces itself in a membership set and holds at most its fair share
(``ceil(shards / live consumers)``), releasing extras when a replica joins. A lease that is not
renewed (the replica died) expires after ``lease_ms`` and another consumer takes the shard over,
first claiming the entries the previous holder left pending.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class LeaseChanges:
    """The outcome of one refresh: streams held now, and those among them acquired just now."""

    held: list[str]
    acquired: list[str]


class StreamLeases:
    """The leases one consumer holds on the streams of its group."""

    def __init__(
        self,
        redis_client: redis.asyncio.Redis,
        *,
        group: str,
        consumer: str,
        streams: Sequence[str],
        lease_ms: int,
    ) -> None:
        """``consumer`` must be unique among the live members of ``group`` (pod name plus a suffix)."""
        if not streams:
            raise ValueError("a consumer needs at least one stream")
        self._redis = redis_client
        self._group = group
        self._consumer = consumer
        self._streams = list(streams)
        self._lease_ms = lease_ms
        self._members_key = f"{self._streams[0]}:members:{group}"
        self._held: list[str] = []
        self._renew = redis_client.register_script(_RENEW)
        self._release = redis_client.register_script(_RELEASE)

    def _lease_key(self, stream: str) -> str:
        return f"{stream}:lease:{self._group}"

    @property
    def held(self) -> list[str]:
        """The streams leased at the last refresh."""
        return list(self._held)

    async def refresh(self) -> LeaseChanges:
        """Renew held leases, release any above the fair share, acquire free ones up to it."""
        fair_share = await self._fair_share()
        still_held = [stream for stream in self._held if await self._renewed(stream)]
        while len(still_held) > fair_share:
            await self._release(keys=[self._lease_key(still_held.pop())], args=[self._consumer])
        acquired: list[str] = []
        for stream in self._preferred_order():
            if len(still_held) + len(acquired) >= fair_share:
                break
            if stream in still_held:
                continue
            if await self._redis.set(self._lease_key(stream), self._consumer, nx=True, px=self._lease_ms):
                acquired.append(stream)
        self._held = [stream for stream in self._streams if stream in still_held or stream in acquired]
        return LeaseChanges(
            held=list(self._held), acquired=[stream for stream in self._streams if stream in acquired]
        )

    async def renew(self) -> list[str]:
        """Extend the held leases without taking new ones; return those still held."""
        self._held = [stream for stream in self._held if await self._renewed(stream)]
        return list(self._held)

    async def release_all(self) -> None:
        """Give every lease back at once (on shutdown), so another replica need not wait for expiry."""
        for stream in self._held:
            await self._release(keys=[self._lease_key(stream)], args=[self._consumer])
        self._held = []
        await self._redis.zrem(self._members_key, self._consumer)

    async def _fair_share(self) -> int:
        seconds, microseconds = await self._redis.time()
        now_ms = int(seconds) * 1000 + int(microseconds) // 1000
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._members_key, {self._consumer: now_ms})
            pipe.zremrangebyscore(self._members_key, "-inf", now_ms - self._lease_ms)
            pipe.zcard(self._members_key)
            pipe.pexpire(self._members_key, self._lease_ms * 2)
            replies = await pipe.execute()
        live_members = max(1, int(replies[2]))
        return math.ceil(len(self._streams) / live_members)

    async def _renewed(self, stream: str) -> bool:
        return bool(await self._renew(keys=[self._lease_key(stream)], args=[self._consumer, self._lease_ms]))

    def _preferred_order(self) -> list[str]:
        # Start at a consumer-specific offset so that replicas starting together try different shards.
        offset = zlib.crc32(self._consumer.encode()) % len(self._streams)
        return self._streams[offset:] + self._streams[:offset]
