"""Entry point: ``python -m vitalis_insights``. The only place that reads the environment."""

from __future__ import annotations

import asyncio

from vitalis_insights.server import create_insights_server
from vitalis_insights.settings import InsightsSettings
from vitalis_runtime.bootstrap import run_service


def main() -> None:
    """Start insights and serve until SIGTERM/SIGINT."""
    asyncio.run(run_service(InsightsSettings.from_env(), create_insights_server))


if __name__ == "__main__":
    main()
