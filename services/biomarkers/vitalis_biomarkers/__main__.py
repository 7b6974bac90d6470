"""Entry point: ``python -m vitalis_biomarkers``. The only place that reads the environment."""

from __future__ import annotations

import asyncio

from vitalis_biomarkers.server import create_biomarkers_server
from vitalis_biomarkers.settings import BiomarkersSettings
from vitalis_runtime.bootstrap import run_service


def main() -> None:
    """Start biomarkers and serve until SIGTERM/SIGINT."""
    asyncio.run(run_service(BiomarkersSettings.from_env(), create_biomarkers_server))


if __name__ == "__main__":
    main()
