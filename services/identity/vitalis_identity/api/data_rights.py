"""vitalis.identity.v1.DataRightsService."""

from __future__ import annotations

from collections.abc import AsyncIterator

from google.api import httpbody_pb2  # type: ignore[import-untyped]

from vitalis.identity.v1 import data_rights_pb2, data_rights_service_pb2, data_rights_service_pb2_grpc
from vitalis_identity.api.context import Context
from vitalis_identity.api.messages import erasure_job_to_proto, export_job_to_proto
from vitalis_identity.api.names import child_uuid, own_child, own_parent
from vitalis_identity.data_rights import DataRights
from vitalis_identity.domain.jobs import ErasureTrigger
from vitalis_identity.listing import cursor_of
from vitalis_identity.paging import Pager
from vitalis_runtime.errors import InvalidArgument

CHUNK_BYTES = 1024 * 1024


class DataRightsServicer(data_rights_service_pb2_grpc.DataRightsServiceServicer):
    """The caller's export and erasure jobs."""

    def __init__(self, rights: DataRights, pager: Pager) -> None:
        self._rights = rights
        self._pager = pager

    async def CreateExportJob(
        self, request: data_rights_service_pb2.CreateExportJobRequest, context: Context
    ) -> data_rights_pb2.ExportJob:
        """Queue an export of everything the caller has."""
        user_id = own_parent(request.parent)
        return export_job_to_proto(await self._rights.create_export(user_id, request.request_id or None))

    async def GetExportJob(
        self, request: data_rights_service_pb2.GetExportJobRequest, context: Context
    ) -> data_rights_pb2.ExportJob:
        """One export job."""
        user_id, raw = own_child(request.name, "exportJobs")
        job = await self._rights.get("export", user_id, child_uuid(raw, name=request.name))
        return export_job_to_proto(job)

    async def ListExportJobs(
        self, request: data_rights_service_pb2.ListExportJobsRequest, context: Context
    ) -> data_rights_service_pb2.ListExportJobsResponse:
        """A page of export jobs, newest first."""
        user_id = own_parent(request.parent)
        fingerprint = {"parent": str(user_id), "kind": "export"}
        size, cursor = self._pager.start(request.page_size, request.page_token, fingerprint)
        rows = await self._rights.list_page("export", user_id, cursor, size)
        page, token = self._pager.finish(
            rows, size, fingerprint, lambda j: cursor_of(j.create_time, j.job_id)
        )
        return data_rights_service_pb2.ListExportJobsResponse(
            export_jobs=[export_job_to_proto(j) for j in page], next_page_token=token
        )

    async def DownloadExportArchive(
        self, request: data_rights_service_pb2.DownloadExportArchiveRequest, context: Context
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        """The archive as ``application/zip`` chunks."""
        user_id, raw = own_child(request.name, "exportJobs")
        archive = await self._rights.archive(user_id, child_uuid(raw, name=request.name))
        for start in range(0, len(archive), CHUNK_BYTES):
            yield httpbody_pb2.HttpBody(
                content_type="application/zip", data=archive[start : start + CHUNK_BYTES]
            )

    async def CreateErasureJob(
        self, request: data_rights_service_pb2.CreateErasureJobRequest, context: Context
    ) -> data_rights_pb2.ErasureJob:
        """Queue the erasure of everything the caller has."""
        user_id = own_parent(request.parent)
        if not request.confirm_email:
            raise InvalidArgument.for_field(
                "confirm_email", "type your e-mail address to confirm the erasure"
            )
        job = await self._rights.create_erasure(
            user_id,
            trigger=ErasureTrigger.USER_REQUEST,
            request_id=request.request_id or None,
            confirm_email=request.confirm_email,
        )
        return erasure_job_to_proto(job)

    async def GetErasureJob(
        self, request: data_rights_service_pb2.GetErasureJobRequest, context: Context
    ) -> data_rights_pb2.ErasureJob:
        """One erasure job."""
        user_id, raw = own_child(request.name, "erasureJobs")
        job = await self._rights.get("erasure", user_id, child_uuid(raw, name=request.name))
        return erasure_job_to_proto(job)

    async def ListErasureJobs(
        self, request: data_rights_service_pb2.ListErasureJobsRequest, context: Context
    ) -> data_rights_service_pb2.ListErasureJobsResponse:
        """A page of erasure jobs, newest first."""
        user_id = own_parent(request.parent)
        fingerprint = {"parent": str(user_id), "kind": "erasure"}
        size, cursor = self._pager.start(request.page_size, request.page_token, fingerprint)
        rows = await self._rights.list_page("erasure", user_id, cursor, size)
        page, token = self._pager.finish(
            rows, size, fingerprint, lambda j: cursor_of(j.create_time, j.job_id)
        )
        return data_rights_service_pb2.ListErasureJobsResponse(
            erasure_jobs=[erasure_job_to_proto(j) for j in page], next_page_token=token
        )
