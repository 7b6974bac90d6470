"""`python -m vitalis_gateway render`: writes the files of a target, and `--check` finds stale ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vitalis_gateway.__main__ import main

SAMPLE = Path(__file__).resolve().parent / "gateway.yaml"
ROOT = Path(__file__).resolve().parents[2]


def render(out: Path, descriptor: Path, *extra: str) -> int:
    return main(
        ["render", "--target", "kubernetes", "--source", str(SAMPLE), "--descriptor-set", str(descriptor),
         "--out", str(out), *extra]
    )  # fmt: skip


def test_kubernetes_files_point_envoy_at_the_mounted_directory(
    tmp_path: Path, sample_descriptor: Path
) -> None:
    assert render(tmp_path, sample_descriptor) == 0

    config = yaml.safe_load((tmp_path / "envoy.yaml").read_text())
    text = yaml.safe_dump(config)
    assert "/etc/vitalis/gateway/descriptor.binpb" in text
    assert "/etc/vitalis/gateway/openapi.json" in text
    assert str(tmp_path) not in text
    assert {p.name for p in tmp_path.iterdir()} == {
        "envoy.yaml",
        "openapi.json",
        "docs.html",
        "descriptor.binpb",
    }


def test_check_passes_on_freshly_rendered_files(tmp_path: Path, sample_descriptor: Path) -> None:
    render(tmp_path, sample_descriptor)

    assert render(tmp_path, sample_descriptor, "--check") == 0


@pytest.mark.parametrize("name", ["envoy.yaml", "openapi.json", "docs.html", "descriptor.binpb"])
def test_check_fails_when_a_file_is_stale(
    tmp_path: Path, sample_descriptor: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    render(tmp_path, sample_descriptor)
    (tmp_path / name).write_bytes((tmp_path / name).read_bytes() + b"\n")

    assert render(tmp_path, sample_descriptor, "--check") == 1
    assert name in capsys.readouterr().err


def test_check_fails_when_a_file_is_missing(tmp_path: Path, sample_descriptor: Path) -> None:
    render(tmp_path, sample_descriptor)
    (tmp_path / "openapi.json").unlink()

    assert render(tmp_path, sample_descriptor, "--check") == 1


def test_rendering_twice_gives_identical_bytes(tmp_path: Path, sample_descriptor: Path) -> None:
    render(tmp_path / "a", sample_descriptor)
    render(tmp_path / "b", sample_descriptor)

    for path in (tmp_path / "a").iterdir():
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes()


def test_committed_kubernetes_copy_matches_the_contracts(project_source: object) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vitalis_gateway", "render", "--target", "kubernetes", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr


def test_each_kubernetes_file_fits_in_a_config_map() -> None:
    config_map_limit = 1024 * 1024
    for name in ("envoy.yaml", "openapi.json", "docs.html", "descriptor.binpb"):
        size = (ROOT / "deploy" / "k8s" / "base" / "gateway" / name).stat().st_size
        assert size < config_map_limit, f"{name} is {size} bytes"
