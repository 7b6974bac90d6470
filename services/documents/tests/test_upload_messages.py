"""UploadDocument's messages: chunks are viewed in place, and everything reads as protobuf reads it."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given
from hypothesis import strategies as st

from vitalis.documents.v1 import document_pb2, document_service_pb2
from vitalis_documents.api.upload_messages import ChunkOnly, read_upload_message

Request = document_service_pb2.UploadDocumentRequest


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16_383, 16_384, 1024 * 1024])
def test_a_chunk_only_message_is_a_view_of_the_received_bytes(size: int) -> None:
    chunk = bytes(range(256)) * (size // 256) + bytes(size % 256)
    data = Request(chunk=chunk).SerializeToString()
    message = read_upload_message(data)
    assert isinstance(message, ChunkOnly)
    assert message.chunk == chunk
    assert message.chunk.obj is data


@pytest.mark.parametrize(
    "request_message",
    [
        Request(parent="users/me", chunk=b"%PDF-1.7"),
        Request(parent="users/me", metadata=document_service_pb2.UploadDocumentMetadata(size_bytes=3)),
        Request(metadata=document_service_pb2.UploadDocumentMetadata(document=document_pb2.Document())),
        Request(),
    ],
)
def test_any_other_message_is_parsed_by_protobuf(request_message: Request) -> None:
    message = read_upload_message(request_message.SerializeToString())
    assert isinstance(message, Request)
    assert message == request_message


def test_the_last_of_repeated_chunk_fields_wins_as_in_protobuf() -> None:
    data = Request(chunk=b"first").SerializeToString() + Request(chunk=b"second").SerializeToString()
    message = read_upload_message(data)
    assert message.chunk == b"second"


@pytest.mark.parametrize(
    "data", [b"\x1a\x05abc", b"\x1a\xff", b"\x1a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80"]
)
def test_a_malformed_message_fails_as_protobuf_fails(data: bytes) -> None:
    with pytest.raises(DecodeError):
        Request.FromString(data)
    with pytest.raises(DecodeError):
        read_upload_message(data)


@given(
    parent=st.sampled_from(["", "users/me"]),
    chunk=st.one_of(st.none(), st.binary(max_size=300)),
    size=st.one_of(st.none(), st.integers(0, 2**40)),
)
def test_every_message_reads_as_protobuf_reads_it(parent: str, chunk: bytes | None, size: int | None) -> None:
    original = Request(parent=parent)
    if chunk is not None:
        original.chunk = chunk
    if size is not None:
        original.metadata.size_bytes = size
    message = read_upload_message(original.SerializeToString())
    if isinstance(message, ChunkOnly):
        assert original.WhichOneof("payload") == "chunk"
        assert not original.parent
        assert message.chunk == original.chunk
    else:
        assert message == original
