"""The route table: one exact gRPC path per public RPC, the gateway's pages, and 404 for the rest.

Routes match the gRPC path because the transcoder rewrites every REST call to it first. Only
RPCs with an HTTP binding get a route; internal services and internal methods answer 404 even to
a caller who knows their gRPC path.
"""

from __future__ import annotations

from typing import Any

from vitalis_gateway.envoy_clusters import UNROUTED_CLUSTER
from vitalis_gateway.envoy_filters import CORS, TRANSCODER
from vitalis_gateway.plan import DOCS_PATH, HEALTHZ_PATH, OPENAPI_PATH, GatewayPlan, RoutedMethod
from vitalis_gateway.source import GatewaySource

_IDEMPOTENT_RETRY_ON = "reset,connect-failure,unavailable"
_NOT_TRANSCODED = {
    TRANSCODER: {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": True}
}


def route_configuration(
    source: GatewaySource,
    plan: GatewayPlan,
    *,
    openapi_path: str,
    docs_path: str,
    cors_origins: tuple[str, ...],
) -> dict[str, Any]:
    """The listener's whole route configuration."""
    routes = [
        _page(HEALTHZ_PATH, {"inline_string": '{"status":"SERVING"}'}, "application/json"),
        _page(OPENAPI_PATH, {"filename": openapi_path}, "application/json"),
        _page(DOCS_PATH, {"filename": docs_path}, "text/html; charset=utf-8"),
        *(_method_route(routed, source) for routed in plan.routed),
        *(_not_found(f"/{s.full_name}/", prefix=True) for s in plan.internal_services),
        *(_not_found(m.grpc_path, prefix=False) for m in plan.internal_methods),
        {
            "name": "grpc_not_found",
            "match": {
                "prefix": "/",
                "headers": [{"name": "content-type", "string_match": {"prefix": "application/grpc"}}],
            },
            "direct_response": {"status": 404, "body": {"inline_string": "No route matches this path."}},
        },
        # Every REST call is matched here first (before the transcoder rewrites its path), and the
        # CORS filter only applies policies on a route with a route action. The transcoder answers
        # 404 to any REST call it cannot map, so nothing is ever forwarded to this cluster.
        {"name": "rest_before_transcoding", "match": {"prefix": "/"}, "route": {"cluster": UNROUTED_CLUSTER}},
    ]
    virtual_host: dict[str, Any] = {"name": "vitalis", "domains": ["*"], "routes": routes}
    if cors_origins:
        virtual_host["typed_per_filter_config"] = {CORS: _cors_policy(cors_origins, source)}
    return {
        "name": "vitalis",
        "max_direct_response_body_size_bytes": source.limits.max_direct_response_bytes,
        "virtual_hosts": [virtual_host],
    }


def _page(path: str, body: dict[str, str], content_type: str) -> dict[str, Any]:
    return {
        "name": path.lstrip("/"),
        "match": {"path": path, "headers": [{"name": ":method", "string_match": {"exact": "GET"}}]},
        "direct_response": {"status": 200, "body": body},
        "response_headers_to_add": [
            {
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                "header": {"key": "content-type", "value": content_type},
            },
            {
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                "header": {"key": "cache-control", "value": "no-cache"},
            },
        ],
        "typed_per_filter_config": _NOT_TRANSCODED,
    }


def _method_route(routed: RoutedMethod, source: GatewaySource) -> dict[str, Any]:
    method = routed.method
    action: dict[str, Any] = {"cluster": routed.cluster, "timeout": routed.timeout}
    if method.is_streaming:
        action["idle_timeout"] = source.limits.streaming_route_idle_timeout
    elif all(binding.verb == "get" for binding in method.bindings):
        action["retry_policy"] = {
            "retry_on": _IDEMPOTENT_RETRY_ON,
            "num_retries": 2,
            "retry_back_off": {"base_interval": "0.05s", "max_interval": "0.5s"},
        }
    return {"name": method.full_name, "match": {"path": method.grpc_path}, "route": action}


def _not_found(path: str, *, prefix: bool) -> dict[str, Any]:
    return {
        "name": f"internal:{path.strip('/')}",
        "match": {"prefix": path} if prefix else {"path": path},
        "direct_response": {
            "status": 404,
            "body": {"inline_string": "This RPC is not served through the gateway."},
        },
    }


def _cors_policy(origins: tuple[str, ...], source: GatewaySource) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
        "allow_origin_string_match": [{"exact": origin} for origin in origins],
        "allow_methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
        "allow_headers": "authorization, content-type, x-request-id, traceparent, tracestate",
        "expose_headers": "x-request-id, grpc-status, grpc-message",
        "max_age": str(source.cors.max_age_seconds),
        "allow_credentials": True,
    }
