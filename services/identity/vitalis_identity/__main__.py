"""Entry point: ``python -m vitalis_identity``. The only place that reads the environment."""

from __future__ import annotations

import asyncio

from vitalis_identity.server import create_identity_server
from vitalis_identity.settings import IdentitySettings
from vitalis_runtime.bootstrap import run_service


def main() -> None:
    """Start identity and serve until SIGTERM/SIGINT."""
    asyncio.run(run_service(IdentitySettings.from_env(), create_identity_server))


if __name__ == "__main__":
    main()
