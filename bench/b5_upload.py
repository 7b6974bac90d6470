"""B5: document upload with SHA-256 dedup against ``hashlib.sha256`` over the same bytes.

The upload arm streams distinct files of 1, 5 and 20 MB in turn (a PNG signature, so the type
sniffer accepts them and no parse job follows) to documents' ``UploadDocument`` in 1 MiB chunks,
two uploads in flight, while the documents process's resident memory is sampled. The reference
hashes the same bytes in one process. Memory is judged against the largest file: a service that
holds a whole file grows by at least its size per upload in flight.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc

from bench.report import ArmOutcome, Bound, Metric, Target
from bench.runner import DriverArm, Log, Probe, Settings, describe_rpc_error, measure_arms
from bench.stack import BenchUser, Stack
from vitalis.documents.v1 import document_service_pb2, document_service_pb2_grpc

SIZES_MB = [1, 5, 20]
UPLOAD, SHA = "B5 upload (gRPC stream)", "B5 hashlib.sha256"

TARGETS = (
    Target(
        "B5",
        "upload 1-20 MB files vs hashlib.sha256 (MB/s)",
        arm=UPLOAD,
        reference=SHA,
        value=0.5,
        why_missed=(
            "receiving through gRPC, hashing and writing cost ~3 ms of CPU per MB against ~1 ms for "
            "hashing alone, and the client's own sending shares the two cores"
        ),
    ),
    Target(
        "B5",
        "documents' peak memory growth while uploading, vs the largest file",
        arm=UPLOAD,
        reference=None,
        metric=Metric.PEAK_RSS,
        bound=Bound.AT_MOST,
        value=1.0,
        fixed_reference=(float(max(SIZES_MB)), f"a {max(SIZES_MB)} MB file"),
        why_missed="documents grew by more than a whole file while uploading",
    ),
)


def upload_probe(stack: Stack, user: BenchUser) -> Probe:
    """One small real upload: UNIMPLEMENTED or a failure makes the arm unmeasurable."""

    async def probe() -> str | None:
        content = b"\x89PNG\r\n\x1a\n" + uuid.uuid4().bytes

        async def messages() -> AsyncIterator[document_service_pb2.UploadDocumentRequest]:
            yield document_service_pb2.UploadDocumentRequest(
                parent=user.name,
                metadata=document_service_pb2.UploadDocumentMetadata(size_bytes=len(content)),
            )
            yield document_service_pb2.UploadDocumentRequest(chunk=content)

        async with grpc.aio.insecure_channel(stack.target("documents")) as channel:
            stub = document_service_pb2_grpc.DocumentServiceStub(channel)
            try:
                await stub.UploadDocument(
                    messages(), metadata=tuple((k, v) for k, v in user.metadata), timeout=30
                )
            except grpc.aio.AioRpcError as error:
                return describe_rpc_error(error, service="documents", method="DocumentService/UploadDocument")
        return None

    return probe


async def run(stack: Stack, settings: Settings, log: Log) -> dict[str, ArmOutcome]:
    """Measure upload and hashing interleaved."""
    user = await stack.sign_up()
    common = {"sizes_mb": SIZES_MB, "concurrency": 2}
    arms = [
        DriverArm(
            UPLOAD,
            "MB",
            {
                **common,
                "kind": "documents_upload",
                "target": stack.target("documents"),
                "metadata": user.metadata,
                "parent": user.name,
            },
            stack,
            upload_probe(stack, user),
            watch_memory_of="documents",
        ),
        DriverArm(SHA, "MB", {**common, "kind": "sha256", "concurrency": 1}, stack),
    ]
    return await measure_arms(arms, settings, log)
