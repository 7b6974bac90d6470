"""Events between services: the envelope, how it is laid out in a Redis stream entry, and stream names.

An event announces a change that has been committed. Its ``type`` is the full name of a protobuf
message (``vitalis.identity.v1.UserCreated``) and its ``payload`` that message serialized, so the
contract of every event lives in ``protos/`` like the contract of every RPC. ``headers`` carry the
W3C ``traceparent``/``tracestate`` of the transaction that produced it and the request id.

Streams are sharded by a hash of the user id: one user's events always go to the same shard and
stay in order, while replicas of a consumer share the shards. Every key of a shard carries the same
Redis Cluster hash tag, so a shard's stream and its dead-letter stream live on one node.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Final, TypeVar

import redis.exceptions
from google.protobuf.message import Message
from redis.typing import EncodableT, FieldT

from vitalis_runtime import errors

if TYPE_CHECKING:
    from vitalis_runtime.settings import ServiceSettings

DEFAULT_SHARD_COUNT: Final = 8
DEFAULT_PREFIX: Final = "vitalis"

MessageT = TypeVar("MessageT", bound=Message)


class MalformedEventError(ValueError):
    """A stream entry that is not a well-formed event; it can never be handled."""


@dataclass(frozen=True)
class Event:
    """One committed change, as published and as handed to consumers."""

    id: uuid.UUID
    type: str
    producer: str
    user_id: uuid.UUID | None
    payload: bytes
    occur_time: datetime
    headers: Mapping[str, str] = field(default_factory=dict)

    def unpack(self, message_class: builtins.type[MessageT]) -> MessageT:
        """The payload parsed as ``message_class``; ``MalformedEventError`` if the type does not match."""
        expected = message_class.DESCRIPTOR.full_name
        if expected != self.type:
            raise MalformedEventError(f"event {self.id} is a {self.type}, not a {expected}")
        message = message_class()
        message.ParseFromString(self.payload)
        return message

    def to_fields(self) -> dict[FieldT, EncodableT]:
        """The stream entry fields of this event."""
        return {
            b"id": str(self.id).encode(),
            b"type": self.type.encode(),
            b"producer": self.producer.encode(),
            b"user_id": b"" if self.user_id is None else str(self.user_id).encode(),
            b"occur_time": self.occur_time.isoformat().encode(),
            b"headers": json.dumps(dict(self.headers), separators=(",", ":")).encode(),
            b"payload": self.payload,
        }

    @classmethod
    def from_fields(cls, fields: Mapping[bytes, bytes]) -> Event:
        """Read an event back from stream entry fields; ``MalformedEventError`` if they are not one."""
        try:
            user_id = fields[b"user_id"].decode()
            return cls(
                id=uuid.UUID(fields[b"id"].decode()),
                type=fields[b"type"].decode(),
                producer=fields[b"producer"].decode(),
                user_id=uuid.UUID(user_id) if user_id else None,
                payload=fields[b"payload"],
                occur_time=_aware_time(fields[b"occur_time"].decode()),
                headers=_string_map(json.loads(fields[b"headers"])),
            )
        except MalformedEventError:
            raise
        except (KeyError, ValueError, UnicodeDecodeError) as error:
            raise MalformedEventError(f"stream entry is not an event: {error!r}") from error


def _aware_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise MalformedEventError("event occur_time has no time zone")
    return moment


def _string_map(value: object) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(key, str) and isinstance(item, str) for key, item in value.items()
    ):
        raise MalformedEventError("event headers are not a map of strings")
    return value


@dataclass(frozen=True)
class StreamNames:
    """The Redis stream keys of one producer: ``shard_count`` shards plus a dead-letter stream each.

    Keys look like ``vitalis:events:{identity:03}``; the braces are the Redis Cluster hash tag.
    """

    producer: str
    shard_count: int = DEFAULT_SHARD_COUNT
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if self.shard_count < 1:
            raise ValueError("shard_count must be at least 1")
        if not self.producer or any(char in self.producer for char in "{}: "):
            raise ValueError(f"producer {self.producer!r} must be a plain name")

    @classmethod
    def of(cls, producer: str, settings: ServiceSettings) -> StreamNames:
        """The streams of ``producer`` as the service's settings lay them out (shards, key prefix)."""
        return cls(producer, shard_count=settings.event_shards, prefix=settings.event_stream_prefix)

    def shard_of(self, user_id: uuid.UUID | None) -> int:
        """The shard a user's events go to; events about no user go to shard 0."""
        if user_id is None:
            return 0
        digest = hashlib.blake2b(user_id.bytes, digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.shard_count

    def shard(self, index: int) -> str:
        """The stream key of shard ``index``."""
        if not 0 <= index < self.shard_count:
            raise ValueError(f"shard {index} is outside 0..{self.shard_count - 1}")
        return f"{self.prefix}:events:{{{self.producer}:{index:02d}}}"

    def for_user(self, user_id: uuid.UUID | None) -> str:
        """The stream key that carries a user's events."""
        return self.shard(self.shard_of(user_id))

    def all(self) -> list[str]:
        """Every shard's stream key, in shard order."""
        return [self.shard(index) for index in range(self.shard_count)]

    @staticmethod
    def dead_letter(stream: str) -> str:
        """The dead-letter stream of ``stream`` (same hash tag, so the same cluster node)."""
        return f"{stream}:dead-letter"


@contextmanager
def translate_redis_errors() -> Iterator[None]:
    """Re-raise a lost or refused Redis connection inside the block as ``errors.Unavailable``."""
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as error:
        raise errors.Unavailable("Redis cannot be reached.", reason="REDIS_UNAVAILABLE") from error
