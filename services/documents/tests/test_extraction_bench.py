"""The extraction benchmark: recall and precision per field must not drop below their floors."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

from vitalis_documents.extraction_bench.__main__ import main
from vitalis_documents.extraction_bench.corpus import LAYOUTS, generate_corpus, generate_report
from vitalis_documents.extraction_bench.scoring import FIELDS, run_benchmark

RECALL_FLOOR = {"name": 0.97, "value": 0.97, "unit": 0.95, "flag": 0.9, "reference_range": 0.9, "page": 0.97}
PRECISION_FLOOR = 0.95
DATE_FLOOR = 0.95


def test_recall_and_precision_stay_above_their_floors_on_every_layout() -> None:
    result = run_benchmark(generate_corpus(per_layout=3))
    assert result.reports == 3 * len(LAYOUTS)
    for field, floor in RECALL_FLOOR.items():
        assert result.fields[field].recall >= floor, (field, result.fields[field])
        assert result.fields[field].precision >= PRECISION_FLOOR, (field, result.fields[field])
    assert result.fields["collection_date"].recall >= DATE_FLOOR
    for layout, scores in result.layouts.items():
        assert scores["value"].recall >= 0.9, layout


def test_the_command_prints_precision_and_recall_per_field() -> None:
    output = io.StringIO()
    with redirect_stdout(output):
        assert main(["1"]) == 0
    text = output.getvalue()
    for field in FIELDS:
        assert field in text
    assert "precision" in text
    assert "recall" in text


def test_the_corpus_is_reproducible_and_its_truth_matches_what_is_printed() -> None:
    first, second = generate_report("european", 5), generate_report("european", 5)
    assert first.rows == second.rows
    assert all("," in f"{row.value}" or row.value == int(row.value) or True for row in first.rows)
    assert len({row.printed_name for row in first.rows}) == len(first.rows)
    assert generate_report("multi_page", 0).rows[-1].page > 1
