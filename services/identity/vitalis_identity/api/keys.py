"""vitalis.identity.v1.SigningKeyInternalService."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from vitalis.identity.v1 import signing_key_internal_service_pb2 as keys_pb2
from vitalis.identity.v1 import signing_key_internal_service_pb2_grpc, signing_key_pb2
from vitalis_identity.api.context import Context
from vitalis_identity.api.convert import timestamp
from vitalis_identity.domain.filters import parse_filter
from vitalis_identity.domain.keys import StoredKey
from vitalis_identity.keyring import KeyRing
from vitalis_identity.listing import EQUALITY
from vitalis_identity.paging import Pager
from vitalis_runtime.errors import InvalidArgument

STATES = {
    "pending": signing_key_pb2.SIGNING_KEY_STATE_PENDING,
    "active": signing_key_pb2.SIGNING_KEY_STATE_ACTIVE,
    "retired": signing_key_pb2.SIGNING_KEY_STATE_RETIRED,
    "expired": signing_key_pb2.SIGNING_KEY_STATE_EXPIRED,
    "revoked": signing_key_pb2.SIGNING_KEY_STATE_REVOKED,
}
STATE_NAMES = {signing_key_pb2.SigningKeyState.Name(v): k for k, v in STATES.items()}


def key_to_proto(
    key: StoredKey, keys: Sequence[StoredKey], current: str | None
) -> signing_key_pb2.SigningKey:
    """The operator's view of a key: its rotation times and public JWK."""
    now = datetime.now(UTC)
    message = signing_key_pb2.SigningKey(
        name=f"signingKeys/{key.kid}",
        key_id=key.kid,
        algorithm=key.algorithm,
        state=STATES[key.state(now, current)],
        public_jwk=json.dumps(dict(key.public_jwk), sort_keys=True),
        create_time=timestamp(key.create_time),
        activate_time=timestamp(key.activate_time),
        expire_time=timestamp(key.retire_time),
    )
    successors = [
        k.activate_time for k in keys if k.activate_time > key.activate_time and k.revoke_time is None
    ]
    if successors and min(successors) <= now:
        message.retire_time.CopyFrom(timestamp(min(successors)))
    if key.revoke_time is not None:
        message.revoke_time.CopyFrom(timestamp(key.revoke_time))
    return message


class SigningKeyInternalServicer(signing_key_internal_service_pb2_grpc.SigningKeyInternalServiceServicer):
    """Operators' view and control of the signing keys."""

    def __init__(self, keyring: KeyRing, pager: Pager) -> None:
        self._keyring = keyring
        self._pager = pager

    async def ListSigningKeys(
        self, request: keys_pb2.ListSigningKeysRequest, context: Context
    ) -> keys_pb2.ListSigningKeysResponse:
        """Keys newest first, optionally of one state."""
        comparisons = parse_filter(request.filter, {"state": EQUALITY})
        keys, current = await self._keyring.describe()
        now = datetime.now(UTC)
        selected = list(keys)
        for comparison in comparisons:
            if comparison.value not in STATE_NAMES:
                raise InvalidArgument.for_field("filter", f"{comparison.value!r} is not a SigningKeyState")
            wanted = STATE_NAMES[comparison.value]
            selected = [
                k for k in selected if (k.state(now, current) == wanted) == (comparison.operator == "=")
            ]
        fingerprint = {"filter": request.filter, "method": "ListSigningKeys"}
        size, cursor = self._pager.start(request.page_size, request.page_token, fingerprint)
        offset = int(cursor.get("offset", 0))
        page = selected[offset : offset + size]
        token = ""
        if offset + size < len(selected):
            token = self._pager.encode({"offset": offset + size}, fingerprint)
        return keys_pb2.ListSigningKeysResponse(
            signing_keys=[key_to_proto(k, keys, current) for k in page], next_page_token=token
        )

    async def RotateSigningKey(
        self, request: keys_pb2.RotateSigningKeyRequest, context: Context
    ) -> signing_key_pb2.SigningKey:
        """Create the successor key now."""
        created = await self._keyring.rotate(request.request_id or None)
        keys, current = await self._keyring.describe()
        return key_to_proto(created, keys, current)

    async def RevokeSigningKey(
        self, request: keys_pb2.RevokeSigningKeyRequest, context: Context
    ) -> signing_key_pb2.SigningKey:
        """Take a key out of the JWKS at once."""
        prefix, _, kid = request.name.partition("/")
        if prefix != "signingKeys" or not kid:
            raise InvalidArgument.for_field(
                "name", f"{request.name!r} is not of the form signingKeys/{{key}}"
            )
        revoked = await self._keyring.revoke(kid)
        keys, current = await self._keyring.describe()
        return key_to_proto(revoked, keys, current)
