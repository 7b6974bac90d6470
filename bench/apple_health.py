"""A synthetic Apple Health ``export.xml`` of any size, shaped like a real one.

Records alternate between heart rate, step count, active energy and HRV (SDNN, as Apple exports it),
one minute apart, with the local time-zone offsets Apple writes; every tenth record carries a
``MetadataEntry``. The header, ``Me`` element and DTD-less root match what the Health app exports.
"""

from __future__ import annotations

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
KINDS = (
    ("HKQuantityTypeIdentifierHeartRate", "count/min", lambda i: f"{55 + (i * 7919) % 60}"),
    ("HKQuantityTypeIdentifierStepCount", "count", lambda i: f"{(i * 104729) % 180}"),
    ("HKQuantityTypeIdentifierActiveEnergyBurned", "kcal", lambda i: f"{((i * 31) % 97) / 10:.1f}"),
    ("HKQuantityTypeIdentifierHeartRateVariabilitySDNN", "ms", lambda i: f"{20 + (i * 13) % 70}.{i % 10}"),
)
SOURCE = (
    'sourceName="Bench Watch" sourceVersion="10.2" device="&lt;&lt;HKDevice: 0x0&gt;, name:Apple Watch&gt;"'
)
START = datetime(2025, 6, 1)


def record_line(i: int) -> str:
    """The ``Record`` element of record ``i``."""
    kind, unit, value = KINDS[i % len(KINDS)]
    start = START + timedelta(minutes=i)
    offset = "+0100" if (i // 100_000) % 2 == 0 else "+0200"
    stamp = f"{start:%Y-%m-%d %H:%M:%S} {offset}"
    end = f"{start + timedelta(seconds=59):%Y-%m-%d %H:%M:%S} {offset}"
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


def write_export(path: Path, records: int) -> int:
    """Write an export with ``records`` records to ``path``; return its size in bytes."""
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER)
        batch: list[str] = []
        for i in range(records):
            batch.append(record_line(i))
            if len(batch) == 10_000:
                out.write("".join(batch))
                batch.clear()
        out.write("".join(batch))
        out.write(FOOTER)
    return path.stat().st_size
