"""``python -m vitalis_documents.extraction_bench [reports per layout]``: print precision and recall."""

from __future__ import annotations

import sys

from vitalis_documents.extraction_bench.corpus import generate_corpus
from vitalis_documents.extraction_bench.scoring import format_result, run_benchmark


def main(argv: list[str]) -> int:
    """Generate the corpus, parse it, print the scores."""
    per_layout = int(argv[0]) if argv else 6
    print(format_result(run_benchmark(generate_corpus(per_layout))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
