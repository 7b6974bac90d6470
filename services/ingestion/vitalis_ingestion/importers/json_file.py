"""JSON batches in the protobuf JSON mapping of ``JsonImportFile``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import IO

from vitalis_ingestion.importers.items import ImportFailure, ImportItem, SourceHint


def json_items(stream: IO[bytes], user_id: uuid.UUID, source: SourceHint) -> Iterator[ImportItem]:
    """Every element of every list of the file."""
    del stream, user_id, source
    raise ImportFailure("UNSUPPORTED_FORMAT", "JSON imports are not available yet")
    yield  # pragma: no cover
