"""Bringing the services' schemas up to date, shared by ``vitalis migrate`` and the platform."""

from __future__ import annotations

from collections.abc import Sequence

from vitalis_runtime.catalog import ServiceSpec
from vitalis_runtime.migrations import Migration, load_migrations, migrate


async def migrate_service(database_url: str, spec: ServiceSpec) -> list[Migration]:
    """Apply the runtime's and the service's pending migrations to its schema; return them."""
    return await migrate(
        database_url,
        schema=spec.schema,
        app_role=spec.app_role,
        migrations=load_migrations(spec.module),
    )


def describe_applied(service_name: str, migrations: Sequence[Migration]) -> str:
    """One line: ``identity: applied 0001_outbox, 0001_users`` or ``identity: up to date``."""
    if not migrations:
        return f"{service_name}: up to date"
    return f"{service_name}: applied " + ", ".join(f"{m.version:04d}_{m.name}" for m in migrations)
