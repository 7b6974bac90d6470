"""JSON batches in the protobuf JSON mapping of ``JsonImportFile``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC
from typing import IO, Final

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from vitalis.ingestion.v1 import import_job_pb2
from vitalis_ingestion.api.access import short_source_id
from vitalis_ingestion.api.record_operations import MANUAL_SOURCE, draft_of
from vitalis_ingestion.api.record_types import RECORD_TYPES
from vitalis_ingestion.api.samples import draft_from_proto
from vitalis_ingestion.domain.samples import Rejection
from vitalis_ingestion.importers.items import ImportFailure, ImportItem, SourceHint
from vitalis_runtime.errors import VitalisError

MAX_JSON_BYTES: Final = 256 * 1024**2
LISTS: Final = (
    ("sleep_sessions", "sleepSessions"),
    ("workouts", "workouts"),
    ("strength_sessions", "strengthSessions"),
    ("nutrition_logs", "nutritionLogs"),
    ("manual_entries", "manualEntries"),
)


def json_items(stream: IO[bytes], user_id: uuid.UUID, source: SourceHint) -> Iterator[ImportItem]:
    """Every element of every list of the file, located as ``samples[N]``, ``workouts[N]`` and so on."""
    data = stream.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise ImportFailure("ARCHIVE_TOO_LARGE", "a JSON import may be at most 256 MiB; split it or use CSV")
    document = import_job_pb2.JsonImportFile()
    try:
        json_format.Parse(data, document)
    except (json_format.ParseError, DecodeError, UnicodeDecodeError) as error:
        raise ImportFailure(
            "FILE_CORRUPT", f"the file is not a JsonImportFile in the protobuf JSON mapping ({error})"
        ) from error
    hint = source if source.platform else None
    for index, sample in enumerate(document.samples):
        where = f"samples[{index}]"
        if not sample.source:
            sample.source = f"users/{user_id}/sources/{source.source_id}"
        try:
            draft = draft_from_proto(sample, user_id, where)
        except VitalisError as error:
            yield ImportItem("sample", where, rejection=Rejection("INVALID_RECORD", error.message, where))
            continue
        yield ImportItem(f"sample {sample.metric_type}", where, source=hint, samples=[draft])
    for field, collection in LISTS:
        record_type = RECORD_TYPES[collection]
        for index, message in enumerate(getattr(document, field)):
            where = f"{collection}[{index}]"
            try:
                if record_type.manual_source:
                    source_id = MANUAL_SOURCE
                elif message.source:
                    source_id = short_source_id(message.source, user_id, field=f"{where}.source")
                else:
                    source_id = source.source_id
                record = draft_of(record_type, message, source_id=source_id, where=where, zone=UTC)
            except VitalisError as error:
                yield ImportItem(
                    collection, where, rejection=Rejection("INVALID_RECORD", error.message, where)
                )
                continue
            manual = (
                SourceHint(MANUAL_SOURCE, "Manual entries", 12, "") if record_type.manual_source else hint
            )
            yield ImportItem(collection, where, source=manual, records=[record])
