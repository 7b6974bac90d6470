"""Entry point: ``python -m vitalis_identity``. The only place that reads the environment."""

from __future__ import annotations

import asyncio

from vitalis_identity.server import create_identity_server, identity_dependencies
from vitalis_identity.settings import IdentitySettings
from vitalis_runtime.logs import configure_logging
from vitalis_runtime.server import serve
from vitalis_runtime.telemetry import configure_tracing


async def main() -> None:
    """Start identity and serve until SIGTERM/SIGINT."""
    settings = IdentitySettings.from_env()
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    configure_tracing(settings.service_name, settings.otlp_endpoint)
    async with identity_dependencies(settings) as (db, redis):
        identity = await create_identity_server(settings, db, redis)
        await serve(
            identity.server,
            identity.health,
            grace_seconds=settings.shutdown_grace_seconds,
            background=identity.background,
            on_stop=identity.on_stop,
        )


if __name__ == "__main__":
    asyncio.run(main())
