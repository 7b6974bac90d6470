"""The ``vitalis`` command line: every subcommand, its defaults and its refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from vitalis_cli.main import build_parser


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--help"])

    assert exit_info.value.code == 0
    shown = capsys.readouterr().out
    for command in ("run", "migrate", "token", "seed"):
        assert command in shown


@pytest.mark.parametrize("command", ["run", "migrate", "token", "seed"])
def test_every_subcommand_has_its_own_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])

    assert exit_info.value.code == 0
    assert f"usage: vitalis {command}" in capsys.readouterr().out


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([])

    assert exit_info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_run_defaults_to_the_local_data_folder_and_port_8080() -> None:
    args = build_parser().parse_args(["run"])

    assert args.data_dir == Path(".vitalis")
    assert args.gateway_port == 8080
    assert args.base_port is None


def test_run_accepts_a_data_folder_and_a_gateway_port() -> None:
    args = build_parser().parse_args(["run", "--data-dir", "/tmp/v", "--gateway-port", "18080"])

    assert args.data_dir == Path("/tmp/v")
    assert args.gateway_port == 18080


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_run_refuses_a_gateway_port_that_is_not_a_tcp_port(port: str) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--gateway-port", port])


def test_migrate_takes_repeated_services() -> None:
    args = build_parser().parse_args(["migrate", "--service", "identity", "--service", "insights"])

    assert args.services == ["identity", "insights"]


def test_migrate_without_services_means_all_of_them() -> None:
    assert build_parser().parse_args(["migrate"]).services is None


def test_migrate_refuses_an_unknown_service(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["migrate", "--service", "nutrition"])

    assert "nutrition" in capsys.readouterr().err


def test_token_requires_an_email() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["token", "--password", "p"])


def test_token_cannot_reach_both_the_gateway_and_identity() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(
            ["token", "--email", "a@b.c", "--gateway", "http://x", "--identity", "127.0.0.1:1"]
        )


def test_token_sign_up_is_off_unless_asked() -> None:
    args = build_parser().parse_args(["token", "--email", "a@b.c"])

    assert args.sign_up is False
    assert args.gateway is None
    assert args.identity is None


def test_seed_defaults_to_the_demo_user() -> None:
    assert build_parser().parse_args(["seed"]).email == "demo@vitalis.dev"
