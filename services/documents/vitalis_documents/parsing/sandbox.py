"""Parsing in a child process with a time and memory budget, so no document can hang or sink a worker.

The child (``python -m vitalis_documents.parsing.sandbox``) limits its own address space and CPU
time with ``setrlimit`` before it opens the file, then prints one JSON object: the report, or the
reason it could not be read. The parent enforces the wall-clock budget and reads a killed child
(out of memory, out of CPU time, crashed inside PDFium) as a failure with a reason, never as its own.
"""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import sys
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

from vitalis_documents.domain.model import (
    BoundingBox,
    ParseStateReason,
    ReferenceRange,
    ResultFlag,
    ValueComparator,
)
from vitalis_documents.parsing.errors import ParseFailure
from vitalis_documents.parsing.lab_report import ExtractedRow, LabReport

MAX_OUTPUT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ParseBudget:
    """What one document may cost."""

    seconds: float = 60.0
    memory_bytes: int = 1024 * 1024 * 1024
    max_pages: int = 200


@dataclass(frozen=True)
class SandboxResult:
    """A report (and whether OCR read it), or a failure."""

    report: LabReport | None
    ocr_used: bool = False
    failure: ParseFailure | None = None


def report_to_json(report: LabReport, ocr_used: bool) -> dict[str, Any]:
    """The report as JSON-ready values."""
    return {
        "status": "ok",
        "ocr_used": ocr_used,
        "page_count": report.page_count,
        "lab_name": report.lab_name,
        "decimal_comma": report.decimal_comma,
        "collection_date": report.collection_date.isoformat() if report.collection_date else None,
        "collection_date_confidence": report.collection_date_confidence,
        "rows": [asdict(row) for row in report.rows],
    }


def report_from_json(data: dict[str, Any]) -> LabReport:
    """A report read back from :func:`report_to_json`."""
    rows = []
    for row in data["rows"]:
        rows.append(
            ExtractedRow(
                **{
                    **row,
                    "comparator": ValueComparator(row["comparator"]),
                    "flag": ResultFlag(row["flag"]),
                    "reference_range": ReferenceRange(**row["reference_range"]),
                    "bounding_box": BoundingBox(**row["bounding_box"]),
                }
            )
        )
    collection_date = data.get("collection_date")
    return LabReport(
        page_count=int(data["page_count"]),
        rows=rows,
        collection_date=date.fromisoformat(collection_date) if collection_date else None,
        collection_date_confidence=float(data["collection_date_confidence"]),
        lab_name=str(data["lab_name"]),
        decimal_comma=bool(data["decimal_comma"]),
    )


def _failed(reason: ParseStateReason, message: str) -> SandboxResult:
    return SandboxResult(report=None, failure=ParseFailure(reason, message))


async def parse_in_sandbox(path: Path, content_type: str, budget: ParseBudget) -> SandboxResult:
    """Parse ``path`` in a child process within ``budget``."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vitalis_documents.parsing.sandbox",
        str(path),
        content_type,
        str(budget.max_pages),
        str(budget.memory_bytes),
        str(max(int(budget.seconds), 1)),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        limit=MAX_OUTPUT_BYTES,
    )
    try:
        async with asyncio.timeout(budget.seconds):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        return _failed(
            ParseStateReason.TIME_LIMIT_EXCEEDED,
            f"Reading the document took longer than {budget.seconds:g} seconds; it may be damaged or far too"
            " large for a lab report.",
        )
    except asyncio.CancelledError:
        process.kill()
        await process.wait()
        raise
    if process.returncode and process.returncode < 0:
        if -process.returncode == signal.SIGXCPU:
            return _failed(
                ParseStateReason.TIME_LIMIT_EXCEEDED,
                "Reading the document used more processor time than one document may.",
            )
        return _failed(
            ParseStateReason.RESOURCE_LIMIT_EXCEEDED,
            "Reading the document needed more memory than one document may (for example a decompression"
            " bomb); upload the report the lab sent.",
        )
    try:
        data = json.loads(output)
    except ValueError:
        return _failed(
            ParseStateReason.INTERNAL_ERROR, "The parser stopped unexpectedly; try re-parsing later."
        )
    if data.get("status") != "ok":
        return _failed(ParseStateReason(int(data["reason"])), str(data["message"]))
    return SandboxResult(report=report_from_json(data), ocr_used=bool(data["ocr_used"]))


def _limit_resources(memory_bytes: int, cpu_seconds: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _child(argv: list[str]) -> int:
    path, content_type, max_pages, memory_bytes, cpu_seconds = argv
    _limit_resources(int(memory_bytes), int(cpu_seconds))
    from vitalis_documents.parsing.report_reader import read_report

    try:
        report, ocr_used = read_report(Path(path), content_type, max_pages=int(max_pages))
        result: dict[str, Any] = report_to_json(report, ocr_used)
    except ParseFailure as failure:
        result = {"status": "failed", "reason": int(failure.reason), "message": failure.message}
    except MemoryError:
        result = {
            "status": "failed",
            "reason": int(ParseStateReason.RESOURCE_LIMIT_EXCEEDED),
            "message": "Reading the document needed more memory than one document may.",
        }
    except RecursionError:
        result = {
            "status": "failed",
            "reason": int(ParseStateReason.MALFORMED),
            "message": "The document's structure is too deeply nested to read; it is probably damaged.",
        }
    except Exception:
        # Any other failure is reported as the document's, never raised past the child.
        result = {
            "status": "failed",
            "reason": int(ParseStateReason.INTERNAL_ERROR),
            "message": "The parser failed unexpectedly on this document; a re-parse after an upgrade may"
            " succeed.",
        }
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
