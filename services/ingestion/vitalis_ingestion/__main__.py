"""Entry point: ``python -m vitalis_ingestion``. The only place that reads the environment."""

from __future__ import annotations

import asyncio

from vitalis_ingestion.server import create_ingestion_server
from vitalis_ingestion.settings import IngestionSettings
from vitalis_runtime.bootstrap import run_service


def main() -> None:
    """Start ingestion and serve until SIGTERM/SIGINT."""
    asyncio.run(run_service(IngestionSettings.from_env(), create_ingestion_server))


if __name__ == "__main__":
    main()
