"""Series keys: one stable text name per series a rule, goal or analysis reads.

``metric:resting-heart-rate``, ``metric:heart-rate-variability:rmssd``, ``sleep:total-sleep-time``,
``biomarker:biomarkers/ldl-cholesterol-direct``, ``score:scoreFormulas/phenoage``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from vitalis.ingestion.v1 import metric_pb2
from vitalis.insights.v1 import common_pb2
from vitalis_runtime.errors import InvalidArgument

RESTING_HEART_RATE: Final = "metric:resting-heart-rate"
HRV_RMSSD: Final = "metric:heart-rate-variability:rmssd"
TOTAL_SLEEP_TIME: Final = "sleep:total-sleep-time"
SLEEP_EFFICIENCY: Final = "sleep:sleep-efficiency"
DEEP_SLEEP_TIME: Final = "sleep:deep-sleep-time"
REM_SLEEP_TIME: Final = "sleep:rem-sleep-time"
SLEEP_DEBT: Final = "sleep:sleep-debt"


@dataclass(frozen=True)
class SeriesValue:
    """One value of a series: when it was observed, in which unit, and the resource it came from."""

    series_key: str
    observe_time: datetime
    value: float
    unit: str
    evidence: str


def _slug(enum_name: str, prefix: str) -> str:
    return enum_name.removeprefix(prefix).lower().replace("_", "-")


def metric_key(metric: int, hrv_method: int = 0) -> str:
    """The key of a daily metric (with its HRV method for heart-rate variability)."""
    name = _slug(metric_pb2.MetricType.Name(metric), "METRIC_TYPE_")  # type: ignore[arg-type]
    if metric == metric_pb2.METRIC_TYPE_HEART_RATE_VARIABILITY:
        return f"metric:{name}:{_slug(metric_pb2.HrvMethod.Name(hrv_method), 'HRV_METHOD_')}"  # type: ignore[arg-type]
    return f"metric:{name}"


def series_key(series: common_pb2.Series, *, field: str = "series") -> str:
    """The key of a Series message; INVALID_ARGUMENT when it is missing or incomplete."""
    which = series.WhichOneof("measure")
    if which == "metric":
        if series.metric == metric_pb2.METRIC_TYPE_UNSPECIFIED:
            raise InvalidArgument.for_field(f"{field}.metric", "must not be METRIC_TYPE_UNSPECIFIED")
        if series.metric == metric_pb2.METRIC_TYPE_HEART_RATE_VARIABILITY:
            if series.hrv.method == metric_pb2.HRV_METHOD_UNSPECIFIED:
                raise InvalidArgument.for_field(
                    f"{field}.hrv.method", "is required for heart-rate variability (RMSSD and SDNN never mix)"
                )
            return metric_key(series.metric, series.hrv.method)
        return metric_key(series.metric)
    if which == "biomarker":
        if not series.biomarker.startswith("biomarkers/") or series.biomarker.count("/") != 1:
            raise InvalidArgument.for_field(
                f"{field}.biomarker", "must be a name like biomarkers/ldl-cholesterol-direct"
            )
        return f"biomarker:{series.biomarker}"
    if which == "sleep_measure":
        if series.sleep_measure == common_pb2.SLEEP_MEASURE_UNSPECIFIED:
            raise InvalidArgument.for_field(f"{field}.sleep_measure", "must not be SLEEP_MEASURE_UNSPECIFIED")
        return f"sleep:{_slug(common_pb2.SleepMeasure.Name(series.sleep_measure), 'SLEEP_MEASURE_')}"
    if which == "score_formula":
        if not series.score_formula.startswith("scoreFormulas/"):
            raise InvalidArgument.for_field(
                f"{field}.score_formula", "must be a name like scoreFormulas/phenoage"
            )
        return f"score:{series.score_formula}"
    raise InvalidArgument.for_field(field, "must name a metric, biomarker, sleep measure or score formula")


def series_from_key(key: str) -> common_pb2.Series:
    """The Series message a key stands for."""
    kind, _, rest = key.partition(":")
    series = common_pb2.Series()
    if kind == "metric":
        name, _, method = rest.partition(":")
        series.metric = metric_pb2.MetricType.Value("METRIC_TYPE_" + name.upper().replace("-", "_"))
        if method:
            series.hrv.method = metric_pb2.HrvMethod.Value("HRV_METHOD_" + method.upper())
    elif kind == "sleep":
        series.sleep_measure = common_pb2.SleepMeasure.Value(
            "SLEEP_MEASURE_" + rest.upper().replace("-", "_")
        )
    elif kind == "biomarker":
        series.biomarker = rest
    elif kind == "score":
        series.score_formula = rest
    return series
