"""Sources, devices and source priorities."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

import asyncpg

from vitalis_ingestion.domain.sources import Device, Source, SourcePriority
from vitalis_runtime.errors import AlreadyExists

SOURCE_COLUMNS: Final = """source_id, display_name, platform, app_id, devices, metric_types, version,
    create_time, update_time, last_write_time, user_id"""
DEVICE_COLUMNS: Final = """device_id, display_name, device_type, manufacturer, model, hardware_version,
    firmware_version, hardware_id, version, create_time, update_time, user_id"""
SOURCE_MUTABLE: Final = frozenset({"display_name", "devices"})
DEVICE_MUTABLE: Final = frozenset(
    {"display_name", "device_type", "manufacturer", "model", "hardware_version", "firmware_version"}
)


def _source(record: asyncpg.Record) -> Source:
    return Source(
        user_id=record["user_id"],
        source_id=record["source_id"],
        display_name=record["display_name"],
        platform=record["platform"],
        app_id=record["app_id"],
        devices=list(record["devices"]),
        metric_types=list(record["metric_types"]),
        version=record["version"],
        create_time=record["create_time"],
        update_time=record["update_time"],
        last_write_time=record["last_write_time"],
    )


def _device(record: asyncpg.Record) -> Device:
    return Device(**{key: record[key] for key in record.keys()})  # noqa: SIM118 - asyncpg records


class SourceStore:
    """SQL for sources, devices and the source priority."""

    async def create_source(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, values: Mapping[str, Any], request_id: str | None
    ) -> Source:
        """Insert a source; ALREADY_EXISTS when the ID is taken."""
        if request_id:
            earlier = await conn.fetchrow(
                f"SELECT {SOURCE_COLUMNS} FROM sources WHERE user_id = $1 AND request_id = $2",
                user_id,
                request_id,
            )
            if earlier is not None:
                return _source(earlier)
        record = await conn.fetchrow(
            f"""INSERT INTO sources (user_id, source_id, display_name, platform, app_id, devices, request_id)
                VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING {SOURCE_COLUMNS}""",
            user_id,
            values["source_id"],
            values["display_name"],
            values["platform"],
            values["app_id"],
            list(values["devices"]),
            request_id or None,
        )
        if record is None:
            raise AlreadyExists(
                f"source {values['source_id']!r} already exists", reason="SOURCE_ALREADY_EXISTS"
            )
        return _source(record)

    async def ensure_source(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        *,
        source_id: str,
        display_name: str,
        platform: int,
        app_id: str,
    ) -> None:
        """Create a source an importer found in a file, unless it exists."""
        await conn.execute(
            """INSERT INTO sources (user_id, source_id, display_name, platform, app_id)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
            user_id,
            source_id,
            display_name,
            platform,
            app_id,
        )

    async def get_source(self, conn: asyncpg.Connection, user_id: uuid.UUID, source_id: str) -> Source | None:
        """One source, or ``None``."""
        record = await conn.fetchrow(
            f"SELECT {SOURCE_COLUMNS} FROM sources WHERE user_id = $1 AND source_id = $2",
            user_id,
            source_id,
        )
        return None if record is None else _source(record)

    async def existing_source_ids(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, source_ids: Sequence[str]
    ) -> set[str]:
        """Which of ``source_ids`` exist."""
        records = await conn.fetch(
            "SELECT source_id FROM sources WHERE user_id = $1 AND source_id = ANY($2::text[])",
            user_id,
            source_ids,
        )
        return {record["source_id"] for record in records}

    async def existing_device_ids(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, device_ids: Sequence[str]
    ) -> set[str]:
        """Which of ``device_ids`` exist."""
        records = await conn.fetch(
            "SELECT device_id FROM devices WHERE user_id = $1 AND device_id = ANY($2::text[])",
            user_id,
            device_ids,
        )
        return {record["device_id"] for record in records}

    async def list_sources(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, *, after: str | None, limit: int
    ) -> list[Source]:
        """Sources in ID order after a cursor."""
        records = await conn.fetch(
            f"""SELECT {SOURCE_COLUMNS} FROM sources
                WHERE user_id = $1 AND ($2::text IS NULL OR source_id > $2)
                ORDER BY source_id LIMIT $3""",
            user_id,
            after,
            limit,
        )
        return [_source(record) for record in records]

    async def update_source(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, source_id: str, changes: Mapping[str, Any]
    ) -> Source | None:
        """Apply ``changes`` (mutable fields only) and bump the version."""
        record = await conn.fetchrow(
            f"""UPDATE sources SET display_name = coalesce($3, display_name),
                       devices = coalesce($4::text[], devices), version = version + 1, update_time = now()
                WHERE user_id = $1 AND source_id = $2 RETURNING {SOURCE_COLUMNS}""",
            user_id,
            source_id,
            changes.get("display_name"),
            list(changes["devices"]) if "devices" in changes else None,
        )
        return None if record is None else _source(record)

    async def source_has_data(self, conn: asyncpg.Connection, user_id: uuid.UUID, source_id: str) -> bool:
        """Whether any sample or record was written by the source."""
        found: bool = await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM samples WHERE user_id = $1 AND source_id = $2)
                   OR EXISTS (SELECT 1 FROM records WHERE user_id = $1 AND source_id = $2)""",
            user_id,
            source_id,
        )
        return found

    async def delete_source(self, conn: asyncpg.Connection, user_id: uuid.UUID, source_id: str) -> int:
        """Delete a source with its samples and records; return how many data rows went with it."""
        samples = await conn.execute(
            "DELETE FROM samples WHERE user_id = $1 AND source_id = $2", user_id, source_id
        )
        records = await conn.execute(
            "DELETE FROM records WHERE user_id = $1 AND source_id = $2", user_id, source_id
        )
        await conn.execute("DELETE FROM sources WHERE user_id = $1 AND source_id = $2", user_id, source_id)
        return int(samples.split()[-1]) + int(records.split()[-1])

    async def create_device(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, values: Mapping[str, Any], request_id: str | None
    ) -> Device:
        """Insert a device; ALREADY_EXISTS when the ID is taken."""
        if request_id:
            earlier = await conn.fetchrow(
                f"SELECT {DEVICE_COLUMNS} FROM devices WHERE user_id = $1 AND request_id = $2",
                user_id,
                request_id,
            )
            if earlier is not None:
                return _device(earlier)
        record = await conn.fetchrow(
            f"""INSERT INTO devices (user_id, device_id, display_name, device_type, manufacturer, model,
                                     hardware_version, firmware_version, hardware_id, request_id)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING
                RETURNING {DEVICE_COLUMNS}""",
            user_id,
            values["device_id"],
            values["display_name"],
            values["device_type"],
            values["manufacturer"],
            values["model"],
            values["hardware_version"],
            values["firmware_version"],
            values["hardware_id"],
            request_id or None,
        )
        if record is None:
            raise AlreadyExists(
                f"device {values['device_id']!r} already exists", reason="DEVICE_ALREADY_EXISTS"
            )
        return _device(record)

    async def get_device(self, conn: asyncpg.Connection, user_id: uuid.UUID, device_id: str) -> Device | None:
        """One device, or ``None``."""
        record = await conn.fetchrow(
            f"SELECT {DEVICE_COLUMNS} FROM devices WHERE user_id = $1 AND device_id = $2",
            user_id,
            device_id,
        )
        return None if record is None else _device(record)

    async def list_devices(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, *, after: str | None, limit: int
    ) -> list[Device]:
        """Devices in ID order after a cursor."""
        records = await conn.fetch(
            f"""SELECT {DEVICE_COLUMNS} FROM devices
                WHERE user_id = $1 AND ($2::text IS NULL OR device_id > $2)
                ORDER BY device_id LIMIT $3""",
            user_id,
            after,
            limit,
        )
        return [_device(record) for record in records]

    async def update_device(
        self, conn: asyncpg.Connection, user_id: uuid.UUID, device_id: str, changes: Mapping[str, Any]
    ) -> Device | None:
        """Apply ``changes`` (mutable fields only) and bump the version."""
        record = await conn.fetchrow(
            f"""UPDATE devices SET display_name = coalesce($3, display_name),
                       device_type = coalesce($4, device_type), manufacturer = coalesce($5, manufacturer),
                       model = coalesce($6, model), hardware_version = coalesce($7, hardware_version),
                       firmware_version = coalesce($8, firmware_version),
                       version = version + 1, update_time = now()
                WHERE user_id = $1 AND device_id = $2 RETURNING {DEVICE_COLUMNS}""",
            user_id,
            device_id,
            *(
                changes.get(key)
                for key in (
                    "display_name",
                    "device_type",
                    "manufacturer",
                    "model",
                    "hardware_version",
                    "firmware_version",
                )
            ),
        )
        return None if record is None else _device(record)

    async def delete_device(self, conn: asyncpg.Connection, user_id: uuid.UUID, device_id: str) -> None:
        """Delete a device and unlink it from sources and samples."""
        await conn.execute("DELETE FROM devices WHERE user_id = $1 AND device_id = $2", user_id, device_id)
        await conn.execute(
            "UPDATE sources SET devices = array_remove(devices, $2) WHERE user_id = $1 AND $2 = ANY(devices)",
            user_id,
            device_id,
        )

    async def get_priority(self, conn: asyncpg.Connection, user_id: uuid.UUID) -> SourcePriority:
        """The user's source priority (empty until set)."""
        record = await conn.fetchrow(
            "SELECT default_order, metric_orders, version, update_time FROM source_priorities "
            "WHERE user_id = $1",
            user_id,
        )
        if record is None:
            return SourcePriority(user_id, [], {}, 0, None)
        return SourcePriority(
            user_id=user_id,
            default_order=list(record["default_order"]),
            metric_orders={int(key): list(value) for key, value in record["metric_orders"].items()},
            version=record["version"],
            update_time=record["update_time"],
        )

    async def save_priority(
        self,
        conn: asyncpg.Connection,
        user_id: uuid.UUID,
        default_order: Sequence[str],
        metric_orders: Mapping[int, Sequence[str]],
    ) -> SourcePriority:
        """Replace the user's source priority."""
        await conn.execute(
            """INSERT INTO source_priorities (user_id, default_order, metric_orders) VALUES ($1, $2, $3)
               ON CONFLICT (user_id) DO UPDATE SET default_order = EXCLUDED.default_order,
                   metric_orders = EXCLUDED.metric_orders, version = source_priorities.version + 1,
                   update_time = now()""",
            user_id,
            list(default_order),
            {str(key): list(value) for key, value in metric_orders.items()},
        )
        return await self.get_priority(conn, user_id)
