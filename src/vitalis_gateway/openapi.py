"""The OpenAPI 3.1 document of the REST API, generated from the contracts' HTTP bindings.

One operation per ``google.api.http`` binding of every routed RPC; schemas from the messages with
their proto comments; ``google.rpc.Status`` as the error body; ``bearerAuth`` (or the session
cookie) on every operation that is not exempt from tokens.
"""

from __future__ import annotations

from typing import Any

from vitalis_gateway.api import ApiSurface, HttpBinding, Message, Method
from vitalis_gateway.openapi_schemas import (
    HTTP_BODY,
    STATUS_SCHEMA,
    SchemaCatalog,
    component_ref,
    is_map,
    is_scalar_like,
)
from vitalis_gateway.path_template import PathTemplate, parse_path_template
from vitalis_gateway.plan import GatewayPlan, RoutedMethod, plan_gateway
from vitalis_gateway.source import GatewaySource

OPENAPI_VERSION = "3.1.0"
_QUERY_DEPTH = 3
_RAW_CONTENT = {"*/*": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}}


def render_openapi(
    source: GatewaySource, *, title: str = "Vitalis API", version: str = "v1"
) -> dict[str, Any]:
    """The OpenAPI document of every routed RPC of ``source`` as a dict ready for JSON."""
    plan = plan_gateway(source)
    catalog = SchemaCatalog(source.api)
    paths: dict[str, dict[str, Any]] = {}
    for routed in plan.routed:
        for index, binding in enumerate(routed.method.bindings):
            template = parse_path_template(binding.path)
            operation = _operation(
                source.api, catalog=catalog, routed=routed, binding=binding, template=template, index=index
            )
            paths.setdefault(template.openapi_path, {})[binding.verb] = operation
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": (
                "REST/JSON access to Vitalis through its gateway. Every operation is also a gRPC "
                "method (`x-grpc-method`); errors are `google.rpc.Status` objects."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": _tags(source, plan),
        "paths": paths,
        "components": {
            "schemas": catalog.components(),
            "responses": {
                "Error": {
                    "description": "An error, as google.rpc.Status.",
                    "content": {"application/json": {"schema": component_ref(STATUS_SCHEMA)}},
                }
            },
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": source.authentication.token_cookie},
            },
        },
    }


def _tags(source: GatewaySource, plan: GatewayPlan) -> list[dict[str, str]]:
    services = dict.fromkeys(r.method.service for r in plan.routed)
    tags = []
    for full_name in services:
        service = source.api.service(full_name)
        tags.append({"name": service.name, "description": service.comment or full_name})
    return tags


def _operation(
    api: ApiSurface,
    *,
    catalog: SchemaCatalog,
    routed: RoutedMethod,
    binding: HttpBinding,
    template: PathTemplate,
    index: int,
) -> dict[str, Any]:
    method = routed.method
    request = api.message(method.input_type)
    path_fields = {path.split(".", 1)[0] for path in template.field_paths}
    operation: dict[str, Any] = {
        "operationId": f"{method.service.rsplit('.', 1)[-1]}_{method.name}" + (f"_{index}" if index else ""),
        "tags": [method.service.rsplit(".", 1)[-1]],
        "summary": _summary(method),
    }
    if method.comment:
        operation["description"] = method.comment
    parameters = [
        _path_parameter(request, p.name, p.field_path, p.field_template) for p in template.parameters
    ]
    if binding.body != "*":
        excluded = set(template.field_paths) | ({binding.body} if binding.body else set())
        parameters += _query_parameters(
            api, catalog=catalog, message=request, json_prefix="", proto_prefix="", excluded=excluded, depth=0
        )
    if parameters:
        operation["parameters"] = parameters
    if binding.body:
        operation["requestBody"] = _request_body(catalog, request, binding.body, frozenset(path_fields))
    operation["responses"] = {
        "200": _response(api, catalog, method, binding),
        "default": {"$ref": "#/components/responses/Error"},
    }
    operation["security"] = [] if routed.exempt else [{"bearerAuth": []}, {"cookieAuth": []}]
    operation["x-grpc-method"] = method.grpc_path
    if method.deprecated:
        operation["deprecated"] = True
    return operation


def _summary(method: Method) -> str:
    first = method.comment.split("\n\n", 1)[0].replace("\n", " ").strip()
    return first.split(". ", 1)[0].rstrip(".") if first else method.name


def _path_parameter(request: Message, name: str, field_path: str, field_template: str) -> dict[str, Any]:
    leaf = field_path.split(".", 1)[0]
    field = next((f for f in request.fields if f.name == leaf), None)
    described = f"`{name}` in `{field_template}`, part of the `{field_path}` field." if field_path else ""
    if field is not None and field.comment:
        described = f"{described}\n\n{field.comment}"
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[^/]+$"},
        "description": described.strip() or name,
    }


def _query_parameters(
    api: ApiSurface,
    *,
    catalog: SchemaCatalog,
    message: Message,
    json_prefix: str,
    proto_prefix: str,
    excluded: set[str],
    depth: int,
) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    for field in message.fields:
        proto_path = proto_prefix + field.name
        if proto_path in excluded or is_map(api, field) or field.type_name == HTTP_BODY:
            continue
        name = json_prefix + field.json_name
        if is_scalar_like(field):
            parameter: dict[str, Any] = {"name": name, "in": "query", "schema": catalog.field_schema(field)}
            if field.repeated:
                parameter.update(style="form", explode=True)
            if field.comment:
                parameter["description"] = parameter["schema"].pop("description", field.comment)
            parameters.append(parameter)
        elif not field.repeated and depth + 1 < _QUERY_DEPTH:
            nested = api.message(field.type_name)
            parameters += _query_parameters(
                api,
                catalog=catalog,
                message=nested,
                json_prefix=f"{name}.",
                proto_prefix=f"{proto_path}.",
                excluded=excluded,
                depth=depth + 1,
            )
    return parameters


def _request_body(
    catalog: SchemaCatalog, request: Message, body: str, path_fields: frozenset[str]
) -> dict[str, Any]:
    if body == "*":
        schema = (
            catalog.message_schema(request, omit=path_fields)
            if path_fields
            else catalog.ref(request.full_name)
        )
        return {"required": True, "content": {"application/json": {"schema": schema}}}
    field = request.field_named(body)
    if field.type_name == HTTP_BODY:
        return {
            "required": True,
            "description": "The raw bytes of the upload; their content type is kept.",
            "content": _RAW_CONTENT,
        }
    return {"required": True, "content": {"application/json": {"schema": catalog.field_schema(field)}}}


def _response(
    api: ApiSurface, catalog: SchemaCatalog, method: Method, binding: HttpBinding
) -> dict[str, Any]:
    if method.output_type == HTTP_BODY:
        return {
            "description": "The raw bytes of the response, with the content type the service sets.",
            "content": _RAW_CONTENT,
        }
    if binding.response_body:
        schema = catalog.field_schema(api.message(method.output_type).field_named(binding.response_body))
    else:
        schema = catalog.ref(method.output_type)
    if method.server_streaming:
        return {
            "description": "A stream of messages, one JSON object per line, sent as each one is produced.",
            "content": {"application/x-ndjson": {"schema": schema}},
        }
    return {"description": "Success.", "content": {"application/json": {"schema": schema}}}
