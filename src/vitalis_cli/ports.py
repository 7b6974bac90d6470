"""Which ports the platform's processes listen on.

``vitalis run`` uses the fixed ports of the service catalog; tests and a second platform beside a
running one use a base port or free ports so they never clash.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from vitalis_runtime.catalog import SERVICES, ServiceSpec, service
from vitalis_runtime.embedded import free_port

DEFAULT_GATEWAY_PORT = 8080
DEFAULT_GATEWAY_ADMIN_PORT = 9901
LOOPBACK = "127.0.0.1"


def catalog_target(service_name: str) -> str:
    """``127.0.0.1:<port>`` of a service on its well-known port (where ``vitalis run`` puts it)."""
    return f"{LOOPBACK}:{service(service_name).grpc_port}"


@dataclass(frozen=True)
class ServicePorts:
    """The gRPC and Prometheus ports of one service."""

    grpc: int
    metrics: int


@dataclass(frozen=True)
class PortPlan:
    """Every port one platform instance uses."""

    services: Mapping[str, ServicePorts] = field(default_factory=dict)
    gateway: int = DEFAULT_GATEWAY_PORT
    gateway_admin: int = DEFAULT_GATEWAY_ADMIN_PORT

    def __post_init__(self) -> None:
        object.__setattr__(self, "services", MappingProxyType(dict(self.services)))
        used = [self.gateway, self.gateway_admin]
        for ports in self.services.values():
            used += [ports.grpc, ports.metrics]
        if len(set(used)) != len(used):
            raise ValueError(f"a port is assigned twice: {sorted(used)}")
        for port in used:
            if not 0 < port < 65536:
                raise ValueError(f"port {port} is outside 1-65535")

    def of(self, service_name: str) -> ServicePorts:
        """The ports of one service; ``KeyError`` names the service."""
        try:
            return self.services[service_name]
        except KeyError:
            raise KeyError(f"no ports planned for service {service_name!r}") from None

    @classmethod
    def catalog(
        cls,
        *,
        gateway: int = DEFAULT_GATEWAY_PORT,
        gateway_admin: int = DEFAULT_GATEWAY_ADMIN_PORT,
        services: Iterable[ServiceSpec] = SERVICES,
    ) -> PortPlan:
        """The well-known ports of the service catalog (what ``vitalis run`` uses)."""
        return cls(
            services={s.name: ServicePorts(s.grpc_port, s.metrics_port) for s in services},
            gateway=gateway,
            gateway_admin=gateway_admin,
        )

    @classmethod
    def from_base(cls, base: int, *, services: Iterable[ServiceSpec] = SERVICES) -> PortPlan:
        """Consecutive ports from ``base``: gateway, admin, then gRPC and metrics per service."""
        specs = tuple(services)
        return cls(
            services={
                spec.name: ServicePorts(base + 2 + 2 * index, base + 3 + 2 * index)
                for index, spec in enumerate(specs)
            },
            gateway=base,
            gateway_admin=base + 1,
        )

    @classmethod
    def free(cls, *, services: Iterable[ServiceSpec] = SERVICES) -> PortPlan:
        """Ports the operating system reports free right now, distinct from one another."""
        specs = tuple(services)
        ports: list[int] = []
        while len(ports) < 2 + 2 * len(specs):
            port = free_port()
            if port not in ports:
                ports.append(port)
        return cls(
            services={
                spec.name: ServicePorts(ports[2 + 2 * index], ports[3 + 2 * index])
                for index, spec in enumerate(specs)
            },
            gateway=ports[0],
            gateway_admin=ports[1],
        )
