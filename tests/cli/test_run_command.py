"""``vitalis run``'s decisions that need no running platform: ports, secrets, what it prints."""

from __future__ import annotations

import io
from pathlib import Path

from vitalis_cli.console import prefixed_printer
from vitalis_cli.local_secrets import PAGE_TOKEN_SECRET, SIGNING_KEY_SECRET
from vitalis_cli.run_command import RunOptions, plan_ports, platform_secrets, without_password


def test_default_ports_are_the_catalogs_with_the_chosen_gateway_port() -> None:
    plan = plan_ports(RunOptions(data_dir=Path(".vitalis"), gateway_port=18080))

    assert plan.gateway == 18080
    assert plan.of("identity").grpc == 50051


def test_a_base_port_moves_every_port() -> None:
    plan = plan_ports(RunOptions(data_dir=Path(".vitalis"), gateway_port=8080, base_port=30000))

    assert plan.gateway == 30000
    assert plan.of("identity").grpc != 50051


def test_a_gateway_port_equal_to_the_admin_port_moves_the_admin_port() -> None:
    plan = plan_ports(RunOptions(data_dir=Path(".vitalis"), gateway_port=9901))

    assert plan.gateway == 9901
    assert plan.gateway_admin != 9901


def test_secrets_set_in_the_environment_win_over_the_file(tmp_path: Path) -> None:
    first = platform_secrets(tmp_path, {})

    chosen = platform_secrets(tmp_path, {PAGE_TOKEN_SECRET: "from-the-environment-" + "x" * 20})

    assert chosen[PAGE_TOKEN_SECRET].startswith("from-the-environment-")
    assert chosen[SIGNING_KEY_SECRET] == first[SIGNING_KEY_SECRET]


def test_passwords_are_not_printed() -> None:
    assert (
        without_password("postgresql://app:s3cret@db:5432/vitalis") == "postgresql://app:***@db:5432/vitalis"
    )
    assert without_password("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_child_output_is_prefixed_with_its_name() -> None:
    out = io.StringIO()
    sink = prefixed_printer(out, colour=False)

    sink("identity", "bound to port 50051")
    sink("envoy", "ready")

    assert out.getvalue().splitlines() == ["identity   | bound to port 50051", "envoy      | ready"]
