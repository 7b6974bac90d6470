"""Helpers of the import tests: upload a file, watch its job to the end, read what it stored."""

from __future__ import annotations

import uuid
from typing import Any

from google.api import httpbody_pb2

from vitalis.ingestion.v1 import import_job_pb2, import_service_pb2, import_service_pb2_grpc

TERMINAL = {
    import_job_pb2.IMPORT_JOB_STATE_SUCCEEDED,
    import_job_pb2.IMPORT_JOB_STATE_FAILED,
    import_job_pb2.IMPORT_JOB_STATE_CANCELLED,
}


async def upload(
    service: Any, data: bytes, *, user_id: uuid.UUID | None = None, **fields: Any
) -> import_job_pb2.ImportJob:
    stub = import_service_pb2_grpc.ImportServiceStub(service.channel)
    return await stub.UploadImportFile(
        import_service_pb2.UploadImportFileRequest(
            parent=f"users/{user_id or service.user_id}",
            http_body=httpbody_pb2.HttpBody(content_type="application/octet-stream", data=data),
            **fields,
        ),
        metadata=service.as_user(user_id),
    )


async def finished(
    service: Any, job: import_job_pb2.ImportJob, *, user_id: uuid.UUID | None = None
) -> list[import_job_pb2.ImportJob]:
    """Every snapshot WatchImportJob sends, the last one terminal."""
    stub = import_service_pb2_grpc.ImportServiceStub(service.channel)
    call = stub.WatchImportJob(
        import_service_pb2.WatchImportJobRequest(name=job.name), metadata=service.as_user(user_id), timeout=50
    )
    return [snapshot async for snapshot in call]


async def import_file(
    service: Any, data: bytes, *, user_id: uuid.UUID | None = None, **fields: Any
) -> import_job_pb2.ImportJob:
    job = await upload(service, data, user_id=user_id, **fields)
    snapshots = await finished(service, job, user_id=user_id)
    assert snapshots[-1].state in TERMINAL
    return snapshots[-1]


async def stored_samples(service: Any, user_id: uuid.UUID) -> list[tuple[Any, ...]]:
    async with service.app.db.transaction(user_id=user_id) as conn:
        rows = await conn.fetch(
            """SELECT metric, hrv_method, hrv_window_s, start_time, end_time, value, utc_offset_s,
                      correlation_key,
                      metadata FROM samples ORDER BY metric, start_time, end_time"""
        )
    return [tuple(row.values()) for row in rows]


async def stored_records(service: Any, user_id: uuid.UUID) -> list[tuple[Any, ...]]:
    async with service.app.db.transaction(user_id=user_id) as conn:
        rows = await conn.fetch(
            "SELECT collection, kind, start_time, end_time, utc_offset_s, body FROM records "
            "ORDER BY collection, start_time"
        )
    return [tuple(row.values()) for row in rows]
