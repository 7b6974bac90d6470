"""A synthetic Apple Health export of a million records imports in memory that does not grow with the file."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from vitalis_ingestion.testing import write_export
from vitalis_runtime.db import Database

# Importing a million records is CPU-bound: on a busy shared machine it can take several minutes.
pytestmark = pytest.mark.timeout(900)
RECORDS = int(os.environ.get("VITALIS_LARGE_IMPORT_RECORDS", "1000000"))
GROWTH_LIMIT_MIB = 64
PROBE = Path(__file__).with_name("memory_probe.py")


async def test_million_record_export_imports_in_bounded_memory(
    db: Database, admin_database_url: str, app_role: str, tmp_path: Path
) -> None:
    export = tmp_path / "export.xml"
    await asyncio.to_thread(write_export, export, RECORDS)
    size_mib = export.stat().st_size / 1024**2
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PROBE),
        admin_database_url,
        app_role,
        str(export),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ},
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()[-3000:]
    report = json.loads(out.decode().strip().splitlines()[-1])
    print(f"\n{RECORDS} records, {size_mib:.0f} MiB: {report}")
    assert report["state"] == 3, report
    assert report["received"] == RECORDS
    assert report["new"] == report["stored"] == RECORDS
    growth_mib = (report["peak_kib"] - report["baseline_kib"]) / 1024
    # The bound is far below the file's size: holding the file, or its records, would break it.
    if RECORDS >= 1_000_000:
        assert size_mib > 2 * GROWTH_LIMIT_MIB
    assert growth_mib < GROWTH_LIMIT_MIB, f"peak memory grew by {growth_mib:.0f} MiB"
