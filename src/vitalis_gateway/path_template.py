"""``google.api.http`` path templates and their OpenAPI form.

A template such as ``/v1/{name=users/*/panels/*}:recompute`` binds the field ``name`` to two path
segments. OpenAPI path parameters cannot hold a slash (a client would send ``%2F``, which the
gateway rejects), so each wildcard becomes a parameter of its own:
``/v1/users/{user}/panels/{panel}:recompute``. The request field still receives the full
``users/…/panels/…`` value, because the gateway matches the real URL against the template.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_IRREGULAR_PLURALS = {"people": "person", "children": "child", "analyses": "analysis", "indices": "index"}
_FIELD_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class PathParameter:
    """One OpenAPI path parameter: its name, the request field it fills and the field's template."""

    name: str
    field_path: str
    field_template: str
    spans_segments: bool = False


@dataclass(frozen=True)
class PathTemplate:
    """A parsed template: the bound field paths and the OpenAPI path with its parameters."""

    template: str
    field_paths: tuple[str, ...]
    openapi_path: str
    parameters: tuple[PathParameter, ...]


def parse_path_template(template: str) -> PathTemplate:
    """Parse a path template; ``ValueError`` explains what is malformed."""
    if not template.startswith("/"):
        raise ValueError(f"path template {template!r} must start with '/'")
    body, verb = _split_verb(template)
    field_paths: list[str] = []
    parameters: list[PathParameter] = []
    used_names: set[str] = set()
    openapi_segments: list[str] = []
    for segment in _split_segments(body[1:], template):
        if not (segment.startswith("{") and segment.endswith("}")):
            openapi_segments.append(_plain_segment(segment, template, used_names, parameters))
            continue
        field_path, _, sub_template = segment[1:-1].partition("=")
        if not _FIELD_PATH.match(field_path):
            raise ValueError(f"bad field path {field_path!r} in {template!r}")
        field_paths.append(field_path)
        sub_template = sub_template or "*"
        parts = sub_template.split("/")
        for index, part in enumerate(parts):
            if part in ("*", "**"):
                name = _unique(_parameter_name(parts, index, field_path), used_names)
                parameters.append(PathParameter(name, field_path, sub_template, part == "**"))
                openapi_segments.append("{" + name + "}")
            elif part and "{" not in part and "*" not in part:
                openapi_segments.append(part)
            else:
                raise ValueError(f"bad segment {part!r} in {template!r}")
    openapi_path = "/" + "/".join(openapi_segments) + (f":{verb}" if verb else "")
    return PathTemplate(template, tuple(field_paths), openapi_path, tuple(parameters))


def _split_verb(template: str) -> tuple[str, str]:
    last_slash = template.rfind("/")
    last_brace = template.rfind("}")
    colon = template.rfind(":")
    if colon > max(last_slash, last_brace):
        return template[:colon], template[colon + 1 :]
    return template, ""


def _split_segments(path: str, template: str) -> list[str]:
    segments: list[str] = []
    depth = 0
    current = ""
    for char in path:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced braces in {template!r}")
        if char == "/" and depth == 0:
            segments.append(current)
            current = ""
        else:
            current += char
    if depth:
        raise ValueError(f"unbalanced braces in {template!r}")
    segments.append(current)
    if any(not s for s in segments):
        raise ValueError(f"empty segment in {template!r}")
    return segments


def _plain_segment(segment: str, template: str, used: set[str], parameters: list[PathParameter]) -> str:
    if segment in ("*", "**"):
        name = _unique("segment", used)
        parameters.append(PathParameter(name, "", segment, segment == "**"))
        return "{" + name + "}"
    if "{" in segment or "}" in segment or "*" in segment:
        raise ValueError(f"bad segment {segment!r} in {template!r}")
    return segment


def _parameter_name(parts: list[str], index: int, field_path: str) -> str:
    leaf = field_path.rsplit(".", 1)[-1]
    if index == 0 or parts[index - 1] in ("*", "**"):
        return leaf
    return _singular(parts[index - 1])


def _singular(collection: str) -> str:
    if collection in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[collection]
    if collection.endswith("ies"):
        return collection[:-3] + "y"
    if collection.endswith(("sses", "shes", "ches", "xes")):
        return collection[:-2]
    if collection.endswith("s") and not collection.endswith("ss"):
        return collection[:-1]
    return f"{collection}_id"


def _unique(name: str, used: set[str]) -> str:
    candidate, counter = name, 2
    while candidate in used:
        candidate = f"{name}{counter}"
        counter += 1
    used.add(candidate)
    return candidate
