"""Shard leases of a consumer group, against the real Redis."""

from __future__ import annotations

import asyncio

import redis.asyncio

from vitalis_runtime.leases import StreamLeases


def leases_for(
    client: redis.asyncio.Redis, key_prefix: str, consumer: str, lease_ms: int = 10_000
) -> StreamLeases:
    streams = [f"{key_prefix}:events:{{p:{index:02d}}}" for index in range(4)]
    return StreamLeases(client, group="g", consumer=consumer, streams=streams, lease_ms=lease_ms)


async def test_lone_consumer_reads_every_shard(redis_client: redis.asyncio.Redis, key_prefix: str) -> None:
    alone = leases_for(redis_client, key_prefix, "alone")

    changes = await alone.refresh()

    assert len(changes.held) == 4
    assert changes.acquired == changes.held


async def test_shards_are_split_when_a_second_consumer_joins(
    redis_client: redis.asyncio.Redis, key_prefix: str
) -> None:
    first, second = (
        leases_for(redis_client, key_prefix, "first"),
        leases_for(redis_client, key_prefix, "second"),
    )
    await first.refresh()

    assert (await second.refresh()).held == []
    assert len((await first.refresh()).held) == 2
    assert len((await second.refresh()).held) == 2
    assert set(first.held).isdisjoint(second.held)
    assert len(set(first.held) | set(second.held)) == 4


async def test_released_shards_go_to_the_remaining_consumer(
    redis_client: redis.asyncio.Redis, key_prefix: str
) -> None:
    first, second = (
        leases_for(redis_client, key_prefix, "first"),
        leases_for(redis_client, key_prefix, "second"),
    )
    await first.refresh()
    await second.refresh()
    await first.refresh()
    await second.refresh()

    await first.release_all()

    assert len((await second.refresh()).held) == 4


async def test_lease_of_a_silent_consumer_expires(redis_client: redis.asyncio.Redis, key_prefix: str) -> None:
    silent = leases_for(redis_client, key_prefix, "silent", lease_ms=200)
    heir = leases_for(redis_client, key_prefix, "heir", lease_ms=200)
    await silent.refresh()
    assert (await heir.refresh()).held == []

    await asyncio.sleep(0.3)

    changes = await heir.refresh()
    assert len(changes.held) == 4
    assert changes.acquired == changes.held
