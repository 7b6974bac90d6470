"""What the gateway exposes, decided once from the source and the contracts.

Both the Envoy configuration and the OpenAPI document are rendered from this plan, so a method is
documented exactly when it is routed, and exempt from tokens in both or in neither.
"""

from __future__ import annotations

from dataclasses import dataclass

from vitalis_gateway.api import Method, Service
from vitalis_gateway.source import GatewaySource

HEALTHZ_PATH = "/healthz"
READYZ_PATH = "/readyz"
OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
RESERVED_PATHS = (HEALTHZ_PATH, READYZ_PATH, OPENAPI_PATH, DOCS_PATH)


@dataclass(frozen=True)
class RoutedMethod:
    """A public RPC and the service (cluster) it is routed to."""

    method: Method
    cluster: str
    exempt: bool
    timeout: str


@dataclass(frozen=True)
class GatewayPlan:
    """The public methods (routed), the unrouted ones and the services the transcoder knows."""

    routed: tuple[RoutedMethod, ...]
    internal_services: tuple[Service, ...]
    internal_methods: tuple[Method, ...]
    transcoded_services: tuple[str, ...]
    absent_names: tuple[str, ...]

    @property
    def exempt_grpc_paths(self) -> tuple[str, ...]:
        """gRPC paths of the RPCs that need no token (REST calls are matched after transcoding)."""
        return tuple(r.method.grpc_path for r in self.routed if r.exempt)


def plan_gateway(source: GatewaySource) -> GatewayPlan:
    """Decide routes, exemptions and internal services; ``ValueError`` on an inconsistent source."""
    declared_internal = set(source.internal_services)
    exempt = set(source.authentication.exempt_methods)
    routed: list[RoutedMethod] = []
    internal_services: list[Service] = []
    internal_methods: list[Method] = []
    for service in source.api.services:
        if service.full_name in declared_internal or not service.has_bindings:
            internal_services.append(service)
            continue
        cluster = source.service_of_package(service.package)
        for method in service.methods:
            if not method.is_public:
                internal_methods.append(method)
                continue
            timeout = source.limits.method_timeouts.get(method.full_name, source.limits.request_timeout)
            routed.append(
                RoutedMethod(
                    method=method,
                    cluster=cluster,
                    exempt=method.full_name in exempt,
                    timeout="0s" if method.is_streaming else timeout,
                )
            )
    plan = GatewayPlan(
        routed=tuple(routed),
        internal_services=tuple(internal_services),
        internal_methods=tuple(internal_methods),
        transcoded_services=tuple(dict.fromkeys(r.method.service for r in routed)),
        absent_names=_absent_names(source),
    )
    _check_plan(source, plan)
    return plan


def _absent_names(source: GatewaySource) -> tuple[str, ...]:
    known_methods = {m.full_name for m in source.api.methods()}
    known_services = {s.full_name for s in source.api.services}
    absent = [name for name in source.authentication.exempt_methods if name not in known_methods]
    absent += [name for name in source.limits.method_timeouts if name not in known_methods]
    absent += [name for name in source.internal_services if name not in known_services]
    return tuple(absent)


def _check_plan(source: GatewaySource, plan: GatewayPlan) -> None:
    seen: dict[tuple[str, str], str] = {}
    for routed in plan.routed:
        for binding in routed.method.bindings:
            path = binding.path.split("{", 1)[0].rstrip("/") or "/"
            if binding.path in RESERVED_PATHS or path in RESERVED_PATHS:
                raise ValueError(
                    f"{routed.method.full_name} binds {binding.path}, a path the gateway reserves"
                )
            key = (binding.verb, binding.path)
            if key in seen:
                verb = binding.verb.upper()
                raise ValueError(
                    f"{verb} {binding.path} is bound by {seen[key]} and {routed.method.full_name}"
                )
            seen[key] = routed.method.full_name
    internal_exempt = {m.full_name for m in plan.internal_methods} & set(source.authentication.exempt_methods)
    if internal_exempt:
        raise ValueError(
            f"exempt methods {sorted(internal_exempt)} have no HTTP binding and are never routed"
        )
    for provider in source.authentication.providers:
        jwks_path = getattr(provider.jwks, "from_gateway_path", None)
        if jwks_path is None:
            continue
        for routed in plan.routed:
            bound = any(b.verb == "get" and b.path == jwks_path for b in routed.method.bindings)
            if bound and not routed.exempt:
                raise ValueError(
                    f"{jwks_path} is served by {routed.method.full_name}, which must be exempt from tokens "
                    "or the gateway could never fetch the keys that verify them"
                )
