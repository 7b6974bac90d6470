"""Data-subject jobs (export and erasure) and the progress of each service's part."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class JobState(enum.Enum):
    """Where a job, or one service's part of it, is."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ErasureTrigger(enum.Enum):
    """What started an erasure."""

    USER_REQUEST = "user_request"
    DELETION_EXPIRED = "deletion_expired"
    EXTERNAL_PROVIDER = "external_provider"
    OPERATOR = "operator"


@dataclass(frozen=True)
class JobError:
    """Why a job or a service's part failed: a gRPC status code number and a message."""

    code: int
    message: str

    def to_json(self) -> dict[str, Any]:
        """Stored form."""
        return {"code": self.code, "message": self.message}

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> JobError | None:
        """Read the stored form."""
        return cls(int(value["code"]), str(value["message"])) if value else None


@dataclass(frozen=True)
class ServiceProgress:
    """One service's part of a job."""

    service: str
    state: JobState
    item_count: int = 0
    byte_count: int = 0
    error: JobError | None = None

    def to_json(self) -> dict[str, Any]:
        """Stored form."""
        return {
            "service": self.service,
            "state": self.state.value,
            "item_count": self.item_count,
            "byte_count": self.byte_count,
            "error": self.error.to_json() if self.error else None,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ServiceProgress:
        """Read the stored form."""
        return cls(
            service=str(value["service"]),
            state=JobState(value["state"]),
            item_count=int(value.get("item_count", 0)),
            byte_count=int(value.get("byte_count", 0)),
            error=JobError.from_json(value.get("error")),
        )


@dataclass(frozen=True)
class DataRightsJob:
    """An export or erasure job."""

    kind: str
    user_id: uuid.UUID
    job_id: uuid.UUID
    state: JobState
    services: Sequence[ServiceProgress]
    create_time: datetime
    start_time: datetime | None
    end_time: datetime | None
    error: JobError | None
    trigger: ErasureTrigger | None = None
    archive_size_bytes: int = 0
    archive_sha256: str = ""
    expire_time: datetime | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``users/{user}/exportJobs/{job}`` or ``users/{user}/erasureJobs/{job}``."""
        collection = "exportJobs" if self.kind == "export" else "erasureJobs"
        return f"users/{self.user_id}/{collection}/{self.job_id}"
