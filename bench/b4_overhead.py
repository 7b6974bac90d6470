"""B4: where a read's time goes — gRPC direct, through Envoy, transcoded to REST, and the edge JWT check.

Every arm reads the caller's own user with identity's ``UserService/GetUser`` and sends the same
access token (the service re-verifies it in every arm). The adjacent arms differ by one hop each:

1. ``grpc direct``: the load generator calls identity's gRPC port.
2. ``grpc via envoy``: the same call through an Envoy whose ``jwt_authn`` exempts GetUser.
3. ``rest via envoy``: ``GET /v1/users/{id}`` through that Envoy (JSON transcoding).
4. ``rest + jwt``: the same REST call through the real gateway, which verifies the token at the edge.
"""

from __future__ import annotations

import base64

from bench.report import ArmOutcome, Bound, Target
from bench.runner import DriverArm, Log, Settings, measure_arms, rpc_probe
from bench.stack import Stack
from vitalis.identity.v1 import user_service_pb2

METHOD = "/vitalis.identity.v1.UserService/GetUser"
GRPC_DIRECT, GRPC_ENVOY, REST_ENVOY, REST_JWT = (
    "B4 grpc direct",
    "B4 grpc via envoy",
    "B4 rest",
    "B4 rest + jwt",
)

TARGETS = (
    Target(
        "B4",
        "GetUser: REST + JWT through Envoy vs gRPC direct (throughput)",
        arm=REST_JWT,
        reference=GRPC_DIRECT,
        value=0.8,
    ),
    Target(
        "B4", "hop: gRPC through Envoy vs direct", arm=GRPC_ENVOY, reference=GRPC_DIRECT, bound=Bound.REPORTED
    ),
    Target(
        "B4",
        "hop: JSON transcoding vs gRPC through Envoy",
        arm=REST_ENVOY,
        reference=GRPC_ENVOY,
        bound=Bound.REPORTED,
    ),
    Target(
        "B4",
        "hop: edge JWT check vs REST without it",
        arm=REST_JWT,
        reference=REST_ENVOY,
        bound=Bound.REPORTED,
    ),
)


async def run(stack: Stack, settings: Settings, log: Log) -> dict[str, ArmOutcome]:
    """Measure the four arms interleaved."""
    user = await stack.sign_up()
    request = user_service_pb2.GetUserRequest(name=user.name).SerializeToString()
    probe = rpc_probe(stack.target("identity"), METHOD, request, user.metadata, service="identity")
    grpc_spec = {"kind": "grpc_unary", "method": METHOD, "request_b64": base64.b64encode(request).decode()}
    rest_path = f"/v1/{user.name}"
    arms = [
        DriverArm(
            GRPC_DIRECT,
            "req",
            {**grpc_spec, "target": stack.target("identity"), "metadata": user.metadata},
            stack,
            probe,
        ),
        DriverArm(
            GRPC_ENVOY,
            "req",
            {**grpc_spec, "target": stack.exempt_gateway_target, "metadata": user.metadata},
            stack,
            probe,
        ),
        DriverArm(
            REST_ENVOY,
            "req",
            {
                "kind": "http",
                "method": "GET",
                "url": stack.exempt_gateway_url + rest_path,
                "headers": user.bearer,
            },
            stack,
            probe,
        ),
        DriverArm(
            REST_JWT,
            "req",
            {"kind": "http", "method": "GET", "url": stack.gateway_url + rest_path, "headers": user.bearer},
            stack,
            probe,
        ),
    ]
    return await measure_arms(arms, settings, log)
