"""The ingestion service's settings."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import Field

from vitalis_runtime.settings import ServiceSettings


class IngestionSettings(ServiceSettings):
    """Everything ingestion reads from its environment (``VITALIS_*`` plus the common ones)."""

    service_name: str = "ingestion"
    grpc_port: int = Field(default=50052, ge=0, le=65535)
    import_spool_dir: str = Field(
        default=str(Path(tempfile.gettempdir()) / "vitalis-ingestion-imports"),
        description="Where uploaded import files wait for their job (VITALIS_IMPORT_SPOOL_DIR).",
    )
    import_stall_seconds: float = Field(
        default=600.0,
        gt=0,
        description="An import without progress this long is run again by the replica holding its file "
        "(VITALIS_IMPORT_STALL_SECONDS); a batch must never take longer.",
    )
