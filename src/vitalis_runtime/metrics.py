"""Prometheus metrics: what every server and event pipeline records, and the endpoint that exposes them.

A process serves one service, so its metrics live in one registry — by default prometheus-client's
process-wide ``REGISTRY``, which also carries the process and GC collectors. Tests that count
calls pass a fresh ``CollectorRegistry`` instead.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# Prometheus scrapes the pod's address, so the endpoint listens beyond loopback.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class RpcMetrics:
    """Counters, latency histogram and in-flight gauge of the RPCs a server handles."""

    handled: Counter
    latency: Histogram
    in_flight: Gauge

    def record(self, method: str, code: str, seconds: float) -> None:
        """Count one finished call of ``method`` (a full gRPC path) with its status code and duration."""
        service, name = split_method(method)
        self.handled.labels(service, name, code).inc()
        self.latency.labels(service, name).observe(seconds)


# Registering the same metric names twice in one registry is an error, so each registry gets its
# set exactly once and every server in the process shares it.
@functools.cache
def rpc_metrics(registry: CollectorRegistry = REGISTRY) -> RpcMetrics:
    """The RPC metrics registered in ``registry``."""
    return RpcMetrics(
        handled=Counter(
            "grpc_server_handled",
            "RPCs completed on the server, by method and status code.",
            ("grpc_service", "grpc_method", "grpc_code"),
            registry=registry,
        ),
        latency=Histogram(
            "grpc_server_handling_seconds",
            "Time from the start of an RPC to its status, by method.",
            ("grpc_service", "grpc_method"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        in_flight=Gauge(
            "grpc_server_in_flight",
            "RPCs being served right now, by method.",
            ("grpc_service", "grpc_method"),
            registry=registry,
        ),
    )


@dataclass(frozen=True)
class RelayMetrics:
    """What an outbox relay reports: the backlog it sees and the events it publishes.

    Labels are the outbox's schema and the producer whose streams it feeds: a handful per process.
    Every replica's relay refreshes the backlog, the one publishing and the ones waiting for the
    lock alike, so any pod's value is current (within the relay's ``backlog_interval``).
    """

    unpublished: Gauge
    oldest_unpublished: Gauge
    published: Counter

    def observe_backlog(self, schema: str, producer: str, count: int, oldest_seconds: float) -> None:
        """Record how many events wait in the outbox and how long the oldest has waited."""
        self.unpublished.labels(schema, producer).set(count)
        self.oldest_unpublished.labels(schema, producer).set(oldest_seconds)


@dataclass(frozen=True)
class ConsumerMetrics:
    """What event consumers report, by consumer group (a name fixed in code, never per user or event)."""

    handled: Counter
    handler_failures: Counter
    dead_lettered: Counter
    pending: Gauge
    lag: Gauge


@dataclass(frozen=True)
class EventMetrics:
    """The event pipeline's metrics: the outbox relays' and the consumers'."""

    relay: RelayMetrics
    consumer: ConsumerMetrics


HANDLED_OUTCOMES = ("applied", "superseded", "duplicate", "parked")
"""Values of ``outcome`` on ``vitalis_consumer_events_handled_total``."""


@functools.cache
def event_metrics(registry: CollectorRegistry = REGISTRY) -> EventMetrics:
    """The event pipeline's metrics registered in ``registry``."""
    return EventMetrics(
        relay=RelayMetrics(
            unpublished=Gauge(
                "vitalis_outbox_unpublished_events",
                "Events committed to the outbox and not yet published to Redis.",
                ("schema", "producer"),
                registry=registry,
            ),
            oldest_unpublished=Gauge(
                "vitalis_outbox_oldest_unpublished_seconds",
                "Age of the oldest unpublished outbox event; 0 when the outbox is drained.",
                ("schema", "producer"),
                registry=registry,
            ),
            published=Counter(
                "vitalis_outbox_published_events",
                "Events published from the outbox to Redis (again after a relay died mid-batch).",
                ("schema", "producer"),
                registry=registry,
            ),
        ),
        consumer=ConsumerMetrics(
            handled=Counter(
                "vitalis_consumer_events_handled",
                "Stream entries settled, by group and outcome: applied, superseded (recorded; a later "
                "event of the same user made handling it redundant), duplicate (already in the inbox), "
                "parked (dead-lettered).",
                ("consumer_group", "outcome"),
                registry=registry,
            ),
            handler_failures=Counter(
                "vitalis_consumer_handler_failures",
                "Handler runs that raised; the entry stays pending and is retried, or parked at the last.",
                ("consumer_group",),
                registry=registry,
            ),
            dead_lettered=Counter(
                "vitalis_consumer_dead_lettered_events",
                "Entries parked on a dead-letter stream: failed too often, or not an event at all.",
                ("consumer_group",),
                registry=registry,
            ),
            pending=Gauge(
                "vitalis_consumer_pending_entries",
                "Entries delivered to the group and not yet acknowledged, over all its shards.",
                ("consumer_group",),
                registry=registry,
            ),
            lag=Gauge(
                "vitalis_consumer_lag_seconds",
                "Age of the oldest entry not yet delivered to the group, over its shards; 0 when caught up.",
                ("consumer_group",),
                registry=registry,
            ),
        ),
    )


def split_method(method: str) -> tuple[str, str]:
    """``/pkg.Service/Method`` → (``pkg.Service``, ``Method``)."""
    service, _, name = method.lstrip("/").partition("/")
    return service, name


@dataclass(frozen=True)
class MetricsServer:
    """The HTTP endpoint serving ``/metrics``."""

    port: int
    server: WSGIServer
    thread: threading.Thread

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_metrics_server(
    port: int,
    *,
    host: str = ALL_INTERFACES,
    registry: CollectorRegistry = REGISTRY,
) -> MetricsServer:
    """Serve ``registry`` for Prometheus on ``host:port`` (port 0: a free one) from a daemon thread."""
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(port=server.server_port, server=server, thread=thread)
