"""What ``vitalis run`` prints once everything is ready: where things are and how to try them."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from vitalis_cli.identity_access import auth_rest_binding
from vitalis_cli.platform import Platform
from vitalis_cli.ports import catalog_target

EXAMPLE_EMAIL = "ada@example.com"
EXAMPLE_PASSWORD = "correct horse battery staple"  # noqa: S105 - a documented example


@dataclass(frozen=True)
class BackingDescription:
    """Where the platform's PostgreSQL and Redis come from, for the banner."""

    database: str
    redis: str


def curl_sign_up_example(gateway_url: str) -> str:
    """A ``curl`` command that signs a user up through the gateway, from SignUp's HTTP binding."""
    binding = auth_rest_binding("SignUp")
    body = json.dumps(
        {
            "email": EXAMPLE_EMAIL,
            "password": EXAMPLE_PASSWORD,
            "givenName": "Ada",
            "timeZone": "Europe/London",
        }
    )
    return (
        f"curl -s -X {binding.verb} {gateway_url}{binding.path} "
        f"-H 'content-type: application/json' -d {shlex.quote(body)}"
    )


def seed_command_line(platform: Platform) -> str:
    """``vitalis seed``, with the targets it needs when the services are not on their usual ports."""
    moved = [
        spec.name
        for spec in platform.config.services
        if platform.service_target(spec.name) != catalog_target(spec.name)
    ]
    if not moved:
        return "vitalis seed"
    flags = [f"--target {name}={platform.service_target(name)}" for name in moved]
    if "identity" in moved:
        flags.insert(0, f"--identity {platform.service_target('identity')}")
    return " ".join(["vitalis seed", *flags])


def describe_running_platform(platform: Platform, backing: BackingDescription) -> str:
    """The multi-line banner."""
    services = ", ".join(
        f"{spec.name} {platform.service_target(spec.name)}" for spec in platform.config.services
    )
    lines = [
        "",
        "Vitalis is running.",
        f"  gateway    {platform.gateway_url}",
        f"  API docs   {platform.docs_url}",
        f"  OpenAPI    {platform.openapi_url}",
        f"  gRPC       {services}",
        f"  PostgreSQL {backing.database}",
        f"  Redis      {backing.redis}",
        f"  data       {platform.config.work_dir}",
        "",
        "Try it:",
        f"  {curl_sign_up_example(platform.gateway_url)}",
        f"  vitalis token --email {EXAMPLE_EMAIL} --password {shlex.quote(EXAMPLE_PASSWORD)}"
        f" --gateway {platform.gateway_url}",
        f"  {seed_command_line(platform)}",
        "",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)
