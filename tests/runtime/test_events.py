"""The event envelope and stream names (no servers)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from google.protobuf.wrappers_pb2 import Int64Value, StringValue

from vitalis_runtime.events import Event, MalformedEventError, StreamNames


def sample_event(user_id: uuid.UUID | None = None) -> Event:
    return Event(
        id=uuid.uuid4(),
        type="google.protobuf.StringValue",
        producer="identity",
        user_id=user_id,
        payload=StringValue(value="hello").SerializeToString(),
        occur_time=datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
        headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    )


@pytest.mark.parametrize("user_id", [uuid.uuid4(), None])
def test_event_survives_the_trip_through_stream_fields(user_id: uuid.UUID | None) -> None:
    event = sample_event(user_id)

    assert Event.from_fields(event.to_fields()) == event


def test_unpack_returns_the_message() -> None:
    assert sample_event().unpack(StringValue).value == "hello"


def test_unpack_as_another_type_is_refused() -> None:
    with pytest.raises(MalformedEventError, match=r"not a google\.protobuf\.Int64Value"):
        sample_event().unpack(Int64Value)


@pytest.mark.parametrize(
    "damage",
    [
        {b"id": b"not-a-uuid"},
        {b"headers": b"[1, 2]"},
        {b"headers": b"{bad json"},
        {b"occur_time": b"2024-05-01T12:30:00"},
        {b"user_id": b"\xff\xfe"},
    ],
)
def test_damaged_fields_are_a_malformed_event(damage: dict[bytes, bytes]) -> None:
    fields = {**sample_event().to_fields(), **damage}

    with pytest.raises(MalformedEventError):
        Event.from_fields(fields)


def test_missing_field_is_a_malformed_event() -> None:
    fields = sample_event().to_fields()
    del fields[b"payload"]

    with pytest.raises(MalformedEventError):
        Event.from_fields(fields)


def test_one_users_events_always_go_to_the_same_shard() -> None:
    names = StreamNames("ingestion")
    user = uuid.uuid4()

    assert {names.for_user(user) for _ in range(10)} == {names.for_user(user)}
    assert names.for_user(user) in names.all()


def test_users_spread_over_every_shard() -> None:
    names = StreamNames("ingestion", shard_count=8)

    counts = dict.fromkeys(names.all(), 0)
    for _ in range(4000):
        counts[names.for_user(uuid.uuid4())] += 1

    assert all(350 < count < 650 for count in counts.values())


def test_stream_keys_carry_one_hash_tag_per_shard() -> None:
    names = StreamNames("identity", shard_count=3, prefix="vitalis")

    assert names.all() == [
        "vitalis:events:{identity:00}",
        "vitalis:events:{identity:01}",
        "vitalis:events:{identity:02}",
    ]
    assert StreamNames.dead_letter(names.shard(1)) == "vitalis:events:{identity:01}:dead-letter"


def test_events_about_no_user_go_to_the_first_shard() -> None:
    names = StreamNames("identity")

    assert names.for_user(None) == names.shard(0)


@pytest.mark.parametrize("producer", ["", "a:b", "{x}", "with space"])
def test_producer_with_key_syntax_is_refused(producer: str) -> None:
    with pytest.raises(ValueError, match="plain name"):
        StreamNames(producer)
