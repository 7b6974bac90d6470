"""SQL for idempotent requests: what an earlier call with the same request id produced."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class RequestResult:
    """The resource an earlier call created, or its serialized response."""

    resource: str
    response: bytes | None


class RequestStore:
    """Remembers request ids per user and method, inside the caller's transaction."""

    async def find(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, method: str, request_id: str
    ) -> RequestResult | None:
        """What the earlier call produced, if there was one."""
        row = await conn.fetchrow(
            """SELECT resource, response FROM request_results
               WHERE user_id = $1 AND method = $2 AND request_id = $3""",
            user_id,
            method,
            request_id,
        )
        if row is None:
            return None
        response = row["response"]
        return RequestResult(row["resource"], None if response is None else bytes(response))

    async def remember(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        method: str,
        request_id: str,
        *,
        resource: str = "",
        response: bytes | None = None,
    ) -> None:
        """Record what this call produced."""
        await conn.execute(
            """INSERT INTO request_results (user_id, method, request_id, resource, response)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
            user_id,
            method,
            request_id,
            resource,
            response,
        )
