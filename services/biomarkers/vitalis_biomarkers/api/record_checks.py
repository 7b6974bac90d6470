"""Checks of body-composition scans and epigenetic tests as clients send them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from google.protobuf.message import Message

from vitalis.biomarkers.v1 import body_composition_scan_pb2, epigenetic_test_pb2
from vitalis_biomarkers.dictionary.units import Units
from vitalis_runtime.errors import InvalidArgument

CLOCK_SKEW = timedelta(minutes=5)
MAX_TEXT = 200
MAX_NOTE = 2000


def _check_time(moment: datetime, field: str) -> None:
    if moment > datetime.now(UTC) + CLOCK_SKEW:
        raise InvalidArgument.for_field(field, "must not be in the future")


def _check_range(value: float | None, low: float, high: float, field: str) -> None:
    if value is not None and (not math.isfinite(value) or not low <= value <= high):
        raise InvalidArgument.for_field(field, f"must be between {low:g} and {high:g}")


def _optional(message: Message, field: str) -> float | None:
    return getattr(message, field) if message.HasField(field) else None


def _check_texts(message: Message, fields: Sequence[str], prefix: str) -> None:
    for field in fields:
        limit = MAX_NOTE if field == "note" else MAX_TEXT
        if len(getattr(message, field)) > limit:
            raise InvalidArgument.for_field(f"{prefix}.{field}", f"must be at most {limit} characters")


def validate_scan(scan: body_composition_scan_pb2.BodyCompositionScan, prefix: str) -> datetime:
    """Check a scan; return its time."""
    if not scan.HasField("scan_time"):
        raise InvalidArgument.for_field(f"{prefix}.scan_time", "is required")
    moment = scan.scan_time.ToDatetime(tzinfo=UTC)
    _check_time(moment, f"{prefix}.scan_time")
    if scan.method not in body_composition_scan_pb2.ScanMethod.values() or scan.method == 0:
        raise InvalidArgument.for_field(f"{prefix}.method", "is required: DEXA, bioimpedance, ...")
    for field in ("total_mass_kg", "fat_mass_kg", "lean_mass_kg", "bone_mineral_content_kg"):
        _check_range(_optional(scan, field), 0, 700, f"{prefix}.{field}")
    _check_range(_optional(scan, "body_fat_percentage"), 0, 100, f"{prefix}.body_fat_percentage")
    _check_range(_optional(scan, "visceral_fat_mass_grams"), 0, 20000, f"{prefix}.visceral_fat_mass_grams")
    _check_range(_optional(scan, "visceral_fat_volume_cm3"), 0, 25000, f"{prefix}.visceral_fat_volume_cm3")
    _check_range(
        _optional(scan, "appendicular_lean_mass_index"), 0, 30, f"{prefix}.appendicular_lean_mass_index"
    )
    _check_range(_optional(scan, "android_gynoid_ratio"), 0, 5, f"{prefix}.android_gynoid_ratio")
    seen_regions: set[int] = set()
    for index, region in enumerate(scan.regions):
        path = f"{prefix}.regions[{index}]"
        if region.region == 0 or region.region in seen_regions:
            raise InvalidArgument.for_field(f"{path}.region", "is required and must not repeat")
        seen_regions.add(region.region)
        for field in ("fat_mass_kg", "lean_mass_kg", "bone_mineral_content_kg"):
            _check_range(_optional(region, field), 0, 400, f"{path}.{field}")
        _check_range(_optional(region, "fat_percentage"), 0, 100, f"{path}.fat_percentage")
    for index, bone in enumerate(scan.bone_densities):
        path = f"{prefix}.bone_densities[{index}]"
        if bone.site == 0:
            raise InvalidArgument.for_field(f"{path}.site", "is required")
        if not 0 < bone.bone_mineral_density <= 3:
            raise InvalidArgument.for_field(
                f"{path}.bone_mineral_density", "must be above 0 and at most 3 g/cm2"
            )
        _check_range(_optional(bone, "t_score"), -10, 10, f"{path}.t_score")
        _check_range(_optional(bone, "z_score"), -10, 10, f"{path}.z_score")
    _check_texts(scan, ("facility", "device_model", "note"), prefix)
    return moment


def validate_test(test: epigenetic_test_pb2.EpigeneticTest, prefix: str, units: Units) -> datetime:
    """Check an epigenetic test; return its collection time."""
    if not test.HasField("collection_time"):
        raise InvalidArgument.for_field(f"{prefix}.collection_time", "is required")
    moment = test.collection_time.ToDatetime(tzinfo=UTC)
    _check_time(moment, f"{prefix}.collection_time")
    _check_range(_optional(test, "biological_age_years"), 0, 150, f"{prefix}.biological_age_years")
    _check_range(_optional(test, "pace_of_aging"), 0.1, 5, f"{prefix}.pace_of_aging")
    for index, organ in enumerate(test.organ_ages):
        path = f"{prefix}.organ_ages[{index}]"
        if organ.organ_system == 0:
            raise InvalidArgument.for_field(f"{path}.organ_system", "is required")
        _check_range(organ.age_years, 0, 150, f"{path}.age_years")
    for index, result in enumerate(test.clock_results):
        path = f"{prefix}.clock_results[{index}]"
        if not result.clock.strip():
            raise InvalidArgument.for_field(f"{path}.clock", "is required, for example DunedinPACE")
        if not math.isfinite(result.value):
            raise InvalidArgument.for_field(f"{path}.value", "must be a finite number")
        if not units.is_valid(result.unit):
            raise InvalidArgument.for_field(
                f"{path}.unit", f"{result.unit!r} is not a UCUM unit", reason="UNKNOWN_UNIT"
            )
    _check_texts(
        test, ("provider", "test_name", "biological_age_clock", "pace_of_aging_clock", "note"), prefix
    )
    return moment
