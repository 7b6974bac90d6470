"""The rendered Envoy configuration: filter order, token rules, routes, clusters, validity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vitalis_gateway import (
    GatewaySource,
    plan_gateway,
    render_envoy_config,
    render_gateway_files,
    validate_config,
)
from vitalis_gateway.artifacts import ENVOY_CONFIG_FILE
from vitalis_runtime.catalog import SERVICES

FILES = Path("/srv/gateway")


def render(source: GatewaySource, target: str = "local", **overrides: Any) -> dict[str, Any]:
    return render_envoy_config(
        source,
        target=target,
        descriptor_path=FILES / "descriptor.binpb",
        openapi_path=FILES / "openapi.json",
        docs_path=FILES / "docs.html",
        **overrides,
    )


def connection_manager(config: dict[str, Any]) -> dict[str, Any]:
    listener = config["static_resources"]["listeners"][0]
    manager: dict[str, Any] = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return manager


def http_filter(config: dict[str, Any], name: str) -> dict[str, Any]:
    filters = connection_manager(config)["http_filters"]
    found: dict[str, Any] = next(f["typed_config"] for f in filters if f["name"] == name)
    return found


def routes(config: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = connection_manager(config)["route_config"]["virtual_hosts"][0]["routes"]
    return found


def cluster(config: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in config["static_resources"]["clusters"] if c["name"] == name)
    return found


@pytest.mark.parametrize("target", ["local", "kubernetes"])
def test_sample_config_passes_envoy_validation(
    sample_source: GatewaySource, tmp_path: Path, target: str
) -> None:
    files = render_gateway_files(sample_source, target=target, files_dir=tmp_path)
    validate_config(files.write(tmp_path)[ENVOY_CONFIG_FILE])


@pytest.mark.parametrize("target", ["local", "kubernetes"])
def test_project_config_passes_envoy_validation(
    project_source: GatewaySource, tmp_path: Path, target: str
) -> None:
    files = render_gateway_files(project_source, target=target, files_dir=tmp_path)
    validate_config(files.write(tmp_path)[ENVOY_CONFIG_FILE])


def test_identity_headers_are_stripped_before_any_token_is_verified(sample_source: GatewaySource) -> None:
    names = [f["name"] for f in connection_manager(render(sample_source))["http_filters"]]

    assert names[0] == "envoy.filters.http.header_mutation"
    assert names.index("envoy.filters.http.header_mutation") < names.index("envoy.filters.http.jwt_authn")
    assert names[-1] == "envoy.filters.http.router"


def test_header_mutation_removes_the_verified_user_header_and_its_prefix(
    sample_source: GatewaySource,
) -> None:
    mutations = http_filter(render(sample_source), "envoy.filters.http.header_mutation")["mutations"]
    removals = mutations["request_mutations"]

    assert {"remove_on_match": {"key_matcher": {"prefix": "x-vitalis-"}}} in removals
    assert {"remove": "x-jwt-payload"} in removals


def test_rest_calls_are_transcoded_before_tokens_are_checked(sample_source: GatewaySource) -> None:
    names = [f["name"] for f in connection_manager(render(sample_source))["http_filters"]]

    assert names.index("envoy.filters.http.grpc_json_transcoder") < names.index(
        "envoy.filters.http.jwt_authn"
    )


def test_a_request_matching_no_exemption_must_carry_a_token_of_any_provider(
    sample_source: GatewaySource,
) -> None:
    rules = http_filter(render(sample_source), "envoy.filters.http.jwt_authn")["rules"]

    assert rules[-1] == {
        "match": {"prefix": "/"},
        "requires": {
            "requires_any": {"requirements": [{"provider_name": "vitalis"}, {"provider_name": "clerk"}]}
        },
    }
    assert all("requires" not in rule for rule in rules[:-1])


def test_exemptions_are_the_exempt_rpcs_and_the_gateway_pages_only(sample_source: GatewaySource) -> None:
    rules = http_filter(render(sample_source), "envoy.filters.http.jwt_authn")["rules"]

    assert [rule["match"] for rule in rules[:-1]] == [
        {"path": "/gwtest.records.v1.SessionService/SignIn"},
        {"path": "/gwtest.records.v1.SessionService/GetKeys"},
        {"path": "/healthz"},
        {"path": "/readyz"},
        {"path": "/openapi.json"},
        {"path": "/docs"},
    ]


def test_tokens_are_forwarded_and_the_subject_becomes_the_user_header(sample_source: GatewaySource) -> None:
    provider = http_filter(render(sample_source), "envoy.filters.http.jwt_authn")["providers"]["vitalis"]

    assert provider["forward"] is True
    assert provider["claim_to_headers"] == [{"header_name": "x-vitalis-user-id", "claim_name": "sub"}]
    assert provider["from_cookies"] == ["session_token"]
    assert provider["from_headers"] == [{"name": "authorization", "value_prefix": "Bearer "}]
    assert provider["audiences"] == ["vitalis-api"]


def test_vitalis_keys_are_fetched_from_the_gateway_itself(sample_source: GatewaySource) -> None:
    config = render(sample_source, listen_port=18999)
    remote = http_filter(config, "envoy.filters.http.jwt_authn")["providers"]["vitalis"]["remote_jwks"]

    assert remote["http_uri"]["uri"] == "http://127.0.0.1:18999/.well-known/jwks.json"
    endpoint = cluster(config, remote["http_uri"]["cluster"])["load_assignment"]["endpoints"][0][
        "lb_endpoints"
    ][0]
    assert endpoint["endpoint"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 18999}
    assert "async_fetch" in remote


def test_external_issuer_keys_are_fetched_over_verified_tls(sample_source: GatewaySource) -> None:
    config = render(sample_source)
    remote = http_filter(config, "envoy.filters.http.jwt_authn")["providers"]["clerk"]["remote_jwks"]
    tls = cluster(config, remote["http_uri"]["cluster"])["transport_socket"]["typed_config"]

    assert tls["sni"] == "clerk.example.test"
    assert tls["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"]


def test_every_public_rpc_is_routed_to_its_service(sample_source: GatewaySource) -> None:
    table = {r["match"].get("path"): r for r in routes(render(sample_source))}
    public = [m for m in sample_source.api.methods() if m.is_public]

    assert len(public) == 8
    for method in public:
        assert table[method.grpc_path]["route"]["cluster"] == "records"


def test_internal_rpcs_answer_not_found_and_reach_no_cluster(sample_source: GatewaySource) -> None:
    table = routes(render(sample_source))
    internal = [r for r in table if r["name"].startswith("internal:")]

    assert {r["match"].get("path") or r["match"].get("prefix") for r in internal} == {
        "/gwtest.records.v1.RecordInternalService/",
        "/gwtest.records.v1.RecordService/ReindexRecords",
    }
    assert all(r["direct_response"]["status"] == 404 for r in internal)
    forwarded = {r["match"].get("path") for r in table if "route" in r}
    assert "/gwtest.records.v1.RecordService/ReindexRecords" not in forwarded


def test_only_services_with_http_bindings_are_transcoded(sample_source: GatewaySource) -> None:
    transcoder = http_filter(render(sample_source), "envoy.filters.http.grpc_json_transcoder")

    assert transcoder["services"] == ["gwtest.records.v1.RecordService", "gwtest.records.v1.SessionService"]
    assert transcoder["request_validation_options"] == {
        "reject_unknown_method": True,
        "reject_unknown_query_parameters": True,
    }
    assert transcoder["print_options"]["stream_newline_delimited"] is True
    assert transcoder["convert_grpc_status"] is True


def test_streams_have_no_timeout_and_unary_calls_do(sample_source: GatewaySource) -> None:
    table = {r["name"]: r for r in routes(render(sample_source))}

    assert table["gwtest.records.v1.RecordService/WatchRecords"]["route"]["timeout"] == "0s"
    assert table["gwtest.records.v1.RecordService/GetRecord"]["route"]["timeout"] == "5s"
    assert table["gwtest.records.v1.RecordService/UploadRecord"]["route"]["timeout"] == "30s"


def test_only_rpcs_bound_to_get_are_retried(sample_source: GatewaySource) -> None:
    table = {r["name"]: r for r in routes(render(sample_source))}

    assert "retry_policy" in table["gwtest.records.v1.RecordService/GetRecord"]["route"]
    assert "retry_policy" in table["gwtest.records.v1.RecordService/ListRecords"]["route"]
    assert "retry_policy" not in table["gwtest.records.v1.RecordService/CreateRecord"]["route"]
    assert "retry_policy" not in table["gwtest.records.v1.RecordService/WatchRecords"]["route"]


def test_local_clusters_are_loopback_and_kubernetes_clusters_are_service_names(
    sample_source: GatewaySource,
) -> None:
    local = cluster(render(sample_source), "records")
    kubernetes = cluster(render(sample_source, "kubernetes"), "records")

    def address(c: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        return found["socket_address"]

    assert (local["type"], address(local)) == ("STATIC", {"address": "127.0.0.1", "port_value": 50101})
    assert (kubernetes["type"], address(kubernetes)) == (
        "STRICT_DNS",
        {"address": "records.vitalis.svc", "port_value": 50101},
    )
    assert local["health_checks"][0]["grpc_health_check"] == {}
    assert local["circuit_breakers"]["thresholds"]


def test_only_kubernetes_exports_traces(sample_source: GatewaySource) -> None:
    assert "tracing" not in connection_manager(render(sample_source))
    tracing = connection_manager(render(sample_source, "kubernetes"))["tracing"]
    assert tracing["provider"]["name"] == "envoy.tracers.opentelemetry"


def test_given_service_addresses_replace_the_defaults(sample_source: GatewaySource) -> None:
    config = render(sample_source, service_addresses={"records": ("127.0.0.1", 41234)})
    endpoint = cluster(config, "records")["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]

    assert endpoint["address"]["socket_address"]["port_value"] == 41234


def test_addresses_of_unknown_services_are_refused(sample_source: GatewaySource) -> None:
    with pytest.raises(ValueError, match="unknown services"):
        render(sample_source, service_addresses={"nope": ("127.0.0.1", 1)})


def test_client_errors_from_envoy_are_json_for_rest_clients_only(sample_source: GatewaySource) -> None:
    mappers = connection_manager(render(sample_source))["local_reply_config"]["mappers"]
    unauthenticated = next(
        m
        for m in mappers
        if m["filter"]["and_filter"]["filters"][0]["status_code_filter"]["comparison"]["value"][
            "default_value"
        ]
        == 401
    )

    assert unauthenticated["body_format_override"]["json_format"] == {
        "code": 16,
        "message": "%LOCAL_REPLY_BODY%",
    }
    assert (
        unauthenticated["filter"]["and_filter"]["filters"][1]["header_filter"]["header"]["invert_match"]
        is True
    )


def test_names_absent_from_the_contracts_are_reported(sample_source: GatewaySource) -> None:
    assert set(plan_gateway(sample_source).absent_names) == {
        "gwtest.records.v1.SessionService/NoSuchMethod",
        "gwtest.records.v1.NoSuchService",
    }


def test_project_gateway_ports_match_the_service_catalog(project_source: GatewaySource) -> None:
    assert {name: s.port for name, s in project_source.services.items()} == {
        s.name: s.grpc_port for s in SERVICES
    }
    assert {name: s.packages for name, s in project_source.services.items()} == {
        s.name: (s.proto_package,) for s in SERVICES
    }


def test_project_exempts_exactly_the_sign_in_flow_jwks_and_webhooks(project_source: GatewaySource) -> None:
    exempt = {r.method.full_name for r in plan_gateway(project_source).routed if r.exempt}

    assert exempt <= {
        "vitalis.identity.v1.AuthService/SignUp",
        "vitalis.identity.v1.AuthService/SignIn",
        "vitalis.identity.v1.AuthService/RefreshSession",
        "vitalis.identity.v1.AuthService/GetJwks",
        "vitalis.identity.v1.WebhookService/HandleClerkWebhook",
    }
    assert "vitalis.identity.v1.AuthService/GetJwks" in exempt
