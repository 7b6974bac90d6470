"""The metric catalogue: canonical and accepted units with their conversions, kinds, plausible ranges."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final


class MetricKind(enum.IntEnum):
    """How values of a metric combine over time (values equal the protobuf enum)."""

    CUMULATIVE = 1
    INSTANTANEOUS = 2


class HrvMethod(enum.IntEnum):
    """How an HRV value was computed (values equal the protobuf enum)."""

    UNSPECIFIED = 0
    RMSSD = 1
    SDNN = 2


Conversion = Callable[[float], float]


def _scale(factor: float) -> Conversion:
    return lambda value: value * factor


def _fahrenheit_to_celsius(value: float) -> float:
    return (value - 32.0) * 5.0 / 9.0


GLUCOSE_MG_PER_MMOL: Final = 18.0156  # molecular weight of glucose, 180.156 g/mol, per decilitre


@dataclass(frozen=True)
class Metric:
    """One metric type: its number (the protobuf ``MetricType`` value) and everything about its values."""

    number: int
    slug: str
    display_name: str
    canonical_unit: str
    kind: MetricKind
    plausible_min: float
    plausible_max: float
    accepted_units: dict[str, Conversion] = field(default_factory=dict)

    @property
    def requires_hrv(self) -> bool:
        """Whether samples of this metric carry an HRV method and window."""
        return self.slug == "heart-rate-variability"

    @property
    def cumulative(self) -> bool:
        """Whether a sample is an amount accrued over its interval."""
        return self.kind is MetricKind.CUMULATIVE

    def to_canonical(self, value: float, unit: str) -> float | None:
        """``value`` in the canonical unit, or ``None`` when ``unit`` is not accepted for this metric."""
        if not unit or unit == self.canonical_unit:
            return value
        conversion = self.accepted_units.get(unit)
        return None if conversion is None else conversion(value)


_C = MetricKind.CUMULATIVE
_I = MetricKind.INSTANTANEOUS
_PER_MIN = {"{beats}/min": _scale(1.0), "count/min": _scale(1.0), "/s": _scale(60.0)}
_KCAL = {"kJ": _scale(1 / 4.184), "Cal": _scale(1.0), "J": _scale(1 / 4184.0)}
_KG = {
    "g": _scale(0.001),
    "[lb_av]": _scale(0.45359237),
    "lb": _scale(0.45359237),
    "[st_av]": _scale(6.35029318),
}

METRICS: Final[tuple[Metric, ...]] = (
    Metric(1, "heart-rate", "Heart rate", "/min", _I, 20, 300, _PER_MIN),
    Metric(2, "resting-heart-rate", "Resting heart rate", "/min", _I, 20, 200, _PER_MIN),
    Metric(3, "heart-rate-variability", "Heart rate variability", "ms", _I, 1, 500, {"s": _scale(1000.0)}),
    Metric(4, "steps", "Steps", "{steps}", _C, 0, 200_000, {"count": _scale(1.0)}),
    Metric(
        5, "distance", "Distance", "m", _C, 0, 1_000_000, {"km": _scale(1000.0), "[mi_i]": _scale(1609.344)}
    ),
    Metric(6, "floors-climbed", "Floors climbed", "{floors}", _C, 0, 5_000, {"count": _scale(1.0)}),
    Metric(7, "active-energy", "Active energy", "kcal", _C, 0, 50_000, _KCAL),
    Metric(8, "basal-energy", "Basal energy", "kcal", _C, 0, 50_000, _KCAL),
    Metric(
        9, "exercise-time", "Exercise time", "min", _C, 0, 44_640, {"s": _scale(1 / 60), "h": _scale(60.0)}
    ),
    Metric(10, "oxygen-saturation", "Oxygen saturation", "%", _I, 50, 100),
    Metric(11, "respiratory-rate", "Respiratory rate", "/min", _I, 2, 80, {"count/min": _scale(1.0)}),
    Metric(12, "body-temperature", "Body temperature", "Cel", _I, 25, 45, {"[degF]": _fahrenheit_to_celsius}),
    Metric(13, "skin-temperature-deviation", "Skin temperature deviation", "Cel", _I, -10, 10),
    Metric(14, "body-weight", "Body weight", "kg", _I, 0.5, 650, _KG),
    Metric(15, "body-fat-percentage", "Body fat percentage", "%", _I, 1, 75),
    Metric(16, "lean-body-mass", "Lean body mass", "kg", _I, 0.5, 400, _KG),
    Metric(17, "body-mass-index", "Body mass index", "kg/m2", _I, 5, 150, {"count": _scale(1.0)}),
    Metric(18, "height", "Height", "cm", _I, 20, 300, {"m": _scale(100.0), "[in_i]": _scale(2.54)}),
    Metric(19, "blood-pressure-systolic", "Systolic blood pressure", "mm[Hg]", _I, 40, 300),
    Metric(20, "blood-pressure-diastolic", "Diastolic blood pressure", "mm[Hg]", _I, 20, 200),
    Metric(21, "cgm-glucose", "CGM glucose", "mg/dL", _I, 10, 1000, {"mmol/L": _scale(GLUCOSE_MG_PER_MMOL)}),
    Metric(
        22, "blood-glucose", "Blood glucose", "mg/dL", _I, 10, 1000, {"mmol/L": _scale(GLUCOSE_MG_PER_MMOL)}
    ),
    Metric(23, "vo2-max", "VO2 max", "mL/(kg.min)", _I, 5, 100),
    Metric(24, "speed", "Speed", "m/s", _I, 0, 150, {"km/h": _scale(1 / 3.6)}),
    Metric(25, "cadence", "Cadence", "/min", _I, 0, 400),
    Metric(26, "power", "Power", "W", _I, 0, 3000),
    Metric(27, "readiness-score", "Readiness score", "{score}", _I, 0, 100),
    Metric(28, "recovery-score", "Recovery score", "{score}", _I, 0, 100),
    Metric(29, "sleep-score", "Sleep score", "{score}", _I, 0, 100),
    Metric(30, "strain-score", "Strain score", "{score}", _I, 0, 100),
    Metric(31, "stress-level", "Stress level", "{score}", _I, 0, 100),
)
METRICS_BY_NUMBER: Final = {metric.number: metric for metric in METRICS}
METRICS_BY_SLUG: Final = {metric.slug: metric for metric in METRICS}


def metric_by_number(number: int) -> Metric | None:
    """The metric with this ``MetricType`` value, or ``None``."""
    return METRICS_BY_NUMBER.get(number)
