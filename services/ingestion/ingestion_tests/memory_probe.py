"""Run one Apple Health import in this process and print its counts and peak memory as JSON.

Usage: ``python memory_probe.py <database-url> <app-role> <export.xml>``; the schema must be migrated.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from vitalis_ingestion.server import IngestionApp
from vitalis_runtime.db import Database
from vitalis_runtime.pagination import PageTokens


def resident_kib() -> int:
    """The process's current resident set size."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


class PeakSampler(threading.Thread):
    """Samples the resident set size every few milliseconds and keeps the largest."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = resident_kib()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.02):
            self.peak = max(self.peak, resident_kib())


async def main(database_url: str, role: str, export: Path, size: int) -> None:
    db = await Database.connect(database_url, role=role, schema="ingestion", max_size=4)
    user_id = uuid.uuid4()
    with tempfile.TemporaryDirectory() as spool:
        app = IngestionApp.assemble(
            db, page_tokens=PageTokens(b"p" * 32), spool_dir=Path(spool), import_batch_size=10_000
        )
        async with db.transaction(user_id=user_id) as conn:
            job, _ = await app.jobs.create(
                conn,
                user_id,
                format=2,
                source_id=None,
                document="",
                file_name=export.name,
                size_bytes=size,
                content_sha256=hashlib.sha256(str(export).encode()).hexdigest(),
                request_id=None,
            )
        os.link(export, app.runner.path_of(job.job_id))
        baseline = resident_kib()
        sampler = PeakSampler()
        sampler.start()
        started = time.monotonic()
        await app.runner.run_now(job)
        elapsed = time.monotonic() - started
        sampler.stop.set()
        sampler.join()
        async with db.transaction(user_id=user_id) as conn:
            done = await app.jobs.get(conn, user_id, job.job_id)
            stored = await conn.fetchval("SELECT count(*) FROM samples")
    await db.close()
    assert done is not None
    print(
        json.dumps(
            {
                "state": int(done.state),
                "error": done.error.message if done.error else None,
                "received": done.counts.total.received,
                "new": done.counts.total.new,
                "stored": stored,
                "baseline_kib": baseline,
                "peak_kib": sampler.peak,
                "seconds": elapsed,
            }
        )
    )


if __name__ == "__main__":
    path = Path(sys.argv[3])
    asyncio.run(main(sys.argv[1], sys.argv[2], path, path.stat().st_size))
