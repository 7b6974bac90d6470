"""The benchmark report's rules on made-up measurements: medians, ratios, targets, the table and JSON."""

from __future__ import annotations

import json

import pytest

from bench.report import (
    ArmSummary,
    Bound,
    Measurement,
    Metric,
    Target,
    Unmeasurable,
    evaluate,
    interleaved_order,
    percentile,
    render_arms,
    render_table,
    report_document,
    summarize,
)


def arm(
    name: str, rates: list[float], *, cpu: float = 0.5, latencies: list[float] | None = None
) -> ArmSummary:
    return summarize(
        name,
        "req",
        [
            Measurement(
                arm=name,
                units=rate * 2.0,
                seconds=2.0,
                cpu_seconds={"service": cpu * rate * 2.0 / 1000, "driver": 0.1},
                latencies_ms=latencies or [],
            )
            for rate in rates
        ],
    )


def test_interleaving_alternates_the_arms_within_each_repetition() -> None:
    assert interleaved_order(["a", "b"], 3) == [(0, "a"), (0, "b"), (1, "a"), (1, "b"), (2, "a"), (2, "b")]


def test_interleaving_needs_a_repetition() -> None:
    with pytest.raises(ValueError, match="at least one"):
        interleaved_order(["a"], 0)


def test_the_median_ignores_one_outlying_repetition() -> None:
    summary = arm("a", [100.0, 1000.0, 110.0])
    assert summary.rate == pytest.approx(110.0)
    assert summary.repetitions == 3


def test_cpu_per_unit_is_the_median_of_each_processes_share() -> None:
    summary = arm("a", [100.0, 200.0, 400.0], cpu=0.5)
    assert summary.cpu_per_unit["service"] == pytest.approx(0.0005)
    assert summary.cpu_per_unit["driver"] == pytest.approx(0.1 / 400.0)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 0.5) == 50.0
    assert percentile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_p99_is_the_median_of_the_repetitions_p99() -> None:
    slow = list(range(1, 101))
    summary = summarize(
        "a",
        "req",
        [
            Measurement("a", 100, 1.0, latencies_ms=[float(v) for v in slow]),
            Measurement("a", 100, 1.0, latencies_ms=[float(v) * 2 for v in slow]),
            Measurement("a", 100, 1.0, latencies_ms=[float(v) * 10 for v in slow]),
        ],
    )
    assert summary.p99_ms == pytest.approx(198.0)


def test_a_throughput_ratio_at_or_above_the_bound_is_met() -> None:
    target = Target("B4", "REST + JWT vs direct", arm="rest", reference="grpc", value=0.8)
    row = evaluate(target, {"rest": arm("rest", [80.0]), "grpc": arm("grpc", [100.0])})
    assert row.ratio == pytest.approx(0.8)
    assert row.met is True


def test_a_missed_throughput_target_names_the_process_spending_the_extra_cpu() -> None:
    target = Target("B4", "REST + JWT vs direct", arm="rest", reference="grpc", value=0.8)
    slow = summarize(
        "rest", "req", [Measurement("rest", 100, 1.0, cpu_seconds={"envoy": 0.05, "service": 0.02})]
    )
    fast = summarize("grpc", "req", [Measurement("grpc", 200, 1.0, cpu_seconds={"service": 0.04})])
    row = evaluate(target, {"rest": slow, "grpc": fast})
    assert row.met is False
    assert row.ratio == pytest.approx(0.5)
    assert "envoy +500 µs" in row.note


def test_a_latency_target_is_an_upper_bound() -> None:
    target = Target(
        "B3", "p99", arm="vitalis", reference="peer", metric=Metric.P99, bound=Bound.AT_MOST, value=1.2
    )
    row = evaluate(
        target,
        {
            "vitalis": arm("vitalis", [100.0], latencies=[13.0] * 100),
            "peer": arm("peer", [100.0], latencies=[10.0] * 100),
        },
    )
    assert row.ratio == pytest.approx(1.3)
    assert row.met is False
    assert row.target == "≤ 1.20x"


def test_an_unmeasurable_arm_gives_no_number_and_says_why() -> None:
    target = Target("B1", "stream vs COPY", arm="stream", reference="copy", value=0.7)
    reason = "ingestion does not implement StreamSamples yet"
    row = evaluate(target, {"stream": Unmeasurable("stream", reason), "copy": arm("copy", [1000.0])})
    assert row.ratio is None
    assert row.met is None
    assert row.note == f"not measurable: {reason}"


def test_an_arm_that_never_ran_is_reported_as_such() -> None:
    row = evaluate(Target("B5", "upload", arm="upload", reference="sha"), {})
    assert row.met is None
    assert "did not run" in row.note


def test_a_reported_row_has_a_ratio_but_no_verdict() -> None:
    target = Target("B4", "Envoy hop", arm="envoy", reference="direct", bound=Bound.REPORTED)
    row = evaluate(target, {"envoy": arm("envoy", [90.0]), "direct": arm("direct", [100.0])})
    assert row.ratio == pytest.approx(0.9)
    assert row.met is None


def test_failed_calls_are_shown_beside_the_ratio() -> None:
    failing = summarize("a", "req", [Measurement("a", 100, 1.0, errors=3)])
    row = evaluate(Target("B4", "x", arm="a", reference="b"), {"a": failing, "b": arm("b", [100.0])})
    assert "3 failed calls" in row.note


def test_the_table_and_json_carry_every_row_and_arm() -> None:
    outcomes = {"a": arm("a", [100.0], latencies=[1.0, 2.0]), "b": Unmeasurable("b", "not there yet")}
    rows = [
        evaluate(Target("B4", "a vs a", arm="a", reference="a", value=0.8), outcomes),
        evaluate(Target("B1", "b vs a", arm="b", reference="a", value=0.7), outcomes),
    ]
    table = render_table(rows)
    assert "B4" in table
    assert "not measurable: not there yet" in table
    assert "yes" in table
    assert "not measurable: not there yet" in render_arms(outcomes)
    document = report_document(rows=rows, outcomes=outcomes, versions={"python": "3.11"}, started="now")
    decoded = json.loads(json.dumps(document))
    assert decoded["rows"][0]["met"] is True
    assert decoded["rows"][1]["met"] is None
    assert decoded["arms"]["b"] == {"measurable": False, "reason": "not there yet"}
    assert decoded["arms"]["a"]["median_rate_per_s"] == pytest.approx(100.0)


def test_memory_is_judged_against_a_known_size() -> None:
    target = Target(
        "B5",
        "memory",
        arm="upload",
        reference=None,
        metric=Metric.PEAK_RSS,
        bound=Bound.AT_MOST,
        value=1.0,
        fixed_reference=(20.0, "the largest file, 20 MB"),
    )
    bounded = summarize("upload", "MB", [Measurement("upload", 100, 1.0, peak_rss_mb=6.0)])
    row = evaluate(target, {"upload": bounded})
    assert row.ratio == pytest.approx(0.3)
    assert row.met is True
    buffered = summarize("upload", "MB", [Measurement("upload", 100, 1.0, peak_rss_mb=45.0)])
    assert evaluate(target, {"upload": buffered}).met is False


def test_recall_is_compared_as_a_quality_not_a_rate() -> None:
    target = Target("B6", "recall", arm="ours", reference="theirs", metric=Metric.RECALL, value=1.0)
    ours = summarize(
        "ours",
        "page",
        [Measurement("ours", 10, 1.0, quality=0.97), Measurement("ours", 10, 1.0, quality=0.99)],
    )
    theirs = summarize("theirs", "page", [Measurement("theirs", 10, 1.0, quality=0.98)])
    row = evaluate(target, {"ours": ours, "theirs": theirs})
    assert ours.quality == pytest.approx(0.98)
    assert row.ratio == pytest.approx(1.0)
    assert row.met is True
    assert "recall 0.980" in row.measured


def test_a_process_that_exited_during_a_measurement_is_named_beside_the_ratio() -> None:
    crashed = summarize("import", "record", [Measurement("import", 100, 1.0, vanished=("ingestion",))])
    row = evaluate(
        Target("B2", "import", arm="import", reference="floor"),
        {"import": crashed, "floor": arm("floor", [100.0])},
    )
    assert "ingestion exited during the measurement" in row.note


def test_a_miss_with_less_cpu_everywhere_says_so() -> None:
    ours = summarize("ours", "page", [Measurement("ours", 100, 1.0, cpu_seconds={"load generator": 1.0})])
    theirs = summarize(
        "theirs", "page", [Measurement("theirs", 50, 1.0, cpu_seconds={"load generator": 2.0})]
    )
    row = evaluate(
        Target("B6", "pages", arm="ours", reference="theirs", value=5.0), {"ours": ours, "theirs": theirs}
    )
    assert row.met is False
    assert "less CPU per page than the reference in every process" in row.note


def test_a_stated_cause_of_a_missed_throughput_comes_with_where_the_cpu_went() -> None:
    target = Target(
        "B9", "x vs y", arm="x", reference="y", value=1.0, why_missed="every row is inserted twice"
    )
    outcomes = {"x": arm("x", [50.0], cpu=4.0), "y": arm("y", [100.0], cpu=1.0)}

    row = evaluate(target, outcomes)

    assert row.met is False
    assert row.note.startswith("every row is inserted twice; extra CPU per req: service +")
