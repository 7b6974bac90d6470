"""Entry point: ``python -m vitalis_documents``. The only place that reads the environment."""

from __future__ import annotations

import asyncio

from vitalis_documents.server import create_documents_server
from vitalis_documents.settings import DocumentsSettings
from vitalis_runtime.bootstrap import run_service


def main() -> None:
    """Start documents and serve until SIGTERM/SIGINT."""
    asyncio.run(run_service(DocumentsSettings.from_env(), create_documents_server))


if __name__ == "__main__":
    main()
