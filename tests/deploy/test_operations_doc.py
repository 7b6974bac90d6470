"""The runbook and the alerts name only what exists: targets, variables, paths, commands, metrics.

Metric names are checked against what the code really exports: the services' registry (the RPC
and event pipeline metrics, each recorded once, plus prometheus-client's process collector) and a
real Envoy started with the gateway configuration the manifests deploy, scraped once it has routed
a request.
"""

from __future__ import annotations

import importlib
import inspect
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry

from vitalis_cli.main import build_parser
from vitalis_deploy.render import find_kubectl, render
from vitalis_runtime.catalog import SERVICES
from vitalis_runtime.metrics import HANDLED_OUTCOMES, event_metrics, rpc_metrics
from vitalis_runtime.settings import ServiceSettings

REPOSITORY = Path(__file__).resolve().parents[2]
DOC = REPOSITORY / "docs" / "operations.md"
ALERTS = REPOSITORY / "deploy" / "k8s" / "components" / "service-monitors" / "alerts.yaml"
PROD = REPOSITORY / "deploy" / "k8s" / "overlays" / "prod"

MAKE_TARGET = re.compile(r"`make ([a-z0-9-]+)[^`]*`")
ENV_VAR = re.compile(r"\b(?:VITALIS|OTEL|AWS|POSTGRES|REDIS|DATABASE)_[A-Z0-9_]*[A-Z0-9]\b")
CODE_WORD = re.compile(r"`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)`")
REPO_PATH = re.compile(r"`((?:src|services|deploy|docs|tests|gateway|protos|tools)/[^`\s]*)`")
VITALIS_COMMAND = re.compile(r"`(vitalis [^`]+)`")
KUBECTL_OBJECT = re.compile(r"(?<![\w/])(deploy|deployment|svc|job)/([a-z0-9][a-z0-9-]*)(?![\w/])")
LABEL_SELECTOR = re.compile(r"-l ([a-z0-9./-]+)=([a-z0-9-]+)")
METRIC_PREFIX = r"(?:grpc_server|process|python|envoy|vitalis_outbox|vitalis_consumer)"
METRIC = re.compile(rf"\b({METRIC_PREFIX}_[a-z0-9_]+)\b")
SELECTOR = re.compile(rf"\b({METRIC_PREFIX}_[a-z0-9_]+)\{{([^}}]*)\}}")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
TARGET_LABELS = frozenset({"job", "pod", "namespace", "instance", "service", "container", "endpoint"})
"""Labels Prometheus adds to every scraped series; not the exporter's to define."""
GRPC_CODES = frozenset(code.name for code in grpc.StatusCode)

Series = Mapping[str, list[dict[str, str]]]


@pytest.fixture(scope="module")
def doc() -> str:
    """The runbook's text."""
    return DOC.read_text()


@pytest.fixture(scope="module")
def alert_rules() -> list[dict[str, Any]]:
    """Every rule of the PrometheusRule."""
    rule = yaml.safe_load(ALERTS.read_text())
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


@pytest.fixture(scope="module")
def prod_objects() -> list[Any]:
    """The prod overlay, rendered."""
    return list(render(PROD, kubectl=find_kubectl()))


@pytest.fixture(scope="module")
def runtime_series() -> Series:
    """Series the services export: RPC and event metrics, one of each recorded, and the process collector."""
    registry = CollectorRegistry()
    metrics = rpc_metrics(registry)
    metrics.record("/vitalis.identity.v1.AuthService/SignIn", "OK", 0.01)
    metrics.in_flight.labels("vitalis.identity.v1.AuthService", "SignIn").inc()
    events = event_metrics(registry)
    events.relay.observe_backlog("insights", "insights", 0, 0.0)
    events.relay.published.labels("insights", "insights").inc()
    consumer = events.consumer
    for outcome in HANDLED_OUTCOMES:
        consumer.handled.labels("insights-engine", outcome).inc()
    for counter in (consumer.handler_failures, consumer.dead_lettered):
        counter.labels("insights-engine").inc()
    for gauge in (consumer.pending, consumer.lag):
        gauge.labels("insights-engine").set(0)
    found: dict[str, list[dict[str, str]]] = {}
    for source in (registry, REGISTRY):
        for family in source.collect():
            for sample in family.samples:
                found.setdefault(sample.name, []).append(dict(sample.labels))
    return found


def _parse_exposition(text: str) -> dict[str, list[dict[str, str]]]:
    found: dict[str, list[dict[str, str]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, labels = line.rsplit(" ", 1)[0].partition("{")
        found.setdefault(name, []).append({key: value for key, _, value in MATCHER.findall(labels)})
    return found


@pytest.fixture(scope="module")
def gateway_series(local_gateway: Any) -> Series:
    """Envoy's statistics once it has routed one call, so the per-cluster response counters exist."""
    local_gateway.get(
        f"http://127.0.0.1:{local_gateway.listener}/vitalis.identity.v1.AuthService/SignIn",
        data=b"",
        headers={"content-type": "application/grpc"},
    )
    return _parse_exposition(
        local_gateway.get(f"http://127.0.0.1:{local_gateway.metrics}/stats/prometheus").decode()
    )


def _source_text() -> str:
    roots = [
        REPOSITORY / "src",
        REPOSITORY / "deploy",
        *sorted((REPOSITORY / "services").glob("*/vitalis_*")),
    ]
    files = [REPOSITORY / "buf.yaml", REPOSITORY / "Makefile"]
    files += [
        path
        for root in roots
        for path in root.rglob("*")
        if path.is_file() and path.suffix in {".py", ".yaml", ".example", ".md", ".sql"}
    ]
    return "\n".join(path.read_text(errors="replace") for path in files if "tests" not in path.parts)


def _settings_variables() -> set[str]:
    """Every variable a service's settings read (``VITALIS_<FIELD>``, ``DATABASE_URL``, ...)."""
    classes = [ServiceSettings]
    for spec in SERVICES:
        module = importlib.import_module(f"{spec.module}.settings")
        classes += [
            cls
            for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, ServiceSettings) and cls is not ServiceSettings
        ]
    return {cls.env_name(field) for cls in classes for field in cls.model_fields}


def test_every_make_target_exists(doc: str) -> None:
    targets = set(re.findall(r"^([a-zA-Z0-9_-]+):", (REPOSITORY / "Makefile").read_text(), re.MULTILINE))
    named = set(MAKE_TARGET.findall(doc))

    assert named, "the runbook names no make target"
    assert named - targets == set()


def test_every_variable_and_error_reason_appears_in_the_code_or_manifests(doc: str) -> None:
    source = _source_text()
    settings = _settings_variables()
    named = set(ENV_VAR.findall(doc)) | set(CODE_WORD.findall(doc))

    missing = {name for name in named - settings if not re.search(rf"\b{name}\b", source)}

    assert len(named) > 20
    assert missing == set()


def test_every_repository_path_exists(doc: str) -> None:
    paths = {path.rstrip(".,:") for path in REPO_PATH.findall(doc) if "<" not in path}

    missing = {path for path in paths if not any(REPOSITORY.glob(path))}

    assert len(paths) > 5
    assert missing == set()


def test_every_vitalis_command_parses(doc: str) -> None:
    parser = build_parser()
    commands = [command.replace("<service>", "identity") for command in VITALIS_COMMAND.findall(doc)]

    assert commands
    for command in commands:
        parser.parse_args(shlex.split(command)[1:])


def test_every_kubernetes_object_and_label_the_commands_name_is_deployed(
    doc: str, prod_objects: list[Any]
) -> None:
    objects = prod_objects
    kinds = {"deploy": "Deployment", "deployment": "Deployment", "svc": "Service", "job": "Job"}
    deployed = {(o["kind"], o["metadata"]["name"]) for o in objects}
    labels = {(key, value) for o in objects for key, value in (o["metadata"].get("labels") or {}).items()}

    commands = "\n".join(line for line in doc.splitlines() if "kubectl" in line)
    named_objects = {(kinds[kind], name) for kind, name in KUBECTL_OBJECT.findall(commands)}
    named_labels = set(LABEL_SELECTOR.findall(commands))

    assert named_objects - deployed == set()
    assert named_labels - labels == set()
    assert ("Job", "identity-migrate") in named_objects


def _check_selectors(text: str, runtime: Series, gateway: Series) -> list[str]:
    """Problems with the metric names and label matchers in ``text``."""
    exported = {**runtime, **gateway}
    label_names = {label for series in exported.values() for labels in series for label in labels}
    problems = [
        f"{name} is not exported"
        for name in sorted(set(METRIC.findall(text)))
        if name not in exported and name not in label_names
    ]
    for name, matchers in SELECTOR.findall(text):
        series = exported.get(name, [])
        for label, operator, value in MATCHER.findall(matchers):
            if label in TARGET_LABELS:
                continue
            values = {labels.get(label) for labels in series}
            if not any(label in labels for labels in series):
                problems.append(f"{name} has no label {label}")
            elif operator in ("=", "=~"):
                wanted = value.split("|") if operator == "=~" else [value]
                known = GRPC_CODES if label == "grpc_code" else values
                problems += [f'{name}{{{label}="{v}"}} does not exist' for v in wanted if v not in known]
    return problems


def test_every_metric_the_runbook_names_is_exported(
    doc: str, runtime_series: Series, gateway_series: Series
) -> None:
    assert METRIC.findall(doc)
    assert _check_selectors(doc, runtime_series, gateway_series) == []


def test_every_alert_uses_exported_metrics_and_is_explained(
    doc: str, alert_rules: list[dict[str, Any]], runtime_series: Series, gateway_series: Series
) -> None:
    for rule in alert_rules:
        assert METRIC.search(rule["expr"]), rule["alert"]
        assert _check_selectors(rule["expr"], runtime_series, gateway_series) == [], rule["alert"]
        assert f"`{rule['alert']}`" in doc


def test_a_misspelt_metric_or_label_value_is_caught(runtime_series: Series, gateway_series: Series) -> None:
    assert _check_selectors("rate(grpc_server_handled[5m])", runtime_series, gateway_series) == [
        "grpc_server_handled is not exported"
    ]
    assert _check_selectors('grpc_server_handled_total{grpc_code="Internal"}', runtime_series, gateway_series)
    assert _check_selectors(
        'envoy_cluster_membership_healthy{envoy_cluster_name="identiti"}', runtime_series, gateway_series
    )


def test_the_prod_overlay_deploys_the_alerts(prod_objects: list[Any]) -> None:
    assert [o["metadata"]["name"] for o in prod_objects if o["kind"] == "PrometheusRule"] == ["vitalis"]
