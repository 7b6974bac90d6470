"""B8: what a stored sample costs the storage: WAL, bytes on disk, write operations, events.

The capacity model (docs/scaling.md) needs, per sample, the bytes PostgreSQL logs and keeps and the
writes it issues, and per event the bytes the outbox and Redis hold. B8 writes a fixed number of
samples twice — raw COPY into ``ingestion.samples`` (the floor, as in B1) and through
``SampleService/StreamSamples`` (everything the platform does for them: staging and merge, the
outbox, the relay, insights consuming the events) — each between two ``CHECKPOINT`` s, so the data
pages the load dirtied are written inside the window, and reads PostgreSQL's own counters before
and after:

- **WAL bytes**: ``pg_wal_lsn_diff`` of the insert position.
- **bytes on disk**: growth of ``pg_database_size`` of the run's database (tables, indexes, TOAST,
  the outbox and inbox rows that come with the samples).
- **write operations**: data pages written (``pg_stat_io`` where the server has it, else
  ``pg_stat_bgwriter``), WAL writes and WAL fsyncs (``pg_stat_io`` or ``pg_stat_wal``). These are
  write calls before the kernel and the device merge them: an upper bound of device IOPS.
- **per event**: outbox rows written per 1,000 samples and their mean size, and the Redis memory a
  stream entry takes (``MEMORY USAGE`` growth of ingestion's streams over the entries added).

WAL and the I/O counters are server-wide: on a quiet server they are the load's own; whatever else
runs on the server during the window is counted too (never less). Every figure is reported with the
raw COPY floor beside it where one exists; there is no target.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import redis.asyncio

from bench.b1_ingest import (
    BASE_TIME,
    INGEST_CONCURRENCY,
    copy_spec,
    fresh_copy_writer,
    fresh_writer,
    samples_table_probe,
    stream_spec,
)
from bench.report import Row
from bench.runner import Log, Settings, run_driver
from bench.stack import Stack
from vitalis_runtime.events import StreamNames

CALLS = 20
"""Calls of ``ROWS_PER_CALL`` samples per arm: 100,000 samples."""
CONSUMER_GROUP = "insights-engine"
SETTLE_TIMEOUT_S = 120.0
PAGE_BYTES = 8192
STATS_FLUSH_S = 1.5
"""Backends publish their I/O statistics when a transaction ends, at most once a second."""


@dataclass(frozen=True)
class ServerCounters:
    """PostgreSQL's cumulative counters at one moment."""

    wal_lsn: str
    database_bytes: int
    page_writes: int
    wal_writes: int
    wal_syncs: int
    outbox_position: int
    commits: int


@dataclass(frozen=True)
class Footprint:
    """What one arm's samples cost, per sample (and per event for the service arm)."""

    samples: int
    wal_bytes: float
    disk_bytes: float
    page_writes: float
    wal_writes: float
    wal_syncs: float
    commits: float
    events: int = 0
    outbox_bytes_per_event: float | None = None
    redis_bytes_per_event: float | None = None

    @property
    def write_ops(self) -> float:
        """Write calls per sample: data pages, WAL writes and WAL fsyncs."""
        return self.page_writes + self.wal_writes + self.wal_syncs


async def _has_relation(connection: asyncpg.Connection, name: str) -> bool:
    return bool(await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", name))


async def _columns(connection: asyncpg.Connection, view: str) -> set[str]:
    rows = await connection.fetch(
        "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0", view
    )
    return {row["attname"] for row in rows}


async def read_counters(
    connection: asyncpg.Connection, *, outbox: str = "ingestion.outbox"
) -> ServerCounters:
    """The server's counters now, from whichever statistics views this PostgreSQL version has."""
    await connection.execute("SELECT pg_stat_clear_snapshot()")
    if await _has_relation(connection, "pg_stat_io"):
        page_writes = await connection.fetchval(
            "SELECT coalesce(sum(writes), 0) FROM pg_stat_io WHERE object = 'relation'"
        )
    else:
        page_writes = await connection.fetchval(
            "SELECT buffers_checkpoint + buffers_clean + buffers_backend FROM pg_stat_bgwriter"
        )
    if {"wal_write", "wal_sync"} <= await _columns(connection, "pg_stat_wal"):
        wal_writes, wal_syncs = await connection.fetchrow("SELECT wal_write, wal_sync FROM pg_stat_wal")
    else:
        wal_writes, wal_syncs = await connection.fetchrow(
            """SELECT coalesce(sum(writes), 0), coalesce(sum(fsyncs), 0)
               FROM pg_stat_io WHERE object = 'wal'"""
        )
    return ServerCounters(
        wal_lsn=str(await connection.fetchval("SELECT pg_current_wal_lsn()::text")),
        database_bytes=int(await connection.fetchval("SELECT pg_database_size(current_database())")),
        page_writes=int(page_writes),
        wal_writes=int(wal_writes),
        wal_syncs=int(wal_syncs),
        outbox_position=int(await connection.fetchval(f"SELECT coalesce(max(position), 0) FROM {outbox}")),
        commits=int(
            await connection.fetchval(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            )
        ),
    )


async def checkpoint_and_read(
    connection: asyncpg.Connection, *, outbox: str = "ingestion.outbox"
) -> ServerCounters:
    """Write every dirty page now, give the statistics time to be published, then read them."""
    if await connection.fetchval("SELECT to_regproc('pg_stat_force_next_flush') IS NOT NULL"):
        await connection.execute("SELECT pg_stat_force_next_flush()")
    await connection.execute("CHECKPOINT")
    await asyncio.sleep(STATS_FLUSH_S)
    return await read_counters(connection, outbox=outbox)


async def wal_bytes_between(
    connection: asyncpg.Connection, before: ServerCounters, after: ServerCounters
) -> int:
    """WAL bytes written between two readings."""
    return int(
        await connection.fetchval(
            "SELECT pg_wal_lsn_diff($1::text::pg_lsn, $2::text::pg_lsn)", after.wal_lsn, before.wal_lsn
        )
    )


async def _streams_usage(client: redis.asyncio.Redis, streams: list[str]) -> tuple[int, int]:
    """Total entries and memory of ``streams`` (the ones that exist)."""
    entries = memory = 0
    for stream in streams:
        if not await client.exists(stream):
            continue
        entries += int(await client.xlen(stream))
        memory += int(await client.memory_usage(stream, samples=0) or 0)
    return entries, memory


async def _settled(client: redis.asyncio.Redis, streams: list[str]) -> bool:
    """Whether insights has read and acknowledged every entry of ``streams``."""
    for stream in streams:
        if not await client.exists(stream):
            continue
        groups = await client.xinfo_groups(stream)
        for group in groups:
            name = group["name"].decode() if isinstance(group["name"], bytes) else group["name"]
            if name == CONSUMER_GROUP and (group.get("lag") or group.get("pending")):
                return False
    return True


async def _wait_until_settled(client: redis.asyncio.Redis, streams: list[str], log: Log) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_TIMEOUT_S
    while not await _settled(client, streams):
        if loop.time() > deadline:
            log(f"  insights had not caught up after {SETTLE_TIMEOUT_S:g} s; its later work is not counted")
            return
        await asyncio.sleep(0.5)


async def measure_window(
    stack: Stack, spec: Mapping[str, Any], log: Log, *, through_platform: bool
) -> Footprint:
    """Write the samples ``spec`` describes between two checkpoints; their cost per sample."""
    admin = await asyncpg.connect(stack.database_url)
    client = redis.asyncio.Redis.from_url(stack.servers.redis_url)
    streams = StreamNames("ingestion").all()
    try:
        await _wait_until_settled(client, streams, log)
        before = await checkpoint_and_read(admin)
        entries_before, memory_before = await _streams_usage(client, streams)
        result = await run_driver(spec)
        if result["errors"]:
            log(f"  {result['errors']} calls failed: {result.get('first_error', '')}")
        if through_platform:
            await _wait_until_settled(client, streams, log)
        after = await checkpoint_and_read(admin)
        entries_after, memory_after = await _streams_usage(client, streams)
        samples = int(result["units"])
        events, outbox_size = await admin.fetchrow(
            "SELECT count(*), avg(pg_column_size(o.*)) FROM ingestion.outbox o WHERE position > $1",
            before.outbox_position,
        )
        wal = await wal_bytes_between(admin, before, after)
    finally:
        await admin.close()
        await client.aclose()
    if samples <= 0:
        raise RuntimeError("no sample was written")
    added = entries_after - entries_before
    return Footprint(
        samples=samples,
        wal_bytes=wal / samples,
        disk_bytes=(after.database_bytes - before.database_bytes) / samples,
        page_writes=(after.page_writes - before.page_writes) / samples,
        wal_writes=(after.wal_writes - before.wal_writes) / samples,
        wal_syncs=(after.wal_syncs - before.wal_syncs) / samples,
        commits=(after.commits - before.commits) / samples,
        events=int(events),
        outbox_bytes_per_event=float(outbox_size) if outbox_size is not None else None,
        redis_bytes_per_event=(memory_after - memory_before) / added if added > 0 else None,
    )


def footprint_rows(service: Footprint, floor: Footprint | None) -> list[Row]:
    """The table's rows: each quantity per sample, the floor's beside it."""

    def row(check: str, ours: float, theirs: float | None, unit: str, scale: float = 1.0) -> Row:
        suffix = f" {unit}" if unit else ""
        measured = f"{ours * scale:,.1f}{suffix}"
        ratio = None
        if theirs is not None:
            measured += f" vs {theirs * scale:,.1f}{suffix}"
            ratio = ours / theirs if theirs else None
        return Row("B8", check, "reported", measured, ratio, None, "")

    rows = [
        row(
            "WAL bytes per sample vs raw COPY",
            service.wal_bytes,
            None if floor is None else floor.wal_bytes,
            "B",
        ),
        row(
            "bytes on disk per sample vs raw COPY",
            service.disk_bytes,
            None if floor is None else floor.disk_bytes,
            "B",
        ),
        row(
            "write calls per 1,000 samples (pages + WAL writes + fsyncs) vs raw COPY",
            service.write_ops,
            None if floor is None else floor.write_ops,
            "",
            1000.0,
        ),
        row(
            "data pages written per 1,000 samples vs raw COPY",
            service.page_writes,
            None if floor is None else floor.page_writes,
            f"pages of {PAGE_BYTES // 1024} KiB",
            1000.0,
        ),
        row(
            "commits per 1,000 samples vs raw COPY",
            service.commits,
            None if floor is None else floor.commits,
            "",
            1000.0,
        ),
    ]
    rows.append(
        Row(
            "B8",
            "events per 1,000 samples (outbox rows)",
            "reported",
            f"{service.events / service.samples * 1000:,.2f}",
            None,
            None,
            f"{service.events} events for {service.samples:,} samples",
        )
    )
    if service.outbox_bytes_per_event is not None:
        rows.append(
            Row(
                "B8",
                "outbox bytes per event (row)",
                "reported",
                f"{service.outbox_bytes_per_event:,.0f} B",
                None,
                None,
                "",
            )
        )
    if service.redis_bytes_per_event is not None:
        rows.append(
            Row(
                "B8",
                "Redis bytes per event (stream entry)",
                "reported",
                f"{service.redis_bytes_per_event:,.0f} B",
                None,
                None,
                "",
            )
        )
    return rows


async def run(stack: Stack, _settings: Settings, log: Log) -> list[Row]:
    """Measure the floor, then the platform, each over ``CALLS`` x ``ROWS_PER_CALL`` samples."""
    common = {
        "base_time": BASE_TIME,
        "concurrency": INGEST_CONCURRENCY,
        "duration": 600.0,
        "max_calls": CALLS,
    }
    floor: Footprint | None = None
    problem = await samples_table_probe(stack)
    if problem is None:
        floor = await measure_window(
            stack,
            {**common, **copy_spec(stack), **await fresh_copy_writer()},
            log,
            through_platform=False,
        )
        log(f"  B8 raw COPY: {_describe(floor)}")
    else:
        log(f"  B8 raw COPY not measurable: {problem}")
    service = await measure_window(
        stack,
        {**common, **stream_spec(stack), **await fresh_writer(stack)()},
        log,
        through_platform=True,
    )
    log(f"  B8 grpc stream: {_describe(service)}")
    return footprint_rows(service, floor)


def _describe(footprint: Footprint) -> str:
    return (
        f"{footprint.samples:,} samples; per sample: WAL {footprint.wal_bytes:,.1f} B, "
        f"disk {footprint.disk_bytes:,.1f} B, write calls {footprint.write_ops:.4f}, "
        f"commits {footprint.commits:.5f}"
    )
