"""The parse pipeline and the review against the real biomarkers service, in-process on a free port."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from google.api import httpbody_pb2
from google.protobuf import field_mask_pb2

from services.documents.tests.conftest import SERVICE_SECRET, MigratedDatabase
from vitalis.biomarkers.v1 import panel_service_pb2, panel_service_pb2_grpc
from vitalis.documents.v1 import (
    document_pb2,
    document_service_pb2,
    extracted_marker_pb2,
    extraction_service_pb2,
)
from vitalis_client import create_channel
from vitalis_documents.biomarkers_client import GrpcBiomarkerDirectory
from vitalis_documents.extraction_bench.corpus import generate_report
from vitalis_documents.storage.base import ObjectStorage
from vitalis_runtime.db import Database
from vitalis_runtime.migrations import load_migrations, migrate
from vitalis_runtime.pagination import PageTokens
from vitalis_runtime.service_auth import ServiceCredentials, accepting_service_tokens
from vitalis_runtime.testing_auth import LocalSigningKey
from vitalis_runtime.testing_grpc import running_server

biomarkers_server = pytest.importorskip("vitalis_biomarkers.server")
ENGLISH_PANEL = (
    "Glucose",
    "LDL Cholesterol",
    "HDL Cholesterol",
    "Triglycerides",
    "Creatinine",
    "Ferritin",
    "TSH",
)


class UnknownPeople:
    """Nobody's sex or birth date is known: ranges fall back to the lab's own."""

    async def profile(self, user_id: uuid.UUID) -> Any:
        from vitalis_biomarkers.domain.people import UNKNOWN_PERSON

        return UNKNOWN_PERSON


@pytest.fixture
async def biomarkers_target(migrated: MigratedDatabase, signing_key: LocalSigningKey) -> AsyncIterator[str]:
    """The biomarkers service over the test's database."""
    role = f"vitalis_t_biomarkers_{uuid.uuid4().hex[:10]}"
    await migrate(
        migrated.admin_url,
        schema="biomarkers",
        app_role=role,
        migrations=load_migrations("vitalis_biomarkers"),
    )
    db = await Database.connect(migrated.admin_url, role=role, schema="biomarkers", max_size=4)
    try:
        app = biomarkers_server.BiomarkersApp.assemble(
            db, page_tokens=PageTokens(b"b" * 40), people=UnknownPeople()
        )
        async with running_server(
            service_name="biomarkers",
            register=app.register,
            service_names=biomarkers_server.SERVICE_NAMES,
            verifier=accepting_service_tokens(signing_key.verifier(), SERVICE_SECRET),  # type: ignore[arg-type]
        ) as running:
            yield running.target
    finally:
        await db.close()
        admin = await asyncpg.connect(migrated.admin_url)
        try:
            await admin.execute(f'DROP OWNED BY "{role}"')
            await admin.execute(f'DROP ROLE "{role}"')
        finally:
            await admin.close()


async def test_a_parsed_report_becomes_a_biomarkers_panel_and_a_review_updates_it(
    disk_storage: ObjectStorage, start_client: Callable[..., Any], biomarkers_target: str
) -> None:
    async with create_channel(biomarkers_target) as channel:
        directory = GrpcBiomarkerDirectory(channel, ServiceCredentials(SERVICE_SECRET, "documents"))
        async with start_client(disk_storage, biomarkers=directory) as client:
            user = uuid.uuid4()
            report = generate_report("table", 21, analytes=ENGLISH_PANEL, renamed=["Serum Mystery"])
            document = await client.documents.CreateDocument(
                document_service_pb2.CreateDocumentRequest(
                    parent="users/me", http_body=httpbody_pb2.HttpBody(data=report.pdf)
                ),
                metadata=client.auth(user),
            )
            await client.app.pipeline.drain()
            done = await client.documents.GetDocument(
                document_service_pb2.GetDocumentRequest(name=document.name), metadata=client.auth(user)
            )
            assert done.parse_state == document_pb2.PARSE_STATE_NEEDS_REVIEW, done.parse_state_message
            assert done.panel.startswith(f"users/{user}/panels/")
            panels = panel_service_pb2_grpc.PanelServiceStub(channel)
            panel = await panels.GetPanel(
                panel_service_pb2.GetPanelRequest(name=done.panel), metadata=client.auth(user)
            )
            truth = {row.printed_name: row for row in report.rows}
            assert len(panel.markers) == len(report.rows) - 1
            for marker in panel.markers:
                row = truth[marker.reported_name]
                assert math.isclose(marker.value, row.value)
                assert marker.reported_unit == row.unit
                assert marker.provenance.document == document.name
                assert marker.provenance.extracted_marker.startswith(document.name + "/extractedMarkers/")

            extracted = await client.extraction.ListExtractedMarkers(
                extraction_service_pb2.ListExtractedMarkersRequest(
                    parent=document.name, filter="review_state = REVIEW_STATE_NEEDS_REVIEW"
                ),
                metadata=client.auth(user),
            )
            [mystery] = extracted.extracted_markers
            assert mystery.printed_name == "Serum Mystery"
            assert report.rows[0].analyte.english == "Glucose"
            reviewed = await client.extraction.ReviewDocument(
                extraction_service_pb2.ReviewDocumentRequest(
                    name=document.name,
                    reviews=[
                        extraction_service_pb2.ExtractedMarkerReview(
                            extracted_marker=mystery.name,
                            decision=extraction_service_pb2.REVIEW_DECISION_CORRECT,
                            correction=extracted_marker_pb2.ExtractedMarker(biomarker="biomarkers/glucose"),
                            correction_mask=field_mask_pb2.FieldMask(paths=["biomarker"]),
                        )
                    ],
                ),
                metadata=client.auth(user),
            )
            assert reviewed.document.parse_state == document_pb2.PARSE_STATE_PARSED
            after = await panels.GetPanel(
                panel_service_pb2.GetPanelRequest(name=done.panel), metadata=client.auth(user)
            )
            assert len(after.markers) == len(report.rows)
            assert reviewed.extracted_markers[0].marker in {m.name for m in after.markers}
