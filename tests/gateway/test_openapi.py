"""The OpenAPI document: valid 3.1, one operation per binding, proto3 JSON mapping, security."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate

from vitalis_gateway import GatewaySource, plan_gateway, render_openapi

RECORD = "gwtest.records.v1.Record"


@pytest.fixture(scope="module")
def document(sample_source: GatewaySource) -> dict[str, Any]:
    return render_openapi(sample_source)


def operation(document: dict[str, Any], path: str, verb: str) -> dict[str, Any]:
    found: dict[str, Any] = document["paths"][path][verb]
    return found


def schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"][name]
    return found


def test_sample_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_project_document_is_valid_openapi_3_1(project_source: GatewaySource) -> None:
    validate(render_openapi(project_source))


def operation_ids(document: dict[str, Any]) -> list[str]:
    return [op["operationId"] for item in document["paths"].values() for op in item.values()]


@pytest.mark.parametrize("source_name", ["sample_source", "project_source"])
def test_there_is_one_operation_per_http_binding_of_a_routed_rpc(
    source_name: str, request: pytest.FixtureRequest
) -> None:
    source: GatewaySource = request.getfixturevalue(source_name)
    bindings = [(r.method.grpc_path, b) for r in plan_gateway(source).routed for b in r.method.bindings]
    document = render_openapi(source)

    ids = operation_ids(document)
    assert len(ids) == len(bindings) == len(set(ids))
    grpc_paths = [op["x-grpc-method"] for item in document["paths"].values() for op in item.values()]
    assert sorted(grpc_paths) == sorted(path for path, _ in bindings)


def test_internal_rpcs_are_not_documented(document: dict[str, Any]) -> None:
    grpc_paths = {op["x-grpc-method"] for item in document["paths"].values() for op in item.values()}

    assert "/gwtest.records.v1.RecordService/ReindexRecords" not in grpc_paths
    assert not any("RecordInternalService" in path for path in grpc_paths)


def test_additional_bindings_are_operations_of_their_own(document: dict[str, Any]) -> None:
    assert (
        operation(document, "/v1/people/{person}/records", "get")["operationId"]
        == "RecordService_ListRecords"
    )
    assert (
        operation(document, "/v1/people/{person}/folders/{folder}/records", "get")["operationId"]
        == "RecordService_ListRecords_1"
    )


def test_messages_follow_the_proto3_json_mapping(document: dict[str, Any]) -> None:
    record = schema(document, RECORD)["properties"]

    assert set(record) == {
        "name",
        "displayTitle",
        "seenCount",
        "createTime",
        "kind",
        "tags",
        "labels",
        "score",
        "blob",
    }
    assert record["seenCount"]["type"] == "string"
    assert record["seenCount"]["format"] == "int64"
    assert record["createTime"]["format"] == "date-time"
    assert record["kind"]["$ref"] == "#/components/schemas/gwtest.records.v1.Record.Kind"
    assert record["tags"] == {
        "type": "array",
        "items": {"type": "string"},
        "description": "Optional. Free-form tags.",
    }
    assert record["labels"]["additionalProperties"] == {"type": "string"}
    assert record["score"]["type"] == ["number", "null"]
    assert record["blob"]["contentEncoding"] == "base64"


def test_enums_are_their_value_names(document: dict[str, Any]) -> None:
    kind = schema(document, "gwtest.records.v1.Record.Kind")

    assert kind["type"] == "string"
    assert kind["enum"] == ["KIND_UNSPECIFIED", "KIND_NOTE", "KIND_MEASUREMENT"]
    assert "A measurement." in kind["description"]


def test_proto_comments_and_field_behaviours_are_carried_over(document: dict[str, Any]) -> None:
    record = schema(document, RECORD)

    assert record["description"] == "A record of a person."
    assert record["properties"]["name"]["readOnly"] is True
    assert record["properties"]["name"]["description"].startswith("Output only.")
    assert record["required"] == ["displayTitle"]
    get = operation(document, "/v1/people/{person}/records/{record}", "get")
    assert get["summary"] == "Gets one record"
    assert get["tags"] == ["RecordService"]


def test_path_fields_and_body_fields_are_not_query_parameters(document: dict[str, Any]) -> None:
    listing = operation(document, "/v1/people/{person}/records", "get")
    names = [(p["name"], p["in"]) for p in listing["parameters"]]

    assert names == [
        ("person", "path"),
        ("pageSize", "query"),
        ("pageToken", "query"),
        ("kind", "query"),
        ("window.startTime", "query"),
        ("window.endTime", "query"),
    ]
    create = operation(document, "/v1/people/{person}/records", "post")
    assert [p["name"] for p in create["parameters"]] == ["person", "requestId"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(RECORD)


def test_body_star_leaves_out_the_fields_bound_in_the_path(document: dict[str, Any]) -> None:
    sign_in = operation(document, "/v1/sessions:signIn", "post")

    assert sign_in["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("SignInRequest")
    assert "parameters" not in sign_in


def test_uploads_and_raw_responses_are_raw_content(document: dict[str, Any]) -> None:
    upload = operation(document, "/v1/people/{person}/records:upload", "post")
    keys = operation(document, "/.well-known/jwks.json", "get")

    assert list(upload["requestBody"]["content"]) == ["*/*"]
    assert list(keys["responses"]["200"]["content"]) == ["*/*"]


def test_server_streams_are_newline_delimited_json(document: dict[str, Any]) -> None:
    watch = operation(document, "/v1/people/{person}/records:watch", "get")

    assert list(watch["responses"]["200"]["content"]) == ["application/x-ndjson"]


def test_every_operation_not_exempt_requires_a_bearer_token(document: dict[str, Any]) -> None:
    for item in document["paths"].values():
        for op in item.values():
            exempt = op["x-grpc-method"].startswith("/gwtest.records.v1.SessionService/")
            assert op["security"] == ([] if exempt else [{"bearerAuth": []}, {"cookieAuth": []}])
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert document["components"]["securitySchemes"]["cookieAuth"]["name"] == "session_token"


def test_errors_are_google_rpc_status(document: dict[str, Any]) -> None:
    error = document["components"]["responses"]["Error"]["content"]["application/json"]["schema"]
    status = schema(document, "google.rpc.Status")

    assert error == {"$ref": "#/components/schemas/google.rpc.Status"}
    assert set(status["properties"]) == {"code", "message", "details"}
    for item in document["paths"].values():
        for op in item.values():
            assert op["responses"]["default"] == {"$ref": "#/components/responses/Error"}
