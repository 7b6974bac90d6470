"""Sources, devices and the user's source priority."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from vitalis_runtime.errors import InvalidArgument

RESOURCE_ID: Final = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
UNRANKED: Final = 1_000_000


def etag_of(kind: str, key: str, version: int) -> str:
    """An opaque value that changes with every update of one resource."""
    return hashlib.sha256(f"{kind}:{key}:{version}".encode()).hexdigest()[:20]


def check_resource_id(value: str, field: str) -> str:
    """``value`` when it is a valid AIP-122 resource ID (lower case, digits, hyphens, at most 63)."""
    if not RESOURCE_ID.match(value):
        raise InvalidArgument.for_field(
            field, "must be 1-63 characters of lower-case letters, digits and hyphens, starting with a letter"
        )
    return value


@dataclass(frozen=True)
class Source:
    """An app or service that writes data."""

    user_id: uuid.UUID
    source_id: str
    display_name: str
    platform: int
    app_id: str
    devices: Sequence[str]
    metric_types: Sequence[int]
    version: int
    create_time: datetime
    update_time: datetime
    last_write_time: datetime | None

    @property
    def etag(self) -> str:
        """The source's current etag."""
        return etag_of("source", f"{self.user_id}/{self.source_id}", self.version)


@dataclass(frozen=True)
class Device:
    """A physical device that records data."""

    user_id: uuid.UUID
    device_id: str
    display_name: str
    device_type: int
    manufacturer: str
    model: str
    hardware_version: str
    firmware_version: str
    hardware_id: str
    version: int
    create_time: datetime
    update_time: datetime

    @property
    def etag(self) -> str:
        """The device's current etag."""
        return etag_of("device", f"{self.user_id}/{self.device_id}", self.version)


@dataclass(frozen=True)
class SourcePriority:
    """Which sources the user trusts most, overall and per metric (source IDs, most trusted first)."""

    user_id: uuid.UUID
    default_order: Sequence[str]
    metric_orders: Mapping[int, Sequence[str]]
    version: int
    update_time: datetime | None

    @property
    def etag(self) -> str:
        """The priority's current etag."""
        return etag_of("priority", str(self.user_id), self.version)

    def order_for(self, metric: int) -> list[str]:
        """The sources of ``metric`` from most to least trusted: the metric's own order, then the default."""
        own = list(self.metric_orders.get(metric, ()))
        return own + [source for source in self.default_order if source not in own]

    def rank(self, metric: int, source_id: str) -> int:
        """The position of ``source_id`` for ``metric`` (smaller is more trusted; unlisted sources last)."""
        order = self.order_for(metric)
        return order.index(source_id) if source_id in order else UNRANKED
