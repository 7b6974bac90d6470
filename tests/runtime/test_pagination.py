"""AIP-158 page sizes and page tokens (no servers)."""

from __future__ import annotations

import base64
import json

import pytest

from vitalis_runtime import errors
from vitalis_runtime.pagination import PageTokens, page_tokens_from, resolve_page_size
from vitalis_runtime.settings import ServiceSettings

SECRET = b"0123456789abcdef0123456789abcdef"
REQUEST = {"parent": "users/7", "filter": "code = '718-7'", "order_by": "", "user": "7"}
CURSOR = {"after_time": "2024-05-01T00:00:00+00:00", "after_id": "a1b2"}


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_zero_page_size_means_the_default() -> None:
    assert resolve_page_size(0, default=25) == 25


def test_page_size_over_the_maximum_is_coerced() -> None:
    assert resolve_page_size(5000, maximum=1000) == 1000
    assert resolve_page_size(10, maximum=1000) == 10


def test_negative_page_size_is_invalid_argument_on_page_size() -> None:
    with pytest.raises(errors.InvalidArgument) as raised:
        resolve_page_size(-1)

    assert [violation.field for violation in raised.value.violations] == ["page_size"]


def test_token_round_trips_the_cursor() -> None:
    tokens = PageTokens(SECRET)

    token = tokens.encode(CURSOR, request=REQUEST)

    assert tokens.decode(token, request=REQUEST) == CURSOR


def test_empty_token_is_the_first_page() -> None:
    assert PageTokens(SECRET).decode("", request=REQUEST) == {}


def test_page_size_may_change_between_pages() -> None:
    tokens = PageTokens(SECRET)
    token = tokens.encode(CURSOR, request={**REQUEST, "page_size": 10})

    assert tokens.decode(token, request={**REQUEST, "page_size": 50, "page_token": token}) == CURSOR


@pytest.mark.parametrize("changed", [{"filter": "code = '2345-7'"}, {"user": "8"}, {"parent": "users/8"}])
def test_token_reused_with_other_parameters_is_refused(changed: dict[str, str]) -> None:
    tokens = PageTokens(SECRET)
    token = tokens.encode(CURSOR, request=REQUEST)

    with pytest.raises(errors.InvalidArgument, match="other parameters") as raised:
        tokens.decode(token, request={**REQUEST, **changed})

    assert raised.value.violations[0].field == "page_token"


def test_altered_cursor_is_refused() -> None:
    tokens = PageTokens(SECRET)
    body, signature = tokens.encode(CURSOR, request=REQUEST).split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["c"]["after_id"] = "zzzz"
    forged_body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()

    with pytest.raises(errors.InvalidArgument, match="not a page token"):
        tokens.decode(f"{forged_body}.{signature}", request=REQUEST)


def test_token_signed_with_another_secret_is_refused() -> None:
    token = PageTokens(b"another secret of 32 bytes......").encode(CURSOR, request=REQUEST)

    with pytest.raises(errors.InvalidArgument):
        PageTokens(SECRET).decode(token, request=REQUEST)


@pytest.mark.parametrize("garbage", ["x", "a.b.c", "!!!.???", "e30.", "." * 5000])
def test_garbage_token_is_invalid_argument(garbage: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        PageTokens(SECRET).decode(garbage, request=REQUEST)


def test_token_expires_after_a_day() -> None:
    clock = FakeClock()
    tokens = PageTokens(SECRET, clock=clock)
    token = tokens.encode(CURSOR, request=REQUEST)

    clock.now += 23 * 3600
    assert tokens.decode(token, request=REQUEST) == CURSOR
    clock.now += 2 * 3600
    with pytest.raises(errors.InvalidArgument, match="expired"):
        tokens.decode(token, request=REQUEST)


def test_token_of_the_previous_secret_is_still_accepted_after_rotation() -> None:
    old_secret = b"the previous secret, 32 bytes..."
    token = PageTokens(old_secret).encode(CURSOR, request=REQUEST)

    assert PageTokens(SECRET, previous_secrets=[old_secret]).decode(token, request=REQUEST) == CURSOR


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        PageTokens(b"short")


def test_token_is_url_safe() -> None:
    token = PageTokens(SECRET).encode({"after": "?&/+= é"}, request=REQUEST)

    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def settings_with(secret: str, previous: str = "") -> ServiceSettings:
    return ServiceSettings(
        service_name="panels",
        grpc_port=0,
        database_url="postgresql://app@db/vitalis",
        redis_url="redis://cache:6379/0",
        page_token_secret=secret,
        page_token_previous_secrets=previous,
    )


def test_page_tokens_from_settings_survive_a_rotation_in_both_directions() -> None:
    old, new = "o" * 40, "n" * 40
    before = page_tokens_from(settings_with(old))
    accepting_new = page_tokens_from(settings_with(old, previous=new))
    signing_new = page_tokens_from(settings_with(new, previous=old))
    after = page_tokens_from(settings_with(new))
    issued_before = before.encode(CURSOR, request=REQUEST)
    issued_during = signing_new.encode(CURSOR, request=REQUEST)

    assert signing_new.decode(issued_before, request=REQUEST) == CURSOR
    assert accepting_new.decode(issued_during, request=REQUEST) == CURSOR
    assert accepting_new.decode(accepting_new.encode(CURSOR, request=REQUEST), request=REQUEST) == CURSOR
    with pytest.raises(errors.InvalidArgument, match="not a page token issued by this service"):
        before.decode(issued_during, request=REQUEST)
    with pytest.raises(errors.InvalidArgument, match="not a page token issued by this service"):
        after.decode(issued_before, request=REQUEST)
