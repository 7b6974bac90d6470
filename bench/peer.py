"""B3's reference: the stack a team would write instead — FastAPI + uvicorn + asyncpg + PyJWT.

It serves the same REST reads as the platform, for the benchmark's queries:
``GET /v1/users/{user}/samples:queryBuckets`` (one metric, day buckets, UTC) and
``GET /v1/users/{user}/panels/-/markers?biomarker=…`` (one biomarker's history), with what a
careful hand-written service does: it verifies the bearer token with PyJWT against identity's JWKS
(fetched once at start), checks that the token's subject is the user in the path, and runs the
services' own SQL in a transaction as each service's application role, one pool per service of the
same size, so row-level security applies exactly as in the services. Started as its own process::

    python -m bench.peer --port 8099 --database-url postgresql://... --jwks-url http://.../jwks.json
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import jwt
import uvicorn
from fastapi import FastAPI, HTTPException, Query, Request

POOL_SIZE = 10
"""The runtime's ``Database.connect`` default, which every service uses."""
HEART_RATE_CODE = 1
HISTORY_LIMIT = 101
"""The default page of ListMarkers (100) and one more row, to know whether another page follows."""


def bucket_sql() -> str:
    """Ingestion's bucket query, taken from the service itself so both run the same SQL."""
    from vitalis_ingestion.store import samples

    sql: str = samples._BUCKETS_SQL
    return sql


def marker_history_sql() -> str:
    """Biomarkers' ListMarkers query, built from the service's own column list, newest first."""
    from vitalis_biomarkers.store import panels

    columns: str = panels._MARKER_COLUMNS
    return f"""SELECT {columns} FROM markers
        WHERE user_id = $1 AND biomarker_id = $2
        ORDER BY collection_time DESC, marker_id DESC LIMIT $3"""


def _timestamp(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _json_value(value: object) -> object:
    if isinstance(value, datetime):
        return _timestamp(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def create_app(database_url: str, jwks: dict[str, Any], *, issuer: str, audience: str) -> FastAPI:
    """The peer application."""
    keys = {key.key_id: key for key in jwt.PyJWKSet.from_dict(jwks).keys}
    buckets_sql, history_sql = bucket_sql(), marker_history_sql()
    state: dict[str, asyncpg.Pool] = {}

    async def open_pool(service: str) -> asyncpg.Pool:
        async def init(connection: asyncpg.Connection) -> None:
            await connection.execute(f"SET ROLE vitalis_{service}_app")

        return await asyncpg.create_pool(
            database_url,
            min_size=1,
            max_size=POOL_SIZE,
            init=init,
            server_settings={"search_path": f"{service}, public", "application_name": "bench-peer"},
        )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["ingestion"] = await open_pool("ingestion")
        state["biomarkers"] = await open_pool("biomarkers")
        try:
            yield
        finally:
            await state["ingestion"].close()
            await state["biomarkers"].close()

    app = FastAPI(lifespan=lifespan)

    def caller(request: Request) -> uuid.UUID:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            raise HTTPException(401, "missing bearer token")
        token = header.removeprefix("Bearer ")
        try:
            key = keys[jwt.get_unverified_header(token)["kid"]]
            claims = jwt.decode(token, key, algorithms=[key.algorithm_name], audience=audience, issuer=issuer)
        except (jwt.PyJWTError, KeyError) as error:
            raise HTTPException(401, f"invalid token: {error}") from error
        return uuid.UUID(claims["sub"])

    @app.get("/v1/users/{user}/samples:queryBuckets")
    async def query_buckets(
        request: Request,
        user: str,
        start: datetime = Query(alias="interval.startTime"),  # noqa: B008
        end: datetime = Query(alias="interval.endTime"),  # noqa: B008
    ) -> dict[str, Any]:
        user_id = caller(request)
        if user != str(user_id):
            raise HTTPException(404, "not found")
        async with state["ingestion"].acquire() as connection, connection.transaction(readonly=True):
            await connection.execute("SELECT set_config('app.current_user_id', $1, true)", str(user_id))
            records = await connection.fetch(
                buckets_sql,
                user_id,
                HEART_RATE_CODE,
                0,
                None,
                start,
                end,
                [],
                "day",
                "UTC",
                timedelta(days=1),
                False,
                False,
                [],
                None,
                1001,
            )
        return {
            "buckets": [
                {
                    "startTime": _timestamp(r["bucket_start"]),
                    "endTime": _timestamp(r["bucket_end"]),
                    "count": str(r["n"]),
                    "min": r["min_value"],
                    "avg": r["avg_value"],
                    "max": r["max_value"],
                    "sum": r["sum_value"],
                }
                for r in records
            ]
        }

    @app.get("/v1/users/{user}/panels/-/markers")
    async def marker_history(request: Request, user: str, biomarker: str) -> dict[str, Any]:
        user_id = caller(request)
        if user != str(user_id):
            raise HTTPException(404, "not found")
        async with state["biomarkers"].acquire() as connection, connection.transaction(readonly=True):
            await connection.execute("SELECT set_config('app.current_user_id', $1, true)", str(user_id))
            records = await connection.fetch(
                history_sql, user_id, biomarker.removeprefix("biomarkers/"), HISTORY_LIMIT
            )
        markers = [{key: _json_value(value) for key, value in record.items()} for record in records]
        return {"markers": markers[: HISTORY_LIMIT - 1]}

    return app


def main() -> None:
    """Fetch the JWKS once, then serve on loopback until stopped."""
    parser = argparse.ArgumentParser(prog="python -m bench.peer")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--jwks-url", required=True)
    parser.add_argument("--issuer", default="vitalis")
    parser.add_argument("--audience", default="vitalis-api")
    args = parser.parse_args()
    jwks = httpx.get(args.jwks_url, timeout=30).raise_for_status().json()
    app = create_app(args.database_url, jwks, issuer=args.issuer, audience=args.audience)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
