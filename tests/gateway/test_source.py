"""The gateway source refuses configurations that would leave the gateway open or unroutable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from vitalis_gateway import load_source, plan_gateway

SAMPLE = Path(__file__).resolve().parent / "gateway.yaml"


def write_variant(tmp_path: Path, change: Any) -> Path:
    raw = yaml.safe_load(SAMPLE.read_text())
    change(raw)
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_unknown_keys_are_errors_not_silently_ignored(tmp_path: Path, sample_descriptor: Path) -> None:
    path = write_variant(tmp_path, lambda raw: raw["limits"].update(request_timeout_typo="5s"))

    with pytest.raises(ValidationError, match="request_timeout_typo"):
        load_source(path, descriptor_set=sample_descriptor)


def test_the_verified_user_header_must_be_stripped_from_clients(
    tmp_path: Path, sample_descriptor: Path
) -> None:
    def unstrip(raw: dict[str, Any]) -> None:
        raw["authentication"]["stripped_headers"] = {"prefixes": [], "names": ["x-user-id"]}

    with pytest.raises(ValidationError, match="must be among the stripped headers"):
        load_source(write_variant(tmp_path, unstrip), descriptor_set=sample_descriptor)


def test_a_package_no_service_serves_is_an_error(tmp_path: Path, sample_descriptor: Path) -> None:
    path = write_variant(tmp_path, lambda raw: raw["services"]["records"].update(packages=["other.v1"]))

    with pytest.raises(ValidationError, match=r"gwtest\.records\.v1"):
        load_source(path, descriptor_set=sample_descriptor)


def test_keys_served_by_a_method_that_needs_a_token_are_refused(
    tmp_path: Path, sample_descriptor: Path
) -> None:
    def protect_keys(raw: dict[str, Any]) -> None:
        raw["authentication"]["exempt_methods"].remove("gwtest.records.v1.SessionService/GetKeys")

    source = load_source(write_variant(tmp_path, protect_keys), descriptor_set=sample_descriptor)

    with pytest.raises(ValueError, match="must be exempt"):
        plan_gateway(source)


def test_exempting_a_method_without_http_binding_is_refused(tmp_path: Path, sample_descriptor: Path) -> None:
    def exempt_internal(raw: dict[str, Any]) -> None:
        raw["authentication"]["exempt_methods"].append("gwtest.records.v1.RecordService/ReindexRecords")

    source = load_source(write_variant(tmp_path, exempt_internal), descriptor_set=sample_descriptor)

    with pytest.raises(ValueError, match="never routed"):
        plan_gateway(source)


def test_a_declared_internal_service_is_never_routed(tmp_path: Path, sample_descriptor: Path) -> None:
    def hide_records(raw: dict[str, Any]) -> None:
        raw["internal_services"] = ["gwtest.records.v1.RecordService"]

    plan = plan_gateway(load_source(write_variant(tmp_path, hide_records), descriptor_set=sample_descriptor))

    assert {r.method.service for r in plan.routed} == {"gwtest.records.v1.SessionService"}
    assert "gwtest.records.v1.RecordService" in {s.full_name for s in plan.internal_services}


def test_a_missing_descriptor_set_names_the_command_that_makes_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make protos"):
        load_source(SAMPLE, descriptor_set=tmp_path / "absent.binpb")
