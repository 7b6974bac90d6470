"""The one mapping from exceptions to ``google.rpc.Status`` (DESIGN.md §2).

:func:`classify` turns what a handler raised into a :class:`~vitalis_runtime.errors.VitalisError`
(infrastructure failures included) or None for a bug; :func:`rpc_status` renders a VitalisError as
the status a client receives: the code, the message, an ``ErrorInfo`` (reason, domain, metadata),
``BadRequest`` field violations for invalid arguments and a ``RequestInfo`` with the request id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import grpc
import grpc.aio
import redis.exceptions
from google.protobuf import any_pb2
from google.protobuf.message import Message

# googleapis-common-protos ships .pyi files but no py.typed marker, and grpcio-status no stubs.
from google.rpc import code_pb2, error_details_pb2, status_pb2  # type: ignore[import-untyped, unused-ignore]
from grpc_status import rpc_status as grpc_rpc_status  # type: ignore[import-untyped, unused-ignore]

from vitalis_runtime import errors

_DATABASE_UNREACHABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)
_TRANSLATIONS: tuple[tuple[tuple[type[Exception], ...], Callable[[], errors.VitalisError]], ...] = (
    (
        _DATABASE_UNREACHABLE,
        lambda: errors.Unavailable("the database cannot be reached", reason="DATABASE_UNAVAILABLE"),
    ),
    (
        (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError),
        lambda: errors.Unavailable("Redis cannot be reached", reason="REDIS_UNAVAILABLE"),
    ),
    (
        (ConnectionError,),
        lambda: errors.Unavailable("a dependency cannot be reached", reason="DEPENDENCY_UNAVAILABLE"),
    ),
    (
        (asyncpg.SerializationError, asyncpg.DeadlockDetectedError),
        lambda: errors.Aborted("the change conflicted with a concurrent one; retry it", reason="CONFLICT"),
    ),
    (
        (asyncio.TimeoutError, asyncpg.QueryCanceledError),
        lambda: errors.DeadlineExceeded("the request took too long", reason="TIMEOUT"),
    ),
)


def error_domain(service_name: str) -> str:
    """The ``ErrorInfo.domain`` of a service's errors."""
    return f"{service_name}.vitalis"


def classify(error: Exception) -> errors.VitalisError | None:
    """The client-facing error ``error`` stands for, or None when it is a bug (INTERNAL).

    Unreachable PostgreSQL or Redis → UNAVAILABLE, serialization failures and deadlocks → ABORTED,
    timeouts → DEADLINE_EXCEEDED; a failed downstream gRPC call keeps UNAVAILABLE and
    DEADLINE_EXCEEDED, and anything else it reports is a bug of this service's.
    """
    if isinstance(error, errors.VitalisError):
        return error
    if isinstance(error, grpc.aio.AioRpcError):
        return _classify_downstream(error)
    for kinds, translate in _TRANSLATIONS:
        if isinstance(error, kinds):
            return translate()
    return None


def _classify_downstream(error: grpc.aio.AioRpcError) -> errors.VitalisError | None:
    code = error.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return errors.Unavailable(
            "a service this request depends on is unavailable", reason="UPSTREAM_UNAVAILABLE"
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return errors.DeadlineExceeded(
            "a service this request depends on took too long", reason="UPSTREAM_TIMEOUT"
        )
    return None


def internal_error(request_id: str | None) -> errors.VitalisError:
    """The only thing a client learns about a bug: that it happened, and the id to quote."""
    suffix = f" (request id {request_id})" if request_id else ""
    return errors.VitalisError(f"internal error{suffix}")


def rpc_status(error: errors.VitalisError, *, domain: str, request_id: str | None) -> status_pb2.Status:
    """``error`` as a ``google.rpc.Status`` with its details."""
    status = status_pb2.Status(code=_code_number(error.code), message=error.message)
    details: list[Message] = [
        error_details_pb2.ErrorInfo(reason=error.reason, domain=domain, metadata=error.metadata)
    ]
    if isinstance(error, errors.InvalidArgument) and error.violations:
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in error.violations
                ]
            )
        )
    if request_id:
        details.append(error_details_pb2.RequestInfo(request_id=request_id))
    for detail in details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    return status


def grpc_status(status: status_pb2.Status) -> grpc.Status:
    """The ``grpc.Status`` (code, message, ``grpc-status-details-bin`` trailer) carrying ``status``."""
    converted: grpc.Status = grpc_rpc_status.to_status(status)
    return converted


def _code_number(code: grpc.StatusCode) -> int:
    number = code.value[0]
    assert isinstance(number, int)
    assert number != code_pb2.UNKNOWN, "UNKNOWN must never reach a client"
    return number
