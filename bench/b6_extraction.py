"""B6: lab-report extraction — documents' parser against a pdfplumber-based one, same corpus.

Each arm is a load generator that writes documents' generated corpus (``extraction_bench``: five
layouts, six reports each) and reads report after report with its extractor for the repetition's
duration; pages per second is the throughput, recall over the first pass the quality.
"""

from __future__ import annotations

from bench.report import ArmOutcome, Metric, Target
from bench.runner import DriverArm, Log, Settings, measure_arms
from bench.stack import Stack

PER_LAYOUT = 6
VITALIS, PDFPLUMBER = "B6 documents' extraction", "B6 pdfplumber extraction"

TARGETS = (
    Target("B6", "pages/s vs pdfplumber", arm=VITALIS, reference=PDFPLUMBER, value=5.0),
    Target(
        "B6",
        "recall vs pdfplumber (not lower)",
        arm=VITALIS,
        reference=PDFPLUMBER,
        metric=Metric.RECALL,
        value=1.0,
    ),
)


async def run(stack: Stack, settings: Settings, log: Log) -> dict[str, ArmOutcome]:
    """Measure both extractors interleaved."""
    common = {"kind": "extraction", "per_layout": PER_LAYOUT, "concurrency": 1}
    arms = [
        DriverArm(VITALIS, "page", {**common, "engine": "vitalis"}, stack),
        DriverArm(PDFPLUMBER, "page", {**common, "engine": "pdfplumber"}, stack),
    ]
    return await measure_arms(arms, settings, log)
