"""B2: Apple Health import end to end against its two floors, and memory against file size.

A synthetic ``export.xml`` (:mod:`vitalis_ingestion.testing`, 1,000,000 records by default) is written
once, with a second one a tenth of its size. Arms:

- ``lxml iterparse floor``: parse-only of the large export, each record cleared (records/s).
- ``raw COPY floor``: asyncpg COPY of sample rows into ``ingestion.samples`` as the table owner (rows/s).
- ``import``: each export streamed to ingestion's ``ImportService/StreamImportFile`` (to a fresh
  source), then watched with ``WatchImportJob`` until it succeeds; records stored per second of
  wall time from the first byte sent, with ingestion's resident memory growth sampled throughout.

The import is compared with the slower of the two floors; its memory growth on the large export
with that on the small one (independent of file size means about the same).
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from bench.b1_ingest import (
    BASE_TIME,
    INGEST_CONCURRENCY,
    copy_spec,
    create_source,
    fresh_copy_writer,
    samples_table_probe,
)
from bench.report import ArmOutcome, ArmSummary, Bound, Metric, Target, Unmeasurable
from bench.runner import DriverArm, Log, Probe, Settings, measure_arms, rpc_probe
from bench.stack import BenchUser, Stack
from vitalis.ingestion.v1 import import_service_pb2
from vitalis_ingestion.testing import write_export

PARSE_FLOOR, COPY_FLOOR, SLOWER_FLOOR = "B2 lxml iterparse floor", "B2 raw COPY floor", "B2 slower floor"
IMPORT_LARGE, IMPORT_SMALL = "B2 import (large export)", "B2 import (export a tenth the size)"
LIST_IMPORT_JOBS = "/vitalis.ingestion.v1.ImportService/ListImportJobs"
IMPORT_TIMEOUT = 900.0

TARGETS = (
    Target(
        "B2",
        "Apple Health import vs the slower floor (records/s)",
        arm=IMPORT_LARGE,
        reference=SLOWER_FLOOR,
        value=0.5,
        why_missed=(
            "each record is parsed, validated and keyed in Python (~30 µs) and merged through a "
            "staging table with ON CONFLICT, where the floor only copies rows"
        ),
    ),
    Target(
        "B2",
        "ingestion's peak memory growth: large export vs one a tenth the size",
        arm=IMPORT_LARGE,
        reference=IMPORT_SMALL,
        metric=Metric.PEAK_RSS,
        bound=Bound.AT_MOST,
        value=1.5,
        why_missed="memory grows with the file: the import holds records in proportion to its size",
    ),
    Target(
        "B2",
        "floor: lxml iterparse parse-only vs raw COPY",
        arm=PARSE_FLOOR,
        reference=COPY_FLOOR,
        bound=Bound.REPORTED,
    ),
)


def slower_floor(outcomes: dict[str, ArmOutcome]) -> ArmOutcome:
    """The slower of the two floors, renamed so the table says which it was."""
    floors = [outcomes.get(PARSE_FLOOR), outcomes.get(COPY_FLOOR)]
    measured = [floor for floor in floors if isinstance(floor, ArmSummary)]
    if len(measured) < 2:
        reasons = "; ".join(f.reason for f in floors if isinstance(f, Unmeasurable))
        return Unmeasurable(SLOWER_FLOOR, reasons or "a floor did not run")
    slowest = min(measured, key=lambda floor: floor.rate)
    return dataclasses.replace(
        slowest, arm=f"{SLOWER_FLOOR} ({slowest.arm.removeprefix('B2 ')})", unit="record"
    )


def import_arm(stack: Stack, user: BenchUser, name: str, path: Path, probe: Probe) -> DriverArm:
    """One import of ``path`` per repetition, to a new source."""

    async def fresh() -> dict[str, Any]:
        return {"source": await create_source(stack, user)}

    return DriverArm(
        name,
        "record",
        {
            "kind": "import_file",
            "target": stack.target("ingestion"),
            "metadata": user.metadata,
            "parent": user.name,
            "path": str(path),
            "concurrency": 1,
            "max_calls": 1,
            "duration": IMPORT_TIMEOUT,
        },
        stack,
        probe,
        fresh,
        watch_memory_of="ingestion",
    )


async def run(stack: Stack, settings: Settings, log: Log) -> dict[str, ArmOutcome]:
    """Write the exports, measure the floors interleaved, then one import of each export."""
    user = await stack.sign_up()
    large, small = stack.work_dir / "export-large.xml", stack.work_dir / "export-small.xml"
    records = settings.import_records
    log(f"  writing synthetic exports of {records:,} and {records // 10:,} records …")
    await asyncio.to_thread(write_export, large, settings.import_records)
    await asyncio.to_thread(write_export, small, settings.import_records // 10)
    floors = [
        DriverArm(PARSE_FLOOR, "record", {"kind": "iterparse", "path": str(large), "concurrency": 1}, stack),
        DriverArm(
            COPY_FLOOR,
            "record",
            {**copy_spec(stack), "base_time": BASE_TIME, "concurrency": INGEST_CONCURRENCY},
            stack,
            lambda: samples_table_probe(stack),
            fresh_copy_writer,
        ),
    ]
    outcomes = await measure_arms(floors, settings, log)
    outcomes[SLOWER_FLOOR] = slower_floor(outcomes)
    probe = rpc_probe(
        stack.target("ingestion"),
        LIST_IMPORT_JOBS,
        import_service_pb2.ListImportJobsRequest(parent=user.name).SerializeToString(),
        user.metadata,
        service="ingestion",
    )
    imports = [
        import_arm(stack, user, IMPORT_SMALL, small, probe),
        import_arm(stack, user, IMPORT_LARGE, large, probe),
    ]
    outcomes.update(await measure_arms(imports, settings, log, repetitions=1))
    return outcomes
