"""Import jobs: their lifecycle and counts."""

from __future__ import annotations

import enum
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vitalis_ingestion.domain.samples import WriteTally


class JobState(enum.IntEnum):
    """Values equal the protobuf ``ImportJobState``."""

    PENDING = 1
    RUNNING = 2
    SUCCEEDED = 3
    FAILED = 4
    CANCELLED = 5

    @property
    def terminal(self) -> bool:
        """Whether the job can change no more."""
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class JobError:
    """Why a job failed: a stable reason and a sentence a person can act on."""

    reason: str
    message: str


@dataclass
class JobCounts:
    """The job's counts: overall and by kind of record."""

    total: WriteTally = field(default_factory=WriteTally)
    by_type: dict[str, WriteTally] = field(default_factory=dict)

    def for_type(self, record_type: str) -> WriteTally:
        """The tally of one kind of record, created on first use."""
        tally = self.by_type.get(record_type)
        if tally is None:
            tally = self.by_type[record_type] = WriteTally()
        return tally

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"total": self.total.to_json(), "by_type": {k: v.to_json() for k, v in self.by_type.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobCounts:
        """The inverse of :meth:`to_json`."""
        return cls(
            total=WriteTally.from_json(data.get("total", {})),
            by_type={k: WriteTally.from_json(v) for k, v in data.get("by_type", {}).items()},
        )


@dataclass(frozen=True)
class ImportJob:
    """An import of one file."""

    user_id: uuid.UUID
    job_id: uuid.UUID
    format: int
    source_id: str | None
    document: str
    file_name: str
    size_bytes: int
    content_sha256: str
    state: JobState
    cancel_requested: bool
    bytes_read: int
    counts: JobCounts
    error: JobError | None
    version: int
    create_time: datetime
    start_time: datetime | None
    end_time: datetime | None
    update_time: datetime
    data_start_time: datetime | None = None
    data_end_time: datetime | None = None

    @property
    def name(self) -> str:
        """``users/{user}/importJobs/{job}``."""
        return f"users/{self.user_id}/importJobs/{self.job_id}"

    @property
    def etag(self) -> str:
        """Changes whenever the job changes."""
        return hashlib.sha256(f"{self.job_id}:{self.version}".encode()).hexdigest()[:20]

    @property
    def progress_percent(self) -> int:
        """0 to 100 from the bytes read; 100 once succeeded."""
        if self.state is JobState.SUCCEEDED:
            return 100
        if not self.size_bytes:
            return 0
        return min(99, int(100 * self.bytes_read / self.size_bytes))
