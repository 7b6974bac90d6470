"""The one error model of Vitalis.

Domain and adapter code raise these exceptions; the error interceptor of every service maps them
once, at the edge, to a ``google.rpc.Status`` carrying an ``ErrorInfo`` (reason in UPPER_SNAKE_CASE,
domain ``<service>.vitalis``) and, for validation errors, ``BadRequest`` field violations.

Mapping (AIP-193):

================================  =====================  =============
exception                         gRPC code              HTTP (gateway)
================================  =====================  =============
:class:`InvalidArgument`          INVALID_ARGUMENT       400
:class:`Unauthenticated`          UNAUTHENTICATED        401
:class:`PermissionDenied`         PERMISSION_DENIED      403
:class:`NotFound`                 NOT_FOUND              404
:class:`AlreadyExists`            ALREADY_EXISTS         409
:class:`Aborted`                  ABORTED                409
:class:`FailedPrecondition`       FAILED_PRECONDITION    400
:class:`ResourceExhausted`        RESOURCE_EXHAUSTED     429
:class:`Unavailable`              UNAVAILABLE            503
:class:`DeadlineExceeded`         DEADLINE_EXCEEDED      504
anything else                     INTERNAL               500
================================  =====================  =============
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import grpc


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field of a request: its path (``user.birth_date``) and what is wrong with it."""

    field: str
    description: str


class VitalisError(Exception):
    """Base of every error a client may see.

    ``reason`` is a stable UPPER_SNAKE_CASE identifier clients can branch on; ``message`` is a
    sentence a person can act on; ``metadata`` adds machine-readable detail to the ``ErrorInfo``.
    """

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    default_reason = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidArgument(VitalisError):
    """The request is malformed or a field holds a value that can never be valid."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        *,
        violations: Sequence[FieldViolation] = (),
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.violations = tuple(violations)

    @classmethod
    def for_field(cls, field: str, description: str, *, reason: str | None = None) -> InvalidArgument:
        """An error about a single field, with the field named in the message too."""
        return cls(f"{field}: {description}", violations=[FieldViolation(field, description)], reason=reason)


class Unauthenticated(VitalisError):
    """No valid credentials came with the request."""

    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


class PermissionDenied(VitalisError):
    """The caller is known but may not do this. Never used to hide existence: that is NotFound."""

    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"


class NotFound(VitalisError):
    """The resource does not exist, or exists but the caller may not see it (indistinguishable)."""

    code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class AlreadyExists(VitalisError):
    """A resource with the same identity already exists."""

    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class Aborted(VitalisError):
    """A concurrency conflict: stale etag, serialization failure. Retrying may succeed."""

    code = grpc.StatusCode.ABORTED
    default_reason = "ABORTED"


class FailedPrecondition(VitalisError):
    """The system is not in a state where the request can run (e.g. a job already finished)."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class ResourceExhausted(VitalisError):
    """A quota or size limit was hit."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"


class Unavailable(VitalisError):
    """A dependency (PostgreSQL, Redis, another service) cannot be reached right now."""

    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"


class DeadlineExceeded(VitalisError):
    """The work did not finish within the caller's deadline or a server-side budget."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
    default_reason = "DEADLINE_EXCEEDED"
