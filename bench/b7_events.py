"""B7: the event path under load — a write becomes an insight on an open watch stream.

One load generator holds ``WatchInsights`` open and, one at a time, writes a panel with an
out-of-range LDL to biomarkers; each call ends when the watch shows the insight whose evidence names
that panel (biomarkers' outbox → Redis Streams → insights' engine → the watch). A second load
generator streams samples to ingestion for another user throughout, so the path is measured under
a sustained ingest load. The latency distribution is reported; there is no reference.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.b1_ingest import CHUNK_ROWS, create_source
from bench.report import ArmOutcome, ArmSummary, Bound, Measurement, Metric, Target, summarize
from bench.runner import CallableArm, Log, Settings, measure_arms, metered, rpc_probe, run_driver
from bench.stack import Stack
from vitalis.biomarkers.v1 import panel_service_pb2
from vitalis.insights.v1 import insight_service_pb2

EVENT, INGEST = "B7 write -> insight on watch", "B7 background ingest"
LIST_INSIGHTS = "/vitalis.insights.v1.InsightService/ListInsights"
LIST_PANELS = "/vitalis.biomarkers.v1.PanelService/ListPanels"
DURATION_FACTOR = 3

TARGETS = (
    Target(
        "B7",
        "write -> insight visible on the watch, under ingest load",
        arm=EVENT,
        reference=None,
        metric=Metric.P99,
        bound=Bound.REPORTED,
    ),
    Target("B7", "the sustained ingest load meanwhile", arm=INGEST, reference=None, bound=Bound.REPORTED),
)


async def run(stack: Stack, settings: Settings, log: Log) -> dict[str, ArmOutcome]:
    """Measure the event path while ingestion is kept busy."""
    watcher = await stack.sign_up()
    insights_probe = rpc_probe(
        stack.target("insights"),
        LIST_INSIGHTS,
        insight_service_pb2.ListInsightsRequest(parent=watcher.name).SerializeToString(),
        watcher.metadata,
        service="insights",
    )
    panels_probe = rpc_probe(
        stack.target("biomarkers"),
        LIST_PANELS,
        panel_service_pb2.ListPanelsRequest(parent=watcher.name).SerializeToString(),
        watcher.metadata,
        service="biomarkers",
    )

    async def probe() -> str | None:
        return await insights_probe() or await panels_probe()

    ingest_runs: list[Measurement] = []

    async def measure(settings: Settings) -> Measurement:
        duration = settings.duration * DURATION_FACTOR
        # A new writer each repetition, as in B1: its samples never add to a day an earlier one filled.
        writer = await stack.sign_up()
        event_spec = {
            "kind": "event_path",
            "insights_target": stack.target("insights"),
            "biomarkers_target": stack.target("biomarkers"),
            "metadata": watcher.metadata,
            "parent": watcher.name,
            "duration": duration,
            "concurrency": 1,
        }
        ingest_spec = {
            "kind": "samples_stream",
            "target": stack.target("ingestion"),
            "metadata": writer.metadata,
            "parent": writer.name,
            "source": await create_source(stack, writer),
            "base_time": "2026-02-01T00:00:00+00:00",
            "rows_per_chunk": CHUNK_ROWS,
            "chunks_per_call": 2,
            "duration": duration,
            "concurrency": 2,
        }

        async def both() -> dict[str, Any]:
            event, ingest = await asyncio.gather(run_driver(event_spec), run_driver(ingest_spec))
            ingest_runs.append(
                Measurement(INGEST, ingest["units"], ingest["seconds"], errors=ingest["errors"])
            )
            event["cpu_seconds"] += ingest["cpu_seconds"]
            return event

        return await metered(EVENT, stack, both())

    outcomes = await measure_arms([CallableArm(EVENT, "insight", measure, probe)], settings, log)
    if not isinstance(outcomes[EVENT], ArmSummary):
        for child in stack.platform.children():
            if child.name in ("biomarkers", "insights"):
                log(f"  last lines of {child.name}'s log:")
                for line in child.tail()[-8:]:
                    log(f"    {line[:400]}")
    if ingest_runs:
        outcomes[INGEST] = summarize(INGEST, "row", ingest_runs)
    return outcomes
