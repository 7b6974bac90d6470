"""What a load generator's workload is: a factory returning the call to repeat and how to close."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Call = Callable[[int], Awaitable[float]]
"""Performs call number ``n`` and returns the units of work it did."""
Close = Callable[[], Awaitable[Any]]
"""Releases the workload's connections; may return ``{"cpu": {label: seconds}, "quality": float}``:
CPU it measured in processes that are gone by now, and a quality score of the work (recall)."""
Workload = Callable[[dict[str, Any]], Awaitable[tuple[Call, Close]]]
"""Builds a workload from the load generator's spec."""


def grpc_metadata(spec: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The spec's ``metadata`` pairs as gRPC call metadata."""
    return tuple((key, value) for key, value in spec.get("metadata", []))
