"""HTTP path templates become OpenAPI paths with one parameter per wildcard segment."""

from __future__ import annotations

import pytest

from vitalis_gateway.path_template import parse_path_template


def test_each_wildcard_of_a_resource_name_becomes_a_parameter_named_after_its_collection() -> None:
    parsed = parse_path_template("/v1/{name=users/*/dailySummaries/*}")

    assert parsed.openapi_path == "/v1/users/{user}/dailySummaries/{dailySummary}"
    assert parsed.field_paths == ("name",)
    assert [(p.name, p.field_path) for p in parsed.parameters] == [("user", "name"), ("dailySummary", "name")]


def test_a_custom_verb_is_kept_after_the_last_segment() -> None:
    parsed = parse_path_template("/v1/{parent=users/*}/importJobs:upload")

    assert parsed.openapi_path == "/v1/users/{user}/importJobs:upload"


def test_a_plain_variable_is_one_parameter_named_after_its_field() -> None:
    parsed = parse_path_template("/v1/metrics/{metric_id}")

    assert parsed.openapi_path == "/v1/metrics/{metric_id}"
    assert parsed.field_paths == ("metric_id",)


def test_a_nested_field_path_is_bound() -> None:
    parsed = parse_path_template("/v1/{record.name=people/*/records/*}")

    assert parsed.field_paths == ("record.name",)
    assert parsed.openapi_path == "/v1/people/{person}/records/{record}"


def test_repeated_collection_names_get_distinct_parameters() -> None:
    parsed = parse_path_template("/v1/{a=items/*}/{b=items/*}")

    assert [p.name for p in parsed.parameters] == ["item", "item2"]


def test_a_literal_path_has_no_parameters() -> None:
    parsed = parse_path_template("/.well-known/jwks.json")

    assert parsed.openapi_path == "/.well-known/jwks.json"
    assert parsed.parameters == ()


@pytest.mark.parametrize("template", ["v1/users", "/v1/{name=users/*", "/v1//users", "/v1/{bad-field}"])
def test_malformed_templates_are_refused(template: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_path_template(template)
