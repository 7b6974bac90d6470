"""Test and benchmark support: a synthetic Apple Health ``export.xml`` of any size, shaped like a real one.

Records alternate between heart rate, step count, active energy and HRV (SDNN, as Apple exports it),
one minute apart, with the local time-zone offsets Apple writes; every tenth record carries a
``MetadataEntry``. The header, ``Me`` element and DTD-less root match what the Health app exports.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<HealthData locale="en_GB">
 <ExportDate value="2026-01-31 12:00:00 +0000"/>
 <Me HKCharacteristicTypeIdentifierDateOfBirth="1985-04-12"
     HKCharacteristicTypeIdentifierBiologicalSex="HKBiologicalSexFemale"
     HKCharacteristicTypeIdentifierBloodType="HKBloodTypeNotSet"
     HKCharacteristicTypeIdentifierFitzpatrickSkinType="HKFitzpatrickSkinTypeNotSet"
     HKCharacteristicTypeIdentifierCardioFitnessMedicationsUse="None"/>
"""
FOOTER = "</HealthData>\n"
KINDS: tuple[tuple[str, str, Callable[[int], str]], ...] = (
    ("HKQuantityTypeIdentifierHeartRate", "count/min", lambda i: f"{55 + (i * 7919) % 60}"),
    ("HKQuantityTypeIdentifierStepCount", "count", lambda i: f"{(i * 104729) % 180}"),
    ("HKQuantityTypeIdentifierActiveEnergyBurned", "kcal", lambda i: f"{((i * 31) % 97) / 10:.1f}"),
    ("HKQuantityTypeIdentifierHeartRateVariabilitySDNN", "ms", lambda i: f"{20 + (i * 13) % 70}.{i % 10}"),
)
SOURCE = (
    'sourceName="Bench Watch" sourceVersion="10.2" device="&lt;&lt;HKDevice: 0x0&gt;, name:Apple Watch&gt;"'
)
# Far enough back that a million minutes end before today: samples from the future are rejected.
START = datetime(2023, 1, 1)


def record_line(i: int, start: datetime = START) -> str:
    """The ``Record`` element of record ``i`` of an export beginning at ``start`` (UTC)."""
    kind, unit, value = KINDS[i % len(KINDS)]
    # One reading a minute in UTC, written in local time whose offset changes every 100,000 records.
    hours = 1 if (i // 100_000) % 2 == 0 else 2
    local = start + timedelta(minutes=i, hours=hours)
    stamp = f"{local:%Y-%m-%d %H:%M:%S} +0{hours}00"
    end = f"{local + timedelta(seconds=59):%Y-%m-%d %H:%M:%S} +0{hours}00"
    attributes = (
        f'type="{kind}" {SOURCE} unit="{unit}" creationDate="{stamp}" startDate="{stamp}" endDate="{end}" '
        f'value="{value(i)}"'
    )
    if i % 10 == 0:
        return (
            f" <Record {attributes}>\n"
            '  <MetadataEntry key="HKMetadataKeyHeartRateMotionContext" value="0"/>\n'
            " </Record>\n"
        )
    return f" <Record {attributes}/>\n"


def write_export(path: Path, records: int, *, start: datetime = START) -> int:
    """Write ``records`` records, one minute apart from ``start``, to ``path``; return its size in bytes."""
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER)
        batch: list[str] = []
        for i in range(records):
            batch.append(record_line(i, start))
            if len(batch) == 10_000:
                out.write("".join(batch))
                batch.clear()
        out.write("".join(batch))
        out.write(FOOTER)
    return path.stat().st_size
