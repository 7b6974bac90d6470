"""Arms, probes and the interleaved loop that measures them.

An arm is one way of doing the work (the service through Envoy, the reference peer, raw COPY…).
Before measuring, each arm is probed with one real call: an RPC answering UNIMPLEMENTED makes the arm
"not measurable" with that reason, never a number. Measurable arms then run A, B, A, B … for the
configured repetitions, each repetition a separate load-generator process on loopback, while the CPU
of every process of the platform is metered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from bench.processes import CpuMeter, rss_mb
from bench.report import ArmOutcome, Measurement, Unmeasurable, interleaved_order, summarize

Log = Callable[[str], None]


@dataclass(frozen=True)
class Settings:
    """How long and how often to measure."""

    repetitions: int = 3
    duration: float = 2.0
    concurrency: int = 16
    import_records: int = 1_000_000


class NotMeasurableError(Exception):
    """The arm cannot be measured; the message says why."""


class Processes(Protocol):
    """Where the pids to meter come from (the running stack)."""

    async def all_processes(self) -> dict[str, list[int]]:
        """Pids by process label."""
        ...


class Arm(Protocol):
    """One way of doing a benchmark's work."""

    name: str
    unit: str

    async def probe(self) -> str | None:
        """``None`` when the arm can run, else why it cannot."""
        ...

    async def measure(self, settings: Settings) -> Measurement:
        """One repetition; raises :class:`NotMeasurableError` when the work fails outright."""
        ...


Probe = Callable[[], Awaitable[str | None]]


async def always_measurable() -> str | None:
    """The probe of arms that need no service (references)."""
    return None


async def run_driver(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Run ``python -m bench.driver`` with ``spec`` and return its JSON result."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.driver",
        json.dumps(spec),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise NotMeasurableError(f"the load generator failed: {' | '.join(tail)}")
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


@dataclass
class DriverArm:
    """An arm whose load comes from a separate load-generator process."""

    name: str
    unit: str
    spec: dict[str, Any]
    processes: Processes
    probe_call: Probe = always_measurable
    prepare: Callable[[], Awaitable[dict[str, Any]]] | None = None
    """Adds to the spec before each repetition (a fresh source, so no row is a replay)."""
    watch_memory_of: str | None = None
    """A process label whose resident memory growth is sampled during each repetition."""

    async def probe(self) -> str | None:
        """Delegate to the arm's probe."""
        return await self.probe_call()

    async def measure(self, settings: Settings) -> Measurement:
        """Run the load generator once while metering every process."""
        fresh = await self.prepare() if self.prepare is not None else {}
        spec = {"duration": settings.duration, "concurrency": settings.concurrency, **self.spec, **fresh}
        return await metered(
            self.name, self.processes, run_driver(spec), watch_memory_of=self.watch_memory_of
        )


async def peak_memory_growth(pid: int, stop: asyncio.Event) -> float:
    """The largest growth of ``pid``'s resident memory over its value at the start, sampled every 20 ms."""
    baseline = peak = rss_mb(pid) or 0.0
    while not stop.is_set():
        peak = max(peak, rss_mb(pid) or 0.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.02)
    return peak - baseline


async def metered(
    arm: str, processes: Processes, work: Awaitable[dict[str, Any]], *, watch_memory_of: str | None = None
) -> Measurement:
    """Meter the CPU of every process while a load generator runs; turn its result into a Measurement."""
    meter = CpuMeter()
    pids = await processes.all_processes()
    stop = asyncio.Event()
    watched = pids.get(watch_memory_of or "", [])
    sampler = asyncio.create_task(peak_memory_growth(watched[0], stop)) if watched else None
    meter.start(pids)
    try:
        result = await work
    finally:
        stop.set()
    growth = await sampler if sampler is not None else None
    after = await processes.all_processes()
    cpu = meter.stop(after)
    vanished = meter.vanished(after)
    cpu["load generator"] = float(result["cpu_seconds"])
    for label, seconds in result.get("extra_cpu_seconds", {}).items():
        cpu[label] = cpu.get(label, 0.0) + float(seconds)
    if result["units"] <= 0:
        raise NotMeasurableError(f"every call failed ({result.get('first_error')})")
    return Measurement(
        arm=arm,
        units=float(result["units"]),
        seconds=float(result["seconds"]),
        cpu_seconds=cpu,
        latencies_ms=tuple(result.get("latencies_ms", ())),
        errors=int(result.get("errors", 0)),
        peak_rss_mb=growth,
        quality=result.get("quality"),
        vanished=tuple(vanished),
    )


@dataclass
class CallableArm:
    """An arm measured by a coroutine of the harness (one-shot work such as an import job)."""

    name: str
    unit: str
    run: Callable[[Settings], Awaitable[Measurement]]
    probe_call: Probe = always_measurable

    async def probe(self) -> str | None:
        """Delegate to the arm's probe."""
        return await self.probe_call()

    async def measure(self, settings: Settings) -> Measurement:
        """Run the coroutine once."""
        return await self.run(settings)


async def measure_arms(
    arms: Sequence[Arm], settings: Settings, log: Log, *, repetitions: int | None = None
) -> dict[str, ArmOutcome]:
    """Probe every arm, then measure the measurable ones interleaved, and summarise each."""
    outcomes: dict[str, ArmOutcome] = {}
    live: dict[str, Arm] = {}
    for arm in arms:
        reason = await arm.probe()
        if reason is None:
            live[arm.name] = arm
        else:
            outcomes[arm.name] = Unmeasurable(arm.name, reason)
            log(f"  {arm.name}: not measurable: {reason}")
    measurements: dict[str, list[Measurement]] = defaultdict(list)
    for repetition, name in interleaved_order(list(live), repetitions or settings.repetitions):
        if name in outcomes:
            continue
        try:
            measurement = await live[name].measure(settings)
        except Exception as error:  # an arm that fails is reported as such; the others still run
            reason = describe_failure(error)
            outcomes[name] = Unmeasurable(name, reason)
            log(f"  {name}: not measurable: {reason}")
            continue
        measurements[name].append(measurement)
        busiest = sorted(measurement.cpu_seconds.items(), key=lambda item: -item[1])[:3]
        cpu = ", ".join(f"{label} {seconds:.2f}" for label, seconds in busiest)
        log(f"  [{repetition + 1}] {name}: {measurement.rate:,.1f} {live[name].unit}/s (CPU s: {cpu})")
    for name, arm in live.items():
        if name not in outcomes:
            outcomes[name] = summarize(name, arm.unit, measurements[name])
    return {arm.name: outcomes[arm.name] for arm in arms}


def rpc_probe(
    target: str, method: str, request: bytes, metadata: Sequence[Sequence[str]], *, service: str
) -> Probe:
    """A probe making one unary call: UNIMPLEMENTED (or any failure) makes the arm unmeasurable."""

    async def probe() -> str | None:
        async with grpc.aio.insecure_channel(target) as channel:
            call = channel.unary_unary(method)
            try:
                await call(request, metadata=tuple((k, v) for k, v in metadata), timeout=30)
            except grpc.aio.AioRpcError as error:
                return describe_rpc_error(error, service=service, method=method)
        return None

    return probe


def describe_failure(error: Exception) -> str:
    """One line saying why an arm failed."""
    if isinstance(error, NotMeasurableError):
        return str(error)
    if isinstance(error, grpc.aio.AioRpcError):
        text = f"{error.code().name}: {error.details()}"
    else:
        text = f"{type(error).__name__}: {error}"
    return " ".join(text.split())[:300]


def describe_rpc_error(error: grpc.aio.AioRpcError, *, service: str, method: str) -> str:
    """The reason an arm is not measurable, from the status its probe got."""
    rpc = method.rsplit("/", 1)[-1]
    if error.code() is grpc.StatusCode.UNIMPLEMENTED:
        return f"{service} does not implement {rpc} yet"
    if error.code() is grpc.StatusCode.UNAVAILABLE:
        return f"{service} is not reachable ({error.details()})"
    return f"{service} {rpc} answered {error.code().name}: {error.details()}"
