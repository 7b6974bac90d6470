"""Typed, frozen settings every service starts from.

Entry points call :meth:`ServiceSettings.from_env`, which reads the process environment once and
fails fast, naming each missing or invalid variable. Everywhere else (tests included) settings are
built from keyword arguments, and the environment is never consulted.

Services subclass :class:`ServiceSettings` to add their own fields; a field ``storage_root`` is
then read from ``VITALIS_STORAGE_ROOT``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_PREFIX = "VITALIS_"
POSTGRES_SCHEMES = frozenset({"postgresql", "postgres"})
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})
MIN_SECRET_LENGTH = 32
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["json", "console"]
# Read from one comma-separated variable (not JSON, which pydantic-settings expects of a tuple).
SecretList = Annotated[tuple[SecretStr, ...], NoDecode]


class ConfigurationError(Exception):
    """The environment does not describe a runnable service; the message names every bad variable."""


class ServiceSettings(BaseSettings):
    """What every Vitalis service needs to start: addresses, credentials, limits and switches."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
    )

    service_name: str = Field(pattern=r"^[a-z][a-z0-9-]*$", description="Short service name, e.g. identity.")
    # Inside a container the service must be reachable from the pod network, not just loopback.
    grpc_host: str = Field(default="0.0.0.0", min_length=1)  # noqa: S104
    grpc_port: int = Field(ge=0, le=65535, description="gRPC port; 0 picks a free one.")
    metrics_port: int = Field(default=0, ge=0, le=65535, description="Prometheus port; 0 turns it off.")
    database_url: str = Field(validation_alias="DATABASE_URL")
    database_role: str | None = Field(default=None, description="Role to SET on every new connection.")
    migrate_database_url: str = Field(default="", description="DSN for migrations; defaults to database_url.")
    redis_url: str = Field(validation_alias="REDIS_URL")
    identity_target: str | None = Field(default=None, description="host:port of identity's gRPC (JWKS).")
    ingestion_target: str | None = Field(default=None, description="host:port of ingestion's gRPC.")
    biomarkers_target: str | None = Field(default=None, description="host:port of biomarkers' gRPC.")
    documents_target: str | None = Field(default=None, description="host:port of documents' gRPC.")
    insights_target: str | None = Field(default=None, description="host:port of insights' gRPC.")
    jwt_issuer: str = Field(default="vitalis", min_length=1)
    jwt_audience: str = Field(default="vitalis-api", min_length=1)
    page_token_secret: SecretStr = Field(description="Key that signs page tokens; at least 32 characters.")
    service_token_secret: SecretStr | None = Field(
        default=None, description="Key services sign each other's call tokens with; at least 32 characters."
    )
    page_token_previous_secrets: SecretList = Field(
        default=(),
        description="Comma-separated keys whose page tokens are still accepted; never used to sign.",
    )
    service_token_previous_secrets: SecretList = Field(
        default=(),
        description="Comma-separated keys whose service tokens are still accepted; never used to sign.",
    )
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "json"
    otlp_endpoint: str | None = Field(default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    event_shards: int = Field(default=8, ge=1, le=1024)
    clerk_issuer: str = Field(
        default="clerk",
        min_length=1,
        description="The `iss` of the Clerk instance's tokens (VITALIS_CLERK_ISSUER); links Clerk users.",
    )
    clerk_jwks_uri: str | None = Field(
        default=None, description="JWKS address of the Clerk instance, to accept its tokens."
    )
    oidc_jwks_uris: dict[str, str] = Field(
        default_factory=dict,
        description="JWKS address of each other external issuer whose tokens are accepted, by issuer.",
    )
    external_token_audience: str | None = Field(
        default=None, description="The `aud` external tokens must carry; unset: not checked."
    )
    event_stream_prefix: str = Field(
        default="vitalis",
        pattern=r"^[A-Za-z0-9_-]+(:[A-Za-z0-9_-]+)*$",
        description="Prefix of the event stream keys; platforms sharing one Redis need distinct ones.",
    )

    # pydantic-settings passes every source by keyword, so the unused ones keep their names.
    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],  # noqa: ARG003
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only keyword arguments: reading the environment is :meth:`from_env`'s job alone."""
        return (init_settings,)

    def external_jwks_uris(self) -> dict[str, str]:
        """The JWKS address of every external issuer whose tokens this service accepts."""
        uris = dict(self.oidc_jwks_uris)
        if self.clerk_jwks_uri:
            uris[self.clerk_issuer] = self.clerk_jwks_uri
        return uris

    @classmethod
    def from_env(cls) -> Self:
        """Read the settings from the process environment; raise ConfigurationError naming bad variables."""
        values = EnvSettingsSource(cls)()
        try:
            return cls(**values)
        except ValidationError as error:
            raise ConfigurationError(describe_validation_error(cls, error)) from None

    @classmethod
    def env_name(cls, field_name: str) -> str:
        """The environment variable a field is read from."""
        alias = cls.model_fields[field_name].validation_alias
        if isinstance(alias, str):
            return alias
        return f"{ENV_PREFIX}{field_name.upper()}"

    @model_validator(mode="before")
    @classmethod
    def _default_migrate_database_url(cls, data: Any) -> Any:
        if isinstance(data, dict):
            given = data.get("migrate_database_url") or data.get(f"{ENV_PREFIX}MIGRATE_DATABASE_URL")
            database_url = data.get("database_url") or data.get("DATABASE_URL")
            if not given and database_url:
                return {**data, "migrate_database_url": database_url}
        return data

    @field_validator("database_url")
    @classmethod
    def _postgres_dsn(cls, value: str) -> str:
        if urlsplit(value).scheme not in POSTGRES_SCHEMES:
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("migrate_database_url")
    @classmethod
    def _migration_dsn(cls, value: str) -> str:
        # Empty only when DATABASE_URL is missing too, which is reported on its own.
        return cls._postgres_dsn(value) if value else value

    @field_validator("page_token_secret", "service_token_secret")
    @classmethod
    def _long_enough_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _require_secret_length(value)
        return value

    @field_validator("page_token_previous_secrets", "service_token_previous_secrets", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("page_token_previous_secrets", "service_token_previous_secrets")
    @classmethod
    def _long_enough_secrets(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for secret in value:
            _require_secret_length(secret, "each secret ")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in REDIS_SCHEMES:
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @property
    def grpc_address(self) -> str:
        """``host:port`` to bind the gRPC server to (IPv6 hosts in brackets)."""
        host = self.grpc_host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{host}:{self.grpc_port}"


def _require_secret_length(secret: SecretStr, subject: str = "") -> None:
    if len(secret.get_secret_value()) < MIN_SECRET_LENGTH:
        raise ValueError(f"{subject}must be at least {MIN_SECRET_LENGTH} characters")


def describe_validation_error(settings_cls: type[ServiceSettings], error: ValidationError) -> str:
    """One line per problem, each naming the environment variable to fix."""
    problems = []
    for detail in error.errors():
        field = str(detail["loc"][0]) if detail["loc"] else ""
        name = field
        for candidate in settings_cls.model_fields:
            if field in (candidate, settings_cls.env_name(candidate)):
                name = settings_cls.env_name(candidate)
                break
        problem = "is required but not set" if detail["type"] == "missing" else detail["msg"]
        problems.append(f"{name}: {problem}")
    return "invalid configuration: " + "; ".join(problems)
