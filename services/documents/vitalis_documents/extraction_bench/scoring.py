"""Per-field precision and recall of the parser on the generated corpus."""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vitalis_documents.domain.model import ResultFlag
from vitalis_documents.extraction_bench.corpus import GeneratedReport, TruthRow
from vitalis_documents.parsing.lab_report import ExtractedRow, LabReport
from vitalis_documents.parsing.report_reader import read_report

FIELDS = ("name", "value", "unit", "flag", "reference_range", "page", "collection_date")
_FLAG_LETTERS = {ResultFlag.HIGH: "H", ResultFlag.LOW: "L", ResultFlag.UNSPECIFIED: ""}


@dataclass
class FieldScore:
    """Counts for one field."""

    correct: int = 0
    extracted: int = 0
    expected: int = 0

    @property
    def precision(self) -> float:
        """Correct among extracted (1 when nothing was extracted)."""
        return self.correct / self.extracted if self.extracted else 1.0

    @property
    def recall(self) -> float:
        """Correct among expected (1 when nothing was expected)."""
        return self.correct / self.expected if self.expected else 1.0


@dataclass
class BenchmarkResult:
    """Scores per field and per layout."""

    fields: dict[str, FieldScore] = field(default_factory=lambda: {name: FieldScore() for name in FIELDS})
    reports: int = 0
    layouts: dict[str, dict[str, FieldScore]] = field(default_factory=dict)


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _field_matches(name: str, row: ExtractedRow, truth: TruthRow) -> bool:
    checks = {
        "name": lambda: _key(row.printed_name) == _key(truth.printed_name),
        "value": lambda: _same(row.value, truth.value),
        "unit": lambda: row.unit == truth.unit,
        "flag": lambda: _FLAG_LETTERS.get(row.flag, "?") == truth.flag,
        "reference_range": lambda: (
            _same(row.reference_range.low, truth.low) and _same(row.reference_range.high, truth.high)
        ),
        "page": lambda: row.page == truth.page,
    }
    return checks[name]()


def score_report(report: GeneratedReport, extracted: LabReport, result: BenchmarkResult) -> None:
    """Add one report's counts to ``result``."""
    per_layout = result.layouts.setdefault(report.layout, {name: FieldScore() for name in FIELDS})
    truth_by_key = {(t.page, _key(t.printed_name)): t for t in report.rows}
    for scores in (result.fields, per_layout):
        for name in FIELDS[:-1]:
            scores[name].expected += len(report.rows)
            scores[name].extracted += len(extracted.rows)
        scores["collection_date"].expected += 1
        scores["collection_date"].extracted += extracted.collection_date is not None
        scores["collection_date"].correct += extracted.collection_date == report.collection_date
    for row in extracted.rows:
        truth = truth_by_key.get((row.page, _key(row.printed_name)))
        if truth is None:
            continue
        for scores in (result.fields, per_layout):
            for name in FIELDS[:-1]:
                scores[name].correct += _field_matches(name, row, truth)


def run_benchmark(reports: Iterable[GeneratedReport], *, max_pages: int = 50) -> BenchmarkResult:
    """Parse every report and score it."""
    result = BenchmarkResult()
    with tempfile.TemporaryDirectory() as folder:
        for report in reports:
            path = Path(folder) / f"{report.name}.pdf"
            path.write_bytes(report.pdf)
            extracted, _ = read_report(path, "application/pdf", max_pages=max_pages)
            score_report(report, extracted, result)
            result.reports += 1
    return result


def format_result(result: BenchmarkResult) -> str:
    """A table of precision and recall per field, overall and per layout."""
    lines = [
        f"extraction benchmark: {result.reports} reports",
        f"{'field':<18}{'precision':>10}{'recall':>10}",
    ]
    for name, score in result.fields.items():
        lines.append(f"{name:<18}{score.precision:>10.3f}{score.recall:>10.3f}")
    for layout, scores in result.layouts.items():
        worst = min(scores.values(), key=lambda s: s.recall)
        lines.append(f"layout {layout:<14} lowest field recall {worst.recall:.3f}")
    return "\n".join(lines)
