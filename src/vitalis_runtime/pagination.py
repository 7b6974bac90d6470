"""AIP-158 pagination: page sizes and opaque, tamper-evident page tokens.

A page token carries the store's cursor (for keyset pagination, the sort key of the last row
returned) as base64url JSON signed with HMAC-SHA256. It is bound to a fingerprint of the request's
other parameters (parent, filter, order_by and the calling user), so a token replayed with another
filter or by another user is refused, and it expires after a day. ``page_size`` may change from
one page to the next, so it is not part of the fingerprint.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

from vitalis_runtime import errors

if TYPE_CHECKING:
    from vitalis_runtime.settings import ServiceSettings

TOKEN_VERSION: Final = 1
MAX_TOKEN_LENGTH: Final = 4096
CLOCK_SKEW_SECONDS: Final = 300
_UNBOUND_PARAMETERS: Final = frozenset({"page_token", "page_size"})


def resolve_page_size(requested: int, *, default: int = 50, maximum: int = 1000) -> int:
    """The page size to use: 0 means ``default``, anything above ``maximum`` is coerced to it.

    A negative size is ``errors.InvalidArgument`` on ``page_size``.
    """
    if requested < 0:
        raise errors.InvalidArgument.for_field("page_size", "must not be negative")
    if requested == 0:
        return min(default, maximum)
    return min(requested, maximum)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _invalid(description: str) -> errors.InvalidArgument:
    return errors.InvalidArgument.for_field("page_token", description, reason="INVALID_PAGE_TOKEN")


class PageTokens:
    """Issues and checks page tokens with a server-side secret.

    ``previous_secrets`` are still accepted when decoding, so the secret can be rotated without
    breaking the tokens clients hold.
    """

    def __init__(
        self,
        secret: bytes,
        *,
        previous_secrets: Sequence[bytes] = (),
        max_age: timedelta = timedelta(days=1),
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Sign with ``secret`` (at least 16 bytes); tokens older than ``max_age`` are refused."""
        for key in (secret, *previous_secrets):
            if len(key) < 16:
                raise ValueError("a page token secret must be at least 16 bytes long")
        self._secret = secret
        self._verifying_secrets = (secret, *previous_secrets)
        self._max_age = max_age.total_seconds()
        self._clock = clock

    def encode(self, cursor: Mapping[str, Any], *, request: Mapping[str, Any]) -> str:
        """A token for the page after ``cursor`` of this ``request`` (cursor values must be JSON)."""
        body = json.dumps(
            {
                "v": TOKEN_VERSION,
                "c": dict(cursor),
                "r": self._fingerprint(self._secret, request),
                "t": int(self._clock()),
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        encoded_body = _b64encode(body)
        return f"{encoded_body}.{_b64encode(self._sign(self._secret, encoded_body))}"

    def decode(self, token: str, *, request: Mapping[str, Any]) -> dict[str, Any]:
        """The cursor inside ``token``; ``{}`` for an empty token (the first page).

        Raises ``errors.InvalidArgument`` on ``page_token`` when the token is malformed,
        altered, expired, or was issued for other request parameters.
        """
        if not token:
            return {}
        if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
            raise _invalid("is not a page token issued by this service")
        encoded_body, encoded_signature = token.split(".")
        try:
            signature = _b64decode(encoded_signature)
            secret = next(
                (
                    key
                    for key in self._verifying_secrets
                    if hmac.compare_digest(self._sign(key, encoded_body), signature)
                ),
                None,
            )
            if secret is None:
                raise _invalid("is not a page token issued by this service")
            payload = json.loads(_b64decode(encoded_body))
        except (binascii.Error, ValueError) as error:
            raise _invalid("is not a page token issued by this service") from error
        return self._checked_cursor(payload, secret, request)

    def _checked_cursor(self, payload: Any, secret: bytes, request: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(payload, dict) or payload.get("v") != TOKEN_VERSION:
            raise _invalid("is not a page token issued by this service")
        issued_at, cursor = payload.get("t"), payload.get("c")
        if not isinstance(issued_at, int) or not isinstance(cursor, dict):
            raise _invalid("is not a page token issued by this service")
        if not hmac.compare_digest(str(payload.get("r")), self._fingerprint(secret, request)):
            raise _invalid(
                "was issued for a request with other parameters; keep them unchanged between pages"
            )
        age = self._clock() - issued_at
        if age > self._max_age or age < -CLOCK_SKEW_SECONDS:
            raise _invalid("has expired; start again from the first page")
        return cursor

    @staticmethod
    def _sign(secret: bytes, encoded_body: str) -> bytes:
        return hmac.new(secret, b"page-token\x00" + encoded_body.encode(), hashlib.sha256).digest()

    @staticmethod
    def _fingerprint(secret: bytes, request: Mapping[str, Any]) -> str:
        bound = {key: value for key, value in request.items() if key not in _UNBOUND_PARAMETERS}
        canonical = json.dumps(bound, separators=(",", ":"), sort_keys=True, default=str).encode()
        digest = hmac.new(secret, b"page-request\x00" + canonical, hashlib.sha256).digest()
        return _b64encode(digest[:16])


def page_tokens_from(settings: ServiceSettings, *, max_age: timedelta = timedelta(days=1)) -> PageTokens:
    """The page tokens of a service: signed with ``VITALIS_PAGE_TOKEN_SECRET``, verified with it and
    with ``VITALIS_PAGE_TOKEN_PREVIOUS_SECRETS``, so a rotation does not break the listings in progress.
    """
    return PageTokens(
        settings.page_token_secret.get_secret_value().encode(),
        previous_secrets=[
            secret.get_secret_value().encode() for secret in settings.page_token_previous_secrets
        ],
        max_age=max_age,
    )
