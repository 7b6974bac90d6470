"""vitalis.ingestion.v1.SourceService."""

from __future__ import annotations

import uuid

import grpc
from google.protobuf import empty_pb2

from vitalis.ingestion.v1 import source_pb2, source_service_pb2, source_service_pb2_grpc
from vitalis_ingestion.api.access import Access, parse_name, parse_parent, parse_singleton, short_source_id
from vitalis_ingestion.api.convert import timestamp, update_paths
from vitalis_ingestion.domain.metrics import metric_by_number
from vitalis_ingestion.domain.sources import Device, Source, SourcePriority, check_resource_id
from vitalis_ingestion.store.sources import DEVICE_MUTABLE, SOURCE_MUTABLE, SourceStore
from vitalis_runtime.db import Database
from vitalis_runtime.errors import Aborted, FailedPrecondition, InvalidArgument, NotFound
from vitalis_runtime.pagination import PageTokens, resolve_page_size

Context = grpc.aio.ServicerContext[object, object]


def source_to_proto(source: Source) -> source_pb2.Source:
    """A Source message."""
    user = f"users/{source.user_id}"
    message = source_pb2.Source(
        name=f"{user}/sources/{source.source_id}",
        display_name=source.display_name,
        platform=source.platform,  # type: ignore[arg-type]
        app_id=source.app_id,
        devices=[f"{user}/devices/{device}" for device in source.devices],
        metric_types=list(source.metric_types),  # type: ignore[arg-type]
        create_time=timestamp(source.create_time),
        update_time=timestamp(source.update_time),
        etag=source.etag,
    )
    if source.last_write_time is not None:
        message.last_write_time.CopyFrom(timestamp(source.last_write_time))
    return message


def device_to_proto(device: Device) -> source_pb2.Device:
    """A Device message."""
    return source_pb2.Device(
        name=f"users/{device.user_id}/devices/{device.device_id}",
        display_name=device.display_name,
        device_type=device.device_type,  # type: ignore[arg-type]
        manufacturer=device.manufacturer,
        model=device.model,
        hardware_version=device.hardware_version,
        firmware_version=device.firmware_version,
        hardware_id=device.hardware_id,
        create_time=timestamp(device.create_time),
        update_time=timestamp(device.update_time),
        etag=device.etag,
    )


def priority_to_proto(priority: SourcePriority) -> source_pb2.SourcePriority:
    """A SourcePriority message."""
    user = f"users/{priority.user_id}"
    message = source_pb2.SourcePriority(
        name=f"{user}/sourcePriority",
        default_order=[f"{user}/sources/{source}" for source in priority.default_order],
        metric_orders=[
            source_pb2.MetricSourceOrder(
                metric_type=metric,  # type: ignore[arg-type]
                sources=[f"{user}/sources/{source}" for source in sources],
            )
            for metric, sources in sorted(priority.metric_orders.items())
        ],
        etag=priority.etag,
    )
    if priority.update_time is not None:
        message.update_time.CopyFrom(timestamp(priority.update_time))
    return message


def _device_ids(names: list[str], user_id: uuid.UUID, field: str) -> list[str]:
    ids = []
    for index, name in enumerate(names):
        parsed = parse_name(name, "devices", field=f"{field}[{index}]")
        if parsed.user_id != user_id:
            raise InvalidArgument.for_field(f"{field}[{index}]", "must be a device of the same user")
        ids.append(parsed.resource_id)
    return ids


class SourceServicer(source_service_pb2_grpc.SourceServiceServicer):
    """Sources, devices and source priority."""

    def __init__(self, db: Database, store: SourceStore, access: Access, tokens: PageTokens) -> None:
        self._db = db
        self._store = store
        self._access = access
        self._tokens = tokens

    async def CreateSource(
        self, request: source_service_pb2.CreateSourceRequest, context: Context
    ) -> source_pb2.Source:
        """Register a source."""
        user_id = Access.owned(parse_parent(request.parent))
        source = request.source
        if not source.display_name:
            raise InvalidArgument.for_field("source.display_name", "is required")
        if source.platform not in source_pb2.SourcePlatform.values() or source.platform == 0:
            raise InvalidArgument.for_field("source.platform", "is required")
        source_id = (
            check_resource_id(request.source_id, "source_id")
            if request.source_id
            else f"s-{uuid.uuid4().hex[:20]}"
        )
        values = {
            "source_id": source_id,
            "display_name": source.display_name,
            "platform": source.platform,
            "app_id": source.app_id,
            "devices": _device_ids(list(source.devices), user_id, "source.devices"),
        }
        async with self._db.transaction(user_id=user_id) as conn:
            created = await self._store.create_source(conn, user_id, values, request.request_id or None)
        return source_to_proto(created)

    async def GetSource(
        self, request: source_service_pb2.GetSourceRequest, context: Context
    ) -> source_pb2.Source:
        """One source."""
        parsed = parse_name(request.name, "sources")
        user_id = await self._access.readable(parsed.user_id)
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            found = await self._store.get_source(conn, user_id, parsed.resource_id)
        if found is None:
            raise NotFound(f"source {request.name!r} does not exist", reason="SOURCE_NOT_FOUND")
        return source_to_proto(found)

    async def ListSources(
        self, request: source_service_pb2.ListSourcesRequest, context: Context
    ) -> source_service_pb2.ListSourcesResponse:
        """Sources in ID order."""
        user_id = await self._access.readable(parse_parent(request.parent))
        size = resolve_page_size(request.page_size, default=50, maximum=1000)
        fingerprint = {"op": "ListSources", "user": str(user_id)}
        cursor = self._tokens.decode(request.page_token, request=fingerprint)
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            found = await self._store.list_sources(conn, user_id, after=cursor.get("a"), limit=size + 1)
        page = found[:size]
        token = (
            self._tokens.encode({"a": page[-1].source_id}, request=fingerprint) if len(found) > size else ""
        )
        return source_service_pb2.ListSourcesResponse(
            sources=[source_to_proto(s) for s in page], next_page_token=token
        )

    async def UpdateSource(
        self, request: source_service_pb2.UpdateSourceRequest, context: Context
    ) -> source_pb2.Source:
        """Change the display name or devices."""
        parsed = parse_name(request.source.name, "sources", field="source.name")
        user_id = Access.owned(parsed.user_id)
        populated = [f.name for f, _ in request.source.ListFields() if f.name not in ("name", "etag")]
        paths = update_paths(list(request.update_mask.paths), populated, "source")
        immutable = [path for path in paths if path not in SOURCE_MUTABLE]
        if immutable:
            raise InvalidArgument.for_field("update_mask", f"{', '.join(immutable)} cannot be changed")
        changes: dict[str, object] = {}
        if "display_name" in paths:
            if not request.source.display_name:
                raise InvalidArgument.for_field("source.display_name", "must not be empty")
            changes["display_name"] = request.source.display_name
        if "devices" in paths:
            changes["devices"] = _device_ids(list(request.source.devices), user_id, "source.devices")
        async with self._db.transaction(user_id=user_id) as conn:
            current = await self._store.get_source(conn, user_id, parsed.resource_id)
            if current is None:
                raise NotFound(f"source {request.source.name!r} does not exist", reason="SOURCE_NOT_FOUND")
            if request.source.etag and request.source.etag != current.etag:
                raise Aborted("the source changed since it was read; read it again", reason="ETAG_MISMATCH")
            updated = await self._store.update_source(conn, user_id, parsed.resource_id, changes)
        assert updated is not None
        return source_to_proto(updated)

    async def DeleteSource(
        self, request: source_service_pb2.DeleteSourceRequest, context: Context
    ) -> empty_pb2.Empty:
        """Delete a source; with data only when ``force`` is set."""
        parsed = parse_name(request.name, "sources")
        user_id = Access.owned(parsed.user_id)
        async with self._db.transaction(user_id=user_id) as conn:
            current = await self._store.get_source(conn, user_id, parsed.resource_id)
            if current is None:
                raise NotFound(f"source {request.name!r} does not exist", reason="SOURCE_NOT_FOUND")
            if request.etag and request.etag != current.etag:
                raise Aborted("the source changed since it was read; read it again", reason="ETAG_MISMATCH")
            if not request.force and await self._store.source_has_data(conn, user_id, parsed.resource_id):
                raise FailedPrecondition(
                    "the source has samples or records; delete with force=true to delete them too",
                    reason="SOURCE_HAS_DATA",
                )
            await self._store.delete_source(conn, user_id, parsed.resource_id)
        return empty_pb2.Empty()

    async def CreateDevice(
        self, request: source_service_pb2.CreateDeviceRequest, context: Context
    ) -> source_pb2.Device:
        """Register a device."""
        user_id = Access.owned(parse_parent(request.parent))
        device = request.device
        if not device.display_name:
            raise InvalidArgument.for_field("device.display_name", "is required")
        if device.device_type == 0 or device.device_type not in source_pb2.DeviceType.values():
            raise InvalidArgument.for_field("device.device_type", "is required")
        device_id = (
            check_resource_id(request.device_id, "device_id")
            if request.device_id
            else f"d-{uuid.uuid4().hex[:20]}"
        )
        values = {
            "device_id": device_id,
            "display_name": device.display_name,
            "device_type": device.device_type,
            "manufacturer": device.manufacturer,
            "model": device.model,
            "hardware_version": device.hardware_version,
            "firmware_version": device.firmware_version,
            "hardware_id": device.hardware_id,
        }
        async with self._db.transaction(user_id=user_id) as conn:
            created = await self._store.create_device(conn, user_id, values, request.request_id or None)
        return device_to_proto(created)

    async def GetDevice(
        self, request: source_service_pb2.GetDeviceRequest, context: Context
    ) -> source_pb2.Device:
        """One device."""
        parsed = parse_name(request.name, "devices")
        user_id = await self._access.readable(parsed.user_id)
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            found = await self._store.get_device(conn, user_id, parsed.resource_id)
        if found is None:
            raise NotFound(f"device {request.name!r} does not exist", reason="DEVICE_NOT_FOUND")
        return device_to_proto(found)

    async def ListDevices(
        self, request: source_service_pb2.ListDevicesRequest, context: Context
    ) -> source_service_pb2.ListDevicesResponse:
        """Devices in ID order."""
        user_id = await self._access.readable(parse_parent(request.parent))
        size = resolve_page_size(request.page_size, default=50, maximum=1000)
        fingerprint = {"op": "ListDevices", "user": str(user_id)}
        cursor = self._tokens.decode(request.page_token, request=fingerprint)
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            found = await self._store.list_devices(conn, user_id, after=cursor.get("a"), limit=size + 1)
        page = found[:size]
        token = (
            self._tokens.encode({"a": page[-1].device_id}, request=fingerprint) if len(found) > size else ""
        )
        return source_service_pb2.ListDevicesResponse(
            devices=[device_to_proto(d) for d in page], next_page_token=token
        )

    async def UpdateDevice(
        self, request: source_service_pb2.UpdateDeviceRequest, context: Context
    ) -> source_pb2.Device:
        """Change a device's descriptive fields."""
        parsed = parse_name(request.device.name, "devices", field="device.name")
        user_id = Access.owned(parsed.user_id)
        populated = [f.name for f, _ in request.device.ListFields() if f.name not in ("name", "etag")]
        paths = update_paths(list(request.update_mask.paths), populated, "device")
        immutable = [path for path in paths if path not in DEVICE_MUTABLE]
        if immutable:
            raise InvalidArgument.for_field("update_mask", f"{', '.join(immutable)} cannot be changed")
        changes = {path: getattr(request.device, path) for path in paths}
        async with self._db.transaction(user_id=user_id) as conn:
            current = await self._store.get_device(conn, user_id, parsed.resource_id)
            if current is None:
                raise NotFound(f"device {request.device.name!r} does not exist", reason="DEVICE_NOT_FOUND")
            if request.device.etag and request.device.etag != current.etag:
                raise Aborted("the device changed since it was read; read it again", reason="ETAG_MISMATCH")
            updated = await self._store.update_device(conn, user_id, parsed.resource_id, changes)
        assert updated is not None
        return device_to_proto(updated)

    async def DeleteDevice(
        self, request: source_service_pb2.DeleteDeviceRequest, context: Context
    ) -> empty_pb2.Empty:
        """Delete a device; its samples stay."""
        parsed = parse_name(request.name, "devices")
        user_id = Access.owned(parsed.user_id)
        async with self._db.transaction(user_id=user_id) as conn:
            current = await self._store.get_device(conn, user_id, parsed.resource_id)
            if current is None:
                raise NotFound(f"device {request.name!r} does not exist", reason="DEVICE_NOT_FOUND")
            if request.etag and request.etag != current.etag:
                raise Aborted("the device changed since it was read; read it again", reason="ETAG_MISMATCH")
            await self._store.delete_device(conn, user_id, parsed.resource_id)
        return empty_pb2.Empty()

    async def GetSourcePriority(
        self, request: source_service_pb2.GetSourcePriorityRequest, context: Context
    ) -> source_pb2.SourcePriority:
        """The user's source priority."""
        user_id = await self._access.readable(parse_singleton(request.name, "sourcePriority"))
        async with self._db.transaction(user_id=user_id, readonly=True) as conn:
            return priority_to_proto(await self._store.get_priority(conn, user_id))

    async def UpdateSourcePriority(
        self, request: source_service_pb2.UpdateSourcePriorityRequest, context: Context
    ) -> source_pb2.SourcePriority:
        """Replace the default order and/or the per-metric orders."""
        message = request.source_priority
        user_id = Access.owned(parse_singleton(message.name, "sourcePriority", field="source_priority.name"))
        populated = [f.name for f, _ in message.ListFields() if f.name not in ("name", "etag")]
        paths = update_paths(list(request.update_mask.paths), populated, "source_priority")
        unknown = [path for path in paths if path not in ("default_order", "metric_orders")]
        if unknown:
            raise InvalidArgument.for_field("update_mask", f"{', '.join(unknown)} cannot be changed")
        async with self._db.transaction(user_id=user_id) as conn:
            current = await self._store.get_priority(conn, user_id)
            if message.etag and message.etag != current.etag:
                raise Aborted("the priority changed since it was read; read it again", reason="ETAG_MISMATCH")
            default = list(current.default_order)
            if "default_order" in paths:
                default = [
                    short_source_id(name, user_id, field=f"source_priority.default_order[{i}]")
                    for i, name in enumerate(message.default_order)
                ]
            orders = dict(current.metric_orders)
            if "metric_orders" in paths:
                orders = {}
                for i, entry in enumerate(message.metric_orders):
                    if metric_by_number(entry.metric_type) is None:
                        raise InvalidArgument.for_field(
                            f"source_priority.metric_orders[{i}].metric_type", "is required"
                        )
                    orders[entry.metric_type] = [
                        short_source_id(
                            name, user_id, field=f"source_priority.metric_orders[{i}].sources[{j}]"
                        )
                        for j, name in enumerate(entry.sources)
                    ]
            named = set(default) | {source for sources in orders.values() for source in sources}
            missing = named - await self._store.existing_source_ids(conn, user_id, sorted(named))
            if missing:
                raise InvalidArgument.for_field(
                    "source_priority", f"unknown sources: {', '.join(sorted(missing))}"
                )
            saved = await self._store.save_priority(conn, user_id, default, orders)
        return priority_to_proto(saved)
