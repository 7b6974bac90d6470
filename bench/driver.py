"""A load generator, run as its own process: ``python -m bench.driver '<spec as JSON>'``.

It keeps ``concurrency`` calls of one workload (:mod:`bench.loads_ingestion`,
:mod:`bench.loads_services`) in flight for ``duration`` seconds and prints one JSON object: units
of work done, wall seconds, its own CPU seconds, per-call latencies (a bounded sample) and failures.
Rows written get distinct keys per call, so the service never sees a replay.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from datetime import UTC, datetime
from typing import Any

import grpc

from bench import loads_ingestion, loads_services
from bench.workload import Workload

MAX_LATENCIES = 20_000

WORKLOADS: dict[str, Workload] = {
    "grpc_unary": loads_services.grpc_unary,
    "http": loads_services.http,
    "documents_upload": loads_services.documents_upload,
    "sha256": loads_services.sha256,
    "event_path": loads_services.event_path,
    "extraction": loads_services.lab_report_extraction,
    "samples_stream": loads_ingestion.samples_stream,
    "samples_rest_batch": loads_ingestion.samples_rest_batch,
    "copy_samples": loads_ingestion.copy_samples,
    "iterparse": loads_ingestion.iterparse,
    "import_file": loads_ingestion.import_file,
}


async def drive(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one workload for its duration and return what it did."""
    call, close = await WORKLOADS[spec["kind"]](spec)
    deadline = time.perf_counter() + spec["duration"]
    max_calls = spec.get("max_calls")
    counter = iter(range(10**12))
    latencies: list[float] = []
    totals = {"units": 0.0, "errors": 0, "calls": 0}
    first_error: list[str] = []

    async def worker() -> None:
        while time.perf_counter() < deadline:
            n = next(counter)
            if max_calls is not None and n >= max_calls:
                return
            begun = time.perf_counter()
            try:
                units = await call(n)
            except Exception as error:
                totals["errors"] += 1
                if not first_error:
                    first_error.append(_describe(error))
                if totals["errors"] > 50 and totals["calls"] == 0:
                    return
                continue
            finished = time.perf_counter()
            totals["units"] += units
            totals["calls"] += 1
            if len(latencies) < MAX_LATENCIES:
                latencies.append((finished - begun) * 1000)
            elif random.random() < 0.1:
                latencies[random.randrange(MAX_LATENCIES)] = (finished - begun) * 1000

    cpu_begun, wall_begun = time.process_time(), time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
    finally:
        closing = await close() or {}
    return {
        "units": totals["units"],
        "calls": totals["calls"],
        "seconds": time.perf_counter() - wall_begun,
        "cpu_seconds": time.process_time() - cpu_begun,
        "latencies_ms": latencies,
        "errors": totals["errors"],
        "extra_cpu_seconds": closing.get("cpu", {}),
        "quality": closing.get("quality"),
        "first_error": first_error[0] if first_error else None,
    }


def _describe(error: Exception) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        text = f"{error.code().name}: {error.details()}"
    else:
        text = f"{type(error).__name__}: {error}"
    return " ".join(text.split())


def main() -> None:
    """Entry point: the spec is the only argument; the result goes to stdout as JSON."""
    spec = json.loads(sys.argv[1])
    result = asyncio.run(drive(spec))
    result["started_at"] = datetime.now(UTC).isoformat()
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
