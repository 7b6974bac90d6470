"""Envoy clusters: one per backend service, the gateway itself (for JWKS), external JWKS hosts, OTel."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from vitalis_gateway.source import ProviderSource, RemoteJwks

SELF_CLUSTER = "vitalis_gateway_self"
ADMIN_CLUSTER = "envoy_admin"
OTEL_CLUSTER = "opentelemetry_collector"
UNROUTED_CLUSTER = "vitalis_unrouted"
_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def service_cluster(name: str, host: str, port: int) -> dict[str, Any]:
    """A gRPC backend: HTTP/2, gRPC health checks, circuit breakers and outlier detection."""
    return {
        **_endpoint_cluster(name, host, port),
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "typed_extension_protocol_options": _http2_options(),
        "health_checks": [
            {
                "timeout": "1s",
                "interval": "5s",
                "no_traffic_interval": "5s",
                "unhealthy_threshold": 2,
                "healthy_threshold": 1,
                "grpc_health_check": {},
            }
        ],
        "circuit_breakers": {
            "thresholds": [
                {
                    "priority": "DEFAULT",
                    "max_connections": 1024,
                    "max_pending_requests": 1024,
                    "max_requests": 2048,
                    "max_retries": 8,
                }
            ]
        },
        "outlier_detection": {
            "consecutive_5xx": 5,
            "consecutive_gateway_failure": 3,
            "interval": "5s",
            "base_ejection_time": "15s",
            "max_ejection_percent": 50,
        },
    }


def self_cluster(port: int) -> dict[str, Any]:
    """The gateway's own listener, so ``remote_jwks`` can fetch the keys identity serves through it."""
    return {**_endpoint_cluster(SELF_CLUSTER, "127.0.0.1", port), "connect_timeout": "1s"}


def unrouted_cluster() -> dict[str, Any]:
    """A cluster without endpoints: the target of routes that must exist but never forward."""
    return {
        "name": UNROUTED_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": UNROUTED_CLUSTER, "endpoints": []},
    }


def admin_cluster(address: str, port: int) -> dict[str, Any]:
    """Envoy's admin interface, reached only by the metrics listener."""
    return {**_endpoint_cluster(ADMIN_CLUSTER, address, port), "connect_timeout": "1s"}


def otel_cluster(host: str, port: int) -> dict[str, Any]:
    """The OpenTelemetry collector's OTLP/gRPC endpoint."""
    return {
        **_endpoint_cluster(OTEL_CLUSTER, host, port),
        "connect_timeout": "1s",
        "typed_extension_protocol_options": _http2_options(),
    }


def jwks_cluster_name(provider: ProviderSource) -> str:
    """The cluster that fetches an external provider's JWKS."""
    return f"jwks_{provider.name}"


def jwks_cluster(provider: ProviderSource, jwks: RemoteJwks) -> dict[str, Any]:
    """An HTTPS cluster to an external identity provider, verifying its certificate and name."""
    parts = urlsplit(jwks.uri)
    host = parts.hostname or ""
    return {
        **_endpoint_cluster(jwks_cluster_name(provider), host, parts.port or 443),
        "connect_timeout": "2s",
        "transport_socket": {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": host,
                "common_tls_context": {
                    "validation_context": {
                        "trusted_ca": {"filename": "/etc/ssl/certs/ca-certificates.crt"},
                        "match_typed_subject_alt_names": [
                            {"san_type": "DNS", "matcher": {"exact": host}},
                        ],
                    }
                },
            },
        },
    }


def _endpoint_cluster(name: str, host: str, port: int) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC" if _is_ip(host) else "STRICT_DNS",
        **({} if _is_ip(host) else {"dns_lookup_family": "V4_PREFERRED"}),
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
                    ]
                }
            ],
        },
    }


def _http2_options() -> dict[str, Any]:
    return {
        _HTTP_OPTIONS: {
            "@type": f"type.googleapis.com/{_HTTP_OPTIONS}",
            "explicit_http_config": {
                "http2_protocol_options": {"connection_keepalive": {"interval": "30s", "timeout": "5s"}}
            },
        }
    }


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
