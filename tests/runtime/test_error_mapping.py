"""Every exception a handler raises leaves the server as a mapped google.rpc.Status, never UNKNOWN."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import grpc
import grpc.aio
import pytest
import redis.asyncio
from google.protobuf import wrappers_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from vitalis_runtime import errors
from vitalis_runtime.testing_grpc import RunningServer, generic_service, running_server

S = wrappers_pb2.StringValue
SERVICE = "vitalis.test.v1.ProbeService"
SECRET = "db password is hunter2"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def raise_given(request: S, context: Any) -> S:
    raise ERRORS[request.value]()


def not_found() -> Exception:
    return errors.NotFound("users/42 does not exist", metadata={"resource": "users/42"})


def invalid() -> Exception:
    return errors.InvalidArgument(
        "the request has 2 invalid fields",
        violations=[
            errors.FieldViolation("user.birth_date", "must be in the past"),
            errors.FieldViolation("page_size", "must not be negative"),
        ],
        reason="INVALID_USER",
    )


ERRORS: dict[str, Callable[[], Exception]] = {
    "not_found": not_found,
    "invalid": invalid,
    "already_exists": lambda: errors.AlreadyExists("exists", reason="USER_EXISTS"),
    "aborted": lambda: errors.Aborted("stale etag", reason="ETAG_MISMATCH"),
    "failed_precondition": lambda: errors.FailedPrecondition("finished"),
    "permission_denied": lambda: errors.PermissionDenied("no"),
    "resource_exhausted": lambda: errors.ResourceExhausted("too big"),
    "unavailable": lambda: errors.Unavailable("later"),
    "deadline": lambda: errors.DeadlineExceeded("slow"),
    "unauthenticated": lambda: errors.Unauthenticated("who?"),
    "bug": lambda: RuntimeError(SECRET),
    "key_error": lambda: KeyError(SECRET),
}


async def database_unreachable(request: S, context: Any) -> S:
    await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{closed_port()}/postgres", timeout=5)
    return S()


async def redis_unreachable(request: S, context: Any) -> S:
    client = redis.asyncio.Redis(port=closed_port(), socket_connect_timeout=2, retry=Retry(NoBackoff(), 0))
    try:
        await client.ping()
    finally:
        await client.aclose()
    return S()


async def times_out(request: S, context: Any) -> S:
    async with asyncio.timeout(0.01):
        await asyncio.sleep(5)
    return S()


async def aborts_itself(request: S, context: Any) -> S:
    await context.abort(grpc.StatusCode.NOT_FOUND, "handled by the handler")
    return S()


async def fails_midstream(request: S, context: Any) -> AsyncIterator[S]:
    yield S(value="first")
    yield S(value="second")
    raise ERRORS[request.value]()


async def writes_then_fails(request: S, context: Any) -> None:
    await context.write(S(value="written"))
    raise ERRORS[request.value]()


async def consumes_then_fails(requests: AsyncIterator[S], context: Any) -> S:
    seen = [request.value async for request in requests]
    raise ERRORS[seen[-1]]()


async def echoes_then_fails(requests: AsyncIterator[S], context: Any) -> AsyncIterator[S]:
    async for request in requests:
        if request.value in ERRORS:
            raise ERRORS[request.value]()
        yield request


async def serialization_failure(database_url: str) -> None:
    first, second = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        await first.execute("CREATE TABLE doctors (name text PRIMARY KEY, on_call boolean NOT NULL)")
        await first.execute("INSERT INTO doctors VALUES ('alice', true), ('bob', true)")
        async with first.transaction(isolation="serializable"), second.transaction(isolation="serializable"):
            await first.fetchval("SELECT count(*) FROM doctors WHERE on_call")
            await second.fetchval("SELECT count(*) FROM doctors WHERE on_call")
            await first.execute("UPDATE doctors SET on_call = false WHERE name = 'alice'")
            await second.execute("UPDATE doctors SET on_call = false WHERE name = 'bob'")
    finally:
        await first.close()
        await second.close()


async def conflicts(request: S, context: Any) -> S:
    await serialization_failure(database_url=request.value)
    return S()


async def statement_timeout(request: S, context: Any) -> S:
    connection = await asyncpg.connect(request.value)
    try:
        await connection.execute("SET statement_timeout = 20")
        await connection.execute("SELECT pg_sleep(5)")
    finally:
        await connection.close()
    return S()


@pytest.fixture
async def probe() -> AsyncIterator[RunningServer]:
    unary = {
        name: grpc.unary_unary_rpc_method_handler(behavior, S.FromString, S.SerializeToString)
        for name, behavior in {
            "Raise": raise_given,
            "DatabaseUnreachable": database_unreachable,
            "RedisUnreachable": redis_unreachable,
            "TimesOut": times_out,
            "AbortsItself": aborts_itself,
            "Conflicts": conflicts,
            "StatementTimeout": statement_timeout,
        }.items()
    }
    handlers = {
        **unary,
        "FailsMidstream": grpc.unary_stream_rpc_method_handler(
            fails_midstream, S.FromString, S.SerializeToString
        ),
        "WritesThenFails": grpc.unary_stream_rpc_method_handler(
            writes_then_fails, S.FromString, S.SerializeToString
        ),
        "ConsumesThenFails": grpc.stream_unary_rpc_method_handler(
            consumes_then_fails, S.FromString, S.SerializeToString
        ),
        "EchoesThenFails": grpc.stream_stream_rpc_method_handler(
            echoes_then_fails, S.FromString, S.SerializeToString
        ),
    }
    async with running_server(
        service_name="probe",
        register=generic_service(SERVICE, handlers),
        service_names=[SERVICE],
        verifier=None,
        public_methods=[f"/{SERVICE}/{name}" for name in handlers],
    ) as running:
        yield running


@pytest.fixture
async def channel(probe: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(probe.target) as channel:
        yield channel


def unary_call(channel: grpc.aio.Channel, method: str) -> grpc.aio.UnaryUnaryMultiCallable[S, S]:
    return channel.unary_unary(f"/{SERVICE}/{method}", S.SerializeToString, S.FromString)


async def failure_of(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


async def stream_failure(call: Any) -> tuple[list[str], grpc.aio.AioRpcError]:
    received: list[str] = []
    try:
        async for message in call:
            received.append(message.value)
    except grpc.aio.AioRpcError as error:
        return received, error
    raise AssertionError(f"the stream ended without an error after {received}")


def details_of(error: grpc.aio.AioRpcError) -> tuple[status_pb2.Status, dict[str, Any]]:
    status = rpc_status.from_call(error)
    assert status is not None, "the status carries no details"
    found: dict[str, Any] = {}
    for packed in status.details:
        for kind in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.BadRequest,
            error_details_pb2.RequestInfo,
        ):
            if packed.Is(kind.DESCRIPTOR):
                message = kind()
                packed.Unpack(message)
                found[kind.DESCRIPTOR.name] = message
    return status, found


@pytest.mark.parametrize(
    ("error", "code", "reason"),
    [
        ("not_found", grpc.StatusCode.NOT_FOUND, "NOT_FOUND"),
        ("invalid", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_USER"),
        ("already_exists", grpc.StatusCode.ALREADY_EXISTS, "USER_EXISTS"),
        ("aborted", grpc.StatusCode.ABORTED, "ETAG_MISMATCH"),
        ("failed_precondition", grpc.StatusCode.FAILED_PRECONDITION, "FAILED_PRECONDITION"),
        ("permission_denied", grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED"),
        ("resource_exhausted", grpc.StatusCode.RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED"),
        ("unavailable", grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE"),
        ("deadline", grpc.StatusCode.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"),
        ("unauthenticated", grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
    ],
)
async def test_each_vitalis_error_maps_to_its_code_with_error_info(
    channel: grpc.aio.Channel, error: str, code: grpc.StatusCode, reason: str
) -> None:
    failure = await failure_of(unary_call(channel, "Raise")(S(value=error), timeout=5))

    status, details = details_of(failure)
    assert failure.code() == code
    assert status.code == code.value[0]
    assert details["ErrorInfo"].reason == reason
    assert details["ErrorInfo"].domain == "probe.vitalis"


async def test_error_info_carries_the_errors_metadata(channel: grpc.aio.Channel) -> None:
    failure = await failure_of(unary_call(channel, "Raise")(S(value="not_found"), timeout=5))

    _, details = details_of(failure)
    assert failure.details() == "users/42 does not exist"
    assert dict(details["ErrorInfo"].metadata) == {"resource": "users/42"}


async def test_invalid_arguments_list_their_field_violations(channel: grpc.aio.Channel) -> None:
    failure = await failure_of(unary_call(channel, "Raise")(S(value="invalid"), timeout=5))

    _, details = details_of(failure)
    violations = [(v.field, v.description) for v in details["BadRequest"].field_violations]
    assert violations == [("user.birth_date", "must be in the past"), ("page_size", "must not be negative")]


@pytest.mark.parametrize("bug", ["bug", "key_error"])
async def test_an_unexpected_exception_is_internal_and_reveals_nothing(
    channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture, bug: str
) -> None:
    call = unary_call(channel, "Raise")(S(value=bug), timeout=5, metadata=(("x-request-id", "req-bug-1"),))
    with caplog.at_level(logging.ERROR, logger="vitalis.errors"):
        failure = await failure_of(call)

    status, details = details_of(failure)
    assert failure.code() == grpc.StatusCode.INTERNAL
    assert failure.details() == "internal error (request id req-bug-1)"
    assert details["ErrorInfo"].reason == "INTERNAL"
    assert details["RequestInfo"].request_id == "req-bug-1"
    everything_sent = repr(failure.trailing_metadata()) + repr(failure.initial_metadata()) + str(status)
    assert SECRET not in everything_sent
    assert "Traceback" not in everything_sent
    logged = [r for r in caplog.records if r.name == "vitalis.errors" and r.exc_info]
    assert logged, "the traceback must be logged"
    assert SECRET in str(logged[-1].exc_info[1])  # type: ignore[index]


async def test_an_unreachable_database_is_unavailable(channel: grpc.aio.Channel) -> None:
    failure = await failure_of(unary_call(channel, "DatabaseUnreachable")(S(), timeout=10))

    _, details = details_of(failure)
    assert failure.code() == grpc.StatusCode.UNAVAILABLE
    assert details["ErrorInfo"].reason == "DEPENDENCY_UNAVAILABLE"


async def test_an_unreachable_redis_is_unavailable(channel: grpc.aio.Channel) -> None:
    failure = await failure_of(unary_call(channel, "RedisUnreachable")(S(), timeout=10))

    _, details = details_of(failure)
    assert failure.code() == grpc.StatusCode.UNAVAILABLE
    assert details["ErrorInfo"].reason == "REDIS_UNAVAILABLE"


async def test_a_serialization_failure_is_aborted(channel: grpc.aio.Channel, admin_database_url: str) -> None:
    failure = await failure_of(unary_call(channel, "Conflicts")(S(value=admin_database_url), timeout=10))

    _, details = details_of(failure)
    assert failure.code() == grpc.StatusCode.ABORTED
    assert details["ErrorInfo"].reason == "CONFLICT"


async def test_a_timeout_is_deadline_exceeded(channel: grpc.aio.Channel) -> None:
    failure = await failure_of(unary_call(channel, "TimesOut")(S(), timeout=10))

    _, details = details_of(failure)
    assert failure.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert details["ErrorInfo"].reason == "TIMEOUT"


async def test_a_statement_timeout_is_deadline_exceeded(
    channel: grpc.aio.Channel, admin_database_url: str
) -> None:
    failure = await failure_of(
        unary_call(channel, "StatementTimeout")(S(value=admin_database_url), timeout=10)
    )

    _, details = details_of(failure)
    assert failure.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert details["ErrorInfo"].reason == "TIMEOUT"


async def test_a_handlers_own_abort_passes_through_unchanged(channel: grpc.aio.Channel) -> None:
    failure = await failure_of(unary_call(channel, "AbortsItself")(S(), timeout=5))

    assert failure.code() == grpc.StatusCode.NOT_FOUND
    assert failure.details() == "handled by the handler"


async def test_an_unknown_method_is_unimplemented_not_unknown(channel: grpc.aio.Channel) -> None:
    failure = await failure_of(unary_call(channel, "NoSuchMethod")(S(), timeout=5))

    assert failure.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_a_server_stream_failing_midway_delivers_its_messages_then_the_mapped_status(
    channel: grpc.aio.Channel,
) -> None:
    call = channel.unary_stream(f"/{SERVICE}/FailsMidstream", S.SerializeToString, S.FromString)(
        S(value="not_found"), timeout=5
    )
    received, failure = await stream_failure(call)

    assert received == ["first", "second"]
    _, details = details_of(failure)
    assert failure.code() == grpc.StatusCode.NOT_FOUND
    assert details["ErrorInfo"].domain == "probe.vitalis"


async def test_a_server_stream_with_a_bug_is_internal(channel: grpc.aio.Channel) -> None:
    call = channel.unary_stream(f"/{SERVICE}/FailsMidstream", S.SerializeToString, S.FromString)(
        S(value="bug"), timeout=5
    )
    _, failure = await stream_failure(call)

    assert failure.code() == grpc.StatusCode.INTERNAL
    assert SECRET not in (failure.details() or "")


async def test_a_handler_writing_with_the_context_is_mapped_too(channel: grpc.aio.Channel) -> None:
    call = channel.unary_stream(f"/{SERVICE}/WritesThenFails", S.SerializeToString, S.FromString)(
        S(value="aborted"), timeout=5
    )
    received, failure = await stream_failure(call)

    assert received == ["written"]
    assert failure.code() == grpc.StatusCode.ABORTED


async def test_a_client_stream_failure_is_mapped(channel: grpc.aio.Channel) -> None:
    async def requests() -> AsyncIterator[S]:
        for value in ("a", "b", "invalid"):
            yield S(value=value)

    call = channel.stream_unary(f"/{SERVICE}/ConsumesThenFails", S.SerializeToString, S.FromString)(
        requests(), timeout=5
    )
    failure = await failure_of(call)

    _, details = details_of(failure)
    assert failure.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(details["BadRequest"].field_violations) == 2


async def test_a_bidirectional_stream_failure_is_mapped(channel: grpc.aio.Channel) -> None:
    async def requests() -> AsyncIterator[S]:
        for value in ("a", "b", "bug"):
            yield S(value=value)

    call = channel.stream_stream(f"/{SERVICE}/EchoesThenFails", S.SerializeToString, S.FromString)(
        requests(), timeout=5
    )
    received, failure = await stream_failure(call)

    assert received == ["a", "b"]
    assert failure.code() == grpc.StatusCode.INTERNAL
