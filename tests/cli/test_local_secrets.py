"""Secrets of the local platform: generated once, private, reused."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from vitalis_cli.local_secrets import (
    GENERATED_SECRETS,
    PAGE_TOKEN_SECRET,
    SIGNING_KEY_SECRET,
    SecretsFileError,
    load_or_create_secrets,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_run_creates_every_secret_in_a_file_only_the_owner_can_read(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secrets.env"

    values = load_or_create_secrets(path)

    assert set(values) == set(GENERATED_SECRETS)
    assert all(len(value) >= 32 for value in values.values())
    assert values[PAGE_TOKEN_SECRET] != values[SIGNING_KEY_SECRET]
    assert _mode(path) == 0o600


def test_second_run_reuses_the_secrets_of_the_first(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    first = load_or_create_secrets(path)
    written = path.read_bytes()

    second = load_or_create_secrets(path)

    assert second == first
    assert path.read_bytes() == written


def test_a_missing_secret_is_added_and_the_others_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text(f"# kept\n{PAGE_TOKEN_SECRET}=an-existing-page-token-secret-of-enough-length\n")

    values = load_or_create_secrets(path)

    assert values[PAGE_TOKEN_SECRET] == "an-existing-page-token-secret-of-enough-length"
    assert values[SIGNING_KEY_SECRET]
    assert load_or_create_secrets(path) == values
    assert _mode(path) == 0o600


def test_a_secrets_file_readable_by_others_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    load_or_create_secrets(path)
    path.chmod(0o644)

    load_or_create_secrets(path)

    assert _mode(path) == 0o600


def test_a_malformed_line_is_reported_with_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text("\nnot a pair\n")

    with pytest.raises(SecretsFileError, match=r"secrets\.env:2"):
        load_or_create_secrets(path)


def test_no_temporary_file_is_left_behind(tmp_path: Path) -> None:
    load_or_create_secrets(tmp_path / "secrets.env")

    assert [p.name for p in tmp_path.iterdir()] == ["secrets.env"]
