"""Settings: read once from the environment, typed, frozen, failing fast with the variable's name."""

from __future__ import annotations

import pydantic
import pytest

from vitalis_runtime.settings import ConfigurationError, ServiceSettings

SECRET = "s" * 32
REQUIRED_ENV = {
    "VITALIS_SERVICE_NAME": "identity",
    "VITALIS_GRPC_PORT": "50051",
    "DATABASE_URL": "postgresql://app@db:5432/vitalis",
    "REDIS_URL": "redis://cache:6379/0",
    "VITALIS_PAGE_TOKEN_SECRET": SECRET,
}


def minimal(**overrides: object) -> ServiceSettings:
    values: dict[str, object] = {
        "service_name": "identity",
        "grpc_port": 0,
        "database_url": "postgresql://app@db/vitalis",
        "redis_url": "redis://cache:6379/0",
        "page_token_secret": SECRET,
    }
    return ServiceSettings(**{**values, **overrides})


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in REQUIRED_ENV.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_every_documented_variable_is_read_from_its_exact_name(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("VITALIS_GRPC_HOST", "127.0.0.1")
    environment.setenv("VITALIS_METRICS_PORT", "9464")
    environment.setenv("VITALIS_DATABASE_ROLE", "identity_app")
    environment.setenv("VITALIS_MIGRATE_DATABASE_URL", "postgresql://owner@db/vitalis")
    environment.setenv("VITALIS_IDENTITY_TARGET", "identity:50051")
    environment.setenv("VITALIS_JWT_ISSUER", "https://issuer.example")
    environment.setenv("VITALIS_JWT_AUDIENCE", "api")
    environment.setenv("VITALIS_LOG_LEVEL", "debug")
    environment.setenv("VITALIS_LOG_FORMAT", "console")
    environment.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
    environment.setenv("VITALIS_SHUTDOWN_GRACE_SECONDS", "25")
    environment.setenv("VITALIS_EVENT_SHARDS", "16")

    settings = ServiceSettings.from_env()

    assert settings.service_name == "identity"
    assert settings.grpc_address == "127.0.0.1:50051"
    assert settings.metrics_port == 9464
    assert settings.database_url == "postgresql://app@db:5432/vitalis"
    assert settings.database_role == "identity_app"
    assert settings.migrate_database_url == "postgresql://owner@db/vitalis"
    assert settings.redis_url == "redis://cache:6379/0"
    assert settings.identity_target == "identity:50051"
    assert (settings.jwt_issuer, settings.jwt_audience) == ("https://issuer.example", "api")
    assert settings.page_token_secret.get_secret_value() == SECRET
    assert (settings.log_level, settings.log_format) == ("DEBUG", "console")
    assert settings.otlp_endpoint == "http://collector:4317"
    assert settings.shutdown_grace_seconds == 25
    assert settings.event_shards == 16


def test_defaults_apply_when_only_required_variables_are_set(environment: pytest.MonkeyPatch) -> None:
    settings = ServiceSettings.from_env()

    assert settings.grpc_host == "0.0.0.0"
    assert settings.metrics_port == 0
    assert settings.migrate_database_url == settings.database_url
    assert settings.database_role is None
    assert (settings.jwt_issuer, settings.jwt_audience) == ("vitalis", "vitalis-api")
    assert (settings.log_level, settings.log_format) == ("INFO", "json")
    assert settings.otlp_endpoint is None
    assert settings.shutdown_grace_seconds == 10
    assert settings.event_shards == 8


@pytest.mark.parametrize("missing", sorted(REQUIRED_ENV))
def test_a_missing_required_variable_is_named_in_the_error(
    environment: pytest.MonkeyPatch, missing: str
) -> None:
    environment.delenv(missing)

    with pytest.raises(ConfigurationError, match=f"{missing}: is required but not set"):
        ServiceSettings.from_env()


def test_a_short_page_token_secret_is_rejected_by_name(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("VITALIS_PAGE_TOKEN_SECRET", "too-short")

    with pytest.raises(ConfigurationError, match=r"VITALIS_PAGE_TOKEN_SECRET: .*at least 32 characters"):
        ServiceSettings.from_env()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://db/vitalis"),
        ("REDIS_URL", "http://cache"),
        ("VITALIS_GRPC_PORT", "not-a-port"),
        ("VITALIS_LOG_FORMAT", "xml"),
        ("VITALIS_EVENT_SHARDS", "0"),
    ],
)
def test_an_invalid_value_is_rejected_by_name(environment: pytest.MonkeyPatch, name: str, value: str) -> None:
    environment.setenv(name, value)

    with pytest.raises(ConfigurationError, match=f"{name}: "):
        ServiceSettings.from_env()


def test_settings_built_from_arguments_ignore_the_environment(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("VITALIS_EVENT_SHARDS", "3")

    settings = minimal(service_name="ingestion")

    assert settings.service_name == "ingestion"
    assert settings.event_shards == 8


def test_settings_are_frozen() -> None:
    settings = minimal()

    with pytest.raises(pydantic.ValidationError):
        settings.grpc_port = 1  # type: ignore[misc]


def test_the_page_token_secret_never_appears_in_the_repr() -> None:
    assert SECRET not in repr(minimal())


def test_services_extend_the_settings_with_prefixed_variables(environment: pytest.MonkeyPatch) -> None:
    class StorageSettings(ServiceSettings):
        storage_root: str

    environment.setenv("VITALIS_STORAGE_ROOT", "/var/lib/vitalis")

    assert StorageSettings.from_env().storage_root == "/var/lib/vitalis"
    environment.delenv("VITALIS_STORAGE_ROOT")
    with pytest.raises(ConfigurationError, match="VITALIS_STORAGE_ROOT: is required"):
        StorageSettings.from_env()


def test_an_ipv6_host_is_bracketed_in_the_bind_address() -> None:
    assert minimal(grpc_host="::", grpc_port=7000).grpc_address == "[::]:7000"


def test_previous_secrets_are_read_as_comma_separated_lists(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("VITALIS_PAGE_TOKEN_PREVIOUS_SECRETS", f"{'a' * 32}, {'b' * 40}")
    environment.setenv("VITALIS_SERVICE_TOKEN_PREVIOUS_SECRETS", "c" * 32)

    settings = ServiceSettings.from_env()

    assert [s.get_secret_value() for s in settings.page_token_previous_secrets] == ["a" * 32, "b" * 40]
    assert [s.get_secret_value() for s in settings.service_token_previous_secrets] == ["c" * 32]
    assert "a" * 32 not in repr(settings)


def test_without_previous_secrets_none_are_accepted(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("VITALIS_SERVICE_TOKEN_PREVIOUS_SECRETS", "")

    settings = ServiceSettings.from_env()

    assert settings.page_token_previous_secrets == ()
    assert settings.service_token_previous_secrets == ()


@pytest.mark.parametrize(
    "name", ["VITALIS_PAGE_TOKEN_PREVIOUS_SECRETS", "VITALIS_SERVICE_TOKEN_PREVIOUS_SECRETS"]
)
def test_a_short_previous_secret_is_rejected_by_name(environment: pytest.MonkeyPatch, name: str) -> None:
    environment.setenv(name, f"{'a' * 32},too-short")

    with pytest.raises(ConfigurationError, match=rf"{name}: .*at least 32 characters"):
        ServiceSettings.from_env()
