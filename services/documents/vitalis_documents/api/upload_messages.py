"""UploadDocument's request messages as they arrive, with chunks viewed in place rather than copied.

Parsing a chunk message with protobuf copies its bytes into the message, and reading the field
copies them again: two copies (and two allocations) of every chunk of every upload. A message that
holds nothing but its chunk — what clients send after the metadata — is recognised from its
encoding instead, and its chunk is a view of the received bytes. Any other message (the metadata,
a chunk with ``parent`` set, anything unusual) is parsed by protobuf as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from vitalis.documents.v1 import document_pb2, document_service_pb2, document_service_pb2_grpc

SERVICE = "vitalis.documents.v1.DocumentService"
CHUNK_TAG = 3 << 3 | 2
"""The key of field 3 (``chunk``) with the length-delimited wire type."""
_MAX_VARINT_BYTES = 10


@dataclass(frozen=True, slots=True)
class ChunkOnly:
    """An ``UploadDocumentRequest`` whose only field is ``chunk``."""

    chunk: memoryview


UploadMessage = document_service_pb2.UploadDocumentRequest | ChunkOnly


def read_upload_message(data: bytes) -> UploadMessage:
    """The message encoded in ``data``: a :class:`ChunkOnly` viewing ``data`` when that is all it is."""
    if len(data) >= 2 and data[0] == CHUNK_TAG:
        length, start = _read_varint(data, 1)
        if start + length == len(data):
            return ChunkOnly(memoryview(data)[start:])
    return document_service_pb2.UploadDocumentRequest.FromString(data)


def _read_varint(data: bytes, offset: int) -> tuple[int, int]:
    """The base-128 varint at ``offset`` and the offset after it; ``(-1, offset)`` when malformed."""
    value = 0
    for index in range(_MAX_VARINT_BYTES):
        position = offset + index
        if position >= len(data):
            break
        byte = data[position]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return value, position + 1
    return -1, offset


def add_document_service(
    servicer: document_service_pb2_grpc.DocumentServiceServicer, server: grpc.aio.Server
) -> None:
    """Register ``servicer`` as DocumentService, its UploadDocument reading :data:`UploadMessage` s."""
    document_service_pb2_grpc.add_DocumentServiceServicer_to_server(servicer, server)
    # A registered handler replaces the generated one for this method only.
    server.add_registered_method_handlers(
        SERVICE,
        {
            "UploadDocument": grpc.stream_unary_rpc_method_handler(
                servicer.UploadDocument,
                request_deserializer=read_upload_message,
                response_serializer=document_pb2.Document.SerializeToString,
            )
        },
    )
