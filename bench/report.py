"""The arithmetic of the benchmark report: medians over repetitions, ratios, targets, the table, JSON.

Pure functions over measurements, so the rules that decide "met" or "not met" are tested without
timing anything.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


@dataclass(frozen=True)
class Measurement:
    """One repetition of one arm: work done, wall time, CPU per process, latencies."""

    arm: str
    units: float
    seconds: float
    cpu_seconds: Mapping[str, float] = field(default_factory=dict)
    """CPU seconds (user + system) each process spent during the repetition, by process label."""
    latencies_ms: Sequence[float] = ()
    errors: int = 0
    peak_rss_mb: float | None = None
    """Growth of the watched server process's resident memory over the repetition, at its peak."""
    quality: float | None = None
    """A score of the work's result in [0, 1] (an extractor's recall)."""
    vanished: tuple[str, ...] = ()
    """Processes that exited during the repetition: their CPU is missing from ``cpu_seconds``."""

    @property
    def rate(self) -> float:
        """Units of work per second of wall time."""
        return self.units / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class ArmSummary:
    """An arm over all its repetitions: medians, so one noisy repetition does not decide."""

    arm: str
    unit: str
    repetitions: int
    rate: float
    """Median units per second."""
    p50_ms: float | None
    p99_ms: float | None
    """Median over repetitions of each repetition's 99th percentile latency."""
    cpu_per_unit: Mapping[str, float]
    """Median CPU seconds per unit of work, by process label."""
    errors: int
    peak_rss_mb: float | None = None
    quality: float | None = None
    vanished: tuple[str, ...] = ()


@dataclass(frozen=True)
class Unmeasurable:
    """An arm that could not be measured, and why (never replaced by a made-up number)."""

    arm: str
    reason: str


ArmOutcome = ArmSummary | Unmeasurable


class Metric(Enum):
    """What a target compares between two arms."""

    THROUGHPUT = "throughput"
    P99 = "p99"
    PEAK_RSS = "peak RSS"
    RECALL = "recall"


class Bound(Enum):
    """Which side of the target the measured ratio must be on."""

    AT_LEAST = "≥"
    AT_MOST = "≤"
    REPORTED = "reported"


@dataclass(frozen=True)
class Target:
    """A ratio ``metric(arm) / metric(reference)`` with its bound; REPORTED has no bound."""

    benchmark: str
    check: str
    arm: str
    reference: str | None
    metric: Metric = Metric.THROUGHPUT
    bound: Bound = Bound.AT_LEAST
    value: float = 0.0
    why_missed: str = ""
    """Known cause to print when the target is missed; a throughput miss also names the processes
    that spent the extra CPU per unit."""
    fixed_reference: tuple[float, str] | None = None
    """A known quantity instead of a reference arm, e.g. ``(20.0, "the largest file, 20 MB")``."""

    def describe(self) -> str:
        """How the target reads in the table, e.g. ``≥ 0.80x``."""
        if self.bound is Bound.REPORTED:
            return "reported"
        return f"{self.bound.value} {self.value:.2f}x"


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    benchmark: str
    check: str
    target: str
    measured: str
    ratio: float | None
    met: bool | None
    note: str


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in [0, 1]) of a non-empty sequence."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction {fraction} is outside [0, 1]")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summarize(arm: str, unit: str, measurements: Sequence[Measurement]) -> ArmSummary:
    """Medians over the repetitions of one arm."""
    if not measurements:
        raise ValueError(f"arm {arm} has no measurements")
    with_latency = [m for m in measurements if m.latencies_ms]
    labels = sorted({label for m in measurements for label in m.cpu_seconds})
    cpu_per_unit = {
        label: statistics.median(
            m.cpu_seconds.get(label, 0.0) / m.units if m.units else 0.0 for m in measurements
        )
        for label in labels
    }
    rss = [m.peak_rss_mb for m in measurements if m.peak_rss_mb is not None]
    quality = [m.quality for m in measurements if m.quality is not None]
    return ArmSummary(
        arm=arm,
        unit=unit,
        repetitions=len(measurements),
        rate=statistics.median(m.rate for m in measurements),
        p50_ms=statistics.median(percentile(m.latencies_ms, 0.5) for m in with_latency)
        if with_latency
        else None,
        p99_ms=statistics.median(percentile(m.latencies_ms, 0.99) for m in with_latency)
        if with_latency
        else None,
        cpu_per_unit=cpu_per_unit,
        errors=sum(m.errors for m in measurements),
        peak_rss_mb=max(rss) if rss else None,
        quality=statistics.median(quality) if quality else None,
        vanished=tuple(sorted({label for m in measurements for label in m.vanished})),
    )


def interleaved_order(arms: Sequence[str], repetitions: int) -> list[tuple[int, str]]:
    """``(repetition, arm)`` in the order to run them: A, B, A, B … so drift hits every arm alike."""
    if repetitions < 1:
        raise ValueError("at least one repetition")
    return [(repetition, arm) for repetition in range(repetitions) for arm in arms]


def _metric_of(summary: ArmSummary, metric: Metric) -> float | None:
    if metric is Metric.THROUGHPUT:
        return summary.rate
    if metric is Metric.P99:
        return summary.p99_ms
    if metric is Metric.RECALL:
        return summary.quality
    return summary.peak_rss_mb


def _format_value(summary: ArmSummary, metric: Metric) -> str:
    value = _metric_of(summary, metric)
    if value is None:
        return "n/a"
    if metric is Metric.THROUGHPUT:
        return f"{value:,.1f} {summary.unit}/s"
    if metric is Metric.P99:
        return f"p99 {value:.1f} ms"
    if metric is Metric.RECALL:
        return f"recall {value:.3f}"
    return f"RSS +{value:.0f} MB"


def evaluate(target: Target, outcomes: Mapping[str, ArmOutcome]) -> Row:
    """Compare the arm with its reference; say plainly why when the ratio cannot be formed or misses."""
    base = {"benchmark": target.benchmark, "check": target.check, "target": target.describe()}
    needed = [target.arm] if target.reference is None else [target.arm, target.reference]
    for name in needed:
        outcome = outcomes.get(name)
        if outcome is None:
            return Row(
                **base, measured="—", ratio=None, met=None, note=f"not measurable: arm {name} did not run"
            )
        if isinstance(outcome, Unmeasurable):
            return Row(**base, measured="—", ratio=None, met=None, note=f"not measurable: {outcome.reason}")
    arm = outcomes[target.arm]
    assert isinstance(arm, ArmSummary)
    measured = _format_value(arm, target.metric)
    if target.fixed_reference is not None:
        return _against_fixed(target, arm, base, measured)
    if target.reference is None:
        return Row(**base, measured=measured, ratio=None, met=None, note=_errors_note(arm))
    reference = outcomes[target.reference]
    assert isinstance(reference, ArmSummary)
    measured = f"{measured} vs {_format_value(reference, target.metric)}"
    numerator, denominator = _metric_of(arm, target.metric), _metric_of(reference, target.metric)
    if numerator is None or denominator is None or denominator == 0:
        return Row(
            **base,
            measured=measured,
            ratio=None,
            met=None,
            note="not measurable: the reference measured zero",
        )
    ratio = numerator / denominator
    if target.bound is Bound.REPORTED:
        return Row(**base, measured=measured, ratio=ratio, met=None, note=_errors_note(arm, reference))
    met = ratio >= target.value if target.bound is Bound.AT_LEAST else ratio <= target.value
    note = _errors_note(arm, reference)
    if not met:
        # A stated cause of a missed throughput still comes with where the extra CPU went.
        causes = [target.why_missed] if target.why_missed else []
        if target.metric is Metric.THROUGHPUT or not causes:
            causes.append(_default_why(arm, reference))
        why = "; ".join(causes)
        note = f"{why}; {note}" if note else why
    return Row(**base, measured=measured, ratio=ratio, met=met, note=note)


def _against_fixed(target: Target, arm: ArmSummary, base: dict[str, str], measured: str) -> Row:
    assert target.fixed_reference is not None
    denominator, label = target.fixed_reference
    numerator = _metric_of(arm, target.metric)
    measured = f"{measured} vs {label}"
    if numerator is None:
        return Row(
            **base, measured=measured, ratio=None, met=None, note=f"not measurable: no {target.metric.value}"
        )
    ratio = numerator / denominator
    met = ratio >= target.value if target.bound is Bound.AT_LEAST else ratio <= target.value
    note = "" if met else (target.why_missed or f"{target.metric.value} outside the bound")
    vanished = _errors_note(arm)
    note = f"{note}; {vanished}" if note and vanished else note or vanished
    return Row(**base, measured=measured, ratio=ratio, met=met, note=note)


def _errors_note(*summaries: ArmSummary) -> str:
    failed = [f"{s.arm}: {s.errors} failed calls" for s in summaries if s.errors]
    failed += [
        f"{s.arm}: {', '.join(s.vanished)} exited during the measurement (its CPU is missing)"
        for s in summaries
        if s.vanished
    ]
    return "; ".join(failed)


def _default_why(arm: ArmSummary, reference: ArmSummary) -> str:
    """Where the extra CPU per unit goes, the usual explanation of a missed throughput ratio."""
    extra = {
        label: arm.cpu_per_unit.get(label, 0.0) - reference.cpu_per_unit.get(label, 0.0)
        for label in set(arm.cpu_per_unit) | set(reference.cpu_per_unit)
    }
    costly = sorted((item for item in extra.items() if item[1] > 0), key=lambda item: -item[1])[:3]
    if not costly:
        ours, theirs = sum(arm.cpu_per_unit.values()), sum(reference.cpu_per_unit.values())
        if ours > 0 and theirs > 0:
            return (
                f"less CPU per {arm.unit} than the reference in every process "
                f"({ours * 1e6:,.0f} vs {theirs * 1e6:,.0f} µs in all), but not by enough"
            )
        return "missed without extra CPU per unit (waiting, not computing)"
    parts = ", ".join(f"{label} +{seconds * 1e6:,.0f} µs" for label, seconds in costly)
    return f"extra CPU per {arm.unit}: {parts}"


def render_table(rows: Sequence[Row]) -> str:
    """The table printed at the end of ``make bench``."""
    header = ("#", "check", "target", "ratio", "met", "measured", "why / note")
    lines = [
        (
            row.benchmark,
            row.check,
            row.target,
            "—" if row.ratio is None else f"{row.ratio:.2f}x",
            {True: "yes", False: "NO", None: "—"}[row.met],
            row.measured,
            row.note,
        )
        for row in rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header) - 1)]
    out = []
    for cells in [header, *lines]:
        out.append(
            "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=False))
            + "  "
            + cells[-1]
        )
        if cells is header:
            out.append("  ".join("-" * width for width in widths) + "  " + "-" * 10)
    return "\n".join(out)


def render_arms(outcomes: Mapping[str, ArmOutcome]) -> str:
    """Per-arm medians with CPU per unit for every process, for reading the table's ratios."""
    out = []
    for outcome in outcomes.values():
        if isinstance(outcome, Unmeasurable):
            out.append(f"  {outcome.arm}: not measurable: {outcome.reason}")
            continue
        latency = (
            "" if outcome.p99_ms is None else f", p50 {outcome.p50_ms:.1f} ms, p99 {outcome.p99_ms:.1f} ms"
        )
        cpu = ", ".join(
            f"{label} {seconds * 1e6:,.0f}" for label, seconds in sorted(outcome.cpu_per_unit.items())
        )
        rss = "" if outcome.peak_rss_mb is None else f", RSS growth {outcome.peak_rss_mb:.0f} MB"
        rss += "" if outcome.quality is None else f", recall {outcome.quality:.3f}"
        out.append(
            f"  {outcome.arm}: {outcome.rate:,.1f} {outcome.unit}/s"
            f" (median of {outcome.repetitions}{latency}{rss})"
            f"; CPU µs per {outcome.unit}: {cpu or 'n/a'}"
            + (f"; {outcome.errors} failed calls" if outcome.errors else "")
        )
    return "\n".join(out)


def report_document(
    *, rows: Sequence[Row], outcomes: Mapping[str, ArmOutcome], versions: Mapping[str, str], started: str
) -> dict[str, Any]:
    """The JSON written to ``bench/results/``."""
    arms: dict[str, Any] = {}
    for name, outcome in outcomes.items():
        if isinstance(outcome, Unmeasurable):
            arms[name] = {"measurable": False, "reason": outcome.reason}
        else:
            arms[name] = {
                "measurable": True,
                "unit": outcome.unit,
                "repetitions": outcome.repetitions,
                "median_rate_per_s": outcome.rate,
                "p50_ms": outcome.p50_ms,
                "p99_ms": outcome.p99_ms,
                "cpu_seconds_per_unit": dict(outcome.cpu_per_unit),
                "errors": outcome.errors,
                "peak_rss_growth_mb": outcome.peak_rss_mb,
                "quality": outcome.quality,
                "exited_during_measurement": list(outcome.vanished),
            }
    return {
        "started": started,
        "versions": dict(versions),
        "rows": [
            {
                "benchmark": row.benchmark,
                "check": row.check,
                "target": row.target,
                "ratio": row.ratio,
                "met": row.met,
                "measured": row.measured,
                "note": row.note,
            }
            for row in rows
        ],
        "arms": arms,
    }
