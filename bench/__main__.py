"""``python -m bench``: start the platform, measure every benchmark, print the table, write the JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    b1_ingest,
    b2_import,
    b3_reads,
    b4_overhead,
    b5_upload,
    b6_extraction,
    b7_events,
    b8_footprint,
)
from bench.report import (
    ArmOutcome,
    Row,
    Target,
    Unmeasurable,
    evaluate,
    render_arms,
    render_table,
    report_document,
)
from bench.runner import Log, Settings, describe_failure
from bench.snapshot import describe_source, export_commit, python_path
from bench.stack import Stack, database_servers, running_stack
from bench.versions import collect_versions

CHECKOUT = Path(__file__).resolve().parent.parent
RESULTS = CHECKOUT / "bench" / "results"

ArmsMeasure = Callable[[Stack, Settings, Log], Awaitable[dict[str, ArmOutcome]]]
RowsMeasure = Callable[[Stack, Settings, Log], Awaitable[list[Row]]]


@dataclass(frozen=True)
class Benchmark:
    """A benchmark: arms measured against targets, or (``rows``) figures reported as they are."""

    id: str
    arms: ArmsMeasure | None = None
    targets: tuple[Target, ...] = ()
    rows: RowsMeasure | None = None


BENCHMARKS: tuple[Benchmark, ...] = (
    # Reads first; the event path before anything writes panels or samples, whose events would
    # still be queued for insights ahead of its own; the bulk writes last, the footprint (which
    # waits for insights to catch up) before the long import.
    Benchmark("B4", b4_overhead.run, b4_overhead.TARGETS),
    Benchmark("B7", b7_events.run, b7_events.TARGETS),
    Benchmark("B3", b3_reads.run, b3_reads.TARGETS),
    Benchmark("B5", b5_upload.run, b5_upload.TARGETS),
    Benchmark("B6", b6_extraction.run, b6_extraction.TARGETS),
    Benchmark("B1", b1_ingest.run, b1_ingest.TARGETS),
    Benchmark("B8", rows=b8_footprint.run),
    Benchmark("B2", b2_import.run, b2_import.TARGETS),
)


def log(line: str) -> None:
    """Progress on stderr, so stdout carries only the report."""
    print(line, file=sys.stderr, flush=True)


def parse_arguments(argv: list[str] | None = None) -> tuple[Settings, argparse.Namespace]:
    """``--repetitions``, ``--duration``, ``--concurrency``, ``--import-records``, benchmark ids, and
    where the measured code comes from (``--from-commit``)."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("benchmarks", nargs="*", help="ids to run (B1 … B8); all when none is given")
    parser.add_argument("--repetitions", type=int, default=Settings.repetitions)
    parser.add_argument("--duration", type=float, default=Settings.duration, help="seconds per repetition")
    parser.add_argument("--concurrency", type=int, default=Settings.concurrency)
    parser.add_argument("--import-records", type=int, default=Settings.import_records)
    parser.add_argument(
        "--from-commit", metavar="REV", help="measure this commit instead of the working tree"
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help=argparse.SUPPRESS)
    parser.add_argument("--source-label", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    settings = Settings(
        repetitions=args.repetitions,
        duration=args.duration,
        concurrency=args.concurrency,
        import_records=args.import_records,
    )
    return settings, args


async def run(settings: Settings, selected: set[str], *, results: Path, source: str) -> int:
    """Measure, print, write; exit status 0 even when a target is missed (the table says so)."""
    started = datetime.now(UTC)
    outcomes: dict[str, ArmOutcome] = {}
    targets: list[Target] = []
    notes: list[str] = []
    reported: list[Row] = []
    with database_servers() as servers, tempfile.TemporaryDirectory(prefix="vitalis-bench-") as scratch:
        versions = {"vitalis": source, **await collect_versions(servers.database_url)}
        log("starting the platform (five services, two Envoys) in a temporary database …")
        async with running_stack(servers, Path(scratch)) as stack:
            for benchmark in BENCHMARKS:
                if selected and benchmark.id not in selected:
                    continue
                log(f"{benchmark.id}:")
                targets.extend(benchmark.targets)
                try:
                    if benchmark.arms is not None:
                        outcomes.update(await benchmark.arms(stack, settings, log))
                    if benchmark.rows is not None:
                        reported.extend(await benchmark.rows(stack, settings, log))
                except Exception as error:  # one benchmark's failure must not lose the others' results
                    reason = failure_reason(benchmark.id, error, stack)
                    log(f"  {reason}")
                    outcomes.update(unmeasured_arms(benchmark.targets, reason))
                    if benchmark.rows is not None:
                        reported.append(Row(benchmark.id, "—", "reported", "—", None, None, reason))
            notes = exited_processes(stack)
    rows = [evaluate(target, outcomes) for target in targets] + reported
    write_report(rows, outcomes, versions, settings, started, results, notes=notes)
    return 0


def exited_processes(stack: Stack) -> list[str]:
    """A line for each platform process that exited during the run (its last lines go to the log)."""
    notes = []
    for child in [*stack.platform.children(), stack.exempt_envoy]:
        if child.returncode is None:
            continue
        signal = f" (signal {-child.returncode})" if child.returncode < 0 else ""
        notes.append(f"{child.name} exited with status {child.returncode}{signal} during the run")
        log(f"{child.name} exited with status {child.returncode}; its last lines:")
        # Enough lines for the Python stacks faulthandler writes on a fatal signal.
        for line in child.tail()[-60:]:
            log(f"    {line[:300]}")
    return notes


def failure_reason(benchmark: str, error: Exception, stack: Stack) -> str:
    """Why a benchmark stopped: a platform process that died, else the error."""
    dead = [child.name for child in stack.platform.children() if child.returncode is not None]
    if dead:
        return f"{benchmark} stopped: {', '.join(dead)} exited during the run"
    return f"{benchmark} failed: {describe_failure(error)}"


def unmeasured_arms(targets: tuple[Target, ...], reason: str) -> dict[str, ArmOutcome]:
    """Every arm the benchmark's targets name, not measurable for ``reason``."""
    names = {target.arm for target in targets} | {t.reference for t in targets if t.reference is not None}
    return {name: Unmeasurable(name, reason) for name in sorted(names)}


def write_report(
    rows: list[Row],
    outcomes: dict[str, ArmOutcome],
    versions: dict[str, str],
    settings: Settings,
    started: datetime,
    results: Path,
    *,
    notes: list[str],
) -> None:
    """Print the versions, the arms, the table and what went wrong; write the JSON to ``results``."""
    print("versions: " + ", ".join(f"{name} {version}" for name, version in versions.items()))
    print(
        f"settings: {settings.repetitions} interleaved repetitions of {settings.duration:g} s per arm, "
        f"{settings.concurrency} calls in flight; medians"
    )
    print("\narms (median rate; CPU µs per unit of work by process):")
    print(render_arms(outcomes))
    print()
    print(render_table(rows))
    for note in notes:
        print(f"note: {note}")
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"bench-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    document = report_document(rows=rows, outcomes=outcomes, versions=versions, started=started.isoformat())
    document["notes"] = notes
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (results / "latest.json").write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    print(f"\nwritten to {path}")


def run_commit(revision: str, argv: list[str], results: Path) -> int:
    """Export ``revision`` and run the harness inside the export, writing results here."""
    with tempfile.TemporaryDirectory(prefix="vitalis-bench-src-") as scratch:
        export = Path(scratch)
        commit = export_commit(CHECKOUT, revision, export)
        forwarded, skip = [], False
        for arg in argv:
            if skip or arg.startswith("--from-commit="):
                skip = False
                continue
            if arg == "--from-commit":
                skip = True
                continue
            forwarded.append(arg)
        command = [sys.executable, "-m", "bench", *forwarded, "--results-dir", str(results)]
        command += ["--source-label", f"commit {commit}"]
        env = {**os.environ, "PYTHONPATH": python_path(export, CHECKOUT)}
        return subprocess.run(command, cwd=export, env=env, check=False).returncode


def main() -> None:
    """Entry point."""
    argv = sys.argv[1:]
    settings, args = parse_arguments(argv)
    if args.from_commit:
        sys.exit(run_commit(args.from_commit, argv, args.results_dir))
    source = args.source_label or describe_source(CHECKOUT)
    selected = {b.upper() for b in args.benchmarks}
    sys.exit(asyncio.run(run(settings, selected, results=args.results_dir, source=source)))


if __name__ == "__main__":
    main()
