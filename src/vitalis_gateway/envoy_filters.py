"""The HTTP filter chain of the gateway, in the order requests pass through it.

1. ``header_mutation`` removes every identity header a client might send. It runs first: a
   route-level removal would run after ``jwt_authn`` and delete the verified header too. It also
   records the client's content type (see ``CLIENT_CONTENT_TYPE_HEADER``).
2. ``health_check`` answers ``/readyz`` (503 while draining or while a backend has no healthy host).
3. ``cors`` answers preflights and decorates responses for the allowed origins.
4. ``local_ratelimit`` sheds load before any body is buffered or any token is checked.
5. ``grpc_json_transcoder`` turns a REST call into its gRPC call, rewriting ``:path`` to
   ``/<package>.<Service>/<Method>`` and clearing the route cache.
6. ``jwt_authn`` therefore sees the gRPC path of every call, REST or gRPC alike, so one rule set
   (exact gRPC paths of the exempt RPCs, the gateway's own pages, then a catch-all requiring a
   provider) covers both protocols and cannot drift from the REST templates. The price is that a
   REST body is buffered (up to the transcoder's limit) before its token is checked; the rate
   limit above bounds that.
7. ``lua`` refuses a header whose name gRPC cannot carry as metadata (HTTP allows ``^`` or ``~``
   in names, gRPC only lowercase letters, digits, ``-``, ``_`` and ``.``): forwarded, it would fail
   the call inside the service's gRPC library as an opaque INTERNAL. It then copies a browser's
   access-token cookie into ``authorization: Bearer`` when the request has no such header.
   ``jwt_authn`` has already verified the cookie by then; the copy exists because every service
   re-verifies the forwarded token and reads it from that header only.
8. ``router``.
"""

from __future__ import annotations

from typing import Any

from vitalis_gateway.envoy_clusters import SELF_CLUSTER, jwks_cluster_name
from vitalis_gateway.plan import DOCS_PATH, HEALTHZ_PATH, OPENAPI_PATH, READYZ_PATH, GatewayPlan
from vitalis_gateway.source import GatewayJwks, GatewaySource, ProviderSource

HEADER_MUTATION = "envoy.filters.http.header_mutation"
HEALTH_CHECK = "envoy.filters.http.health_check"
CORS = "envoy.filters.http.cors"
LOCAL_RATE_LIMIT = "envoy.filters.http.local_ratelimit"
TRANSCODER = "envoy.filters.http.grpc_json_transcoder"
JWT_AUTHN = "envoy.filters.http.jwt_authn"
LUA = "envoy.filters.http.lua"
ROUTER = "envoy.filters.http.router"
# The content type the client sent, kept because the transcoder rewrites it to application/grpc:
# Envoy's own error replies are JSON for REST clients and plain gRPC statuses for gRPC clients.
CLIENT_CONTENT_TYPE_HEADER = "x-vitalis-client-content-type"
_API = "type.googleapis.com/envoy.extensions.filters.http"


def http_filters(
    source: GatewaySource,
    plan: GatewayPlan,
    *,
    listen_port: int,
    descriptor_path: str,
    readiness_clusters: list[str],
) -> list[dict[str, Any]]:
    """The filter chain, in order (see the module docstring for why this order)."""
    return [
        _header_mutation(source),
        _health_check(readiness_clusters),
        {"name": CORS, "typed_config": {"@type": f"{_API}.cors.v3.Cors"}},
        _local_rate_limit(source),
        _transcoder(source, plan, descriptor_path),
        _jwt_authn(source, plan, listen_port),
        _request_guard(source.authentication.token_cookie),
        {"name": ROUTER, "typed_config": {"@type": f"{_API}.router.v3.Router"}},
    ]


def _header_mutation(source: GatewaySource) -> dict[str, Any]:
    stripped = source.authentication.stripped_headers
    mutations: list[dict[str, Any]] = [
        {"remove_on_match": {"key_matcher": {"prefix": prefix}}} for prefix in stripped.prefixes
    ]
    mutations += [{"remove": name} for name in stripped.names]
    mutations.append(
        {
            "append": {
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                "header": {"key": CLIENT_CONTENT_TYPE_HEADER, "value": "%REQ(content-type)%"},
            }
        }
    )
    return {
        "name": HEADER_MUTATION,
        "typed_config": {
            "@type": f"{_API}.header_mutation.v3.HeaderMutation",
            "mutations": {"request_mutations": mutations},
        },
    }


def _request_guard(cookie: str) -> dict[str, Any]:
    # Cookie names are tokens (RFC 6265); escaping Lua pattern magic keeps any of them literal.
    pattern = "".join(f"%{ch}" if not ch.isalnum() else ch for ch in cookie)
    code = f"""
local REFUSED = '{{"code":3,"message":"header names may hold only lowercase letters, digits, -, _ and .",'
  .. '"details":[{{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"INVALID_HEADER_NAME",'
  .. '"domain":"gateway.vitalis"}}]}}'

function envoy_on_request(handle)
  local headers = handle:headers()
  for name, _ in pairs(headers) do
    if not string.match(name, "^:?[a-z0-9_%.%-]+$") then
      handle:respond({{[":status"] = "400", ["content-type"] = "application/json"}}, REFUSED)
      return
    end
  end
  if headers:get("authorization") ~= nil then return end
  local cookies = headers:get("cookie")
  if cookies == nil then return end
  local token = string.match(";" .. cookies, ";%s*{pattern}=([^;%s]+)")
  if token ~= nil then headers:add("authorization", "Bearer " .. token) end
end
"""
    return {
        "name": LUA,
        "typed_config": {"@type": f"{_API}.lua.v3.Lua", "default_source_code": {"inline_string": code}},
    }


def _health_check(clusters: list[str]) -> dict[str, Any]:
    return {
        "name": HEALTH_CHECK,
        "typed_config": {
            "@type": f"{_API}.health_check.v3.HealthCheck",
            "pass_through_mode": False,
            "headers": [{"name": ":path", "string_match": {"exact": READYZ_PATH}}],
            "cluster_min_healthy_percentages": {name: {"value": 1.0} for name in clusters},
        },
    }


def _local_rate_limit(source: GatewaySource) -> dict[str, Any]:
    bucket = source.limits.rate_limit
    full = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}
    return {
        "name": LOCAL_RATE_LIMIT,
        "typed_config": {
            "@type": f"{_API}.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "gateway_rate_limit",
            "token_bucket": {
                "max_tokens": bucket.max_tokens,
                "tokens_per_fill": bucket.tokens_per_fill,
                "fill_interval": bucket.fill_interval,
            },
            "filter_enabled": {**full, "runtime_key": "gateway_rate_limit_enabled"},
            "filter_enforced": {**full, "runtime_key": "gateway_rate_limit_enforced"},
            "response_headers_to_add": [
                {
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                    "header": {"key": "x-ratelimit-limited", "value": "true"},
                }
            ],
        },
    }


def _transcoder(source: GatewaySource, plan: GatewayPlan, descriptor_path: str) -> dict[str, Any]:
    return {
        "name": TRANSCODER,
        "typed_config": {
            "@type": f"{_API}.grpc_json_transcoder.v3.GrpcJsonTranscoder",
            "proto_descriptor": descriptor_path,
            "services": list(plan.transcoded_services),
            "convert_grpc_status": True,
            "auto_mapping": False,
            "print_options": {
                "add_whitespace": False,
                "always_print_primitive_fields": True,
                "always_print_enums_as_ints": False,
                "preserve_proto_field_names": False,
                "stream_newline_delimited": True,
            },
            "request_validation_options": {
                "reject_unknown_method": True,
                "reject_unknown_query_parameters": True,
            },
            "max_request_body_size": source.limits.max_request_body_bytes,
            "max_response_body_size": source.limits.max_response_body_bytes,
        },
    }


def _jwt_authn(source: GatewaySource, plan: GatewayPlan, listen_port: int) -> dict[str, Any]:
    auth = source.authentication
    providers = {
        p.name: _provider(p, auth.token_cookie, auth.user_id_header, listen_port) for p in auth.providers
    }
    names = [p.name for p in auth.providers]
    requirement: dict[str, Any] = (
        {"provider_name": names[0]}
        if len(names) == 1
        else {"requires_any": {"requirements": [{"provider_name": n} for n in names]}}
    )
    open_paths = [*plan.exempt_grpc_paths, HEALTHZ_PATH, READYZ_PATH, OPENAPI_PATH, DOCS_PATH]
    rules: list[dict[str, Any]] = [{"match": {"path": path}} for path in open_paths]
    rules.append({"match": {"prefix": "/"}, "requires": requirement})
    return {
        "name": JWT_AUTHN,
        "typed_config": {
            "@type": f"{_API}.jwt_authn.v3.JwtAuthentication",
            "providers": providers,
            "rules": rules,
            "bypass_cors_preflight": True,
        },
    }


def _provider(provider: ProviderSource, cookie: str, user_header: str, listen_port: int) -> dict[str, Any]:
    if isinstance(provider.jwks, GatewayJwks):
        uri, cluster = f"http://127.0.0.1:{listen_port}{provider.jwks.from_gateway_path}", SELF_CLUSTER
    else:
        uri, cluster = provider.jwks.uri, jwks_cluster_name(provider)
    return {
        "issuer": provider.issuer,
        **({"audiences": list(provider.audiences)} if provider.audiences else {}),
        "forward": True,
        "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
        "from_cookies": [cookie],
        "claim_to_headers": [{"header_name": user_header, "claim_name": "sub"}],
        "clock_skew_seconds": 30,
        "remote_jwks": {
            "http_uri": {"uri": uri, "cluster": cluster, "timeout": "2s"},
            "cache_duration": provider.cache_duration,
            "async_fetch": {"failed_refetch_duration": "1s"},
            "retry_policy": {
                "num_retries": 3,
                "retry_back_off": {"base_interval": "0.2s", "max_interval": "2s"},
            },
        },
    }
