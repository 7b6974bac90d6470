"""The daily allowance of written texts (narratives on request, coach answers) by account tier."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Protocol

import asyncpg
import grpc

from vitalis.identity.v1 import account_pb2, account_service_pb2, account_service_pb2_grpc
from vitalis_runtime.errors import ResourceExhausted, Unavailable
from vitalis_runtime.service_auth import ServiceCredentials


class TierReader(Protocol):
    """The subscription tier of a user's account."""

    async def tier(self, user_id: uuid.UUID, account_id: str) -> int:
        """An ``AccountTier`` value; FREE when it cannot be told."""
        ...


class GrpcTierReader:
    """identity's AccountService.GetAccount, acting for the user."""

    def __init__(self, channel: grpc.aio.Channel, credentials: ServiceCredentials) -> None:
        self._stub = account_service_pb2_grpc.AccountServiceStub(channel)
        self._credentials = credentials

    async def tier(self, user_id: uuid.UUID, account_id: str) -> int:
        """The account's tier."""
        try:
            account = await self._stub.GetAccount(
                account_service_pb2.GetAccountRequest(name=f"accounts/{account_id}"),
                metadata=self._credentials.metadata(user_id),
                timeout=10.0,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise Unavailable("identity cannot be reached", reason="DEPENDENCY_UNAVAILABLE") from error
            return account_pb2.ACCOUNT_TIER_FREE
        return account.tier or account_pb2.ACCOUNT_TIER_FREE


class DailyAllowance:
    """Refuses a text beyond the day's allowance of the user's tier (UTC days)."""

    def __init__(self, limits: Mapping[int, int], tiers: TierReader | None) -> None:
        self._limits = limits
        self._tiers = tiers

    async def check(self, conn: asyncpg.Connection, user_id: uuid.UUID, account_id: str | None) -> None:
        """Raise RESOURCE_EXHAUSTED when the user has used up today's texts."""
        tier: int = account_pb2.ACCOUNT_TIER_FREE
        if self._tiers is not None and account_id:
            tier = await self._tiers.tier(user_id, account_id)
        limit = self._limits.get(tier, self._limits[account_pb2.ACCOUNT_TIER_FREE])
        used: int = await conn.fetchval(
            """SELECT (SELECT count(*) FROM narratives
                       WHERE user_id = $1 AND NOT automatic
                         AND create_time >= date_trunc('day', now(), 'UTC'))
                    + (SELECT count(*) FROM messages
                       WHERE user_id = $1 AND role = 2 AND create_time >= date_trunc('day', now(), 'UTC'))""",
            user_id,
        )
        if used >= limit:
            raise ResourceExhausted(
                f"today's allowance of {limit} written texts is used up; it renews at midnight UTC",
                reason="DAILY_ALLOWANCE_EXHAUSTED",
                metadata={"limit": str(limit)},
            )
