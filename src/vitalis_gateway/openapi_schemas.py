"""JSON Schemas (OpenAPI 3.1) for protobuf messages, following the proto3 JSON mapping.

Field names are the lowerCamel JSON names, 64-bit integers are strings, enums are their value
names, well-known types take their JSON form (Timestamp as an RFC 3339 string, Duration as
``"1.5s"``, FieldMask as a comma-separated string, wrappers as nullable scalars).
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor_pb2 import FieldDescriptorProto as FieldType

from vitalis_gateway.api import ApiSurface, Field, Message

STATUS_SCHEMA = "google.rpc.Status"
HTTP_BODY = "google.api.HttpBody"
_INT64: dict[str, Any] = {"type": "string", "format": "int64"}
_UINT64: dict[str, Any] = {"type": "string", "format": "uint64"}
_INT32: dict[str, Any] = {"type": "integer", "format": "int32"}
_UINT32: dict[str, Any] = {"type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295}
_SCALARS: dict[int, dict[str, Any]] = {
    FieldType.TYPE_INT64: _INT64,
    FieldType.TYPE_SFIXED64: _INT64,
    FieldType.TYPE_SINT64: _INT64,
    FieldType.TYPE_UINT64: _UINT64,
    FieldType.TYPE_FIXED64: _UINT64,
    FieldType.TYPE_INT32: _INT32,
    FieldType.TYPE_SFIXED32: _INT32,
    FieldType.TYPE_SINT32: _INT32,
    FieldType.TYPE_UINT32: _UINT32,
    FieldType.TYPE_FIXED32: _UINT32,
    FieldType.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldType.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldType.TYPE_BOOL: {"type": "boolean"},
    FieldType.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
    FieldType.TYPE_STRING: {"type": "string"},
}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "type": [schema["type"], "null"]}


_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {
        "type": "string",
        "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$",
        "examples": ["1.5s"],
    },
    "google.protobuf.FieldMask": {
        "type": "string",
        "description": "Comma-separated field paths in lowerCamel form, e.g. `givenName,timeZone`.",
    },
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
        "additionalProperties": True,
    },
    "google.protobuf.DoubleValue": _nullable({"type": "number", "format": "double"}),
    "google.protobuf.FloatValue": _nullable({"type": "number", "format": "float"}),
    "google.protobuf.Int64Value": _nullable({"type": "string", "format": "int64"}),
    "google.protobuf.UInt64Value": _nullable({"type": "string", "format": "uint64"}),
    "google.protobuf.Int32Value": _nullable({"type": "integer", "format": "int32"}),
    "google.protobuf.UInt32Value": _nullable({"type": "integer", "format": "int64", "minimum": 0}),
    "google.protobuf.BoolValue": _nullable({"type": "boolean"}),
    "google.protobuf.StringValue": _nullable({"type": "string"}),
    "google.protobuf.BytesValue": _nullable({"type": "string", "contentEncoding": "base64"}),
}

STATUS_COMPONENT: dict[str, Any] = {
    "type": "object",
    "description": (
        "The error model of every Vitalis API (google.rpc.Status). `details` carries a "
        "`google.rpc.ErrorInfo` (a stable UPPER_SNAKE_CASE `reason` and the `domain` "
        "`<service>.vitalis`) and, for invalid requests, a `google.rpc.BadRequest` with field violations."
    ),
    "properties": {
        "code": {"type": "integer", "format": "int32", "description": "The google.rpc.Code value."},
        "message": {"type": "string", "description": "A developer-facing explanation of the error."},
        "details": {
            "type": "array",
            "items": _WELL_KNOWN["google.protobuf.Any"],
            "description": "Machine-readable details: ErrorInfo, BadRequest, ...",
        },
    },
    "required": ["code", "message"],
}


def component_ref(full_name: str) -> dict[str, Any]:
    """A ``$ref`` to a schema under ``components/schemas``."""
    return {"$ref": f"#/components/schemas/{full_name}"}


def is_scalar_like(field: Field) -> bool:
    """True when the field's JSON form is a single value (usable as a query parameter)."""
    if field.kind != FieldType.TYPE_MESSAGE:
        return True
    return field.type_name in _WELL_KNOWN and field.type_name not in (
        "google.protobuf.Struct",
        "google.protobuf.Any",
        "google.protobuf.ListValue",
        "google.protobuf.Empty",
    )


def is_map(api: ApiSurface, field: Field) -> bool:
    """True for a ``map<K, V>`` field."""
    return field.kind == FieldType.TYPE_MESSAGE and api.message(field.type_name).is_map_entry


class SchemaCatalog:
    """Builds schemas on demand and collects every message and enum they reference."""

    def __init__(self, api: ApiSurface) -> None:
        self._api = api
        self._pending: list[str] = []
        self._seen: set[str] = set()

    def ref(self, type_name: str) -> dict[str, Any]:
        """A reference to a message or enum, inlined for well-known types."""
        if type_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[type_name])
        if type_name not in self._seen:
            self._seen.add(type_name)
            self._pending.append(type_name)
        return component_ref(type_name)

    def message_schema(self, message: Message, *, omit: frozenset[str] = frozenset()) -> dict[str, Any]:
        """An object schema of ``message``, leaving out the top-level fields named in ``omit``."""
        properties = {f.json_name: self.field_schema(f) for f in message.fields if f.name not in omit}
        schema: dict[str, Any] = {"type": "object"}
        if message.comment:
            schema["description"] = message.comment
        schema["properties"] = properties
        required = [f.json_name for f in message.fields if "REQUIRED" in f.behaviors and f.name not in omit]
        if required:
            schema["required"] = required
        return schema

    def field_schema(self, field: Field, *, with_description: bool = True) -> dict[str, Any]:
        """The schema of one field, with its comment, behaviours, repetition and map shape."""
        if is_map(self._api, field):
            entry = self._api.message(field.type_name)
            schema: dict[str, Any] = {
                "type": "object",
                "additionalProperties": self._single_value(entry.field_named("value")),
            }
        elif field.repeated:
            schema = {"type": "array", "items": self._single_value(field)}
        else:
            schema = self._single_value(field)
        if with_description and field.comment:
            schema["description"] = field.comment + (
                f"\n\nAt most one field of `{field.oneof}` is set." if field.oneof else ""
            )
        if "OUTPUT_ONLY" in field.behaviors:
            schema["readOnly"] = True
        if "INPUT_ONLY" in field.behaviors:
            schema["writeOnly"] = True
        if field.deprecated:
            schema["deprecated"] = True
        return schema

    def _single_value(self, field: Field) -> dict[str, Any]:
        if field.kind in (FieldType.TYPE_MESSAGE, FieldType.TYPE_ENUM, FieldType.TYPE_GROUP):
            return self.ref(field.type_name)
        return dict(_SCALARS.get(field.kind, {"type": "string"}))

    def components(self) -> dict[str, Any]:
        """Every referenced message and enum (transitively), sorted by name, plus the error model."""
        built: dict[str, Any] = {STATUS_SCHEMA: STATUS_COMPONENT}
        while self._pending:
            name = self._pending.pop()
            if name == STATUS_SCHEMA:
                continue
            if name in self._api.enums:
                built[name] = self._enum_schema(name)
            else:
                built[name] = self.message_schema(self._api.message(name))
        return dict(sorted(built.items()))

    def _enum_schema(self, name: str) -> dict[str, Any]:
        enum = self._api.enums[name]
        lines = [enum.comment] if enum.comment else []
        lines += [f"- `{v.name}`: {v.comment}" if v.comment else f"- `{v.name}`" for v in enum.values]
        return {"type": "string", "enum": [v.name for v in enum.values], "description": "\n".join(lines)}
