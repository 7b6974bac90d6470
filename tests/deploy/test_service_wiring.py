"""The manifests start each service the way its code expects: module, ports, settings, migrations."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest

from vitalis_deploy.render import find_kubectl, render
from vitalis_deploy.workloads import PodWorkload, config_maps_by_name, pod_workloads, resolved_environment
from vitalis_runtime.catalog import SERVICES, ServiceSpec, service
from vitalis_runtime.settings import ServiceSettings

REPOSITORY = Path(__file__).resolve().parents[2]
# Given to a service although its settings do not declare them, and why.
FORWARDED_WITHOUT_A_SETTING = {
    "AWS_ACCESS_KEY_ID": "read from the environment by the S3 client of documents",
    "AWS_SECRET_ACCESS_KEY": "read from the environment by the S3 client of documents",
    "VITALIS_CLERK_WEBHOOK_SECRET": "identity's Clerk webhook verification (optional Secret key)",
}


@pytest.fixture(scope="module", params=["dev", "prod"])
def objects(request: pytest.FixtureRequest) -> list[Any]:
    """One overlay, rendered."""
    return list(render(REPOSITORY / "deploy/k8s/overlays" / request.param, kubectl=find_kubectl()))


def _settings_class(spec: ServiceSpec) -> type[ServiceSettings]:
    module = importlib.import_module(f"{spec.module}.settings")
    classes = [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, ServiceSettings) and cls is not ServiceSettings
    ]
    assert len(classes) == 1, classes
    return classes[0]


def _workload(objects: list[Any], kind: str, name: str) -> PodWorkload:
    return next(w for w in pod_workloads(objects) if w.kind == kind and w.name == name)


def _environment(objects: list[Any], workload: PodWorkload) -> tuple[dict[str, str], set[str]]:
    """The literal environment of the first container, and every variable name it is given."""
    container = workload.pod_spec["containers"][0]
    literal = resolved_environment(
        container, namespace=workload.namespace, config_maps=config_maps_by_name(objects)
    )
    return literal, set(literal) | {entry["name"] for entry in container.get("env", [])}


@pytest.mark.parametrize("spec", SERVICES, ids=lambda spec: spec.name)
def test_deployment_runs_the_service_module_on_its_catalog_port(
    objects: list[Any], spec: ServiceSpec
) -> None:
    workload = _workload(objects, "Deployment", spec.name)
    container = workload.pod_spec["containers"][0]
    literal, _ = _environment(objects, workload)
    kube_service = next(o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == spec.name)

    assert container["command"] == ["python", "-m", spec.module]
    assert (REPOSITORY / "services" / spec.name / spec.module / "__main__.py").is_file()
    assert workload.named_ports()["grpc"] == spec.grpc_port
    assert container["readinessProbe"]["grpc"]["port"] == spec.grpc_port
    assert container["livenessProbe"]["grpc"] == {"port": spec.grpc_port, "service": "liveness"}
    assert {p["name"]: p["port"] for p in kube_service["spec"]["ports"]}["grpc"] == spec.grpc_port
    assert literal["VITALIS_SERVICE_NAME"] == spec.name
    assert literal["VITALIS_GRPC_PORT"] == str(spec.grpc_port)
    assert literal["VITALIS_METRICS_PORT"] == str(workload.named_ports()["metrics"])
    assert literal["VITALIS_DATABASE_ROLE"] == spec.app_role
    assert literal["VITALIS_IDENTITY_TARGET"] == f"identity:{service('identity').grpc_port}"


@pytest.mark.parametrize("spec", SERVICES, ids=lambda spec: spec.name)
def test_every_required_setting_is_provided_and_every_variable_is_read(
    objects: list[Any], spec: ServiceSpec
) -> None:
    settings = _settings_class(spec)
    declared = {settings.env_name(field) for field in settings.model_fields}
    required = {
        settings.env_name(field) for field, info in settings.model_fields.items() if info.is_required()
    }
    _, given = _environment(objects, _workload(objects, "Deployment", spec.name))

    assert required - given == set()
    assert given - declared - set(FORWARDED_WITHOUT_A_SETTING) == set()


@pytest.mark.parametrize("spec", SERVICES, ids=lambda spec: spec.name)
def test_migration_job_migrates_the_service_with_the_owner_credentials(
    objects: list[Any], spec: ServiceSpec
) -> None:
    job = _workload(objects, "Job", f"{spec.name}-migrate")
    container = job.pod_spec["containers"][0]
    secrets = {
        entry["name"]: entry["valueFrom"]["secretKeyRef"]
        for entry in container["env"]
        if "valueFrom" in entry
    }

    assert container["command"] == ["vitalis", "migrate", "--service", spec.name]
    assert secrets == {
        "VITALIS_MIGRATE_DATABASE_URL": {
            "name": f"{spec.name}-database",
            "key": "VITALIS_MIGRATE_DATABASE_URL",
        }
    }
    service_keys = {
        entry["valueFrom"]["secretKeyRef"]["key"]
        for entry in _workload(objects, "Deployment", spec.name).pod_spec["containers"][0]["env"]
        if "secretKeyRef" in entry.get("valueFrom", {})
    }
    assert "VITALIS_MIGRATE_DATABASE_URL" not in service_keys
