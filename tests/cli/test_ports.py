"""Port plans: the catalog's well-known ports, consecutive ports from a base, or free ports."""

from __future__ import annotations

import pytest

from vitalis_cli.ports import PortPlan, ServicePorts
from vitalis_runtime.catalog import SERVICES


def _all_ports(plan: PortPlan) -> list[int]:
    ports = [plan.gateway, plan.gateway_admin]
    for service_ports in plan.services.values():
        ports += [service_ports.grpc, service_ports.metrics]
    return ports


def test_catalog_plan_uses_each_services_well_known_ports() -> None:
    plan = PortPlan.catalog(gateway=8080)

    assert plan.gateway == 8080
    for spec in SERVICES:
        assert plan.of(spec.name) == ServicePorts(spec.grpc_port, spec.metrics_port)


def test_base_plan_uses_consecutive_ports_from_the_base() -> None:
    plan = PortPlan.from_base(20000)

    assert sorted(_all_ports(plan)) == list(range(20000, 20000 + 2 + 2 * len(SERVICES)))
    assert plan.gateway == 20000


def test_free_plan_gives_every_process_a_distinct_port() -> None:
    plan = PortPlan.free()

    ports = _all_ports(plan)
    assert len(set(ports)) == len(ports) == 2 + 2 * len(SERVICES)


def test_a_port_assigned_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="assigned twice"):
        PortPlan(services={"identity": ServicePorts(8080, 9461)}, gateway=8080, gateway_admin=9901)


def test_a_base_too_high_for_every_port_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        PortPlan.from_base(65530)


def test_asking_for_an_unplanned_service_names_it() -> None:
    with pytest.raises(KeyError, match="nutrition"):
        PortPlan.catalog().of("nutrition")
