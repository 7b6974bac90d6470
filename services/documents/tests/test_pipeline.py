"""The parse pipeline against real PostgreSQL, with an in-memory biomarkers service."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import grpc
import pytest
from google.api import httpbody_pb2
from google.protobuf import field_mask_pb2

from services.documents.tests.fakes import FakeBiomarkers, slug
from services.documents.tests.samples import (
    damaged_pdf,
    decompression_bomb,
    encrypted_report,
    long_report,
    many_pages,
    scanned_report,
    unreadable_report,
)
from vitalis.documents.v1 import (
    document_pb2,
    document_service_pb2,
    extracted_marker_pb2,
    extraction_service_pb2,
)
from vitalis_documents.extraction_bench.catalog import ANALYTES
from vitalis_documents.extraction_bench.corpus import LAYOUTS, GeneratedReport, generate_report
from vitalis_documents.parsing.engines import tesseract_available
from vitalis_documents.pipeline import MAX_ATTEMPTS
from vitalis_documents.storage.base import ObjectStorage

REVIEW_STATE = extracted_marker_pb2.ReviewState
PARSE = document_pb2


async def upload(client: Any, user: uuid.UUID, data: bytes, **document: Any) -> document_pb2.Document:
    """CreateDocument with raw bytes."""
    return await client.documents.CreateDocument(
        document_service_pb2.CreateDocumentRequest(
            parent="users/me",
            http_body=httpbody_pb2.HttpBody(content_type="application/pdf", data=data),
            document=document_pb2.Document(**document),
        ),
        metadata=client.auth(user),
    )


async def parsed(client: Any, user: uuid.UUID, name: str) -> document_pb2.Document:
    """Run the queue dry, then read the document."""
    await client.app.pipeline.drain()
    return await client.documents.GetDocument(
        document_service_pb2.GetDocumentRequest(name=name), metadata=client.auth(user)
    )


async def markers(client: Any, user: uuid.UUID, name: str) -> list[extracted_marker_pb2.ExtractedMarker]:
    """Every extracted marker of a document."""
    response = await client.extraction.ListExtractedMarkers(
        extraction_service_pb2.ListExtractedMarkersRequest(parent=name), metadata=client.auth(user)
    )
    return list(response.extracted_markers)


def assert_panel_matches_truth(fake: FakeBiomarkers, document: str, report: GeneratedReport) -> None:
    """The panel holds exactly the report's results with their values, units and ranges."""
    panel = fake.panels[document]
    by_biomarker = {m.biomarker: m for m in panel.markers.values()}
    expected = {slug(row.analyte): row for row in report.rows}
    assert set(by_biomarker) == set(expected)
    for biomarker, row in expected.items():
        marker = by_biomarker[biomarker]
        assert math.isclose(marker.value, row.value), biomarker
        assert marker.unit == row.unit, biomarker
        assert marker.reference_range.low == row.low, biomarker
        assert marker.reference_range.high == row.high, biomarker
        assert marker.page == row.page


async def test_lab_reports_of_every_layout_become_panels_that_equal_the_ground_truth(
    disk_storage: ObjectStorage, start_client: Callable[..., Any]
) -> None:
    fake = FakeBiomarkers()
    async with start_client(disk_storage, biomarkers=fake) as client:
        user = uuid.uuid4()
        for layout in LAYOUTS:
            report = generate_report(layout, 7)
            document = await upload(client, user, report.pdf, display_name=f"{layout}.pdf")
            assert document.parse_state == PARSE.PARSE_STATE_PENDING
            done = await parsed(client, user, document.name)
            assert done.parse_state == PARSE.PARSE_STATE_PARSED, (layout, done.parse_state_message)
            assert done.panel == fake.panels[document.name].name
            assert done.extracted_marker_count == len(report.rows)
            assert done.review_pending_count == 0
            assert done.collection_date.year == report.collection_date.year
            assert done.collection_date.day == report.collection_date.day
            assert done.page_count == max(row.page for row in report.rows) or layout == "multi_page"
            assert done.lab_name
            assert_panel_matches_truth(fake, document.name, report)
            extracted = await markers(client, user, document.name)
            assert all(m.review_state == REVIEW_STATE.REVIEW_STATE_AUTO_ACCEPTED for m in extracted)
            assert all(m.marker.startswith(done.panel + "/markers/") for m in extracted)
            first = extracted[0]
            assert 0 <= first.bounding_box.left < 1
            assert 0 < first.bounding_box.width <= 1
            assert first.confidence.overall >= 0.8
            assert first.page >= 1


async def test_unmatched_results_wait_for_a_person_who_corrects_confirms_or_rejects_them(
    disk_storage: ObjectStorage, start_client: Callable[..., Any]
) -> None:
    fake = FakeBiomarkers()
    async with start_client(disk_storage, biomarkers=fake) as client:
        user = uuid.uuid4()
        report = generate_report("table", 3, renamed=["Mystery Serum A", "Mystery Serum B"])
        document = await upload(client, user, report.pdf)
        done = await parsed(client, user, document.name)
        assert done.parse_state == PARSE.PARSE_STATE_NEEDS_REVIEW
        assert done.parse_state_reason == PARSE.PARSE_STATE_REASON_UNMATCHED_BIOMARKERS
        assert done.review_pending_count == 2
        pending = {
            m.printed_name: m
            for m in await markers(client, user, document.name)
            if m.review_state == REVIEW_STATE.REVIEW_STATE_NEEDS_REVIEW
        }
        assert set(pending) == {"Mystery Serum A", "Mystery Serum B"}
        corrected_biomarker = slug(report.rows[0].analyte)
        review_request = extraction_service_pb2.ReviewDocumentRequest(
            name=document.name,
            reviews=[
                extraction_service_pb2.ExtractedMarkerReview(
                    extracted_marker=pending["Mystery Serum A"].name,
                    decision=extraction_service_pb2.REVIEW_DECISION_CORRECT,
                    correction=extracted_marker_pb2.ExtractedMarker(biomarker=corrected_biomarker),
                    correction_mask=field_mask_pb2.FieldMask(paths=["biomarker"]),
                    etag=pending["Mystery Serum A"].etag,
                ),
                extraction_service_pb2.ExtractedMarkerReview(
                    extracted_marker=pending["Mystery Serum B"].name,
                    decision=extraction_service_pb2.REVIEW_DECISION_REJECT,
                ),
            ],
            request_id=str(uuid.uuid4()),
        )
        response = await client.extraction.ReviewDocument(review_request, metadata=client.auth(user))
        assert response.document.parse_state == PARSE.PARSE_STATE_PARSED
        replayed = await client.extraction.ReviewDocument(review_request, metadata=client.auth(user))
        assert [m.name for m in replayed.extracted_markers] == [m.name for m in response.extracted_markers]
        assert replayed.document.etag == response.document.etag
        assert response.document.review_pending_count == 0
        states = [m.review_state for m in response.extracted_markers]
        assert states == [REVIEW_STATE.REVIEW_STATE_CORRECTED, REVIEW_STATE.REVIEW_STATE_REJECTED]
        panel = fake.panels[document.name]
        assert corrected_biomarker in {m.biomarker for m in panel.markers.values()}
        assert panel.markers[pending["Mystery Serum A"].name].confidence == 1.0
        assert len(panel.markers) == len(report.rows) - 1
        assert response.extracted_markers[0].marker.startswith(panel.name)


async def test_review_refuses_bad_requests_with_precise_errors(
    disk_storage: ObjectStorage, start_client: Callable[..., Any]
) -> None:
    fake = FakeBiomarkers()
    async with start_client(disk_storage, biomarkers=fake) as client:
        user = uuid.uuid4()
        report = generate_report("table", 4, renamed=["Oddity"])
        document = await upload(client, user, report.pdf)
        with pytest.raises(grpc.aio.AioRpcError) as busy:
            await client.extraction.ReviewDocument(
                extraction_service_pb2.ReviewDocumentRequest(
                    name=document.name,
                    reviews=[
                        extraction_service_pb2.ExtractedMarkerReview(
                            extracted_marker=f"{document.name}/extractedMarkers/{uuid.uuid4()}",
                            decision=extraction_service_pb2.REVIEW_DECISION_CONFIRM,
                        )
                    ],
                ),
                metadata=client.auth(user),
            )
        assert busy.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        await parsed(client, user, document.name)
        oddity = next(m for m in await markers(client, user, document.name) if m.printed_name == "Oddity")

        async def review(*reviews: extraction_service_pb2.ExtractedMarkerReview, etag: str = "") -> None:
            await client.extraction.ReviewDocument(
                extraction_service_pb2.ReviewDocumentRequest(name=document.name, reviews=reviews, etag=etag),
                metadata=client.auth(user),
            )

        confirm = extraction_service_pb2.ExtractedMarkerReview(
            extracted_marker=oddity.name, decision=extraction_service_pb2.REVIEW_DECISION_CONFIRM
        )
        cases = [
            ((confirm,), grpc.StatusCode.INVALID_ARGUMENT, "biomarker"),  # nothing to confirm it as
            ((confirm, confirm), grpc.StatusCode.INVALID_ARGUMENT, "twice"),
            ((), grpc.StatusCode.INVALID_ARGUMENT, "at least one"),
            (
                (
                    extraction_service_pb2.ExtractedMarkerReview(
                        extracted_marker=oddity.name,
                        decision=extraction_service_pb2.REVIEW_DECISION_CORRECT,
                        correction_mask=field_mask_pb2.FieldMask(paths=["printed_name"]),
                    ),
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
                "cannot be corrected",
            ),
            (
                (
                    extraction_service_pb2.ExtractedMarkerReview(
                        extracted_marker=f"users/{user}/documents/{uuid.uuid4()}/extractedMarkers/{uuid.uuid4()}",
                        decision=extraction_service_pb2.REVIEW_DECISION_REJECT,
                    ),
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
                "another document",
            ),
        ]
        for reviews, code, words in cases:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await review(*reviews)
            assert caught.value.code() == code
            assert words in (caught.value.details() or ""), caught.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as stale:
            await review(confirm, etag="stale")
        assert stale.value.code() == grpc.StatusCode.ABORTED
        # Nothing was changed by the refused reviews.
        again = next(m for m in await markers(client, user, document.name) if m.printed_name == "Oddity")
        assert again.review_state == REVIEW_STATE.REVIEW_STATE_NEEDS_REVIEW
        assert again.etag == oddity.etag


@pytest.mark.parametrize(
    ("make", "reason", "words"),
    [
        (encrypted_report, PARSE.PARSE_STATE_REASON_ENCRYPTED, "password"),
        (damaged_pdf, PARSE.PARSE_STATE_REASON_MALFORMED, "damaged"),
        (lambda: many_pages(6), PARSE.PARSE_STATE_REASON_RESOURCE_LIMIT_EXCEEDED, "pages"),
        (decompression_bomb, PARSE.PARSE_STATE_REASON_RESOURCE_LIMIT_EXCEEDED, "memory"),
        (unreadable_report, PARSE.PARSE_STATE_REASON_NO_RESULTS_FOUND, "No lab results"),
    ],
)
async def test_pdfs_that_cannot_be_parsed_fail_with_a_clear_reason(
    disk_storage: ObjectStorage,
    start_client: Callable[..., Any],
    make: Callable[[], bytes],
    reason: int,
    words: str,
) -> None:
    async with start_client(
        disk_storage, biomarkers=FakeBiomarkers(), parse_max_pages=5, parse_memory_bytes=384 * 1024 * 1024
    ) as client:
        user = uuid.uuid4()
        document = await upload(client, user, make())
        done = await parsed(client, user, document.name)
        assert done.parse_state == PARSE.PARSE_STATE_FAILED
        assert done.parse_state_reason == reason
        assert words in done.parse_state_message
        assert done.parser_version


async def test_a_parse_over_its_time_budget_fails_without_hanging_the_worker(
    disk_storage: ObjectStorage, start_client: Callable[..., Any]
) -> None:
    async with start_client(disk_storage, biomarkers=FakeBiomarkers(), parse_timeout_seconds=0.05) as client:
        user = uuid.uuid4()
        document = await upload(client, user, generate_report("table", 1).pdf)
        done = await asyncio.wait_for(parsed(client, user, document.name), timeout=20)
        assert done.parse_state == PARSE.PARSE_STATE_FAILED
        assert done.parse_state_reason == PARSE.PARSE_STATE_REASON_TIME_LIMIT_EXCEEDED


@pytest.mark.skipif(tesseract_available(), reason="this machine has an OCR engine")
async def test_a_scan_without_text_layer_needs_review_with_a_clear_reason_when_no_ocr_is_installed(
    disk_storage: ObjectStorage, start_client: Callable[..., Any]
) -> None:
    async with start_client(disk_storage, biomarkers=FakeBiomarkers()) as client:
        user = uuid.uuid4()
        document = await upload(client, user, scanned_report())
        done = await parsed(client, user, document.name)
        assert done.parse_state == PARSE.PARSE_STATE_NEEDS_REVIEW
        assert done.parse_state_reason == PARSE.PARSE_STATE_REASON_NO_TEXT_LAYER
        assert "text recognition" in done.parse_state_message
        assert not done.ocr_used


async def test_reparse_keeps_reviewed_markers_and_replaces_the_others(
    disk_storage: ObjectStorage, start_client: Callable[..., Any]
) -> None:
    fake = FakeBiomarkers()
    async with start_client(disk_storage, biomarkers=fake) as client:
        user = uuid.uuid4()
        report = generate_report("flag_first", 2, renamed=["Curious"])
        document = await upload(client, user, report.pdf)
        await parsed(client, user, document.name)
        before = {m.printed_name: m for m in await markers(client, user, document.name)}
        await client.extraction.ReviewDocument(
            extraction_service_pb2.ReviewDocumentRequest(
                name=document.name,
                reviews=[
                    extraction_service_pb2.ExtractedMarkerReview(
                        extracted_marker=before["Curious"].name,
                        decision=extraction_service_pb2.REVIEW_DECISION_CORRECT,
                        correction=extracted_marker_pb2.ExtractedMarker(
                            biomarker=slug(report.rows[0].analyte), value=42.0
                        ),
                        correction_mask=field_mask_pb2.FieldMask(paths=["biomarker", "value"]),
                    )
                ],
            ),
            metadata=client.auth(user),
        )
        request_id = str(uuid.uuid4())
        reparse = extraction_service_pb2.ReparseDocumentRequest(name=document.name, request_id=request_id)
        pending = await client.extraction.ReparseDocument(reparse, metadata=client.auth(user))
        assert pending.parse_state == PARSE.PARSE_STATE_PENDING
        assert (
            await client.extraction.ReparseDocument(reparse, metadata=client.auth(user))
        ).name == document.name
        with pytest.raises(grpc.aio.AioRpcError) as busy:
            await client.extraction.ReparseDocument(
                extraction_service_pb2.ReparseDocumentRequest(name=document.name), metadata=client.auth(user)
            )
        assert busy.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        done = await parsed(client, user, document.name)
        assert done.parse_state == PARSE.PARSE_STATE_PARSED
        after = {m.printed_name: m for m in await markers(client, user, document.name)}
        assert set(after) == set(before)
        assert after["Curious"].review_state == REVIEW_STATE.REVIEW_STATE_CORRECTED
        assert after["Curious"].value == 42.0
        # Unreviewed markers read again keep their names, so the panel is updated, not duplicated.
        assert {m.name for m in after.values()} == {m.name for m in before.values()}
        assert len(fake.panels[document.name].markers) == len(report.rows)


async def test_uploads_are_parsed_in_the_background_and_events_are_written(
    disk_storage: ObjectStorage, start_client: Callable[..., Any], migrated: Any
) -> None:
    async with start_client(disk_storage, biomarkers=FakeBiomarkers(), background=True) as client:
        user = uuid.uuid4()
        document = await upload(client, user, generate_report("european", 1).pdf)
        async with asyncio.timeout(30):
            while True:
                current = await client.documents.GetDocument(
                    document_service_pb2.GetDocumentRequest(name=document.name), metadata=client.auth(user)
                )
                if current.parse_state == PARSE.PARSE_STATE_PARSED:
                    break
                await asyncio.sleep(0.1)
    admin = await asyncpg.connect(migrated.admin_url)
    try:
        types = [
            row["event_type"]
            for row in await admin.fetch(
                "SELECT event_type FROM documents.outbox WHERE event_user_id = $1 ORDER BY position", user
            )
        ]
    finally:
        await admin.close()
    assert types == ["vitalis.documents.v1.DocumentUploaded", "vitalis.documents.v1.DocumentParsed"]


async def test_a_parse_is_retried_when_biomarkers_is_unreachable(
    disk_storage: ObjectStorage, start_client: Callable[..., Any], migrated: Any
) -> None:
    fake = FakeBiomarkers(unavailable=True)
    async with start_client(disk_storage, biomarkers=fake) as client:
        user = uuid.uuid4()
        document = await upload(client, user, generate_report("table", 5).pdf)
        with pytest.raises(Exception, match="down"):
            await client.app.pipeline.drain()
        current = await client.documents.GetDocument(
            document_service_pb2.GetDocumentRequest(name=document.name), metadata=client.auth(user)
        )
        assert current.parse_state == PARSE.PARSE_STATE_PARSING
        fake.unavailable = False
        admin = await asyncpg.connect(migrated.admin_url)
        try:
            await admin.execute(
                "UPDATE documents.parse_jobs SET lease_until = now() - interval '1 second'"
                " WHERE owner_id = $1",
                user,
            )
        finally:
            await admin.close()
        done = await parsed(client, user, document.name)
        assert done.parse_state == PARSE.PARSE_STATE_PARSED


async def test_a_parse_that_keeps_failing_is_given_up_with_a_reason(
    disk_storage: ObjectStorage, start_client: Callable[..., Any], migrated: Any
) -> None:
    fake = FakeBiomarkers(unavailable=True)
    async with start_client(disk_storage, biomarkers=fake) as client:
        user = uuid.uuid4()
        document = await upload(client, user, generate_report("table", 6).pdf)
        admin = await asyncpg.connect(migrated.admin_url)
        try:
            for _ in range(MAX_ATTEMPTS):
                with pytest.raises(Exception, match="down"):
                    await client.app.pipeline.drain()
                await admin.execute(
                    "UPDATE documents.parse_jobs SET lease_until = now() - interval '1 second'"
                    " WHERE owner_id = $1",
                    user,
                )
        finally:
            await admin.close()
        done = await parsed(client, user, document.name)
        assert done.parse_state == PARSE.PARSE_STATE_FAILED
        assert done.parse_state_reason == PARSE.PARSE_STATE_REASON_INTERNAL_ERROR
        assert f"{MAX_ATTEMPTS} attempts" in done.parse_state_message


@pytest.mark.skipif(tesseract_available(), reason="this machine has an OCR engine")
async def test_an_image_of_a_report_needs_review_when_no_ocr_is_installed(
    disk_storage: ObjectStorage, start_client: Callable[..., Any]
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(200)
    async with start_client(disk_storage, biomarkers=FakeBiomarkers()) as client:
        user = uuid.uuid4()
        document = await upload(client, user, png)
        assert document.content_type == "image/png"
        assert document.kind == PARSE.DOCUMENT_KIND_LAB_REPORT
        done = await parsed(client, user, document.name)
        assert done.parse_state == PARSE.PARSE_STATE_NEEDS_REVIEW
        assert done.parse_state_reason == PARSE.PARSE_STATE_REASON_NO_TEXT_LAYER


async def test_stopping_abandons_a_parse_in_flight_quickly_and_leaves_it_for_a_retry(
    disk_storage: ObjectStorage, start_client: Callable[..., Any], migrated: Any
) -> None:
    async with start_client(disk_storage, biomarkers=FakeBiomarkers(), background=True) as client:
        user = uuid.uuid4()
        document = await upload(client, user, long_report(pages=60))
        async with asyncio.timeout(20):
            while True:
                current = await client.documents.GetDocument(
                    document_service_pb2.GetDocumentRequest(name=document.name), metadata=client.auth(user)
                )
                if current.parse_state == PARSE.PARSE_STATE_PARSING:
                    break
                await asyncio.sleep(0.05)
        started = asyncio.get_running_loop().time()
        await client.app.stop()
        assert asyncio.get_running_loop().time() - started < 5
        current = await client.documents.GetDocument(
            document_service_pb2.GetDocumentRequest(name=document.name), metadata=client.auth(user)
        )
        assert current.parse_state == PARSE.PARSE_STATE_PARSING
    admin = await asyncpg.connect(migrated.admin_url)
    try:
        job = await admin.fetchrow(
            "SELECT lease_until <= now() AS due, attempts FROM documents.parse_jobs WHERE owner_id = $1", user
        )
        assert job is not None
        assert job["due"], "an abandoned parse gives its lease back at once"
        assert job["attempts"] == 0
    finally:
        await admin.close()


def test_the_benchmark_catalog_has_unique_analytes() -> None:
    assert len({slug(a) for a in ANALYTES}) == len(ANALYTES)
