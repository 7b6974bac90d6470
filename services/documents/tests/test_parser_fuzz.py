"""The parser under arbitrary input: it never crashes and never hangs."""

from __future__ import annotations

import asyncio
import random
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vitalis_documents.domain.model import ParseStateReason
from vitalis_documents.extraction_bench.corpus import generate_report
from vitalis_documents.parsing.lab_report import extract_lab_report
from vitalis_documents.parsing.layout import PageText, Word
from vitalis_documents.parsing.sandbox import ParseBudget, parse_in_sandbox
from vitalis_documents.parsing.values import find_date, normalize_unit, parse_range, parse_value

TOKENS = st.one_of(
    st.text(min_size=1, max_size=12),
    st.sampled_from(
        ["Glucose", "95", "5,4", "<0.5", "mg/dL", "H", "LL", "3,5 - 5,1", "< 116", "Test", "Result", "Unit"]
    ),
)
WORDS = st.builds(
    Word,
    text=TOKENS,
    left=st.floats(-50, 700),
    top=st.floats(-50, 900),
    right=st.floats(-50, 750),
    bottom=st.floats(-50, 950),
)


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(WORDS, max_size=60), min_size=1, max_size=3))
def test_layout_extraction_accepts_any_words(pages: list[list[Word]]) -> None:
    report = extract_lab_report(
        [PageText(number=i + 1, width=595.0, height=842.0, words=words) for i, words in enumerate(pages)]
    )
    for row in report.rows:
        assert row.printed_name
        assert 0.0 <= row.value_confidence <= 1.0
        assert row.bounding_box.left >= 0.0
        assert row.bounding_box.width <= 1.0


@settings(max_examples=300, deadline=500)
@given(st.text(max_size=40))
def test_field_readers_accept_any_text(text: str) -> None:
    parse_value(text)
    parse_value(text, decimal_comma=True)
    parse_range(text)
    normalize_unit(text)
    find_date(text)


def _mutations(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    base = bytearray(generate_report("table", seed).pdf)
    mutated = []
    for _ in range(count):
        data = bytearray(base)
        for _ in range(rng.randrange(1, 40)):
            position = rng.randrange(len(data))
            choice = rng.random()
            if choice < 0.5:
                data[position] = rng.randrange(256)
            elif choice < 0.8:
                del data[position : position + rng.randrange(1, 200)]
            else:
                data[position:position] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 50)))
        mutated.append(bytes(data))
    return mutated


async def test_mutated_pdfs_never_crash_or_hang_the_worker() -> None:
    budget = ParseBudget(seconds=10, memory_bytes=512 * 1024 * 1024, max_pages=20)
    reasons = set()
    with tempfile.TemporaryDirectory() as folder:
        for index, data in enumerate(_mutations(seed=1, count=10)):
            path = Path(folder) / f"mutant-{index}.pdf"
            path.write_bytes(data)
            result = await asyncio.wait_for(parse_in_sandbox(path, "application/pdf", budget), timeout=20)
            assert (result.report is None) != (result.failure is None)
            if result.failure is not None:
                reasons.add(result.failure.reason)
                assert result.failure.message
    assert ParseStateReason.INTERNAL_ERROR not in reasons
