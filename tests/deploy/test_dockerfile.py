"""The Dockerfile stays pinned, locked, non-root and consistent with the manifests and the Makefile."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

REPOSITORY = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (REPOSITORY / "Dockerfile").read_text()
    logical = re.sub(
        r"\\\n\s*", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    )
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in logical.splitlines()
        if line.strip()
    ]


def _stages() -> dict[str, list[tuple[str, str]]]:
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for instruction, arguments in _instructions():
        if instruction == "FROM":
            current = []
            stages[arguments.split(" AS ")[-1].strip() if " AS " in arguments else arguments] = current
        current.append((instruction, arguments))
    return stages


def _build_args() -> dict[str, str]:
    return dict(
        arguments.split("=", 1)
        for instruction, arguments in _instructions()
        if instruction == "ARG" and "=" in arguments
    )


def test_base_images_are_pinned_to_exact_versions() -> None:
    arguments = _build_args()
    python_image, uv_image = arguments["PYTHON_IMAGE"], arguments["UV_IMAGE"]
    requires = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]["requires-python"]
    minor = re.search(r">=(\d+\.\d+)", requires)

    assert minor is not None
    assert re.fullmatch(rf"python:{re.escape(minor.group(1))}\.\d+-slim-bookworm", python_image)
    makefile_uv = re.search(r"^UV_VERSION := (\S+)$", (REPOSITORY / "Makefile").read_text(), re.MULTILINE)
    assert makefile_uv is not None
    assert uv_image == f"ghcr.io/astral-sh/uv:{makefile_uv.group(1)}"


def test_dependencies_come_from_the_lock_without_the_development_group() -> None:
    build = _stages()["build"]
    syncs = [arguments for instruction, arguments in build if instruction == "RUN" and "uv sync" in arguments]

    assert syncs
    assert all("--frozen" in sync and "--no-dev" in sync for sync in syncs)


def test_final_images_run_as_the_numeric_user_the_manifests_require() -> None:
    runtime = _stages()["runtime"]
    users = [arguments for instruction, arguments in runtime if instruction == "USER"]
    deployment = next(
        d
        for d in yaml.safe_load_all((REPOSITORY / "deploy/k8s/base/identity.yaml").read_text())
        if d["kind"] == "Deployment"
    )
    pod_context = deployment["spec"]["template"]["spec"]["securityContext"]

    assert users == [f"{pod_context['runAsUser']}:{pod_context['runAsGroup']}"]
    assert list(_stages())[-1] == "service"
    assert _stages()["gateway"][0] == ("FROM", "runtime AS gateway")
    assert _stages()["service"][0] == ("FROM", "runtime AS service")


def test_gateway_target_bakes_the_descriptor_set_and_runs_envoy() -> None:
    gateway = dict(_stages()["gateway"])

    assert gateway["COPY"].endswith("/etc/vitalis/gateway/vitalis.binpb")
    assert gateway["CMD"].startswith('["envoy", "-c", "/etc/vitalis/gateway/envoy.yaml"')


def test_everything_the_build_copies_is_let_through_by_dockerignore() -> None:
    allowed = {
        line[1:] for line in (REPOSITORY / ".dockerignore").read_text().splitlines() if line.startswith("!")
    }
    copied = {
        source
        for instruction, arguments in _instructions()
        if instruction == "COPY" and not arguments.startswith("--from")
        for source in arguments.split()[:-1]
    }

    assert copied <= allowed
    assert all((REPOSITORY / source).exists() for source in copied)
