"""Every project policy over one rendered overlay."""

from __future__ import annotations

from collections.abc import Sequence

from vitalis_deploy.availability import check_availability
from vitalis_deploy.configuration import check_configuration
from vitalis_deploy.containers import check_containers
from vitalis_deploy.conventions import check_conventions
from vitalis_deploy.findings import Finding, Manifest
from vitalis_deploy.flows import check_flows
from vitalis_deploy.references import check_references
from vitalis_deploy.shutdown import check_shutdown
from vitalis_deploy.workloads import pod_workloads


def check_policies(objects: Sequence[Manifest]) -> list[Finding]:
    """Containers, availability, shutdown, configuration, conventions, references and network flows."""
    workloads = pod_workloads(objects)
    findings = [
        *check_containers(workloads),
        *check_availability(objects, workloads),
        *check_shutdown(objects, workloads),
        *check_configuration(objects),
        *check_conventions(objects, workloads),
        *check_references(objects, workloads),
        *check_flows(objects, workloads),
    ]
    return sorted(set(findings))
