"""The Envoy v3 bootstrap of the gateway, rendered as plain data for one target."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vitalis_gateway.envoy_clusters import (
    ADMIN_CLUSTER,
    OTEL_CLUSTER,
    admin_cluster,
    jwks_cluster,
    otel_cluster,
    self_cluster,
    service_cluster,
    unrouted_cluster,
)
from vitalis_gateway.envoy_filters import CLIENT_CONTENT_TYPE_HEADER, http_filters
from vitalis_gateway.envoy_routes import route_configuration
from vitalis_gateway.plan import GatewayPlan, plan_gateway
from vitalis_gateway.source import GatewaySource, RemoteJwks, TargetSource

_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
# google.rpc.Code for the HTTP statuses Envoy itself answers with (AIP-193 mapping, reversed).
_GRPC_CODE_OF_STATUS = {
    400: 3,
    401: 16,
    403: 7,
    404: 5,
    405: 12,
    409: 10,
    413: 8,
    429: 8,
    431: 8,
    499: 1,
    500: 13,
    501: 12,
    502: 14,
    503: 14,
    504: 4,
}
_UNKNOWN = 2
_ACCESS_LOG_FIELDS = {
    "time": "%START_TIME%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "trace_id": "%TRACE_ID%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "grpc_method": "%REQ(:PATH)%",
    "protocol": "%PROTOCOL%",
    "status": "%RESPONSE_CODE%",
    "grpc_status": "%GRPC_STATUS%",
    "response_flags": "%RESPONSE_FLAGS%",
    "details": "%RESPONSE_CODE_DETAILS%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "duration_ms": "%DURATION%",
    "upstream": "%UPSTREAM_HOST%",
    "route": "%ROUTE_NAME%",
    "client": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
    "user_agent": "%REQ(USER-AGENT)%",
}


def render_envoy_config(
    source: GatewaySource,
    *,
    target: str,
    listen_port: int | None = None,
    admin_port: int | None = None,
    service_addresses: Mapping[str, tuple[str, int]] | None = None,
    descriptor_path: Path,
    openapi_path: Path,
    docs_path: Path,
) -> dict[str, Any]:
    """The Envoy bootstrap for ``target`` ("local" or "kubernetes") as a dict ready for YAML.

    ``listen_port``/``admin_port`` override the source's ports (tests use free ones);
    ``service_addresses`` maps a service name to the (host, port) it listens on, overriding the
    target's default (``127.0.0.1:<port>`` locally, ``<service>:<port>`` on Kubernetes). The three
    paths are where Envoy will read the descriptor set, the OpenAPI document and the docs page.
    """
    settings = source.target(target)
    plan = plan_gateway(source)
    port = listen_port or source.listener.port
    admin = admin_port or source.admin.port
    clusters = _clusters(source, settings, port, service_addresses or {})
    if settings.tracing is not None:
        clusters.append(otel_cluster(settings.tracing.collector_host, settings.tracing.collector_port))
    listeners = [
        _main_listener(
            source,
            settings=settings,
            plan=plan,
            port=port,
            descriptor_path=descriptor_path,
            openapi_path=openapi_path,
            docs_path=docs_path,
        )
    ]
    if settings.metrics_port is not None:
        listeners.append(_metrics_listener(settings.listen_address, settings.metrics_port))
        clusters.append(admin_cluster(source.admin.address, admin))
    return {
        "node": {"id": f"vitalis-gateway-{target}", "cluster": "vitalis-gateway"},
        "admin": {"address": {"socket_address": {"address": source.admin.address, "port_value": admin}}},
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.resource_monitors."
                        "downstream_connections.v3.DownstreamConnectionsConfig",
                        "max_active_downstream_connections": 50000,
                    },
                }
            ]
        },
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }


def _clusters(
    source: GatewaySource,
    settings: TargetSource,
    listen_port: int,
    overrides: Mapping[str, tuple[str, int]],
) -> list[dict[str, Any]]:
    unknown = sorted(set(overrides) - set(source.services))
    if unknown:
        raise ValueError(f"addresses given for unknown services {unknown}")
    clusters = []
    for name, service in source.services.items():
        host, port = overrides.get(name, (settings.service_host_template.format(service=name), service.port))
        clusters.append(service_cluster(name, host, port))
    clusters.append(self_cluster(listen_port))
    clusters.append(unrouted_cluster())
    for provider in source.authentication.providers:
        if isinstance(provider.jwks, RemoteJwks):
            clusters.append(jwks_cluster(provider, provider.jwks))
    return clusters


def _main_listener(
    source: GatewaySource,
    *,
    settings: TargetSource,
    plan: GatewayPlan,
    port: int,
    descriptor_path: Path,
    openapi_path: Path,
    docs_path: Path,
) -> dict[str, Any]:
    readiness = list(source.services) if settings.readyz_requires_backends else []
    manager: dict[str, Any] = {
        "@type": _HCM,
        "stat_prefix": "gateway",
        "codec_type": "AUTO",
        "use_remote_address": True,
        "xff_num_trusted_hops": source.listener.xff_num_trusted_hops,
        "normalize_path": True,
        "merge_slashes": True,
        "path_with_escaped_slashes_action": "REJECT_REQUEST",
        "server_header_transformation": "PASS_THROUGH",
        "generate_request_id": True,
        "preserve_external_request_id": False,
        "always_set_request_id_in_response": True,
        "stream_idle_timeout": source.limits.stream_idle_timeout,
        "request_headers_timeout": "10s",
        "common_http_protocol_options": {
            "idle_timeout": "300s",
            "headers_with_underscores_action": "REJECT_REQUEST",
        },
        "http2_protocol_options": {"max_concurrent_streams": 256, "initial_stream_window_size": 1048576},
        "access_log": [_stdout_json_log()],
        "local_reply_config": {"mappers": _local_reply_mappers()},
        "http_filters": http_filters(
            source,
            plan,
            listen_port=port,
            descriptor_path=str(descriptor_path),
            readiness_clusters=readiness,
        ),
        "route_config": route_configuration(
            source,
            plan,
            openapi_path=str(openapi_path),
            docs_path=str(docs_path),
            cors_origins=(*source.cors.allowed_origins, *settings.cors_allowed_origins),
        ),
    }
    if settings.tracing is not None:
        manager["tracing"] = {
            "random_sampling": {"value": settings.tracing.sampling_percent},
            "provider": {
                "name": "envoy.tracers.opentelemetry",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
                    "grpc_service": {"envoy_grpc": {"cluster_name": OTEL_CLUSTER}, "timeout": "1s"},
                    "service_name": settings.tracing.service_name,
                },
            },
        }
    return {
        "name": "vitalis_gateway",
        "address": {"socket_address": {"address": settings.listen_address, "port_value": port}},
        "per_connection_buffer_limit_bytes": 1048576,
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}
        ],
    }


def _metrics_listener(address: str, port: int) -> dict[str, Any]:
    """Exposes only ``/stats/prometheus`` of the admin interface, so Prometheus can scrape Envoy."""
    routes = [{"match": {"path": "/stats/prometheus"}, "route": {"cluster": ADMIN_CLUSTER}}]
    router = {"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER}}
    manager = {
        "@type": _HCM,
        "stat_prefix": "metrics",
        "route_config": {"virtual_hosts": [{"name": "metrics", "domains": ["*"], "routes": routes}]},
        "http_filters": [router],
    }
    return {
        "name": "envoy_metrics",
        "address": {"socket_address": {"address": address, "port_value": port}},
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}
        ],
    }


def _stdout_json_log() -> dict[str, Any]:
    return {
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": {"json_format": _ACCESS_LOG_FIELDS},
        },
    }


def _local_reply_mappers() -> list[dict[str, Any]]:
    """Envoy's own error replies as ``google.rpc.Status`` JSON, so REST clients always get JSON.

    gRPC callers are left alone (Envoy already answers them with ``grpc-status``), and so are
    successful direct responses (the docs page and the OpenAPI document).
    """
    mappers = [_mapper({"op": "EQ", "status": status}, code) for status, code in _GRPC_CODE_OF_STATUS.items()]
    mappers.append(_mapper({"op": "GE", "status": 400}, _UNKNOWN))
    return mappers


def _mapper(comparison: dict[str, Any], grpc_code: int) -> dict[str, Any]:
    status = comparison["status"]
    return {
        "filter": {
            "and_filter": {
                "filters": [
                    {
                        "status_code_filter": {
                            "comparison": {
                                "op": comparison["op"],
                                "value": {"default_value": status, "runtime_key": f"local_reply_{status}"},
                            }
                        }
                    },
                    {
                        "header_filter": {
                            "header": {
                                "name": CLIENT_CONTENT_TYPE_HEADER,
                                "string_match": {"prefix": "application/grpc"},
                                "invert_match": True,
                                "treat_missing_header_as_empty": True,
                            }
                        }
                    },
                ]
            }
        },
        "body_format_override": {
            "json_format": {"code": grpc_code, "message": "%LOCAL_REPLY_BODY%"},
            "content_type": "application/json",
        },
    }
