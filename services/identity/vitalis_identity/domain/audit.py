"""Audit log entries: who read or changed which personal data, when and from where."""

from __future__ import annotations

import enum
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime


class AuditAction(enum.Enum):
    """The kind of access an entry records."""

    READ = "read"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    EXPORT = "export"
    ERASE = "erase"
    AUTHENTICATE = "authenticate"
    PERMISSION_CHANGE = "permission_change"


@dataclass(frozen=True)
class AuditEntry:
    """One recorded access."""

    user_id: uuid.UUID
    occur_time: datetime
    actor: str
    action: AuditAction
    service: str
    method: str
    resource: str
    insert_id: str
    share_grant: str = ""
    client_ip: str = ""
    user_agent: str = ""
    request_id: str = ""
    trace_id: str = ""
    status_code: int = 0
    entry_id: str = ""

    @property
    def name(self) -> str:
        """``users/{user}/auditLogEntries/{entry}``."""
        return f"users/{self.user_id}/auditLogEntries/{self.entry_id}"


def new_entry_id(occur_time: datetime) -> str:
    """An id that sorts by time: microseconds since the epoch, then randomness."""
    micros = int(occur_time.timestamp() * 1_000_000) if occur_time else time.time_ns() // 1000
    return f"{micros:016x}{os.urandom(6).hex()}"
