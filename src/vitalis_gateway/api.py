"""The API surface read from a descriptor set: services, methods, HTTP bindings, messages, comments.

Everything the gateway and the OpenAPI document need is taken from the contracts generically, so a
new RPC with a ``google.api.http`` annotation is routed and documented without touching the
generator.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from google.api import annotations_pb2, field_behavior_pb2, http_pb2  # type: ignore[import-untyped]
from google.protobuf import descriptor_pb2

_MESSAGE_TYPE = 4
_ENUM_TYPE = 5
_SERVICE = 6
_MESSAGE_FIELD = 2
_MESSAGE_NESTED = 3
_MESSAGE_ENUM = 4
_ENUM_VALUE = 2
_SERVICE_METHOD = 2
_HTTP_VERBS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class HttpBinding:
    """One ``google.api.http`` rule: verb, path template, body and response-body field."""

    verb: str
    path: str
    body: str = ""
    response_body: str = ""


@dataclass(frozen=True)
class Method:
    """One RPC with everything routing and documentation need."""

    service: str
    name: str
    input_type: str
    output_type: str
    client_streaming: bool
    server_streaming: bool
    bindings: tuple[HttpBinding, ...]
    comment: str
    deprecated: bool = False

    @property
    def full_name(self) -> str:
        """``<package>.<Service>/<Method>``, the form the gateway source uses."""
        return f"{self.service}/{self.name}"

    @property
    def grpc_path(self) -> str:
        """The HTTP/2 path a gRPC call of this method uses."""
        return f"/{self.service}/{self.name}"

    @property
    def is_public(self) -> bool:
        """A public RPC carries at least one HTTP binding; the others are internal-only."""
        return bool(self.bindings)

    @property
    def is_streaming(self) -> bool:
        """True when either side streams."""
        return self.client_streaming or self.server_streaming


@dataclass(frozen=True)
class Service:
    """One gRPC service of a proto package."""

    full_name: str
    package: str
    methods: tuple[Method, ...]
    comment: str

    @property
    def name(self) -> str:
        """The service name without its package."""
        return self.full_name.rsplit(".", 1)[-1]

    @property
    def has_bindings(self) -> bool:
        """True when at least one method is reachable over REST."""
        return any(m.is_public for m in self.methods)


@dataclass(frozen=True)
class Field:
    """One message field."""

    name: str
    json_name: str
    number: int
    kind: int
    type_name: str
    repeated: bool
    comment: str
    behaviors: frozenset[str] = frozenset()
    oneof: str | None = None
    deprecated: bool = False


@dataclass(frozen=True)
class Message:
    """One message type; map entries are kept so map fields can be described."""

    full_name: str
    fields: tuple[Field, ...]
    comment: str
    is_map_entry: bool = False

    def field_named(self, name: str) -> Field:
        """A field by proto name; ``KeyError`` names the message."""
        for candidate in self.fields:
            if candidate.name == name:
                return candidate
        raise KeyError(f"{self.full_name} has no field {name!r}")


@dataclass(frozen=True)
class EnumValue:
    """One value of an enum."""

    name: str
    number: int
    comment: str


@dataclass(frozen=True)
class Enum:
    """One enum type."""

    full_name: str
    values: tuple[EnumValue, ...]
    comment: str


@dataclass(frozen=True)
class ApiSurface:
    """Every service, message and enum of a descriptor set, plus the set itself."""

    services: tuple[Service, ...]
    messages: Mapping[str, Message]
    enums: Mapping[str, Enum]
    descriptor_set: descriptor_pb2.FileDescriptorSet = field(repr=False, compare=False)

    def service(self, full_name: str) -> Service:
        """A service by full name; ``KeyError`` names it."""
        for candidate in self.services:
            if candidate.full_name == full_name:
                return candidate
        raise KeyError(f"no service {full_name} in the descriptor set")

    def methods(self) -> Iterator[Method]:
        """Every method of every service, in declaration order."""
        for service in self.services:
            yield from service.methods

    def method(self, full_name: str) -> Method | None:
        """A method by ``<package>.<Service>/<Method>``, or ``None`` when absent."""
        return next((m for m in self.methods() if m.full_name == full_name), None)

    def message(self, full_name: str) -> Message:
        """A message by full name (no leading dot)."""
        return self.messages[full_name.lstrip(".")]


def load_api_surface(path: Path) -> ApiSurface:
    """Read a ``FileDescriptorSet`` (built with imports and source info) into an :class:`ApiSurface`."""
    return api_surface_from_set(descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes()))


def api_surface_from_set(descriptor_set: descriptor_pb2.FileDescriptorSet) -> ApiSurface:
    """Build the surface from an already parsed descriptor set."""
    services: list[Service] = []
    messages: dict[str, Message] = {}
    enums: dict[str, Enum] = {}
    for file in descriptor_set.file:
        comments = _comments_of(file)
        prefix = f"{file.package}." if file.package else ""
        for index, message in enumerate(file.message_type):
            _collect_message(
                message=message,
                prefix=prefix,
                path=(_MESSAGE_TYPE, index),
                comments=comments,
                messages=messages,
                enums=enums,
            )
        for index, enum in enumerate(file.enum_type):
            _collect_enum(enum, prefix, (_ENUM_TYPE, index), comments, enums)
        for index, service in enumerate(file.service):
            services.append(_service(service, file.package, (_SERVICE, index), comments))
    return ApiSurface(
        services=tuple(services),
        messages=MappingProxyType(messages),
        enums=MappingProxyType(enums),
        descriptor_set=descriptor_set,
    )


def _comments_of(file: descriptor_pb2.FileDescriptorProto) -> Mapping[tuple[int, ...], str]:
    found: dict[tuple[int, ...], str] = {}
    for location in file.source_code_info.location:
        text = location.leading_comments or location.trailing_comments
        if text:
            found[tuple(location.path)] = _clean_comment(text)
    return found


def _clean_comment(text: str) -> str:
    lines = [line[1:] if line.startswith(" ") else line for line in text.strip("\n").split("\n")]
    return "\n".join(lines).strip()


def _collect_message(
    *,
    message: descriptor_pb2.DescriptorProto,
    prefix: str,
    path: tuple[int, ...],
    comments: Mapping[tuple[int, ...], str],
    messages: dict[str, Message],
    enums: dict[str, Enum],
) -> None:
    full_name = prefix + message.name
    oneof_names = [o.name for o in message.oneof_decl]
    fields = tuple(
        Field(
            name=f.name,
            json_name=f.json_name or f.name,
            number=f.number,
            kind=f.type,
            type_name=f.type_name.lstrip("."),
            repeated=f.label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
            comment=comments.get((*path, _MESSAGE_FIELD, index), ""),
            behaviors=_behaviors(f),
            oneof=(
                oneof_names[f.oneof_index] if f.HasField("oneof_index") and not f.proto3_optional else None
            ),
            deprecated=f.options.deprecated,
        )
        for index, f in enumerate(message.field)
    )
    messages[full_name] = Message(
        full_name=full_name,
        fields=fields,
        comment=comments.get(path, ""),
        is_map_entry=message.options.map_entry,
    )
    for index, nested in enumerate(message.nested_type):
        _collect_message(
            message=nested,
            prefix=f"{full_name}.",
            path=(*path, _MESSAGE_NESTED, index),
            comments=comments,
            messages=messages,
            enums=enums,
        )
    for index, enum in enumerate(message.enum_type):
        _collect_enum(enum, f"{full_name}.", (*path, _MESSAGE_ENUM, index), comments, enums)


def _behaviors(field_proto: descriptor_pb2.FieldDescriptorProto) -> frozenset[str]:
    values: Sequence[int] = field_proto.options.Extensions[field_behavior_pb2.field_behavior]
    return frozenset(field_behavior_pb2.FieldBehavior.Name(value) for value in values)


def _collect_enum(
    enum: descriptor_pb2.EnumDescriptorProto,
    prefix: str,
    path: tuple[int, ...],
    comments: Mapping[tuple[int, ...], str],
    enums: dict[str, Enum],
) -> None:
    full_name = prefix + enum.name
    enums[full_name] = Enum(
        full_name=full_name,
        values=tuple(
            EnumValue(v.name, v.number, comments.get((*path, _ENUM_VALUE, index), ""))
            for index, v in enumerate(enum.value)
        ),
        comment=comments.get(path, ""),
    )


def _service(
    service: descriptor_pb2.ServiceDescriptorProto,
    package: str,
    path: tuple[int, ...],
    comments: Mapping[tuple[int, ...], str],
) -> Service:
    full_name = f"{package}.{service.name}" if package else service.name
    methods = tuple(
        Method(
            service=full_name,
            name=m.name,
            input_type=m.input_type.lstrip("."),
            output_type=m.output_type.lstrip("."),
            client_streaming=m.client_streaming,
            server_streaming=m.server_streaming,
            bindings=http_bindings(m.options),
            comment=comments.get((*path, _SERVICE_METHOD, index), ""),
            deprecated=m.options.deprecated,
        )
        for index, m in enumerate(service.method)
    )
    return Service(full_name=full_name, package=package, methods=methods, comment=comments.get(path, ""))


def http_bindings(options: descriptor_pb2.MethodOptions) -> tuple[HttpBinding, ...]:
    """A method's ``google.api.http`` rule and its additional bindings (none without the option)."""
    if not options.HasExtension(annotations_pb2.http):
        return ()
    rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
    return tuple(_binding(r) for r in (rule, *rule.additional_bindings))


def _binding(rule: http_pb2.HttpRule) -> HttpBinding:
    pattern = rule.WhichOneof("pattern")
    if pattern == "custom":
        verb, path = rule.custom.kind.lower(), rule.custom.path
    elif pattern in _HTTP_VERBS:
        verb, path = pattern, getattr(rule, pattern)
    else:
        raise ValueError(f"HTTP rule without a pattern: {rule}")
    return HttpBinding(verb=verb, path=path, body=rule.body, response_body=rule.response_body)
