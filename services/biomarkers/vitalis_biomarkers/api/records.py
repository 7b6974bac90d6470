"""vitalis.biomarkers.v1.BodyCompositionService and EpigeneticTestService."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import grpc
from google.protobuf import empty_pb2, json_format
from google.protobuf.message import Message

from vitalis.biomarkers.v1 import (
    body_composition_scan_pb2,
    body_composition_service_pb2,
    body_composition_service_pb2_grpc,
    epigenetic_test_pb2,
    epigenetic_test_service_pb2,
    epigenetic_test_service_pb2_grpc,
    events_pb2,
)
from vitalis_biomarkers.api.common import (
    Pages,
    interval,
    interval_fingerprint,
    ordering,
    parse_id,
    split_name,
    time_cursor,
    time_cursor_of,
    timestamp,
)
from vitalis_biomarkers.api.record_checks import validate_scan, validate_test
from vitalis_biomarkers.app.access import Access
from vitalis_biomarkers.app.people import PersonDirectory
from vitalis_biomarkers.app.records import RecordBook
from vitalis_biomarkers.dictionary.units import Units
from vitalis_biomarkers.store.records import Record
from vitalis_runtime.errors import InvalidArgument
from vitalis_runtime.pagination import resolve_page_size

Context = grpc.aio.ServicerContext[object, object]
M = TypeVar("M", bound=Message)
OUTPUT_FIELDS = frozenset({"name", "create_time", "update_time", "etag", "chronological_age_years"})


def _document(message: Message) -> dict[str, Any]:
    data = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return {key: value for key, value in data.items() if key not in OUTPUT_FIELDS}


def _message(record: Record, message_type: type[M], collection: str) -> M:
    message = json_format.ParseDict(record.document, message_type(), ignore_unknown_fields=True)
    message.name = f"users/{record.user_id}/{collection}/{record.id}"  # type: ignore[attr-defined]
    message.create_time.CopyFrom(timestamp(record.create_time))  # type: ignore[attr-defined]
    message.update_time.CopyFrom(timestamp(record.update_time))  # type: ignore[attr-defined]
    message.etag = record.etag  # type: ignore[attr-defined]
    return message


def _merged(current: dict[str, Any], given: Message, paths: Sequence[str]) -> dict[str, Any]:
    fresh = _document(given)
    merged = dict(current)
    for path in paths:
        if path in fresh:
            merged[path] = fresh[path]
        else:
            merged.pop(path, None)
    return merged


def _mask_paths(message: Message, mask: Any, has_mask: bool, mutable: frozenset[str]) -> list[str]:
    if has_mask and mask.paths:
        for path in mask.paths:
            if path == "provenance":
                raise InvalidArgument.for_field("update_mask", "provenance is immutable")
            if path not in mutable:
                raise InvalidArgument.for_field("update_mask", f"{path!r} cannot be updated")
        return list(mask.paths)
    return [path for path in _document(message) if path in mutable]


def _page(
    records: list[Record], size: int, pages: Pages, fingerprint: dict[str, Any]
) -> tuple[list[Record], str]:
    if len(records) <= size:
        return records, ""
    records = records[:size]
    return records, pages.token(time_cursor_of(records[-1].time, records[-1].id), fingerprint)


class _RecordServicerBase:
    def __init__(self, book: RecordBook, access: Access, pages: Pages, collection: str) -> None:
        self._book = book
        self._access = access
        self._pages = pages
        self._collection = collection

    def _name(self, name: str, field: str) -> tuple[str, uuid.UUID]:
        segment, record = split_name(name, ("users", self._collection), field)
        return segment, parse_id(record, field)

    async def _list(self, request: Any, time_field: str, build: Callable[[Record], M]) -> tuple[list[M], str]:
        user_id = await self._access.reader(split_name(request.parent, ("users",), "parent")[0], "parent")
        size = resolve_page_size(request.page_size, default=20, maximum=100)
        ascending = ordering(request.order_by, time_field)
        window = interval(request, "interval")
        fingerprint = {
            "method": f"List:{self._collection}",
            "user": str(user_id),
            "interval": interval_fingerprint(window),
            "ascending": ascending,
        }
        after = time_cursor(self._pages.cursor(request.page_token, fingerprint))
        records = await self._book.list_records(
            user_id, interval=window, ascending=ascending, after=after, limit=size + 1
        )
        page, token = _page(records, size, self._pages, fingerprint)
        return [build(record) for record in page], token


def body_composition_scan_event(record: Record, created: bool, now: datetime) -> Message:
    """BodyCompositionScanRecorded for a stored scan."""
    return events_pb2.BodyCompositionScanRecorded(
        user=f"users/{record.user_id}",
        body_composition_scan=f"users/{record.user_id}/bodyCompositionScans/{record.id}",
        scan_time=timestamp(record.time),
        created=created,
        occur_time=timestamp(now),
    )


def epigenetic_test_event(record: Record, created: bool, now: datetime) -> Message:
    """EpigeneticTestRecorded for a stored test."""
    return events_pb2.EpigeneticTestRecorded(
        user=f"users/{record.user_id}",
        epigenetic_test=f"users/{record.user_id}/epigeneticTests/{record.id}",
        collection_time=timestamp(record.time),
        created=created,
        occur_time=timestamp(now),
    )


SCAN_MUTABLE = frozenset(
    field.name
    for field in body_composition_scan_pb2.BodyCompositionScan.DESCRIPTOR.fields
    if field.name not in OUTPUT_FIELDS | {"provenance"}
)
TEST_MUTABLE = frozenset(
    field.name
    for field in epigenetic_test_pb2.EpigeneticTest.DESCRIPTOR.fields
    if field.name not in OUTPUT_FIELDS | {"provenance"}
)


def _with_provenance(document: dict[str, Any]) -> dict[str, Any]:
    """The document with its provenance kind made explicit (unset means manual)."""
    if "provenance" not in document or not document["provenance"].get("kind"):
        document["provenance"] = {**document.get("provenance", {}), "kind": "PROVENANCE_KIND_MANUAL"}
    return document


class BodyCompositionServicer(
    _RecordServicerBase, body_composition_service_pb2_grpc.BodyCompositionServiceServicer
):
    """Body-composition scans of a user."""

    def __init__(self, book: RecordBook, access: Access, pages: Pages) -> None:
        """Serve ``book``."""
        super().__init__(book, access, pages, "bodyCompositionScans")

    def to_proto(self, record: Record) -> body_composition_scan_pb2.BodyCompositionScan:
        return _message(record, body_composition_scan_pb2.BodyCompositionScan, self._collection)

    async def CreateBodyCompositionScan(
        self, request: body_composition_service_pb2.CreateBodyCompositionScanRequest, context: Context
    ) -> body_composition_scan_pb2.BodyCompositionScan:
        """Record a scan."""
        user_id = self._access.owner(split_name(request.parent, ("users",), "parent")[0], "parent")
        scan = request.body_composition_scan
        moment = validate_scan(scan, "body_composition_scan")
        if request.request_id:
            parse_id(request.request_id, "request_id")
        record = await self._book.create(
            user_id, moment, _with_provenance(_document(scan)), request_id=request.request_id
        )
        return self.to_proto(record)

    async def GetBodyCompositionScan(
        self, request: body_composition_service_pb2.GetBodyCompositionScanRequest, context: Context
    ) -> body_composition_scan_pb2.BodyCompositionScan:
        """One scan."""
        segment, record_id = self._name(request.name, "name")
        user_id = await self._access.reader(segment, "name")
        return self.to_proto(await self._book.get(user_id, record_id))

    async def ListBodyCompositionScans(
        self, request: body_composition_service_pb2.ListBodyCompositionScansRequest, context: Context
    ) -> body_composition_service_pb2.ListBodyCompositionScansResponse:
        """A user's scans, latest first: their history."""
        items, token = await self._list(request, "scan_time", self.to_proto)
        return body_composition_service_pb2.ListBodyCompositionScansResponse(
            body_composition_scans=items,
            next_page_token=token,
        )

    async def UpdateBodyCompositionScan(
        self, request: body_composition_service_pb2.UpdateBodyCompositionScanRequest, context: Context
    ) -> body_composition_scan_pb2.BodyCompositionScan:
        """Change the masked fields."""
        scan = request.body_composition_scan
        segment, record_id = self._name(scan.name, "body_composition_scan.name")
        user_id = self._access.owner(segment, "body_composition_scan.name")
        paths = _mask_paths(scan, request.update_mask, request.HasField("update_mask"), SCAN_MUTABLE)
        if not paths:
            raise InvalidArgument.for_field("update_mask", "names no field to update")

        def change(current: Record) -> tuple[datetime, dict[str, Any]]:
            merged = _merged(current.document, scan, paths)
            message = json_format.ParseDict(merged, body_composition_scan_pb2.BodyCompositionScan())
            return validate_scan(message, "body_composition_scan"), merged

        record = await self._book.update(user_id, record_id, change, etag=scan.etag)
        return self.to_proto(record)

    async def DeleteBodyCompositionScan(
        self, request: body_composition_service_pb2.DeleteBodyCompositionScanRequest, context: Context
    ) -> empty_pb2.Empty:
        """Delete a scan."""
        segment, record_id = self._name(request.name, "name")
        user_id = self._access.owner(segment, "name")
        await self._book.delete(user_id, record_id, etag=request.etag)
        return empty_pb2.Empty()


class EpigeneticTestServicer(
    _RecordServicerBase, epigenetic_test_service_pb2_grpc.EpigeneticTestServiceServicer
):
    """Epigenetic tests of a user."""

    def __init__(
        self, book: RecordBook, access: Access, pages: Pages, people: PersonDirectory, units: Units
    ) -> None:
        """Serve ``book``; chronological ages come from ``people``."""
        super().__init__(book, access, pages, "epigeneticTests")
        self._people = people
        self._units = units

    def to_proto(self, record: Record) -> epigenetic_test_pb2.EpigeneticTest:
        message = _message(record, epigenetic_test_pb2.EpigeneticTest, self._collection)
        age = record.document.get("_chronological_age_years")
        if isinstance(age, int | float):
            message.chronological_age_years = float(age)
        return message

    async def _with_age(
        self, user_id: uuid.UUID, moment: datetime, document: dict[str, Any]
    ) -> dict[str, Any]:
        age = (await self._people.profile(user_id)).age_at(moment)
        document = {key: value for key, value in document.items() if key != "_chronological_age_years"}
        if age is not None:
            document["_chronological_age_years"] = age
        return document

    async def CreateEpigeneticTest(
        self, request: epigenetic_test_service_pb2.CreateEpigeneticTestRequest, context: Context
    ) -> epigenetic_test_pb2.EpigeneticTest:
        """Record a test."""
        user_id = self._access.owner(split_name(request.parent, ("users",), "parent")[0], "parent")
        test = request.epigenetic_test
        moment = validate_test(test, "epigenetic_test", self._units)
        if request.request_id:
            parse_id(request.request_id, "request_id")
        document = await self._with_age(user_id, moment, _with_provenance(_document(test)))
        record = await self._book.create(user_id, moment, document, request_id=request.request_id)
        return self.to_proto(record)

    async def GetEpigeneticTest(
        self, request: epigenetic_test_service_pb2.GetEpigeneticTestRequest, context: Context
    ) -> epigenetic_test_pb2.EpigeneticTest:
        """One test."""
        segment, record_id = self._name(request.name, "name")
        user_id = await self._access.reader(segment, "name")
        return self.to_proto(await self._book.get(user_id, record_id))

    async def ListEpigeneticTests(
        self, request: epigenetic_test_service_pb2.ListEpigeneticTestsRequest, context: Context
    ) -> epigenetic_test_service_pb2.ListEpigeneticTestsResponse:
        """A user's tests, latest first: their history."""
        items, token = await self._list(request, "collection_time", self.to_proto)
        return epigenetic_test_service_pb2.ListEpigeneticTestsResponse(
            epigenetic_tests=items,
            next_page_token=token,
        )

    async def UpdateEpigeneticTest(
        self, request: epigenetic_test_service_pb2.UpdateEpigeneticTestRequest, context: Context
    ) -> epigenetic_test_pb2.EpigeneticTest:
        """Change the masked fields."""
        test = request.epigenetic_test
        segment, record_id = self._name(test.name, "epigenetic_test.name")
        user_id = self._access.owner(segment, "epigenetic_test.name")
        paths = _mask_paths(test, request.update_mask, request.HasField("update_mask"), TEST_MUTABLE)
        if not paths:
            raise InvalidArgument.for_field("update_mask", "names no field to update")
        profile = await self._people.profile(user_id)

        def change(current: Record) -> tuple[datetime, dict[str, Any]]:
            merged = _merged(current.document, test, paths)
            public = {key: value for key, value in merged.items() if not key.startswith("_")}
            message = json_format.ParseDict(public, epigenetic_test_pb2.EpigeneticTest())
            moment = validate_test(message, "epigenetic_test", self._units)
            age = profile.age_at(moment)
            merged.pop("_chronological_age_years", None)
            if age is not None:
                merged["_chronological_age_years"] = age
            return moment, merged

        record = await self._book.update(user_id, record_id, change, etag=test.etag)
        return self.to_proto(record)

    async def DeleteEpigeneticTest(
        self, request: epigenetic_test_service_pb2.DeleteEpigeneticTestRequest, context: Context
    ) -> empty_pb2.Empty:
        """Delete a test."""
        segment, record_id = self._name(request.name, "name")
        user_id = self._access.owner(segment, "name")
        await self._book.delete(user_id, record_id, etag=request.etag)
        return empty_pb2.Empty()
