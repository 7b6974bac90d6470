"""Graceful shutdown under the pod lifecycle: preStop, the server's drain, the grace period, the gateway.

When Kubernetes deletes a pod it removes the pod from its Services' endpoints and runs the preStop
hook at the same time; SIGTERM follows the hook, and SIGKILL comes ``terminationGracePeriodSeconds``
after the deletion began. A Vitalis service (``vitalis_runtime.server.serve``) answers SIGTERM by
turning health NOT_SERVING and refusing new calls, gives in-flight calls
``VITALIS_SHUTDOWN_GRACE_SECONDS``, gives its background tasks as long again (at least a second),
and then closes its pools. So, for every pod:

* the grace period covers the preStop hook, that drain and a margin for closing pools;
* a pod behind a headless Service that the gateway resolves by DNS keeps serving (its preStop
  sleep) until Envoy can have seen the new DNS answer: the cluster's DNS TTL plus the cluster's
  ``dns_refresh_rate``. Until then Envoy still sends new calls to it, and a refused call that is
  not retried (a create) would reach the client as UNAVAILABLE.

The gateway's Envoy drains in its preStop hook instead (``python -m vitalis_gateway.drain``: fail
``/readyz``, drain the listeners gracefully, return ``--seconds`` after starting) and exits at once
on SIGTERM. So the hook lasts at least Envoy's ``--drain-time-s``, or SIGTERM cuts the drain short,
and the grace period covers the hook and the margin.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

import yaml

from vitalis_deploy.findings import Finding, Manifest
from vitalis_deploy.workloads import (
    PodWorkload,
    config_maps_by_name,
    map_selector_matches,
    resolved_environment,
)
from vitalis_runtime.settings import ServiceSettings

SHUTDOWN_GRACE_VARIABLE = ServiceSettings.env_name("shutdown_grace_seconds")
DEFAULT_SHUTDOWN_GRACE_SECONDS = float(ServiceSettings.model_fields["shutdown_grace_seconds"].default)
"""The runtime's drain time when the variable is not set."""
DEFAULT_TERMINATION_GRACE_SECONDS = 30
SHUTDOWN_MARGIN_SECONDS = 5.0
"""Time left after the drain for closing pools and flushing telemetry before SIGKILL."""
MIN_BACKGROUND_PATIENCE_SECONDS = 1.0
"""``serve`` waits at least this long for background tasks, however short the grace period."""
CLUSTER_DNS_TTL_SECONDS = 5.0
"""The TTL CoreDNS gives Service records by default (its ``kubernetes`` plugin's ``ttl``)."""
ENVOY_DNS_REFRESH_SECONDS = 5.0
"""Envoy re-resolves a STRICT_DNS or LOGICAL_DNS cluster this often unless ``dns_refresh_rate`` says."""
ENVOY_DEFAULT_DRAIN_SECONDS = 600.0
"""Envoy's ``--drain-time-s`` when its command line does not set it."""
DRAIN_MODULE = "vitalis_gateway.drain"
"""The gateway's preStop entry point; its ``--seconds`` is how long the hook lasts."""
ENVOY_CONFIG_KEY = "envoy.yaml"
_DNS_CLUSTER_TYPES = frozenset({"STRICT_DNS", "LOGICAL_DNS"})
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)s$")


def server_shutdown_seconds(grace_seconds: float) -> float:
    """How long ``serve`` takes at most from SIGTERM to its stop hooks, for a given grace period.

    In-flight calls get ``grace_seconds``; then background tasks get ``max(grace_seconds, 1)``
    before they are cancelled.
    """
    return grace_seconds + max(grace_seconds, MIN_BACKGROUND_PATIENCE_SECONDS)


def check_shutdown(objects: Sequence[Manifest], workloads: Iterable[PodWorkload]) -> list[Finding]:
    """Every long-running pod's shutdown fits its grace period and outlasts the gateway's routing."""
    config_maps = config_maps_by_name(objects)
    routed = gateway_routing_delays(objects)
    findings: list[Finding] = []
    for workload in workloads:
        if not workload.long_running:
            continue
        findings.extend(_fits_grace_period(workload, config_maps))
        delay = max(
            (seconds for service, seconds in routed if _selects(service, workload)),
            default=None,
        )
        if delay is not None:
            findings.extend(_outlasts_routing(workload, delay))
    return findings


def gateway_routing_delays(objects: Iterable[Manifest]) -> list[tuple[Manifest, float]]:
    """Each headless Service the gateway resolves by DNS, with how long Envoy may keep old answers.

    The gateway's configuration is any rendered ConfigMap holding ``envoy.yaml``; a cluster
    address ``identity`` or ``identity.vitalis.svc.cluster.local`` names the Service ``identity``.
    """
    objects = list(objects)
    headless = {
        (_namespace(o), str(o["metadata"]["name"])): o
        for o in objects
        if o.get("kind") == "Service" and (o.get("spec") or {}).get("clusterIP") == "None"
    }
    delays: dict[tuple[str, str], float] = {}
    for manifest in objects:
        data = manifest.get("data") or {}
        if manifest.get("kind") != "ConfigMap" or ENVOY_CONFIG_KEY not in data:
            continue
        for cluster in _clusters(yaml.safe_load(data[ENVOY_CONFIG_KEY])):
            if cluster.get("type") not in _DNS_CLUSTER_TYPES:
                continue
            delay = _seconds(cluster.get("dns_refresh_rate"), ENVOY_DNS_REFRESH_SECONDS)
            delay += CLUSTER_DNS_TTL_SECONDS
            for host in _hosts(cluster):
                labels = host.split(".")
                key = (labels[1] if len(labels) > 1 else _namespace(manifest), labels[0])
                if key in headless:
                    delays[key] = max(delays.get(key, 0.0), delay)
    return [(headless[key], seconds) for key, seconds in sorted(delays.items())]


def _namespace(manifest: Manifest) -> str:
    return str((manifest.get("metadata") or {}).get("namespace") or "default")


def _selects(service: Manifest, workload: PodWorkload) -> bool:
    return _namespace(service) == workload.namespace and map_selector_matches(
        (service.get("spec") or {}).get("selector"), workload.pod_labels
    )


def _clusters(config: Any) -> list[Mapping[str, Any]]:
    if not isinstance(config, Mapping):
        return []
    clusters = (config.get("static_resources") or {}).get("clusters") or []
    return [cluster for cluster in clusters if isinstance(cluster, Mapping)]


def _hosts(cluster: Mapping[str, Any]) -> Iterator[str]:
    for locality in (cluster.get("load_assignment") or {}).get("endpoints") or ():
        for endpoint in locality.get("lb_endpoints") or ():
            address = ((endpoint.get("endpoint") or {}).get("address") or {}).get("socket_address") or {}
            if "address" in address:
                yield str(address["address"])


def _seconds(duration: object, default: float) -> float:
    """An Envoy duration (``"5s"``, ``"0.5s"``) in seconds; ``default`` when absent."""
    if duration is None:
        return default
    match = _DURATION.match(str(duration))
    if match is None:
        raise ValueError(f"not an Envoy duration in seconds: {duration!r}")
    return float(match.group(1))


def pre_stop_seconds(container: Mapping[str, Any]) -> float:
    """How long a container's preStop hook holds SIGTERM back.

    A ``sleep`` action's seconds, or the ``--seconds`` of ``python -m vitalis_gateway.drain``;
    0 for any other hook, and for a drain whose ``--seconds`` the entry point would refuse (it
    then exits at once).
    """
    pre_stop = (container.get("lifecycle") or {}).get("preStop") or {}
    if "sleep" in pre_stop:
        return float((pre_stop["sleep"] or {}).get("seconds", 0))
    command = [str(part) for part in ((pre_stop.get("exec") or {}).get("command") or ())]
    if _option(command, "-m") != DRAIN_MODULE:
        return 0.0
    value = _option(command[command.index(DRAIN_MODULE) + 1 :], "--seconds")
    try:
        seconds = float(value or "")
    except ValueError:
        return 0.0
    return seconds if math.isfinite(seconds) and seconds >= 0 else 0.0


def _option(arguments: Sequence[str], name: str) -> str | None:
    """The value of the last ``name VALUE`` or ``name=VALUE`` among command-line arguments."""
    value = None
    for index, argument in enumerate(arguments):
        if argument == name and index + 1 < len(arguments):
            value = arguments[index + 1]
        elif argument.startswith(f"{name}="):
            value = argument.partition("=")[2]
    return value


def _command_line(container: Mapping[str, Any]) -> list[str]:
    return [str(part) for part in [*(container.get("command") or ()), *(container.get("args") or ())]]


def _runs_envoy(container: Mapping[str, Any]) -> bool:
    command = _command_line(container)
    return bool(command) and PurePosixPath(command[0]).name == "envoy"


def _runs_vitalis_service(container: Mapping[str, Any], environment: Mapping[str, str]) -> bool:
    command = [str(part) for part in (container.get("command") or [])]
    return any(part.startswith("vitalis_") for part in command) or SHUTDOWN_GRACE_VARIABLE in environment


def _fits_grace_period(
    workload: PodWorkload, config_maps: Mapping[tuple[str, str], Mapping[str, str]]
) -> Iterator[Finding]:
    grace_period = float(
        workload.pod_spec.get("terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_SECONDS)
    )
    for container in workload.containers(include_init=False):
        name = container.get("name")
        has_pre_stop = bool((container.get("lifecycle") or {}).get("preStop"))
        environment = resolved_environment(container, namespace=workload.namespace, config_maps=config_maps)
        if _runs_envoy(container):
            yield from _drains_envoy(workload, container, grace_period)
            continue
        if not _runs_vitalis_service(container, environment):
            if pre_stop_seconds(container) > grace_period:
                yield _finding(workload, f"container {name}: preStop outlasts terminationGracePeriodSeconds")
            continue
        if not has_pre_stop:
            yield _finding(
                workload,
                f"container {name}: no preStop hook, so the server may stop accepting calls while "
                "it is still listed as an endpoint",
            )
        value = environment.get(SHUTDOWN_GRACE_VARIABLE)
        try:
            grace = DEFAULT_SHUTDOWN_GRACE_SECONDS if value is None else float(value)
        except ValueError:
            yield _finding(
                workload, f"container {name}: {SHUTDOWN_GRACE_VARIABLE} is not a number of seconds"
            )
            continue
        pre_stop = pre_stop_seconds(container)
        drain = server_shutdown_seconds(grace)
        needed = pre_stop + drain + SHUTDOWN_MARGIN_SECONDS
        if needed > grace_period:
            yield _finding(
                workload,
                f"container {name}: preStop ({pre_stop:g} s) + drain ({drain:g} s) + margin "
                f"needs {needed:g} s but terminationGracePeriodSeconds is {grace_period:g}",
            )


def _drains_envoy(
    workload: PodWorkload, container: Mapping[str, Any], grace_period: float
) -> Iterator[Finding]:
    name = container.get("name")
    value = _option(_command_line(container), "--drain-time-s")
    try:
        drain_time = ENVOY_DEFAULT_DRAIN_SECONDS if value is None else float(value)
    except ValueError:
        yield _finding(
            workload, f"container {name}: Envoy's --drain-time-s {value!r} is not a number of seconds"
        )
        return
    wait = pre_stop_seconds(container)
    if wait < drain_time:
        flag = "--drain-time-s" if value is not None else "the default --drain-time-s"
        yield _finding(
            workload,
            f"container {name}: preStop waits {wait:g} s but Envoy drains its listeners for "
            f"{drain_time:g} s ({flag}), so SIGTERM would cut the drain short",
        )
    needed = wait + SHUTDOWN_MARGIN_SECONDS
    if needed > grace_period:
        yield _finding(
            workload,
            f"container {name}: preStop ({wait:g} s) + margin needs {needed:g} s but "
            f"terminationGracePeriodSeconds is {grace_period:g}",
        )


def _outlasts_routing(workload: PodWorkload, delay: float) -> Iterator[Finding]:
    longest = max((pre_stop_seconds(c) for c in workload.containers(include_init=False)), default=0.0)
    if longest < delay:
        yield _finding(
            workload,
            f"preStop sleeps {longest:g} s but the gateway may route new calls to the pod for {delay:g} s "
            f"after its endpoint is removed (cluster DNS TTL {CLUSTER_DNS_TTL_SECONDS:g} s + Envoy's "
            "DNS refresh)",
        )


def _finding(workload: PodWorkload, message: str) -> Finding:
    return Finding(workload.subject, "graceful-shutdown", message)
