"""``vitalis migrate``: apply the chosen services' schema migrations and say what was applied."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

from vitalis_cli.schemas import describe_applied, migrate_service
from vitalis_runtime.catalog import SERVICES, service
from vitalis_runtime.errors import VitalisError
from vitalis_runtime.migrations import MigrationError

MIGRATE_URL_VARIABLES = ("VITALIS_MIGRATE_DATABASE_URL", "DATABASE_URL")


def migration_url(environ: Mapping[str, str]) -> str | None:
    """The DSN migrations run with: ``VITALIS_MIGRATE_DATABASE_URL``, else ``DATABASE_URL``."""
    for name in MIGRATE_URL_VARIABLES:
        if environ.get(name):
            return environ[name]
    return None


async def run_migrate(
    service_names: Sequence[str] | None,
    *,
    environ: Mapping[str, str],
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """The ``vitalis migrate`` command; returns the exit status."""
    database_url = migration_url(environ)
    if database_url is None:
        print(
            "vitalis migrate: set VITALIS_MIGRATE_DATABASE_URL or DATABASE_URL "
            "(`vitalis run` migrates its embedded database by itself)",
            file=err,
        )
        return 2
    specs = [service(name) for name in service_names] if service_names else list(SERVICES)
    for spec in specs:
        try:
            applied = await migrate_service(database_url, spec)
        except (MigrationError, VitalisError) as error:
            print(f"{spec.name}: {error}", file=err)
            return 1
        print(describe_applied(spec.name, applied), file=out)
    return 0
