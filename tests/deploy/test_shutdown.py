"""Graceful shutdown: the validator's model of the server's drain, and the manifests held to it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
import yaml
from google.protobuf import wrappers_pb2
from prometheus_client import CollectorRegistry

from vitalis_deploy.policy import check_policies
from vitalis_deploy.render import find_kubectl, render
from vitalis_deploy.shutdown import pre_stop_seconds, server_shutdown_seconds
from vitalis_gateway.drain import parse_arguments
from vitalis_runtime.metrics import rpc_metrics
from vitalis_runtime.server import create_server, serve

Objects = list[dict[str, Any]]
HANGING_METHOD = "/vitalis.test.v1.HangingService/Hang"
TIMING_TOLERANCE_SECONDS = 0.6


def _rules(findings: list[Any]) -> set[str]:
    return {finding.rule for finding in findings}


async def _measure_worst_case_shutdown(grace_seconds: float) -> float:
    """Seconds ``serve`` takes from the stop signal to returning, with a call and a task that never end."""
    call_started = asyncio.Event()

    async def hang(request: wrappers_pb2.StringValue, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        call_started.set()
        await asyncio.sleep(3600)
        return request

    def register(server: grpc.aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(
            hang,
            request_deserializer=wrappers_pb2.StringValue.FromString,
            response_serializer=wrappers_pb2.StringValue.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("vitalis.test.v1.HangingService", {"Hang": handler}),)
        )

    async def ignores_the_stop_event(stop: asyncio.Event) -> None:
        await asyncio.sleep(3600)

    server, port, health = await create_server(
        "127.0.0.1:0",
        service_name="hanging",
        register=register,
        service_names=("vitalis.test.v1.HangingService",),
        verifier=None,
        public_methods=(HANGING_METHOD,),
        metrics=rpc_metrics(CollectorRegistry()),
        tracing=False,
    )
    stop = asyncio.Event()
    serving = asyncio.create_task(
        serve(server, health, grace_seconds=grace_seconds, background=[ignores_the_stop_event], stop=stop)
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(
            HANGING_METHOD,
            request_serializer=wrappers_pb2.StringValue.SerializeToString,
            response_deserializer=wrappers_pb2.StringValue.FromString,
        )(wrappers_pb2.StringValue(value="in flight"), timeout=60)
        await asyncio.wait_for(call_started.wait(), timeout=10)
        started = time.monotonic()
        stop.set()
        await asyncio.wait_for(serving, timeout=30)
        elapsed = time.monotonic() - started
        with pytest.raises(grpc.aio.AioRpcError):
            await call
    return elapsed


@pytest.mark.parametrize("grace_seconds", [0.2, 1.5])
async def test_validator_models_the_servers_worst_case_drain(grace_seconds: float) -> None:
    elapsed = await _measure_worst_case_shutdown(grace_seconds)

    assert abs(elapsed - server_shutdown_seconds(grace_seconds)) < TIMING_TOLERANCE_SECONDS


def test_drain_model_gives_background_tasks_at_least_a_second() -> None:
    assert server_shutdown_seconds(15) == 30
    assert server_shutdown_seconds(0) == 1


def _run_as_vitalis_service(
    objects: Objects, find_object: Any, *, grace: str, pre_stop: int, period: int
) -> dict[str, Any]:
    find_object(objects, "ConfigMap", "demo-config")["data"]["VITALIS_SHUTDOWN_GRACE_SECONDS"] = grace
    pod_spec: dict[str, Any] = find_object(objects, "Deployment")["spec"]["template"]["spec"]
    container = pod_spec["containers"][0]
    container["command"] = ["python", "-m", "vitalis_demo"]
    container["lifecycle"] = {"preStop": {"sleep": {"seconds": pre_stop}}}
    pod_spec["terminationGracePeriodSeconds"] = period
    return pod_spec


def test_zero_grace_still_leaves_a_second_for_background_tasks(
    hardened_app: Objects, find_object: Any
) -> None:
    # 5 s preStop + 0 s for calls + 1 s for background tasks + 5 s margin = 11 s.
    _run_as_vitalis_service(hardened_app, find_object, grace="0", pre_stop=5, period=10)

    findings = check_policies(hardened_app)

    assert [f.message for f in findings] == [
        "container demo: preStop (5 s) + drain (1 s) + margin needs 11 s "
        "but terminationGracePeriodSeconds is 10"
    ]


def test_unreadable_grace_is_caught(hardened_app: Objects, find_object: Any) -> None:
    _run_as_vitalis_service(hardened_app, find_object, grace="fifteen", pre_stop=5, period=45)

    assert [f.message for f in check_policies(hardened_app)] == [
        "container demo: VITALIS_SHUTDOWN_GRACE_SECONDS is not a number of seconds"
    ]


def _routed_by_the_gateway(objects: Objects, find_object: Any, cluster: dict[str, Any]) -> None:
    """Make the demo Service headless and add a gateway config whose cluster resolves it by DNS."""
    find_object(objects, "Service")["spec"]["clusterIP"] = "None"
    find_object(objects, "Service")["spec"]["ports"][0]["port"] = 8080
    cluster = {
        "name": "demo",
        "load_assignment": {
            "cluster_name": "demo",
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "demo"}}}}]}
            ],
        },
        **cluster,
    }
    envoy = {"static_resources": {"listeners": [], "clusters": [cluster]}}
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "gateway-config",
                "namespace": "demo",
                "labels": {"app.kubernetes.io/part-of": "demo"},
            },
            "data": {"envoy.yaml": yaml.safe_dump(envoy)},
        }
    )


def test_pre_stop_shorter_than_the_gateways_dns_view_is_caught(
    hardened_app: Objects, find_object: Any
) -> None:
    _run_as_vitalis_service(hardened_app, find_object, grace="10", pre_stop=5, period=40)
    _routed_by_the_gateway(hardened_app, find_object, {"type": "STRICT_DNS"})

    findings = check_policies(hardened_app)

    assert [(f.subject, f.rule) for f in findings] == [("Deployment/demo/demo", "graceful-shutdown")]
    assert findings[0].message.startswith(
        "preStop sleeps 5 s but the gateway may route new calls to the pod for 10 s"
    )


def test_pre_stop_covering_the_dns_refresh_the_gateway_declares_passes(
    hardened_app: Objects, find_object: Any
) -> None:
    _run_as_vitalis_service(hardened_app, find_object, grace="10", pre_stop=7, period=40)
    _routed_by_the_gateway(hardened_app, find_object, {"type": "STRICT_DNS", "dns_refresh_rate": "2s"})

    assert check_policies(hardened_app) == []


def test_service_resolved_to_a_cluster_ip_is_not_held_to_dns_timing(
    hardened_app: Objects, find_object: Any
) -> None:
    _run_as_vitalis_service(hardened_app, find_object, grace="10", pre_stop=5, period=40)
    _routed_by_the_gateway(hardened_app, find_object, {"type": "STRICT_DNS"})
    service_spec = find_object(hardened_app, "Service")["spec"]
    del service_spec["clusterIP"]
    service_spec["ports"][0]["port"] = 80

    assert check_policies(hardened_app) == []


def _findings_for(overlay: Path) -> list[str]:
    """The policy findings of a rendered overlay (the schemas are validated by test_validate)."""
    return [str(finding) for finding in check_policies(render(overlay, kubectl=find_kubectl()))]


def test_real_overlay_with_a_shortened_pre_stop_fails(k8s_copy: Path) -> None:
    manifest = k8s_copy / "base" / "documents.yaml"
    text = manifest.read_text()
    manifest.write_text(
        text.replace(
            "              sleep:\n                seconds: 10\n",
            "              sleep:\n                seconds: 5\n",
            1,
        )
    )

    findings = _findings_for(k8s_copy / "overlays" / "prod")

    assert len(findings) == 1
    assert findings[0].startswith(
        "Deployment/vitalis/documents: [graceful-shutdown] preStop sleeps 5 s but the gateway may route"
    )


def test_real_overlay_with_a_longer_drain_than_the_grace_period_fails(k8s_copy: Path) -> None:
    kustomization = k8s_copy / "base" / "kustomization.yaml"
    text = kustomization.read_text()
    assert "VITALIS_SHUTDOWN_GRACE_SECONDS=15" in text
    kustomization.write_text(
        text.replace("VITALIS_SHUTDOWN_GRACE_SECONDS=15", "VITALIS_SHUTDOWN_GRACE_SECONDS=20")
    )

    findings = _findings_for(k8s_copy / "overlays" / "dev")

    expected = "needs 55 s but terminationGracePeriodSeconds is 45"
    assert sorted(f.split(":")[0] for f in findings if expected in f) == [
        f"Deployment/vitalis/{name}"
        for name in sorted(("identity", "ingestion", "biomarkers", "documents", "insights"))
    ]


def _gateway_manifest_with(k8s_copy: Path, old: str, new: str) -> None:
    manifest = k8s_copy / "base" / "gateway" / "gateway.yaml"
    text = manifest.read_text()
    assert text.count(old) == 1, old
    manifest.write_text(text.replace(old, new))


def test_shipped_gateway_hook_is_read_as_the_wait_the_drain_entry_point_makes(k8s_root: Path) -> None:
    objects = render(k8s_root / "overlays" / "prod", kubectl=find_kubectl())
    gateway = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "gateway")
    envoy = gateway["spec"]["template"]["spec"]["containers"][0]
    command, flag, module, *arguments = envoy["lifecycle"]["preStop"]["exec"]["command"]

    assert (command, flag, module) == ("python", "-m", "vitalis_gateway.drain")
    assert pre_stop_seconds(envoy) == parse_arguments(arguments).seconds == 15
    assert [f for f in check_policies(objects) if f.subject == "Deployment/vitalis/gateway"] == []


@pytest.mark.parametrize(
    ("old", "new", "overlay", "expected"),
    [
        pytest.param(
            '- --seconds\n                  - "15"',
            '- --seconds\n                  - "5"',
            "prod",
            "preStop waits 5 s but Envoy drains its listeners for 10 s (--drain-time-s), so SIGTERM "
            "would cut the drain short",
            id="hook-shorter-than-envoys-drain",
        ),
        pytest.param(
            '- --seconds\n                  - "15"',
            '- --seconds\n                  - "28"',
            "dev",
            "preStop (28 s) + margin needs 33 s but terminationGracePeriodSeconds is 30",
            id="hook-longer-than-the-grace-period",
        ),
        pytest.param(
            '- --drain-time-s\n            - "10"',
            '- --drain-time-s\n            - "20"',
            "prod",
            "preStop waits 15 s but Envoy drains its listeners for 20 s (--drain-time-s), so SIGTERM "
            "would cut the drain short",
            id="drain-time-raised-past-the-hook",
        ),
    ],
)
def test_broken_gateway_shutdown_is_found(
    k8s_copy: Path, old: str, new: str, overlay: str, expected: str
) -> None:
    _gateway_manifest_with(k8s_copy, old, new)

    findings = _findings_for(k8s_copy / "overlays" / overlay)

    assert findings == [f"Deployment/vitalis/gateway: [graceful-shutdown] container envoy: {expected}"]


def _run_as_envoy(objects: Objects, find_object: Any, *, pre_stop: dict[str, Any], args: list[str]) -> None:
    pod_spec: dict[str, Any] = find_object(objects, "Deployment")["spec"]["template"]["spec"]
    container = pod_spec["containers"][0]
    container["command"] = ["/usr/local/bin/envoy", "-c", "/etc/envoy/envoy.yaml"]
    container["args"] = args
    container["lifecycle"] = {"preStop": pre_stop}


def _drain_hook(*arguments: str) -> dict[str, Any]:
    return {"exec": {"command": ["python", "-m", "vitalis_gateway.drain", *arguments]}}


@pytest.mark.parametrize(
    ("pre_stop", "args", "message"),
    [
        (
            _drain_hook("--admin", "http://127.0.0.1:9901", "--seconds=8"),
            ["--drain-time-s=5"],
            None,
        ),
        (
            _drain_hook("--admin", "http://127.0.0.1:9901", "--seconds", "8"),
            [],
            "preStop waits 8 s but Envoy drains its listeners for 600 s (the default --drain-time-s)",
        ),
        (
            _drain_hook("--admin", "http://127.0.0.1:9901", "--seconds", "soon"),
            ["--drain-time-s", "5"],
            "preStop waits 0 s but Envoy drains its listeners for 5 s (--drain-time-s)",
        ),
        (
            {"exec": {"command": ["sh", "-c", "curl -X POST localhost:9901/healthcheck/fail; sleep 8"]}},
            ["--drain-time-s", "5"],
            "preStop waits 0 s but Envoy drains its listeners for 5 s (--drain-time-s)",
        ),
        (
            {"sleep": {"seconds": 8}},
            ["--drain-time-s", "5"],
            None,
        ),
    ],
    ids=["drain-hook-covers-drain", "envoy-default-drain", "unreadable-seconds", "opaque-script", "sleep"],
)
def test_envoy_containers_wait_out_their_drain_time(
    hardened_app: Objects,
    find_object: Any,
    pre_stop: dict[str, Any],
    args: list[str],
    message: str | None,
) -> None:
    _run_as_envoy(hardened_app, find_object, pre_stop=pre_stop, args=args)

    findings = [f.message for f in check_policies(hardened_app)]

    if message is None:
        assert findings == []
    else:
        assert len(findings) == 1
        assert findings[0].startswith(f"container demo: {message}, so SIGTERM would cut the drain short")
