"""Policies that keep workloads available: disruption budgets and autoscalers.

Graceful shutdown, the third part of availability, is checked in :mod:`vitalis_deploy.shutdown`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from vitalis_deploy.findings import Finding, Manifest
from vitalis_deploy.workloads import PodWorkload, selector_matches


def check_availability(objects: Sequence[Manifest], workloads: Iterable[PodWorkload]) -> list[Finding]:
    """A PodDisruptionBudget and an autoscaler per Deployment; autoscalers with sane bounds."""
    budgets = [o for o in objects if o.get("kind") == "PodDisruptionBudget"]
    autoscalers = [o for o in objects if o.get("kind") == "HorizontalPodAutoscaler"]
    findings: list[Finding] = []
    for workload in workloads:
        if workload.kind == "Deployment":
            findings.extend(_budget_and_autoscaler(workload, budgets, autoscalers))
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
