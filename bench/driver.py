"""A load generator, run as its own process: ``python -m bench.driver '<spec as JSON>'``.

It keeps ``concurrency`` calls in flight for ``duration`` seconds and prints one JSON object: units
of work done, wall seconds, its own CPU seconds, per-call latencies (a bounded sample) and failures.
Rows written get distinct keys per call, so the service never sees a replay.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import grpc
from lxml import etree

from bench import extraction
from bench.processes import cpu_seconds
from vitalis.biomarkers.v1 import panel_pb2, panel_service_pb2, panel_service_pb2_grpc
from vitalis.documents.v1 import document_service_pb2, document_service_pb2_grpc
from vitalis.ingestion.v1 import (
    import_job_pb2,
    import_service_pb2,
    import_service_pb2_grpc,
    sample_pb2,
    sample_service_pb2,
    sample_service_pb2_grpc,
)
from vitalis.insights.v1 import insight_service_pb2, insight_service_pb2_grpc

MAX_LATENCIES = 20_000
HEART_RATE = 1
SAMPLE_COLUMNS = ("user_id", "metric", "source_id", "start_time", "end_time", "sample_uid", "value")

Call = Callable[[int], Awaitable[float]]
"""Performs call number ``n`` and returns the units of work it did."""
Close = Callable[[], Awaitable[Any]]
"""Releases the workload's connections; may return ``{"cpu": {label: seconds}, "quality": float}``:
CPU it measured in processes that are gone by now, and a quality score of the work (recall)."""


def sample_times(spec: dict[str, Any], call: int, count: int) -> list[datetime]:
    """Start times of the rows of one call: one second apart, disjoint between calls."""
    base = datetime.fromisoformat(spec["base_time"]) + timedelta(seconds=call * count)
    return [base + timedelta(seconds=i) for i in range(count)]


def heart_rate(i: int) -> float:
    """A plausible heart rate that varies from row to row."""
    return 55.0 + (i * 7919) % 60


async def _grpc_unary(spec: dict[str, Any]) -> tuple[Call, Close]:
    channel = grpc.aio.insecure_channel(spec["target"])
    method = channel.unary_unary(spec["method"])
    request = base64.b64decode(spec["request_b64"])
    metadata = tuple((k, v) for k, v in spec.get("metadata", []))

    async def call(_: int) -> float:
        await method(request, metadata=metadata, timeout=30)
        return 1.0

    return call, channel.close


class Http1Connection:
    """One keep-alive HTTP/1.1 connection that sends prepared request bytes and reads whole responses.

    A load generator must cost far less than the server it measures; a general-purpose client
    spends milliseconds per request in Python, this spends microseconds.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        """Send one request; return the status, the body and whether the connection stays open."""
        self.writer.write(request)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, keep_alive = 0, False, True
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value:
                chunked = True
            elif name == b"connection" and value == b"close":
                keep_alive = False
        if not chunked:
            return status, await self.reader.readexactly(length), keep_alive
        body = bytearray()
        while size := int((await self.reader.readline()).split(b";")[0], 16):
            body += await self.reader.readexactly(size)
            await self.reader.readline()
        await self.reader.readline()
        return status, bytes(body), keep_alive


def http1_request(method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[str, int, bytes]:
    """The bytes of one HTTP/1.1 request to ``url``, and the host and port to send them to."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {path} HTTP/1.1", f"host: {host}:{port}", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return host, port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Http1Pool:
    """Keep-alive connections to one server, opened as concurrency demands."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._idle: list[Http1Connection] = []
        self._opened: list[Http1Connection] = []

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """One exchange on an idle connection (or a new one); raise on a status of 300 or more."""
        if self._idle:
            connection = self._idle.pop()
        else:
            connection = Http1Connection(*await asyncio.open_connection(self.host, self.port))
            self._opened.append(connection)
        status, content, keep_alive = await connection.exchange(request)
        if keep_alive:
            self._idle.append(connection)
        if status >= 300:
            raise RuntimeError(f"HTTP {status}: {content[:300].decode(errors='replace')}")
        return status, content

    async def close(self) -> None:
        """Close every connection."""
        for connection in self._opened:
            connection.writer.close()


async def _http(spec: dict[str, Any]) -> tuple[Call, Close]:
    body = base64.b64decode(spec["body_b64"]) if spec.get("body_b64") else b""
    host, port, request = http1_request(spec["method"], spec["url"], spec.get("headers", {}), body)
    pool = Http1Pool(host, port)

    async def call(_: int) -> float:
        await pool.send(request)
        return float(spec.get("units_per_call", 1.0))

    return call, pool.close


def _samples(spec: dict[str, Any], call: int, count: int) -> list[sample_pb2.Sample]:
    samples = []
    for i, start in enumerate(sample_times(spec, call, count)):
        sample = sample_pb2.Sample(
            source=spec["source"], metric_type=HEART_RATE, value=heart_rate(i), unit="count/min"
        )
        sample.start_time.FromDatetime(start)
        sample.end_time.FromDatetime(start)
        samples.append(sample)
    return samples


async def _samples_stream(spec: dict[str, Any]) -> tuple[Call, Close]:
    channel = grpc.aio.insecure_channel(spec["target"])
    stub = sample_service_pb2_grpc.SampleServiceStub(channel)
    metadata = tuple((k, v) for k, v in spec.get("metadata", []))
    chunk, chunks = spec["rows_per_chunk"], spec["chunks_per_call"]

    async def call(n: int) -> float:
        async def requests() -> AsyncIterator[sample_service_pb2.StreamSamplesRequest]:
            for c in range(chunks):
                yield sample_service_pb2.StreamSamplesRequest(
                    parent=spec["parent"], samples=_samples(spec, n * chunks + c, chunk)
                )

        response = await stub.StreamSamples(requests(), metadata=metadata, timeout=120)
        return float(response.counts.new_count)

    return call, channel.close


async def _samples_rest_batch(spec: dict[str, Any]) -> tuple[Call, Close]:
    host, port, _ = http1_request("POST", spec["url"], {}, b"")
    pool = Http1Pool(host, port)
    count = spec["rows_per_call"]
    headers = {**spec.get("headers", {}), "content-type": "application/json"}

    async def call(n: int) -> float:
        samples = []
        for i, start in enumerate(sample_times(spec, n, count)):
            at = start.isoformat().replace("+00:00", "Z")
            samples.append(
                {
                    "source": spec["source"],
                    "metricType": "METRIC_TYPE_HEART_RATE",
                    "value": heart_rate(i),
                    "unit": "count/min",
                    "startTime": at,
                    "endTime": at,
                }
            )
        body = json.dumps({"samples": samples}).encode()
        await pool.send(http1_request("POST", spec["url"], headers, body)[2])
        return float(count)

    return call, pool.close


async def _copy_samples(spec: dict[str, Any]) -> tuple[Call, Close]:
    """The physical floor of B1: asyncpg COPY of the same rows into the same table.

    PostgreSQL refuses COPY FROM into a table whose row-level security applies to the writer, so the
    floor is written as the table's owner (a superuser here), which RLS does not restrict.
    """
    backends: dict[int, float] = {}

    async def remember_backend(connection: asyncpg.Connection) -> None:
        pid = connection.get_server_pid()
        backends[pid] = cpu_seconds(pid) or 0.0

    pool = await asyncpg.create_pool(
        spec["database_url"], min_size=1, max_size=spec["concurrency"], init=remember_backend
    )
    user_id = uuid.UUID(spec["user_id"])
    count = spec["rows_per_call"]

    async def call(n: int) -> float:
        records = [
            (user_id, HEART_RATE, spec["source_id"], start, start, uuid.uuid4(), heart_rate(i))
            for i, start in enumerate(sample_times(spec, n, count))
        ]
        async with pool.acquire() as connection, connection.transaction():
            await connection.copy_records_to_table(
                "samples", schema_name=spec["schema"], columns=SAMPLE_COLUMNS, records=records
            )
        return float(count)

    async def close() -> dict[str, float]:
        # The backends exit with the pool, before the harness could read them.
        spent = sum((cpu_seconds(pid) or before) - before for pid, before in backends.items())
        await pool.close()
        return {"cpu": {"postgres": spent}}

    return call, close


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MIB = 2**20


def file_bytes(buffer: bytes, call: int, sizes_mb: list[int]) -> bytes:
    """Call ``n``'s file: a PNG signature, a unique nonce, then random bytes (never a duplicate)."""
    size = sizes_mb[call % len(sizes_mb)] * MIB
    head = PNG_MAGIC + call.to_bytes(8, "big") + uuid.uuid4().bytes
    return head + buffer[: size - len(head)]


async def _documents_upload(spec: dict[str, Any]) -> tuple[Call, Close]:
    """B5: a client-streamed upload of a distinct 1-20 MB file per call, in 1 MiB chunks."""
    channel = grpc.aio.insecure_channel(spec["target"], options=[("grpc.max_send_message_length", 4 * MIB)])
    stub = document_service_pb2_grpc.DocumentServiceStub(channel)
    metadata = tuple((k, v) for k, v in spec.get("metadata", []))
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


async def _sha256(spec: dict[str, Any]) -> tuple[Call, Close]:
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


async def _iterparse(spec: dict[str, Any]) -> tuple[Call, Close]:
    """B2's parse floor: lxml ``iterparse`` over the export, clearing each record, nothing else."""
    deadline = time.perf_counter() + spec["duration"]

    async def call(_: int) -> float:
        parsed = 0
        for _event, element in etree.iterparse(spec["path"], events=("end",), tag="Record"):
            parsed += 1
            element.clear(keep_tail=False)
            while element.getprevious() is not None:
                del element.getparent()[0]
            if parsed % 10_000 == 0 and time.perf_counter() > deadline:
                break
        return float(parsed)

    async def close() -> None:
        return None

    return call, close


def import_messages(spec: dict[str, Any], path: Path) -> Iterator[import_service_pb2.StreamImportFileRequest]:
    """The metadata, then the file in chunks just under the 4 MiB a message may carry."""
    yield import_service_pb2.StreamImportFileRequest(
        parent=spec["parent"],
        metadata=import_service_pb2.ImportFileMetadata(
            format=import_job_pb2.IMPORT_FORMAT_APPLE_HEALTH_XML,
            source=spec["source"],
            file_name=path.name,
            size_bytes=path.stat().st_size,
        ),
    )
    with path.open("rb") as file:
        while chunk := file.read(4 * MIB - 1024):
            yield import_service_pb2.StreamImportFileRequest(parent=spec["parent"], chunk=chunk)


async def _import_file(spec: dict[str, Any]) -> tuple[Call, Close]:
    """B2's arm: stream the export to ImportService, then watch the job until it finishes."""
    channel = grpc.aio.insecure_channel(spec["target"])
    stub = import_service_pb2_grpc.ImportServiceStub(channel)
    metadata = tuple((k, v) for k, v in spec.get("metadata", []))
    path = Path(spec["path"])

    async def call(_: int) -> float:
        job = await stub.StreamImportFile(
            import_messages(spec, path), metadata=metadata, timeout=spec["duration"]
        )
        terminal = {
            import_job_pb2.IMPORT_JOB_STATE_SUCCEEDED,
            import_job_pb2.IMPORT_JOB_STATE_FAILED,
            import_job_pb2.IMPORT_JOB_STATE_CANCELLED,
        }
        if job.state not in terminal:
            watch = stub.WatchImportJob(
                import_service_pb2.WatchImportJobRequest(name=job.name),
                metadata=metadata,
                timeout=spec["duration"],
            )
            async for update in watch:
                job = update
                if job.state in terminal:
                    break
        if job.state != import_job_pb2.IMPORT_JOB_STATE_SUCCEEDED:
            raise RuntimeError(
                f"import ended {import_job_pb2.ImportJobState.Name(job.state)}: {job.error.message}"
            )
        return float(job.counts.new_count)

    return call, channel.close


async def _event_path(spec: dict[str, Any]) -> tuple[Call, Close]:
    """B7: a panel with an out-of-range marker is written; the call ends when the watch shows its insight."""
    insights = grpc.aio.insecure_channel(spec["insights_target"])
    biomarkers = grpc.aio.insecure_channel(spec["biomarkers_target"])
    panels = panel_service_pb2_grpc.PanelServiceStub(biomarkers)
    metadata = tuple((k, v) for k, v in spec.get("metadata", []))
    watch = insight_service_pb2_grpc.InsightServiceStub(insights).WatchInsights(
        insight_service_pb2.WatchInsightsRequest(parent=spec["parent"]), metadata=metadata
    )
    arrivals: dict[str, asyncio.Future[None]] = {}
    early: set[str] = set()

    async def read_watch() -> None:
        async for message in watch:
            if not message.HasField("insight") or not message.insight.evidence:
                continue
            panel = message.insight.evidence[0].resource
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
        await asyncio.wait_for(waiter, timeout=10)
        return 1.0

    async def close() -> None:
        reader.cancel()
        await insights.close()
        await biomarkers.close()

    return call, close


async def _extraction(spec: dict[str, Any]) -> tuple[Call, Close]:
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


WORKLOADS = {
    "grpc_unary": _grpc_unary,
    "http": _http,
    "samples_stream": _samples_stream,
    "samples_rest_batch": _samples_rest_batch,
    "copy_samples": _copy_samples,
    "documents_upload": _documents_upload,
    "sha256": _sha256,
    "iterparse": _iterparse,
    "import_file": _import_file,
    "event_path": _event_path,
    "extraction": _extraction,
}


async def drive(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one workload for its duration and return what it did."""
    call, close = await WORKLOADS[spec["kind"]](spec)
    deadline = time.perf_counter() + spec["duration"]
    max_calls = spec.get("max_calls")
    counter = iter(range(10**12))
    latencies: list[float] = []
    totals = {"units": 0.0, "errors": 0, "calls": 0}
    first_error: list[str] = []

    async def worker() -> None:
        while time.perf_counter() < deadline:
            n = next(counter)
            if max_calls is not None and n >= max_calls:
                return
            begun = time.perf_counter()
            try:
                units = await call(n)
            except Exception as error:
                totals["errors"] += 1
                if not first_error:
                    first_error.append(_describe(error))
                if totals["errors"] > 50 and totals["calls"] == 0:
                    return
                continue
            finished = time.perf_counter()
            totals["units"] += units
            totals["calls"] += 1
            if len(latencies) < MAX_LATENCIES:
                latencies.append((finished - begun) * 1000)
            elif random.random() < 0.1:
                latencies[random.randrange(MAX_LATENCIES)] = (finished - begun) * 1000

    cpu_begun, wall_begun = time.process_time(), time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
    finally:
        closing = await close() or {}
    return {
        "units": totals["units"],
        "calls": totals["calls"],
        "seconds": time.perf_counter() - wall_begun,
        "cpu_seconds": time.process_time() - cpu_begun,
        "latencies_ms": latencies,
        "errors": totals["errors"],
        "extra_cpu_seconds": closing.get("cpu", {}),
        "quality": closing.get("quality"),
        "first_error": first_error[0] if first_error else None,
    }


def _describe(error: Exception) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        text = f"{error.code().name}: {error.details()}"
    else:
        text = f"{type(error).__name__}: {error}"
    return " ".join(text.split())


def main() -> None:
    """Entry point: the spec is the only argument; the result goes to stdout as JSON."""
    spec = json.loads(sys.argv[1])
    result = asyncio.run(drive(spec))
    result["started_at"] = datetime.now(UTC).isoformat()
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
