"""Channels to Vitalis services, configured the same way for every internal caller."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import grpc.aio

from vitalis_client.interceptors import DEFAULT_UNARY_TIMEOUT_SECONDS, PropagatingClientInterceptor
from vitalis_runtime.telemetry import client_tracing_interceptors

DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
MAX_ATTEMPTS = 4

DEFAULT_SERVICE_CONFIG: Mapping[str, Any] = {
    # Spread calls over every address the name resolves to (a headless Service's pods).
    "loadBalancingConfig": [{"round_robin": {}}],
    # Retries pause while failures outweigh successes, so that during an outage they do not
    # multiply the load on a service that is already struggling.
    "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
    "methodConfig": [
        {
            # An empty name applies the policy to every method of every service.
            "name": [{}],
            "retryPolicy": {
                "maxAttempts": MAX_ATTEMPTS,
                "initialBackoff": "0.1s",
                "maxBackoff": "2s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ],
}


def create_channel(
    target: str,
    *,
    service_config: Mapping[str, Any] = DEFAULT_SERVICE_CONFIG,
    credentials: grpc.ChannelCredentials | None = None,
    default_timeout_seconds: float | None = DEFAULT_UNARY_TIMEOUT_SECONDS,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
    tracing: bool = True,
) -> grpc.aio.Channel:
    """A channel to ``target`` (``host:port`` or ``dns:///name:port``) for typed stubs from gen/python.

    Calls that fail with UNAVAILABLE are retried with exponential backoff (up to 4 attempts,
    within the call's deadline); unary calls get a ``default_timeout_seconds`` deadline unless they
    set one; the current request's bearer token, request id and trace context go along. Keepalive
    pings detect dead connections. ``interceptors`` run after the shared ones.
    """
    chain: list[grpc.aio.ClientInterceptor] = [
        PropagatingClientInterceptor(default_timeout_seconds=default_timeout_seconds)
    ]
    if tracing:
        chain.extend(client_tracing_interceptors())
    chain.extend(interceptors)
    options: list[tuple[str, str | int]] = [
        ("grpc.service_config", json.dumps(service_config)),
        ("grpc.enable_retries", 1),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options, interceptors=chain)
    return grpc.aio.secure_channel(target, credentials, options=options, interceptors=chain)
