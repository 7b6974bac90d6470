"""Verified tokens remembered for a short while: what is reused, for how long, and what never is."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest

from vitalis_runtime.auth import Principal
from vitalis_runtime.auth_cache import CachingVerifier
from vitalis_runtime.errors import Unauthenticated
from vitalis_runtime.service_auth import ServiceCredentials, accepting_service_tokens
from vitalis_runtime.testing_auth import LocalSigningKey

SERVICE_SECRET = "s" * 40


class WallClock:
    """Seconds since the epoch, starting now, moved by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class CountingVerifier:
    """Verifies with a real verifier and counts how often it is asked."""

    def __init__(self, key: LocalSigningKey) -> None:
        self._verifier = accepting_service_tokens(key.verifier(), SERVICE_SECRET)
        self.calls = 0

    async def verify(self, token: str) -> Principal:
        self.calls += 1
        assert self._verifier is not None
        return await self._verifier.verify(token)


@pytest.fixture
def key() -> LocalSigningKey:
    return LocalSigningKey.generate()


@pytest.fixture
def inner(key: LocalSigningKey) -> CountingVerifier:
    return CountingVerifier(key)


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


async def test_a_repeated_token_is_verified_once(
    key: LocalSigningKey, inner: CountingVerifier, clock: WallClock
) -> None:
    cache = CachingVerifier(inner, clock=clock)
    user_id = uuid.uuid4()
    token = key.mint(user_id)

    first = await cache.verify(token)
    clock.now += 10
    second = await cache.verify(token)

    assert inner.calls == 1
    assert first == second
    assert second.user_id == user_id


async def test_a_remembered_token_is_verified_again_after_the_maximum_age(
    key: LocalSigningKey, inner: CountingVerifier, clock: WallClock
) -> None:
    cache = CachingVerifier(inner, max_age_seconds=30, clock=clock)
    token = key.mint(lifetime=timedelta(minutes=10))

    await cache.verify(token)
    clock.now += 31
    await cache.verify(token)

    assert inner.calls == 2


async def test_a_token_is_not_reused_past_its_own_expiry(
    key: LocalSigningKey, inner: CountingVerifier, clock: WallClock
) -> None:
    cache = CachingVerifier(inner, max_age_seconds=300, clock=clock)
    token = key.mint(lifetime=timedelta(seconds=20))

    await cache.verify(token)
    clock.now += 21
    # The inner verifier runs again (and here still accepts within its leeway); nothing stale is served.
    await cache.verify(token)

    assert inner.calls == 2


async def test_a_refused_token_is_refused_every_time(
    key: LocalSigningKey, inner: CountingVerifier, clock: WallClock
) -> None:
    cache = CachingVerifier(inner, clock=clock)
    forged = LocalSigningKey(kid=key.kid, private_key=LocalSigningKey.generate().private_key).mint()

    for _ in range(3):
        with pytest.raises(Unauthenticated):
            await cache.verify(forged)

    assert inner.calls == 3
    assert len(cache) == 0


async def test_a_token_differing_in_one_character_is_verified_on_its_own(
    key: LocalSigningKey, inner: CountingVerifier, clock: WallClock
) -> None:
    cache = CachingVerifier(inner, clock=clock)
    token = key.mint()
    await cache.verify(token)
    head, payload, signature = token.split(".")
    altered = ".".join((head, payload, ("A" if signature[0] != "A" else "B") + signature[1:]))

    with pytest.raises(Unauthenticated):
        await cache.verify(altered)

    assert inner.calls == 2


async def test_service_tokens_are_not_remembered(inner: CountingVerifier, clock: WallClock) -> None:
    cache = CachingVerifier(inner, clock=clock)
    token = ServiceCredentials(SERVICE_SECRET, "documents").token(uuid.uuid4())

    first = await cache.verify(token)
    await cache.verify(token)

    assert first.service == "documents"
    assert inner.calls == 2
    assert len(cache) == 0


async def test_the_cache_holds_at_most_its_bound_dropping_the_oldest(
    key: LocalSigningKey, inner: CountingVerifier, clock: WallClock
) -> None:
    cache = CachingVerifier(inner, max_entries=2, clock=clock)
    oldest, middle, newest = key.mint(), key.mint(), key.mint()
    for token in (oldest, middle, newest):
        await cache.verify(token)

    await cache.verify(middle)
    await cache.verify(newest)
    assert inner.calls == 3
    await cache.verify(oldest)
    assert inner.calls == 4
    assert len(cache) == 2


def test_bounds_must_be_positive(inner: CountingVerifier) -> None:
    with pytest.raises(ValueError, match="positive"):
        CachingVerifier(inner, max_age_seconds=0)
    with pytest.raises(ValueError, match="positive"):
        CachingVerifier(inner, max_entries=0)
