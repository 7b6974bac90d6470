"""Tenant isolation (BOLA) and mass assignment, over every resource the contracts expose.

The attack matrix is generated from the descriptor set: every public method whose HTTP binding takes
a resource name (``name``, ``parent`` or ``<resource>.name``) is called by A with each of B's
resource names, over direct gRPC and over REST through Envoy. Each answer must be a failure that is
indistinguishable (same code, same message once the ids are masked) from the answer for a name that
never existed. B's resources are whatever B owns after seeding B with the demo data through the
services' own contracts, discovered by B listing every collection it can reach. A new RPC or
resource is covered without touching this file.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import httpx
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message as ProtoMessage

from vitalis_cli.demo_fixtures import default_fixtures_root
from vitalis_cli.demo_loaders import DEMO_KINDS, SeedContext
from vitalis_cli.platform import Platform
from vitalis_cli.project import find_project_root
from vitalis_cli.testing import SignedUpUser, import_generated_modules, message_class, sign_up
from vitalis_gateway.api import ApiSurface, Method, load_api_surface
from vitalis_runtime.catalog import SERVICES

pytestmark = [pytest.mark.security, pytest.mark.timeout(600)]
logger = logging.getLogger(__name__)

VARIABLE = re.compile(r"\{([a-z_.]+)=([^}]+)\}")
UUIDISH = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
STREAM_WAIT_SECONDS = 3.0
DESTRUCTIVE = ("Delete", "Purge", "Erase", "Revoke", "Cancel")


@dataclass(frozen=True)
class Target:
    """A method whose HTTP binding carries one resource-name variable."""

    method: Method
    field_path: str
    pattern: re.Pattern[str]
    verb: str
    path_template: str
    body: str

    def rest_path(self, name: str) -> str:
        return VARIABLE.sub(name, self.path_template, count=1)


@dataclass(frozen=True)
class Outcome:
    """What a caller learned: a status and its message with every id masked."""

    code: str
    message: str


def _pattern(template: str) -> re.Pattern[str]:
    escaped = re.escape(template).replace(r"\*\*", ".+").replace(r"\*", "[^/]+")
    return re.compile(f"^{escaped}$")


def targets(surface: ApiSurface) -> list[Target]:
    found: list[Target] = []
    for method in surface.methods():
        if not method.is_public or method.client_streaming:
            continue
        for binding in method.bindings[:1]:
            variables = VARIABLE.findall(binding.path)
            if len(variables) != 1:
                continue
            field_path, template = variables[0]
            if field_path != "name" and field_path != "parent" and not field_path.endswith(".name"):
                continue
            found.append(
                Target(method, field_path, _pattern(template), binding.verb, binding.path, binding.body)
            )
    # Destructive methods run last, so that every other method meets B's resources intact.
    return sorted(found, key=lambda t: (t.method.name.startswith(DESTRUCTIVE), t.method.full_name))


def request_for(target: Target, name: str) -> ProtoMessage:
    document: dict[str, Any] = {}
    cursor = document
    parts = target.field_path.split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = name
    message = message_class(target.method.input_type)()
    json_format.ParseDict(document, message, ignore_unknown_fields=False)
    return message


def decoy_for(name: str) -> str:
    """The same name under a user that never existed, every generated id replaced, natural keys kept."""
    segments = name.split("/")
    return "/".join(
        str(uuid.uuid4()) if i == 1 or (i % 2 == 1 and UUIDISH.fullmatch(s)) else s
        for i, s in enumerate(segments)
    )


def mask(text: str, *names: str) -> str:
    for name in names:
        for segment in name.split("/")[1::2]:
            text = text.replace(segment, "<id>")
    return UUIDISH.sub("<id>", text)


async def grpc_outcome(channel: grpc.aio.Channel, target: Target, name: str, user: SignedUpUser) -> Outcome:
    method = target.method
    request = request_for(target, name)
    serialize = type(request).SerializeToString
    deserialize = message_class(method.output_type).FromString
    try:
        if method.server_streaming:
            call = channel.unary_stream(method.grpc_path, serialize, deserialize)
            stream = call(request, metadata=user.metadata)
            try:
                await asyncio.wait_for(stream.read(), timeout=STREAM_WAIT_SECONDS)
            except TimeoutError:
                # An open, silent stream on someone else's resource is an accepted call.
                return Outcome("OK", "stream open")
            finally:
                stream.cancel()
        else:
            unary = channel.unary_unary(method.grpc_path, serialize, deserialize)
            await unary(request, metadata=user.metadata, timeout=15)
    except grpc.aio.AioRpcError as error:
        return Outcome(error.code().name, mask(error.details() or "", name))
    return Outcome("OK", "")


async def rest_outcome(gateway: httpx.AsyncClient, target: Target, name: str, user: SignedUpUser) -> Outcome:
    path = target.rest_path(name)
    body = None if target.verb in ("get", "delete") else {}
    try:
        async with gateway.stream(
            target.verb.upper(), path, json=body, headers=user.headers, timeout=STREAM_WAIT_SECONDS + 10
        ) as response:
            if response.status_code < 300 and target.method.server_streaming:
                return Outcome(str(response.status_code), "stream open")
            text = (await response.aread()).decode(errors="replace")
    except httpx.ReadTimeout:
        return Outcome("200", "stream open")
    return Outcome(str(response.status_code), mask(text, name))


def succeeded(outcome: Outcome) -> bool:
    return outcome.code in ("OK",) or outcome.code.startswith("2")


async def list_names(
    channel: grpc.aio.Channel, target: Target, parent: str, user: SignedUpUser
) -> Iterator[str]:
    request = request_for(target, parent)
    if "page_size" in request.DESCRIPTOR.fields_by_name:
        request.page_size = 100  # type: ignore[attr-defined]
    unary = channel.unary_unary(
        target.method.grpc_path,
        type(request).SerializeToString,
        message_class(target.method.output_type).FromString,
    )
    try:
        response = await unary(request, metadata=user.metadata, timeout=15)
    except grpc.aio.AioRpcError:
        return iter(())
    names: list[str] = []
    for field, value in response.ListFields():
        if field.is_repeated and field.message_type is not None:
            names += [item.name for item in value if "name" in item.DESCRIPTOR.fields_by_name and item.name]
    return iter(names)


async def discover(
    channels: dict[str, grpc.aio.Channel], surface_targets: list[Target], owner: SignedUpUser
) -> list[str]:
    """Every resource name ``owner`` can reach by listing, breadth first from the user itself."""
    found = [owner.name]
    queue = [owner.name]
    while queue:
        parent = queue.pop(0)
        for target in surface_targets:
            if target.field_path != "parent" or not target.method.name.startswith("List"):
                continue
            if target.method.server_streaming or not target.pattern.match(parent):
                continue
            channel = channels[target.method.service.split(".")[1]]
            for name in await list_names(channel, target, parent, owner):
                if name not in found and name.startswith(owner.name):
                    found.append(name)
                    queue.append(name)
    return found


async def seed(platform: Platform, owner: SignedUpUser, channels: dict[str, grpc.aio.Channel]) -> None:
    fixtures = default_fixtures_root(find_project_root(Path.cwd()))
    context = SeedContext(owner.name, owner.access_token, fixtures, channels)
    for kind in DEMO_KINDS:
        if kind.load is None:
            continue
        try:
            await kind.load(context)
        except Exception:
            logger.warning("seeding %s failed", kind.description, exc_info=True)


async def test_no_user_reaches_another_users_resources(
    platform: Platform, gateway: httpx.AsyncClient, figure: Callable[[str, object, str, bool], None]
) -> None:
    import_generated_modules()
    surface = load_api_surface(find_project_root(Path.cwd()) / "gen" / "descriptors" / "vitalis.binpb")
    matrix = targets(surface)
    victim = await sign_up(gateway)
    attacker = await sign_up(gateway)
    channels = {spec.name: grpc.aio.insecure_channel(platform.service_target(spec.name)) for spec in SERVICES}
    try:
        await seed(platform, victim, channels)
        names = await discover(channels, matrix, victim)
        attempts = successes = leaks = 0
        failures: list[str] = []
        for target in matrix:
            channel = channels[target.method.service.split(".")[1]]
            for name in names:
                if not target.pattern.match(name):
                    continue
                decoy = decoy_for(name)
                for transport in ("grpc", "rest"):
                    if transport == "grpc":
                        attack = await grpc_outcome(channel, target, name, attacker)
                        control = await grpc_outcome(channel, target, decoy, attacker)
                    else:
                        attack = await rest_outcome(gateway, target, name, attacker)
                        control = await rest_outcome(gateway, target, decoy, attacker)
                    attempts += 1
                    if succeeded(attack):
                        successes += 1
                        failures.append(f"{transport} {target.method.full_name} {name}: {attack}")
                    elif attack != control:
                        leaks += 1
                        failures.append(
                            f"{transport} {target.method.full_name} {name}: {attack} differs from {control}"
                        )
        still_there = [name for name in await discover(channels, matrix, victim) if name in names]
    finally:
        for channel in channels.values():
            await channel.close()
    figure("cross-tenant successes / attempts", f"{successes}/{attempts}", "0/n", successes == 0)
    figure("distinguishable refusals / attempts", f"{leaks}/{attempts}", "0/n", leaks == 0)
    figure("victim resources discovered", len(names), ">= 3", len(names) >= 3)
    assert attempts > 0
    assert failures == []
    assert len(names) >= 3
    assert still_there == names


FORGED_TEXT = "forged-by-client"
FORGED_SECONDS = 978_307_200  # 2001-01-01T00:00:00Z


def forge_output_only_fields(resource: ProtoMessage, surface: ApiSurface) -> list[str]:
    """Set every top-level output-only field of ``resource`` to a forged value; return their paths."""
    forged: list[str] = []
    described = surface.message(resource.DESCRIPTOR.full_name)
    for field in resource.DESCRIPTOR.fields:
        if "OUTPUT_ONLY" not in described.field_named(field.name).behaviors or field.name == "name":
            continue
        if field.is_repeated:
            continue
        if field.message_type is not None and field.message_type.full_name == "google.protobuf.Timestamp":
            getattr(resource, field.name).seconds = FORGED_SECONDS
        elif field.type == field.TYPE_STRING:
            setattr(resource, field.name, FORGED_TEXT)
        elif field.type == field.TYPE_ENUM:
            values = [v.number for v in field.enum_type.values if v.number != getattr(resource, field.name)]
            if not values:
                continue
            setattr(resource, field.name, values[-1])
        elif field.type == field.TYPE_BOOL:
            setattr(resource, field.name, not getattr(resource, field.name))
        elif field.type in (field.TYPE_INT32, field.TYPE_INT64, field.TYPE_DOUBLE, field.TYPE_FLOAT):
            setattr(resource, field.name, 987_654)
        else:
            continue
        forged.append(field.name)
    return forged


async def test_server_owned_fields_sent_by_a_client_are_never_stored(
    platform: Platform, gateway: httpx.AsyncClient, figure: Callable[[str, object, str, bool], None]
) -> None:
    import_generated_modules()
    surface = load_api_surface(find_project_root(Path.cwd()) / "gen" / "descriptors" / "vitalis.binpb")
    matrix = targets(surface)
    owner = await sign_up(gateway)
    channels = {spec.name: grpc.aio.insecure_channel(platform.service_target(spec.name)) for spec in SERVICES}
    attempts = stored = 0
    problems: list[str] = []
    try:
        await seed(platform, owner, channels)
        names = await discover(channels, matrix, owner)
        getters = [t for t in matrix if t.method.name.startswith("Get") and t.field_path == "name"]
        updaters = [
            t for t in matrix if t.method.name.startswith("Update") and t.field_path.endswith(".name")
        ]
        for name in names:
            getter = next(
                (t for t in getters if t.pattern.match(name) and not t.method.server_streaming), None
            )
            if getter is None:
                continue
            channel = channels[getter.method.service.split(".")[1]]
            get = channel.unary_unary(
                getter.method.grpc_path,
                message_class(getter.method.input_type).SerializeToString,
                message_class(getter.method.output_type).FromString,
            )
            for updater in (t for t in updaters if t.pattern.match(name)):
                before = await get(request_for(getter, name), metadata=owner.metadata, timeout=15)
                resource_field = updater.field_path.split(".")[0]
                request = message_class(updater.method.input_type)()
                resource = getattr(request, resource_field)
                resource.CopyFrom(before)
                forged = forge_output_only_fields(resource, surface)
                if not forged:
                    continue
                if "update_mask" in request.DESCRIPTOR.fields_by_name:
                    request.update_mask.paths.extend(forged)  # type: ignore[attr-defined]
                update = channel.unary_unary(
                    updater.method.grpc_path,
                    type(request).SerializeToString,
                    message_class(updater.method.output_type).FromString,
                )
                attempts += 1
                try:
                    await update(request, metadata=owner.metadata, timeout=15)
                except grpc.aio.AioRpcError as error:
                    if error.code() not in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ABORTED):
                        problems.append(f"{updater.method.full_name} {name}: {error.code().name}")
                    continue
                after = await get(request_for(getter, name), metadata=owner.metadata, timeout=15)
                for field in forged:
                    if getattr(after, field) == getattr(resource, field):
                        stored += 1
                        problems.append(f"{updater.method.full_name} stored the client's {field}")
    finally:
        for channel in channels.values():
            await channel.close()
    figure("forged server-owned fields stored / updates", f"{stored}/{attempts}", "0/n", stored == 0)
    assert attempts > 0
    assert problems == []
