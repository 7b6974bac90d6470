"""The services that make up Vitalis and the facts every tool needs about them.

One place for names, ports, database schemas and roles, so the platform runner, the migration
command, the client package and the tests agree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceSpec:
    """What the tooling needs to know about one service."""

    name: str
    grpc_port: int
    metrics_port: int

    @property
    def module(self) -> str:
        """The Python package of the service; ``python -m <module>`` starts it."""
        return f"vitalis_{self.name}"

    @property
    def schema(self) -> str:
        """The PostgreSQL schema the service owns."""
        return self.name

    @property
    def app_role(self) -> str:
        """The PostgreSQL role the service runs as: neither owner, superuser nor BYPASSRLS."""
        return f"vitalis_{self.name}_app"

    @property
    def proto_package(self) -> str:
        """The protobuf package of the service's contracts."""
        return f"vitalis.{self.name}.v1"


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("identity", 50051, 9461),
    ServiceSpec("ingestion", 50052, 9462),
    ServiceSpec("biomarkers", 50053, 9463),
    ServiceSpec("documents", 50054, 9464),
    ServiceSpec("insights", 50055, 9465),
)


def service(name: str) -> ServiceSpec:
    """The spec of one service by name; ``KeyError`` names the known ones."""
    for spec in SERVICES:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in SERVICES)
    raise KeyError(f"unknown service {name!r}; known services: {known}")
