"""The client interceptor internal callers share: deadlines and identity/request propagation.

For every call it (1) sets a default deadline on unary calls that have none (streams get none
unless the caller gives one), (2) forwards the bearer token of the principal the current request
is served for, so the callee sees the same user (identity propagation), and (3) forwards the
request id. The trace context is added after it by OpenTelemetry's client interceptors.
Metadata the caller set explicitly is never overwritten.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import Any

import grpc.aio

from vitalis_runtime.auth import optional_principal
from vitalis_runtime.request_context import REQUEST_ID_HEADER, current_request_id

DEFAULT_UNARY_TIMEOUT_SECONDS = 5.0
AUTHORIZATION_HEADER = "authorization"

RequestIterator = AsyncIterable[Any] | Iterable[Any]
Details = grpc.aio.ClientCallDetails


class PropagatingClientInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
):
    """Adds a default deadline, the caller's bearer token and the request id to outgoing calls."""

    def __init__(self, *, default_timeout_seconds: float | None = DEFAULT_UNARY_TIMEOUT_SECONDS) -> None:
        self._default_timeout = default_timeout_seconds

    async def intercept_unary_unary(
        self,
        continuation: Callable[
            [grpc.aio.ClientCallDetails, Any], Awaitable[grpc.aio.UnaryUnaryCall[Any, Any]]
        ],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        """A unary call: deadline defaulted, identity and request id forwarded."""
        return await continuation(self._details(client_call_details, self._default_timeout), request)

    async def intercept_unary_stream(
        self,
        continuation: Callable[
            [grpc.aio.ClientCallDetails, Any], Awaitable[grpc.aio.UnaryStreamCall[Any, Any]]
        ],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        """A server-streaming call: identity and request id forwarded, no default deadline."""
        return await continuation(self._details(client_call_details, None), request)

    async def intercept_stream_unary(
        self,
        continuation: Callable[
            [grpc.aio.ClientCallDetails, RequestIterator], Awaitable[grpc.aio.StreamUnaryCall[Any, Any]]
        ],
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: RequestIterator,
    ) -> Any:
        """A client-streaming call: identity and request id forwarded, no default deadline."""
        return await continuation(self._details(client_call_details, None), request_iterator)

    async def intercept_stream_stream(
        self,
        continuation: Callable[
            [grpc.aio.ClientCallDetails, RequestIterator], Awaitable[grpc.aio.StreamStreamCall[Any, Any]]
        ],
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: RequestIterator,
    ) -> Any:
        """A bidirectional call: identity and request id forwarded, no default deadline."""
        return await continuation(self._details(client_call_details, None), request_iterator)

    @staticmethod
    def _details(
        details: grpc.aio.ClientCallDetails, default_timeout: float | None
    ) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*tuple(details.metadata or ()))
        principal = optional_principal()
        if principal is not None and metadata.get(AUTHORIZATION_HEADER) is None:
            metadata.add(AUTHORIZATION_HEADER, f"Bearer {principal.token}")
        request_id = current_request_id()
        if request_id is not None and metadata.get(REQUEST_ID_HEADER) is None:
            metadata.add(REQUEST_ID_HEADER, request_id)
        return grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=details.timeout if details.timeout is not None else default_timeout,
            metadata=metadata,
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )
