"""vitalis.ingestion.v1.UserDataService: a user's data exported as archive entries, or erased."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import json_format

from vitalis.ingestion.v1 import user_data_service_pb2, user_data_service_pb2_grpc
from vitalis_ingestion.api.access import Access, parse_parent
from vitalis_ingestion.api.imports import job_to_proto
from vitalis_ingestion.api.record_types import RECORD_TYPES
from vitalis_ingestion.api.samples import sample_to_proto
from vitalis_ingestion.api.sources import device_to_proto, priority_to_proto, source_to_proto
from vitalis_ingestion.importing import ImportRunner
from vitalis_ingestion.store.import_jobs import ImportJobStore
from vitalis_ingestion.store.records import RecordStore
from vitalis_ingestion.store.samples import SampleStore
from vitalis_ingestion.store.sources import SourceStore
from vitalis_runtime.db import Database

Context = grpc.aio.ServicerContext[object, object]
EXPORT_PAGE = 10_000
USER_TABLES = ("samples", "records", "import_jobs", "source_priorities", "devices", "sources")


def _entry(
    path: str, content: Any, content_type: str = "application/json"
) -> user_data_service_pb2.ExportUserDataResponse:
    data = content if isinstance(content, bytes) else json.dumps(content, indent=1, sort_keys=True).encode()
    return user_data_service_pb2.ExportUserDataResponse(entry_path=path, content_type=content_type, data=data)


class UserDataServicer(user_data_service_pb2_grpc.UserDataServiceServicer):
    """Data-subject requests, called by identity's jobs with a service token."""

    def __init__(
        self,
        *,
        db: Database,
        sources: SourceStore,
        samples: SampleStore,
        records: RecordStore,
        jobs: ImportJobStore,
        runner: ImportRunner,
    ) -> None:
        self._db = db
        self._sources = sources
        self._samples = samples
        self._records = records
        self._jobs = jobs
        self._runner = runner

    async def ExportUserData(
        self, request: user_data_service_pb2.ExportUserDataRequest, context: Context
    ) -> AsyncIterator[user_data_service_pb2.ExportUserDataResponse]:
        """Sources, devices, priority, import jobs, records (JSON) and samples (JSON Lines, in parts)."""
        user_id = Access.owned(parse_parent(request.user, field="user"))
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            sources = await self._sources.list_sources(conn, user_id, after=None, limit=1_000_000)
            devices = await self._sources.list_devices(conn, user_id, after=None, limit=1_000_000)
            priority = await self._sources.get_priority(conn, user_id)
            jobs = await self._jobs.all_for_user(conn, user_id)
            records = await self._records.all_for_user(conn, user_id)
        yield _entry(
            "ingestion/sources.json", [json_format.MessageToDict(source_to_proto(s)) for s in sources]
        )
        yield _entry(
            "ingestion/devices.json", [json_format.MessageToDict(device_to_proto(d)) for d in devices]
        )
        yield _entry("ingestion/source_priority.json", json_format.MessageToDict(priority_to_proto(priority)))
        yield _entry("ingestion/import_jobs.json", [json_format.MessageToDict(job_to_proto(j)) for j in jobs])
        by_collection: dict[str, list[Any]] = {}
        for record in records:
            by_collection.setdefault(record.collection, []).append(
                json_format.MessageToDict(RECORD_TYPES[record.collection].present(record))
            )
        for collection, items in sorted(by_collection.items()):
            yield _entry(f"ingestion/{collection}.json", items)
        after: tuple[Any, ...] | None = None
        part = 0
        while True:
            async with self._db.transaction(user_id=user_id, readonly=True) as conn:
                page = await self._samples.rows_for_export(conn, user_id, after=after, limit=EXPORT_PAGE)
            if not page:
                break
            part += 1
            lines = b"".join(
                json.dumps(json_format.MessageToDict(sample_to_proto(s, user_id)), sort_keys=True).encode()
                + b"\n"
                for s in page
            )
            yield _entry(f"ingestion/samples-{part:05d}.jsonl", lines, "application/jsonl")
            last = page[-1].row
            after = (
                last.metric,
                last.hrv_method,
                last.start_time,
                last.hrv_window_s,
                last.source_id,
                last.end_time,
            )

    async def EraseUserData(
        self, request: user_data_service_pb2.EraseUserDataRequest, context: Context
    ) -> user_data_service_pb2.EraseUserDataResponse:
        """Delete every row of the user and the files of their unfinished imports."""
        user_id = Access.owned(parse_parent(request.user, field="user"))
        erased = 0
        async with self._db.transaction(user_id=user_id) as conn:
            for job in await self._jobs.all_for_user(conn, user_id):
                self._runner.path_of(job.job_id).unlink(missing_ok=True)
            for table in USER_TABLES:
                status = await conn.execute(f"DELETE FROM {table} WHERE user_id = $1", user_id)  # noqa: S608
                erased += int(status.split()[-1])
        return user_data_service_pb2.EraseUserDataResponse(erased_item_count=erased)
