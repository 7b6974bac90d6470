"""vitalis.biomarkers.v1.FhirService."""

from __future__ import annotations

import json

import grpc
from google.api import httpbody_pb2  # type: ignore[import-untyped]

from vitalis.biomarkers.v1 import fhir_service_pb2, fhir_service_pb2_grpc
from vitalis_biomarkers.api.common import interval, parse_id, split_name
from vitalis_biomarkers.api.panel_convert import panel_to_proto, parse_panel_name
from vitalis_biomarkers.app.access import Access, parse_user_segment
from vitalis_biomarkers.app.fhir import FhirExchange
from vitalis_biomarkers.store.requests import RequestStore
from vitalis_runtime.auth import current_principal
from vitalis_runtime.db import Database
from vitalis_runtime.errors import InvalidArgument, ResourceExhausted

Context = grpc.aio.ServicerContext[object, object]
FHIR_JSON = "application/fhir+json"
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_EXPORT_PANELS = 500
IMPORT_METHOD = "ImportFhirBundle"


class FhirServicer(fhir_service_pb2_grpc.FhirServiceServicer):
    """FHIR R4 export and import of panels."""

    def __init__(self, exchange: FhirExchange, access: Access, db: Database) -> None:
        """Serve ``exchange``."""
        self._exchange = exchange
        self._access = access
        self._db = db
        self._requests = RequestStore()

    async def ExportFhirBundle(
        self, request: fhir_service_pb2.ExportFhirBundleRequest, context: Context
    ) -> httpbody_pb2.HttpBody:
        """A Bundle of the user's panels."""
        segment = split_name(request.parent, ("users",), "parent")[0]
        user_id = await self._access.reader(segment, "parent")
        if len(request.panels) > MAX_EXPORT_PANELS:
            raise InvalidArgument.for_field("panels", f"at most {MAX_EXPORT_PANELS} panels per export")
        panel_ids = []
        for index, name in enumerate(request.panels):
            owner, panel_id = parse_panel_name(name, f"panels[{index}]")
            owner_id = parse_user_segment(owner, f"panels[{index}]") or current_principal().user_id
            if owner_id != user_id:
                raise InvalidArgument.for_field(f"panels[{index}]", f"must be a panel of {request.parent}")
            panel_ids.append(panel_id)
        bundle = await self._exchange.export(
            user_id, panel_ids=panel_ids, interval=interval(request, "collection_interval")
        )
        return httpbody_pb2.HttpBody(
            content_type=FHIR_JSON, data=json.dumps(bundle, separators=(",", ":")).encode()
        )

    async def ImportFhirBundle(
        self, request: fhir_service_pb2.ImportFhirBundleRequest, context: Context
    ) -> fhir_service_pb2.ImportFhirBundleResponse:
        """Panels from a FHIR Bundle or DiagnosticReport."""
        user_id = self._access.owner(split_name(request.parent, ("users",), "parent")[0], "parent")
        data = request.http_body.data
        if len(data) > MAX_BODY_BYTES:
            raise ResourceExhausted("the FHIR body is over 16 MiB; split it", reason="BODY_TOO_LARGE")
        if not data:
            raise InvalidArgument.for_field(
                "http_body", "is empty; send a FHIR R4 Bundle", reason="INVALID_FHIR"
            )
        if request.request_id:
            parse_id(request.request_id, "request_id")
            async with self._db.transaction(user_id=user_id, readonly=True) as conn:
                earlier = await self._requests.find(conn, user_id, IMPORT_METHOD, request.request_id)
            if earlier is not None and earlier.response is not None:
                return fhir_service_pb2.ImportFhirBundleResponse.FromString(earlier.response)
        outcome = await self._exchange.import_bundle(user_id, data)
        response = fhir_service_pb2.ImportFhirBundleResponse(
            panels=[panel_to_proto(panel) for panel in outcome.panels],
            created_panel_count=outcome.created_count,
            observation_count=outcome.observation_count,
            imported_observation_count=outcome.imported_observation_count,
            issues=[
                fhir_service_pb2.FhirImportIssue(
                    resource=issue.resource, reason=issue.reason, message=issue.message
                )
                for issue in outcome.issues
            ],
        )
        if request.request_id:
            async with self._db.transaction(user_id=user_id) as conn:
                await self._requests.remember(
                    conn, user_id, IMPORT_METHOD, request.request_id, response=response.SerializeToString()
                )
        return response
