"""vitalis.biomarkers.v1.UserDataService: export and erasure of everything of one user."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from vitalis.biomarkers.v1 import user_data_service_pb2, user_data_service_pb2_grpc
from vitalis_biomarkers.api.common import split_name
from vitalis_biomarkers.api.panel_convert import panel_to_proto
from vitalis_biomarkers.api.records import BodyCompositionServicer, EpigeneticTestServicer
from vitalis_biomarkers.api.scores import score_to_proto
from vitalis_biomarkers.app.access import parse_user_segment
from vitalis_biomarkers.app.fhir import FhirExchange
from vitalis_biomarkers.app.panels import PanelBook
from vitalis_biomarkers.app.records import RecordBook
from vitalis_biomarkers.store.panels import TimeInterval
from vitalis_biomarkers.store.scores import ScoreStore
from vitalis_biomarkers.store.user_data import UserDataStore
from vitalis_runtime.auth import current_principal
from vitalis_runtime.db import Database
from vitalis_runtime.errors import InvalidArgument

Context = grpc.aio.ServicerContext[object, object]
CHUNK_BYTES = 1024 * 1024
NDJSON = "application/x-ndjson"
PAGE = 500


def _acting_user(name: str) -> uuid.UUID:
    segment = split_name(name, ("users",), "user")[0]
    user_id = parse_user_segment(segment, "user")
    if user_id is None:
        raise InvalidArgument.for_field("user", "must be a user ID, not 'me'")
    if user_id != current_principal().user_id:
        raise InvalidArgument.for_field("user", "must be the user the call acts for")
    return user_id


def _chunks(
    path: str, content_type: str, data: bytes
) -> Iterator[user_data_service_pb2.ExportUserDataResponse]:
    for start in range(0, max(len(data), 1), CHUNK_BYTES):
        yield user_data_service_pb2.ExportUserDataResponse(
            entry_path=path, content_type=content_type, data=data[start : start + CHUNK_BYTES]
        )


def _line(message: Message) -> bytes:
    return (json.dumps(json_format.MessageToDict(message), separators=(",", ":")) + "\n").encode()


class UserDataServicer(user_data_service_pb2_grpc.UserDataServiceServicer):
    """Data-subject rights on the biomarkers service's data."""

    def __init__(
        self,
        db: Database,
        book: PanelBook,
        exchange: FhirExchange,
        scans: tuple[RecordBook, BodyCompositionServicer],
        tests: tuple[RecordBook, EpigeneticTestServicer],
    ) -> None:
        """Read through the books; build messages the way the public servicers do."""
        self._db = db
        self._book = book
        self._exchange = exchange
        self._scans = scans
        self._tests = tests

    async def ExportUserData(
        self, request: user_data_service_pb2.ExportUserDataRequest, context: Context
    ) -> AsyncIterator[user_data_service_pb2.ExportUserDataResponse]:
        """Stream panels, scans, tests, scores and the FHIR Bundle as archive entries."""
        user_id = _acting_user(request.user)
        panels = b""
        after = None
        while True:
            page = await self._book.list_panels(
                user_id, interval=TimeInterval(), ascending=True, after=after, limit=PAGE
            )
            panels += b"".join(_line(panel_to_proto(panel)) for panel in page)
            if len(page) < PAGE:
                break
            after = (page[-1].fields.collection_time, page[-1].id)
        for chunk in _chunks("panels.jsonl", NDJSON, panels):
            yield chunk
        for path, (book, servicer) in (
            ("body_composition_scans.jsonl", self._scans),
            ("epigenetic_tests.jsonl", self._tests),
        ):
            lines = b""
            after = None
            while True:
                records = await book.list_records(
                    user_id, interval=TimeInterval(), ascending=True, after=after, limit=PAGE
                )
                lines += b"".join(_line(servicer.to_proto(record)) for record in records)
                if len(records) < PAGE:
                    break
                after = (records[-1].time, records[-1].id)
            for chunk in _chunks(path, NDJSON, lines):
                yield chunk
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            scores = await ScoreStore().all_of_user(conn, user_id)
        for chunk in _chunks(
            "scores.jsonl", NDJSON, b"".join(_line(score_to_proto(score)) for score in scores)
        ):
            yield chunk
        bundle = await self._exchange.export(user_id, panel_ids=(), interval=TimeInterval())
        for chunk in _chunks("fhir_bundle.json", "application/fhir+json", json.dumps(bundle).encode()):
            yield chunk

    async def EraseUserData(
        self, request: user_data_service_pb2.EraseUserDataRequest, context: Context
    ) -> user_data_service_pb2.EraseUserDataResponse:
        """Delete every row of the user and their unpublished events."""
        user_id = _acting_user(request.user)
        async with self._db.transaction(user_id=user_id) as conn:
            erased = await UserDataStore().erase(conn, user_id)
        return user_data_service_pb2.EraseUserDataResponse(erased_item_count=erased)
