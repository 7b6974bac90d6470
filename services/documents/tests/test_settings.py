"""The documents settings refuse a storage backend they cannot use, naming the variable to set."""

from __future__ import annotations

import pytest

from vitalis_documents.settings import DocumentsSettings
from vitalis_runtime.settings import ConfigurationError

BASE = {
    "DATABASE_URL": "postgresql://app@127.0.0.1:5432/vitalis",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "VITALIS_PAGE_TOKEN_SECRET": "p" * 40,
}


def test_disk_storage_needs_a_root(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in BASE.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("VITALIS_STORAGE_ROOT", raising=False)
    with pytest.raises(ConfigurationError, match="VITALIS_STORAGE_ROOT"):
        DocumentsSettings.from_env()


def test_s3_storage_needs_a_bucket_and_reads_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in BASE.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("VITALIS_STORAGE_BACKEND", "s3")
    with pytest.raises(ConfigurationError, match="VITALIS_S3_BUCKET"):
        DocumentsSettings.from_env()
    monkeypatch.setenv("VITALIS_S3_BUCKET", "labs")
    monkeypatch.setenv("VITALIS_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("VITALIS_MAX_UPLOAD_BYTES", "1048576")
    settings = DocumentsSettings.from_env()
    assert (settings.s3_bucket, settings.s3_endpoint_url, settings.max_upload_bytes) == (
        "labs",
        "http://127.0.0.1:9000",
        1048576,
    )
    assert settings.confidence_threshold == 0.8
