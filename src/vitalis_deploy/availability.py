"""Policies that keep workloads available: disruption budgets, autoscalers, graceful shutdown."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from vitalis_deploy.findings import Finding, Manifest
from vitalis_deploy.workloads import PodWorkload, config_maps_by_name, resolved_environment, selector_matches

SHUTDOWN_GRACE_VARIABLE = "VITALIS_SHUTDOWN_GRACE_SECONDS"
DEFAULT_SHUTDOWN_GRACE_SECONDS = 10.0
"""The runtime's drain time when the variable is not set."""
DEFAULT_TERMINATION_GRACE_SECONDS = 30
SHUTDOWN_MARGIN_SECONDS = 5.0
"""Time left after the drain for closing pools and flushing telemetry before SIGKILL."""
GRACE_PERIODS_PER_SHUTDOWN = 2
"""The runtime gives in-flight calls the grace period, then background tasks as long again."""


def check_availability(objects: Sequence[Manifest], workloads: Iterable[PodWorkload]) -> list[Finding]:
    """A PodDisruptionBudget and an autoscaler per Deployment, and a shutdown that fits its grace period."""
    budgets = [o for o in objects if o.get("kind") == "PodDisruptionBudget"]
    autoscalers = [o for o in objects if o.get("kind") == "HorizontalPodAutoscaler"]
    config_maps = config_maps_by_name(objects)
    findings: list[Finding] = []
    for workload in workloads:
        if workload.kind == "Deployment":
            findings.extend(_budget_and_autoscaler(workload, budgets, autoscalers))
        if workload.long_running:
            findings.extend(_shutdown(workload, config_maps))
    for autoscaler in autoscalers:
        spec = autoscaler.get("spec") or {}
        if int(spec.get("minReplicas", 1)) > int(spec.get("maxReplicas", 0)):
            findings.append(
                Finding(_subject(autoscaler), "autoscaling", "minReplicas is greater than maxReplicas")
            )
    return findings


def _subject(manifest: Manifest) -> str:
    metadata = manifest.get("metadata") or {}
    return f"{manifest.get('kind')}/{metadata.get('namespace', 'default')}/{metadata.get('name')}"


def _same_namespace(manifest: Manifest, workload: PodWorkload) -> bool:
    return str((manifest.get("metadata") or {}).get("namespace") or "default") == workload.namespace


def _budget_and_autoscaler(
    workload: PodWorkload, budgets: Sequence[Manifest], autoscalers: Sequence[Manifest]
) -> Iterator[Finding]:
    has_budget = any(
        _same_namespace(budget, workload)
        and selector_matches((budget.get("spec") or {}).get("selector"), workload.pod_labels)
        for budget in budgets
    )
    if not has_budget:
        yield Finding(workload.subject, "disruption-budget", "no PodDisruptionBudget selects its pods")
    scaled_by = [
        autoscaler
        for autoscaler in autoscalers
        if _same_namespace(autoscaler, workload) and _targets(autoscaler, workload)
    ]
    if not scaled_by:
        yield Finding(workload.subject, "autoscaling", "no HorizontalPodAutoscaler targets it")
    elif "replicas" in (workload.manifest.get("spec") or {}):
        yield Finding(
            workload.subject,
            "autoscaling",
            "sets spec.replicas although an autoscaler manages it: every apply would reset the scale",
        )


def _targets(autoscaler: Manifest, workload: PodWorkload) -> bool:
    target = (autoscaler.get("spec") or {}).get("scaleTargetRef") or {}
    return target.get("kind") == workload.kind and target.get("name") == workload.name


def _shutdown(
    workload: PodWorkload, config_maps: Mapping[tuple[str, str], Mapping[str, str]]
) -> Iterator[Finding]:
    """preStop runs first; on SIGTERM the server drains; SIGKILL comes at the end of the grace period.

    The pod's terminationGracePeriodSeconds must cover the preStop hook, the runtime's drain
    (GRACE_PERIODS_PER_SHUTDOWN times VITALIS_SHUTDOWN_GRACE_SECONDS) and a margin.
    """
    grace_period = float(
        workload.pod_spec.get("terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_SECONDS)
    )
    for container in workload.containers(include_init=False):
        name = container.get("name")
        pre_stop = (container.get("lifecycle") or {}).get("preStop") or {}
        pre_stop_seconds = float((pre_stop.get("sleep") or {}).get("seconds", 0))
        environment = resolved_environment(container, namespace=workload.namespace, config_maps=config_maps)
        runs_vitalis_server = _runs_vitalis_service(container) or SHUTDOWN_GRACE_VARIABLE in environment
        if runs_vitalis_server and not pre_stop:
            yield Finding(
                workload.subject,
                "graceful-shutdown",
                f"container {name}: no preStop hook, so the server may stop accepting calls while "
                "it is still listed as an endpoint",
            )
        try:
            drain = _drain_seconds(environment) if runs_vitalis_server else 0.0
        except ValueError:
            yield Finding(
                workload.subject,
                "graceful-shutdown",
                f"container {name}: {SHUTDOWN_GRACE_VARIABLE} is not a number of seconds",
            )
            continue
        needed = pre_stop_seconds + drain + (SHUTDOWN_MARGIN_SECONDS if runs_vitalis_server else 0.0)
        if needed > grace_period:
            yield Finding(
                workload.subject,
                "graceful-shutdown",
                f"container {name}: preStop ({pre_stop_seconds:g} s) + drain ({drain:g} s) + margin "
                f"needs {needed:g} s but terminationGracePeriodSeconds is {grace_period:g}",
            )


def _runs_vitalis_service(container: Mapping[str, Any]) -> bool:
    command = [str(part) for part in (container.get("command") or [])]
    return any(part.startswith("vitalis_") for part in command)


def _drain_seconds(environment: Mapping[str, str]) -> float:
    value = environment.get(SHUTDOWN_GRACE_VARIABLE)
    grace = DEFAULT_SHUTDOWN_GRACE_SECONDS if value is None else float(value)
    return GRACE_PERIODS_PER_SHUTDOWN * grace
