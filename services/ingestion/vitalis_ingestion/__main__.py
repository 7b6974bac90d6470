"""Entry point: ``python -m vitalis_ingestion``. The only place that reads the environment."""

from __future__ import annotations

import asyncio
import faulthandler

from vitalis_ingestion.server import create_ingestion_server
from vitalis_ingestion.settings import IngestionSettings
from vitalis_runtime.bootstrap import run_service


def main() -> None:
    """Start ingestion and serve until SIGTERM/SIGINT."""
    # A crash in a C extension (lxml, grpc, asyncpg) then leaves the Python stacks of every thread.
    faulthandler.enable()
    asyncio.run(run_service(IngestionSettings.from_env(), create_ingestion_server))


if __name__ == "__main__":
    main()
