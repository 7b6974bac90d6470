"""B8's footprint: the rows it reports, and the server counters it reads on the real PostgreSQL."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from bench import b8_footprint


def test_footprint_rows_put_the_floor_beside_each_quantity_per_sample() -> None:
    service = b8_footprint.Footprint(
        samples=1000,
        wal_bytes=400.0,
        disk_bytes=220.0,
        page_writes=0.08,
        wal_writes=0.01,
        wal_syncs=0.005,
        commits=0.002,
        events=4,
        outbox_bytes_per_event=280.0,
        redis_bytes_per_event=None,
    )
    floor = b8_footprint.Footprint(
        samples=1000,
        wal_bytes=200.0,
        disk_bytes=220.0,
        page_writes=0.05,
        wal_writes=0.004,
        wal_syncs=0.001,
        commits=0.001,
    )

    rows = {row.check: row for row in b8_footprint.footprint_rows(service, floor)}

    assert rows["WAL bytes per sample vs raw COPY"].ratio == pytest.approx(2.0)
    assert rows["WAL bytes per sample vs raw COPY"].measured == "400.0 B vs 200.0 B"
    assert rows["write calls per 1,000 samples (pages + WAL writes + fsyncs) vs raw COPY"].measured == (
        "95.0 vs 55.0"
    )
    assert rows["events per 1,000 samples (outbox rows)"].measured == "4.00"
    assert "Redis bytes per event (stream entry)" not in rows
    assert all(row.met is None and row.target == "reported" for row in rows.values())


async def test_server_counters_see_the_wal_and_the_pages_of_a_write(admin_database_url: str) -> None:
    connection = await asyncpg.connect(admin_database_url)
    table = f"footprint_{uuid.uuid4().hex[:8]}"
    try:
        await connection.execute(f"CREATE TABLE {table} (position bigint, body text)")
        before = await b8_footprint.checkpoint_and_read(connection, outbox=table)
        await connection.copy_records_to_table(
            table, records=[(i, "x" * 100) for i in range(20_000)], columns=("position", "body")
        )
        after = await b8_footprint.checkpoint_and_read(connection, outbox=table)

        assert await b8_footprint.wal_bytes_between(connection, before, after) > 20_000 * 100
        assert after.database_bytes - before.database_bytes > 20_000 * 100
        assert after.page_writes > before.page_writes
        assert after.outbox_position == 19_999
    finally:
        await connection.execute(f"DROP TABLE IF EXISTS {table}")
        await connection.close()
