"""Workloads of the reads, uploads, extraction and event path."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc

from bench import extraction
from bench.http1 import Http1Pool, http1_request
from bench.workload import Call, Close, grpc_metadata
from vitalis.biomarkers.v1 import panel_pb2, panel_service_pb2, panel_service_pb2_grpc
from vitalis.documents.v1 import document_service_pb2, document_service_pb2_grpc
from vitalis.insights.v1 import insight_service_pb2, insight_service_pb2_grpc

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MIB = 2**20
EVENT_TIMEOUT = 30.0
"""Seconds a written panel may take to show on the watch before the call counts as failed."""


async def grpc_unary(spec: dict[str, Any]) -> tuple[Call, Close]:
    channel = grpc.aio.insecure_channel(spec["target"])
    method = channel.unary_unary(spec["method"])
    request = base64.b64decode(spec["request_b64"])
    metadata = grpc_metadata(spec)

    async def call(_: int) -> float:
        await method(request, metadata=metadata, timeout=30)
        return 1.0

    return call, channel.close


async def http(spec: dict[str, Any]) -> tuple[Call, Close]:
    body = base64.b64decode(spec["body_b64"]) if spec.get("body_b64") else b""
    host, port, request = http1_request(spec["method"], spec["url"], spec.get("headers", {}), body)
    pool = Http1Pool(host, port)

    async def call(_: int) -> float:
        await pool.send(request)
        return float(spec.get("units_per_call", 1.0))

    return call, pool.close


def file_bytes(buffer: bytes, call: int, sizes_mb: list[int]) -> bytes:
    """Call ``n``'s file: a PNG signature, a unique nonce, then random bytes (never a duplicate)."""
    size = sizes_mb[call % len(sizes_mb)] * MIB
    head = PNG_MAGIC + call.to_bytes(8, "big") + uuid.uuid4().bytes
    return head + buffer[: size - len(head)]


async def documents_upload(spec: dict[str, Any]) -> tuple[Call, Close]:
    """B5: a client-streamed upload of a distinct 1-20 MB file per call, in 1 MiB chunks."""
    channel = grpc.aio.insecure_channel(spec["target"], options=[("grpc.max_send_message_length", 4 * MIB)])
    stub = document_service_pb2_grpc.DocumentServiceStub(channel)
    metadata = grpc_metadata(spec)
    buffer = os.urandom(max(spec["sizes_mb"]) * MIB)

    async def call(n: int) -> float:
        content = file_bytes(buffer, n, spec["sizes_mb"])

        async def messages() -> AsyncIterator[document_service_pb2.UploadDocumentRequest]:
            yield document_service_pb2.UploadDocumentRequest(
                parent=spec["parent"],
                metadata=document_service_pb2.UploadDocumentMetadata(size_bytes=len(content)),
            )
            for offset in range(0, len(content), MIB):
                yield document_service_pb2.UploadDocumentRequest(chunk=content[offset : offset + MIB])

        await stub.UploadDocument(messages(), metadata=metadata, timeout=120)
        return len(content) / MIB

    return call, channel.close


async def sha256(spec: dict[str, Any]) -> tuple[Call, Close]:
    """B5's reference: ``hashlib.sha256`` over the same bytes the upload arm sends."""
    buffer = os.urandom(max(spec["sizes_mb"]) * MIB)

    async def call(n: int) -> float:
        size = spec["sizes_mb"][n % len(spec["sizes_mb"])] * MIB
        head = PNG_MAGIC + n.to_bytes(8, "big") + uuid.uuid4().bytes
        digest = hashlib.sha256(head)
        digest.update(memoryview(buffer)[: size - len(head)])
        digest.hexdigest()
        return size / MIB

    async def close() -> None:
        return None

    return call, close


async def event_path(spec: dict[str, Any]) -> tuple[Call, Close]:
    """B7: a panel with an out-of-range marker is written; the call ends when the watch shows its insight."""
    insights = grpc.aio.insecure_channel(spec["insights_target"])
    biomarkers = grpc.aio.insecure_channel(spec["biomarkers_target"])
    panels = panel_service_pb2_grpc.PanelServiceStub(biomarkers)
    metadata = grpc_metadata(spec)
    watch = insight_service_pb2_grpc.InsightServiceStub(insights).WatchInsights(
        insight_service_pb2.WatchInsightsRequest(parent=spec["parent"]), metadata=metadata
    )
    arrivals: dict[str, asyncio.Future[None]] = {}
    early: set[str] = set()

    async def read_watch() -> None:
        async for message in watch:
            if not message.HasField("insight") or not message.insight.evidence:
                continue
            # The evidence names the panel or its markers (``<panel>/markers/<id>``).
            panels = {"/".join(item.resource.split("/")[:4]) for item in message.insight.evidence}
            for panel in panels:
                waiter = arrivals.get(panel)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
                else:
                    early.add(panel)

    reader = asyncio.create_task(read_watch())
    # The watch sends only what happens after it is open; give it time to subscribe.
    await asyncio.sleep(1.5)

    async def call(n: int) -> float:
        panel = panel_pb2.Panel(
            markers=[
                panel_pb2.Marker(
                    biomarker="biomarkers/ldl-cholesterol-direct", value=190, reported_unit="mg/dL"
                )
            ]
        )
        panel.collection_time.FromDatetime(datetime.now(UTC) - timedelta(days=2, minutes=n))
        created = await panels.CreatePanel(
            panel_service_pb2.CreatePanelRequest(parent=spec["parent"], panel=panel),
            metadata=metadata,
            timeout=30,
        )
        if created.name in early:
            return 1.0
        waiter = arrivals.setdefault(created.name, asyncio.get_running_loop().create_future())
        try:
            await asyncio.wait_for(waiter, timeout=EVENT_TIMEOUT)
        except TimeoutError:
            message = f"the insight on {created.name} did not reach the watch within {EVENT_TIMEOUT:g} s"
            raise RuntimeError(message) from None
        return 1.0

    async def close() -> None:
        reader.cancel()
        await insights.close()
        await biomarkers.close()

    return call, close


async def lab_report_extraction(spec: dict[str, Any]) -> tuple[Call, Close]:
    """B6: one report of documents' corpus per call, by one extractor; units are pages."""
    folder = extraction.corpus_folder()
    reports = extraction.write_corpus(Path(folder.name), spec["per_layout"])
    extract = extraction.EXTRACTORS[spec["engine"]]
    scored = {"expected": 0, "correct": 0}

    async def call(n: int) -> float:
        report = reports[n % len(reports)]
        pages, found = extract(report.path)
        if n < len(reports):
            scored["expected"] += len(report.truth)
            scored["correct"] += len(report.truth & found)
        return float(pages)

    async def close() -> dict[str, Any]:
        folder.cleanup()
        return {"quality": scored["correct"] / scored["expected"] if scored["expected"] else None}

    return call, close
