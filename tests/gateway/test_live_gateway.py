"""The real Envoy on the local configuration, with no backend running: what it answers by itself."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from vitalis_gateway import GatewaySource, plan_gateway, render_gateway_files, running_envoy
from vitalis_gateway.artifacts import ENVOY_CONFIG_FILE
from vitalis_gateway.path_template import parse_path_template
from vitalis_runtime.embedded import free_port

ORIGIN = "http://localhost:3000"


@pytest.fixture(scope="module")
async def gateway(
    project_source: GatewaySource, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    files_dir = tmp_path_factory.mktemp("gateway")
    listen_port, admin_port = free_port(), free_port()
    files = render_gateway_files(
        project_source, target="local", files_dir=files_dir, listen_port=listen_port, admin_port=admin_port
    )
    config = files.write(files_dir)[ENVOY_CONFIG_FILE]
    async with (
        running_envoy(config, admin_port=admin_port, log_path=files_dir / "envoy.log"),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{listen_port}", timeout=5.0) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def protected_path(project_source: GatewaySource) -> str:
    """A concrete URL of the first GET operation that needs a token."""
    for routed in plan_gateway(project_source).routed:
        for binding in routed.method.bindings:
            if binding.verb == "get" and not routed.exempt:
                return re.sub(r"\{[^}]+\}", "someone", parse_path_template(binding.path).openapi_path)
    pytest.fail("the contracts have no protected GET operation")


async def test_healthz_answers_200_without_a_token(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "SERVING"}


async def test_readyz_is_unavailable_while_no_backend_is_healthy(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/readyz")

    assert response.status_code == 503
    assert response.json()["code"] == 14


async def test_docs_is_an_html_page_reading_the_openapi_document(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text


async def test_openapi_document_is_served_as_json(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/openapi.json")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["openapi"] == "3.1.0"


async def test_unknown_path_is_404_as_json(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/v1/no/such/thing")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == 5


async def test_protected_path_without_a_token_is_401_as_json(
    gateway: httpx.AsyncClient, protected_path: str
) -> None:
    response = await gateway.get(protected_path)

    assert response.status_code == 401
    assert response.json() == {"code": 16, "message": "Jwt is missing"}


async def test_forged_user_header_alone_is_401(gateway: httpx.AsyncClient, protected_path: str) -> None:
    response = await gateway.get(
        protected_path, headers={"x-vitalis-user-id": "00000000-0000-0000-0000-000000000001"}
    )

    assert response.status_code == 401


async def test_a_token_that_cannot_be_verified_is_401(
    gateway: httpx.AsyncClient, protected_path: str
) -> None:
    forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4IiwiaXNzIjoidml0YWxpcyJ9."

    from_header = await gateway.get(protected_path, headers={"authorization": f"Bearer {forged}"})
    from_cookie = await gateway.get(protected_path, headers={"cookie": f"vitalis_access_token={forged}"})

    assert (from_header.status_code, from_cookie.status_code) == (401, 401)


async def test_header_names_with_underscores_are_refused(
    gateway: httpx.AsyncClient, protected_path: str
) -> None:
    response = await gateway.get(protected_path, headers={"x_vitalis_user_id": "someone"})

    assert response.status_code == 400


async def test_encoded_slashes_in_paths_are_refused(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/v1/users/a%2Fb")

    assert response.status_code == 400


async def test_grpc_callers_get_a_grpc_status_not_json(
    gateway: httpx.AsyncClient, project_source: GatewaySource
) -> None:
    internal = plan_gateway(project_source).internal_services[0]
    response = await gateway.post(
        f"/{internal.full_name}/{internal.methods[0].name}",
        headers={"content-type": "application/grpc", "te": "trailers"},
        content=b"\x00\x00\x00\x00\x00",
    )

    assert response.headers["grpc-status"] == "16"
    assert response.headers["content-type"] == "application/grpc"


async def test_browsers_from_an_allowed_origin_pass_the_preflight(gateway: httpx.AsyncClient) -> None:
    response = await gateway.options(
        "/v1/auth:signIn", headers={"origin": ORIGIN, "access-control-request-method": "POST"}
    )

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"


async def test_envoy_does_not_announce_itself(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/healthz")

    assert "server" not in response.headers
    assert response.headers["x-request-id"]
