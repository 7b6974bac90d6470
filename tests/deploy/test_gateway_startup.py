"""The gateway's startup probe passes only once Envoy has fetched identity's signing keys.

The probe's own script, taken from the rendered Deployment, runs against a real Envoy with the
deployed configuration: once with identity unreachable, once with a gRPC server answering identity's
``GetJwks`` (and health) at the address the identity cluster is pointed to.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from google.api import httpbody_pb2  # type: ignore[import-untyped]
from google.protobuf import empty_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from jwt.algorithms import ECAlgorithm

from vitalis_deploy.render import find_kubectl, render

PROD = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "overlays" / "prod"
DEPLOYED_ADMIN = "http://127.0.0.1:9901"


@pytest.fixture(scope="module")
def probe_script() -> str:
    """The Python the gateway's startup probe runs, as rendered for production."""
    gateway = next(
        o
        for o in render(PROD, kubectl=find_kubectl())
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "gateway"
    )
    command = gateway["spec"]["template"]["spec"]["containers"][0]["startupProbe"]["exec"]["command"]
    assert command[:2] == ["python", "-c"]
    assert DEPLOYED_ADMIN in command[2]
    script: str = command[2]
    return script


def _probe(script: str, admin_port: int) -> int:
    local = script.replace(DEPLOYED_ADMIN, f"http://127.0.0.1:{admin_port}")
    return subprocess.run([sys.executable, "-c", local], timeout=10, check=False).returncode


@pytest.fixture
def identity_with_keys() -> Iterator[str]:
    """A gRPC server answering identity's GetJwks with one ES256 key, and SERVING health."""
    jwk = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key()))
    jwk.update({"kid": "startup-probe", "use": "sig", "alg": "ES256"})
    body = httpbody_pb2.HttpBody(content_type="application/json", data=json.dumps({"keys": [jwk]}).encode())

    def get_jwks(request: empty_pb2.Empty, context: grpc.ServicerContext) -> Any:
        return body

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.unary_unary_rpc_method_handler(
        get_jwks,
        request_deserializer=empty_pb2.Empty.FromString,
        response_serializer=httpbody_pb2.HttpBody.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("vitalis.identity.v1.AuthService", {"GetJwks": handler}),)
    )
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


def test_probe_fails_while_the_gateway_has_no_signing_keys(probe_script: str, local_gateway: Any) -> None:
    stats = local_gateway.get(
        f"http://127.0.0.1:{local_gateway.admin}/stats?filter=jwks_fetch_success"
    ).decode()

    assert "http.gateway.jwt_authn.jwks_fetch_success: 0" in stats
    assert _probe(probe_script, local_gateway.admin) == 1


def test_probe_passes_once_the_keys_are_fetched(
    probe_script: str, identity_with_keys: str, start_gateway: Any, tmp_path: Path
) -> None:
    with start_gateway(tmp_path, identity=identity_with_keys) as gateway:
        deadline = time.monotonic() + 20
        while _probe(probe_script, gateway.admin) != 0:
            assert time.monotonic() < deadline, gateway.get(
                f"http://127.0.0.1:{gateway.admin}/stats?filter=jwks"
            )
            time.sleep(0.5)
        jwks = json.loads(gateway.get(f"http://127.0.0.1:{gateway.listener}/.well-known/jwks.json"))

    assert [key["kid"] for key in jwks["keys"]] == ["startup-probe"]
