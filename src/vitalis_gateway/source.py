"""The declarative source of the gateway (``gateway/gateway.yaml``) as typed, validated data.

The YAML names what only a person can decide (ports, which RPCs need no token, token issuers,
limits, CORS origins, per-target differences); everything the contracts already say (services,
methods, HTTP bindings, streaming) is read from the descriptor set the YAML points at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vitalis_gateway.api import ApiSurface, load_api_surface

TARGETS = ("local", "kubernetes")
Target = Literal["local", "kubernetes"]
Port = Annotated[int, Field(ge=1, le=65535)]
Duration = Annotated[str, Field(pattern=r"^\d+(\.\d+)?s$")]


class _Strict(BaseModel):
    """Frozen, and unknown keys are errors: a typo in the YAML must not be silently ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ListenerSource(_Strict):
    """Where the gateway accepts client traffic."""

    port: Port = 8080
    xff_num_trusted_hops: int = Field(default=0, ge=0)


class AdminSource(_Strict):
    """Envoy's admin interface; never exposed beyond the loopback interface."""

    address: str = "127.0.0.1"
    port: Port = 9901


class ServiceSource(_Strict):
    """One backend service: its gRPC port and the proto packages it serves."""

    port: Port
    packages: tuple[str, ...] = Field(min_length=1)


class GatewayJwks(_Strict):
    """A JWKS served through the gateway itself (identity's ``GetJwks`` bound to this path)."""

    from_gateway_path: str = Field(pattern=r"^/")


class RemoteJwks(_Strict):
    """A JWKS fetched over HTTPS from an external identity provider."""

    uri: str = Field(pattern=r"^https://[^/:]+(:\d+)?/")


class ProviderSource(_Strict):
    """One accepted token issuer. A request may carry a token from any configured provider."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    issuer: str
    audiences: tuple[str, ...] = ()
    jwks: GatewayJwks | RemoteJwks
    cache_duration: Duration = "30s"


class StrippedHeaders(_Strict):
    """Identity headers a client might send; all are removed before any token is verified."""

    prefixes: tuple[str, ...] = ()
    names: tuple[str, ...] = ()

    @field_validator("prefixes", "names")
    @classmethod
    def _lowercase(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        if any(value != value.lower() for value in values):
            raise ValueError("header names are matched in lower case; write them in lower case")
        return values


class AuthenticationSource(_Strict):
    """Who must present a token, where tokens are read from and who may issue them."""

    exempt_methods: tuple[str, ...] = ()
    token_cookie: str = "vitalis_access_token"  # noqa: S105 (a cookie name, not a secret)
    user_id_header: str = "x-vitalis-user-id"
    providers: tuple[ProviderSource, ...] = Field(min_length=1)
    stripped_headers: StrippedHeaders

    @field_validator("exempt_methods")
    @classmethod
    def _method_names(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            service, _, method = value.partition("/")
            if not service or not method or "/" in method:
                raise ValueError(f"{value!r} is not '<package>.<Service>/<Method>'")
        return values

    @model_validator(mode="after")
    def _user_header_is_stripped(self) -> AuthenticationSource:
        header = self.user_id_header
        if header not in self.stripped_headers.names and not any(
            header.startswith(prefix) for prefix in self.stripped_headers.prefixes
        ):
            raise ValueError(f"{header} carries the verified user and must be among the stripped headers")
        if len({p.name for p in self.providers}) != len(self.providers):
            raise ValueError("provider names must be unique")
        return self


class RateLimitSource(_Strict):
    """A token bucket shared by every request reaching one gateway replica."""

    max_tokens: int = Field(ge=1)
    tokens_per_fill: int = Field(ge=1)
    fill_interval: Duration


class LimitsSource(_Strict):
    """Sizes and times the gateway enforces."""

    rate_limit: RateLimitSource
    max_request_body_bytes: int = Field(ge=1024)
    max_response_body_bytes: int = Field(ge=1024)
    max_direct_response_bytes: int = Field(ge=1024)
    request_timeout: Duration
    stream_idle_timeout: Duration
    streaming_route_idle_timeout: Duration
    method_timeouts: dict[str, Duration] = Field(default_factory=dict)


class CorsSource(_Strict):
    """Browser origins allowed to call the API (exact matches; credentials allowed for the cookie)."""

    allowed_origins: tuple[str, ...] = ()
    max_age_seconds: int = 600


class TracingSource(_Strict):
    """Where the gateway exports OpenTelemetry spans."""

    collector_host: str
    collector_port: Port = 4317
    service_name: str = "vitalis-gateway"
    sampling_percent: float = Field(default=100.0, ge=0, le=100)


class TargetSource(_Strict):
    """What differs between running on one machine and running on Kubernetes."""

    listen_address: str
    service_host_template: str = "127.0.0.1"
    files_dir: str | None = None
    readyz_requires_backends: bool = True
    metrics_port: Port | None = None
    tracing: TracingSource | None = None
    cors_allowed_origins: tuple[str, ...] = ()


class GatewaySource(_Strict):
    """The whole gateway source, with the API surface read from the descriptor set it names."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    descriptor_set: Path
    listener: ListenerSource = ListenerSource()
    admin: AdminSource = AdminSource()
    services: dict[str, ServiceSource] = Field(min_length=1)
    internal_services: tuple[str, ...] = ()
    authentication: AuthenticationSource
    limits: LimitsSource
    cors: CorsSource = CorsSource()
    targets: dict[Target, TargetSource]
    api: ApiSurface

    @model_validator(mode="after")
    def _consistent(self) -> GatewaySource:
        missing = [t for t in TARGETS if t not in self.targets]
        if missing:
            raise ValueError(f"targets {missing} are not configured")
        owners: dict[str, str] = {}
        for name, service in self.services.items():
            for package in service.packages:
                if package in owners:
                    raise ValueError(f"package {package} is served by both {owners[package]} and {name}")
                owners[package] = name
        unowned = sorted({s.package for s in self.api.services} - owners.keys())
        if unowned:
            raise ValueError(f"no service in the gateway source serves the packages {unowned}")
        return self

    def target(self, name: str) -> TargetSource:
        """The settings of one target; ``ValueError`` names the known ones."""
        if name not in self.targets:
            raise ValueError(f"unknown target {name!r}; known targets: {', '.join(TARGETS)}")
        return self.targets[name]

    def service_of_package(self, package: str) -> str:
        """The name of the service (and cluster) that serves a proto package."""
        for name, service in self.services.items():
            if package in service.packages:
                return name
        raise KeyError(f"no service serves package {package}")


def load_source(path: Path, *, descriptor_set: Path | None = None) -> GatewaySource:
    """Read ``gateway.yaml`` and the descriptor set it names (relative to the YAML file).

    ``descriptor_set`` overrides the YAML's ``descriptor_set`` (tests pass a set compiled from
    their own protos).
    """
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise TypeError(f"{path} must hold a mapping")
    declared = Path(str(raw.get("descriptor_set", "")))
    resolved = descriptor_set or (path.parent / declared).resolve()
    if not resolved.is_file():
        raise FileNotFoundError(f"descriptor set {resolved} does not exist; run `make protos` first")
    return GatewaySource.model_validate(
        {**raw, "descriptor_set": resolved, "api": load_api_surface(resolved)}
    )
