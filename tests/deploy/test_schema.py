"""Strict validation against the Kubernetes schemas, with the project's custom resources exempted."""

from __future__ import annotations

from typing import Any

from vitalis_deploy.schema import DEFAULT_KUBERNETES_VERSIONS, check_schemas

CONFIG_MAP: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "c"},
    "data": {"a": "b"},
}


def test_valid_object_passes_every_supported_version() -> None:
    assert DEFAULT_KUBERNETES_VERSIONS[0] == "1.33.0"
    assert check_schemas([CONFIG_MAP], versions=DEFAULT_KUBERNETES_VERSIONS) == []


def test_unknown_field_is_rejected() -> None:
    findings = check_schemas([{**CONFIG_MAP, "dta": {}}], versions=DEFAULT_KUBERNETES_VERSIONS)

    assert [(f.subject, f.rule) for f in findings] == [("ConfigMap/c", "schema")]
    assert "'dta' was unexpected" in findings[0].message


def test_wrong_type_is_rejected() -> None:
    findings = check_schemas([{**CONFIG_MAP, "data": {"a": 1}}], versions=DEFAULT_KUBERNETES_VERSIONS)

    assert "at data.a" in findings[0].message


def test_object_without_kind_is_rejected() -> None:
    assert [f.message for f in check_schemas([{"metadata": {"name": "x"}}], versions=["1.33.0"])] == [
        "object has no apiVersion or kind"
    ]


def test_service_monitor_is_exempt_from_schema_validation() -> None:
    monitor = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "m"}}

    assert check_schemas([monitor], versions=DEFAULT_KUBERNETES_VERSIONS) == []


def test_other_custom_resource_is_reported() -> None:
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}

    findings = check_schemas([widget], versions=DEFAULT_KUBERNETES_VERSIONS)

    assert "KNOWN_CUSTOM_RESOURCES" in findings[0].message
