"""What ingestion asks identity: a user's profile time zone (cached briefly)."""

from __future__ import annotations

import logging
import time
import uuid
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc

from vitalis.identity.v1 import user_service_pb2, user_service_pb2_grpc
from vitalis_runtime.service_auth import ServiceCredentials

logger = logging.getLogger(__name__)
CACHE_SECONDS = 300.0


class IdentityTimeZones:
    """Reads ``UserService.GetUser`` on behalf of the user; falls back to UTC when identity cannot answer."""

    def __init__(self, channel: grpc.aio.Channel, credentials: ServiceCredentials) -> None:
        self._stub = user_service_pb2_grpc.UserServiceStub(channel)
        self._credentials = credentials
        self._cache: dict[uuid.UUID, tuple[float, str]] = {}

    async def time_zone_of(self, user_id: uuid.UUID) -> str:
        """The profile's IANA time zone, ``UTC`` when it has none."""
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        zone = "UTC"
        try:
            user = await self._stub.GetUser(
                user_service_pb2.GetUserRequest(name=f"users/{user_id}"),
                metadata=self._credentials.metadata(user_id),
                timeout=5.0,
            )
            ZoneInfo(user.time_zone or "UTC")
            zone = user.time_zone or "UTC"
        except grpc.aio.AioRpcError as error:
            logger.warning("could not read the time zone of user %s: %s", user_id, error.code())
            return zone
        except (ZoneInfoNotFoundError, ValueError):
            logger.warning("user %s has an unknown time zone in their profile", user_id)
        self._cache[user_id] = (time.monotonic() + CACHE_SECONDS, zone)
        return zone
