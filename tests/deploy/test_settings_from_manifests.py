"""Each service's settings accept the environment its Deployment gives it, so every pod can start."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest

from vitalis_deploy.network import Endpoint, NetworkModel, outside
from vitalis_deploy.render import find_kubectl, render
from vitalis_deploy.schema import DEFAULT_KUBERNETES_VERSIONS
from vitalis_deploy.validate import validate_overlay
from vitalis_deploy.workloads import config_maps_by_name, pod_workloads, resolved_environment
from vitalis_runtime.catalog import SERVICES, ServiceSpec, service
from vitalis_runtime.settings import ConfigurationError, ServiceSettings

OVERLAYS = Path(__file__).resolve().parents[2] / "deploy/k8s/overlays"
# Stand-ins for the values the pods read from Secrets, shaped as the settings expect.
SECRET_STAND_INS = {
    "DATABASE_URL": "postgresql://app:secret@postgres.example.internal:5432/vitalis",
    "REDIS_URL": "rediss://:secret@redis.example.internal:6379/0",
    "VITALIS_PAGE_TOKEN_SECRET": "p" * 48,
    "VITALIS_SERVICE_TOKEN_SECRET": "s" * 48,
    "VITALIS_SIGNING_KEY_SECRET": "k" * 48,
    "VITALIS_CLERK_WEBHOOK_SECRET": "whsec_" + "c" * 32,
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "e" * 40,
    "VITALIS_LLM_API_KEY": "sk-" + "l" * 40,
    "VITALIS_PAGE_TOKEN_PREVIOUS_SECRETS": "q" * 48,
    "VITALIS_SERVICE_TOKEN_PREVIOUS_SECRETS": "t" * 48,
}


@pytest.fixture(scope="module", params=["dev", "prod"])
def objects(request: pytest.FixtureRequest) -> list[Any]:
    """One overlay, rendered."""
    return list(render(OVERLAYS / request.param, kubectl=find_kubectl()))


def _settings_class(spec: ServiceSpec) -> type[ServiceSettings]:
    module = importlib.import_module(f"{spec.module}.settings")
    (found,) = (
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, ServiceSettings) and cls is not ServiceSettings
    )
    return found


def _pod_environment(objects: list[Any], name: str) -> dict[str, str]:
    """The Deployment's literal environment, with stand-ins for what comes from Secrets."""
    workload = next(w for w in pod_workloads(objects) if w.kind == "Deployment" and w.name == name)
    container = workload.pod_spec["containers"][0]
    environment = resolved_environment(
        container, namespace=workload.namespace, config_maps=config_maps_by_name(objects)
    )
    for entry in container.get("env", []):
        if "secretKeyRef" in entry.get("valueFrom", {}):
            environment[entry["name"]] = SECRET_STAND_INS[entry["name"]]
    return environment


@pytest.mark.parametrize("spec", SERVICES, ids=lambda spec: spec.name)
def test_service_settings_load_from_the_deployments_environment(
    objects: list[Any], spec: ServiceSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_class = _settings_class(spec)
    for field in settings_class.model_fields:
        monkeypatch.delenv(settings_class.env_name(field), raising=False)
    for name, value in _pod_environment(objects, spec.name).items():
        monkeypatch.setenv(name, value)

    try:
        settings = settings_class.from_env()
    except ConfigurationError as error:
        pytest.fail(f"{spec.name} would not start: {error}")

    assert settings.service_name == spec.name


def test_documents_keeps_files_on_a_volume_in_dev_and_in_a_bucket_in_prod(
    objects: list[Any], request: pytest.FixtureRequest
) -> None:
    environment = _pod_environment(objects, "documents")
    if "prod" in request.node.callspec.id:
        assert environment["VITALIS_STORAGE_BACKEND"] == "s3"
        return
    documents = next(w for w in pod_workloads(objects) if w.name == "documents")
    mounts = {m["mountPath"]: m["name"] for m in documents.pod_spec["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in documents.pod_spec["volumes"]}
    assert environment["VITALIS_STORAGE_BACKEND"] == "disk"
    claim = volumes[mounts[environment["VITALIS_STORAGE_ROOT"]]]["persistentVolumeClaim"]["claimName"]
    assert any(o["kind"] == "PersistentVolumeClaim" and o["metadata"]["name"] == claim for o in objects)


def test_insights_llm_component_configures_insights_and_opens_https_for_it_alone(
    k8s_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kustomization = k8s_copy / "overlays" / "prod" / "kustomization.yaml"
    text = kustomization.read_text()
    kustomization.write_text(
        text.replace(
            "  - ../../components/service-monitors\n",
            "  - ../../components/service-monitors\n  - ../../components/insights-llm\n",
            1,
        )
    )
    objects = list(render(k8s_copy / "overlays" / "prod", kubectl=find_kubectl()))
    report = validate_overlay(
        k8s_copy / "overlays" / "prod", kubectl=find_kubectl(), versions=DEFAULT_KUBERNETES_VERSIONS
    )
    default = list(render(OVERLAYS / "prod", kubectl=find_kubectl()))
    settings_class = _settings_class(service("insights"))
    for field in settings_class.model_fields:
        monkeypatch.delenv(settings_class.env_name(field), raising=False)
    for name, value in _pod_environment(objects, "insights").items():
        monkeypatch.setenv(name, value)
    settings = settings_class.from_env()

    assert report.findings == ()
    assert getattr(settings, "llm_base_url", None) == "https://api.openai.com/v1"
    assert _can_reach_the_internet(objects, "insights")
    assert not _can_reach_the_internet(objects, "ingestion")
    assert not _can_reach_the_internet(default, "insights")


def _can_reach_the_internet(objects: list[Any], name: str) -> bool:
    workload = next(w for w in pod_workloads(objects) if w.kind == "Deployment" and w.name == name)
    model = NetworkModel((o for o in objects if o["kind"] == "NetworkPolicy"), {})
    pod = Endpoint(workload.subject, workload.namespace, workload.pod_labels, workload.named_ports())
    return model.allows(pod, outside("an HTTPS API"), 443)
