"""A grantee with an ``insights`` share grant reads the owner's insights; nobody else does, and
nobody but the owner changes them. Grants are checked with identity's ShareGrantInternalService
contract, served here by a stand-in holding the grants a test gives."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from vitalis.identity.v1 import (
    share_grant_internal_service_pb2,
    share_grant_internal_service_pb2_grpc,
    share_grant_pb2,
)
from vitalis.insights.v1 import insight_service_pb2, insight_service_pb2_grpc
from vitalis_runtime.auth import current_principal
from vitalis_runtime.service_auth import ServiceTokenVerifier
from vitalis_runtime.testing_grpc import running_server

from .conftest import SERVICE_SECRET, Platform, bearer, eventually, running_insights
from .test_engine_acceptance import ldl_panel

pytestmark = pytest.mark.timeout(60)


class StandInGrants(share_grant_internal_service_pb2_grpc.ShareGrantInternalServiceServicer):
    """Identity's grant check over a set of (owner, grantee, scope) a test holds."""

    def __init__(self, grants: set[tuple[str, str, int]]) -> None:
        self._grants = grants

    async def CheckShareGrant(
        self, request: share_grant_internal_service_pb2.CheckShareGrantRequest, context: object
    ) -> share_grant_internal_service_pb2.CheckShareGrantResponse:
        """Allowed when the grant is held; the caller must be a service acting for the grantee."""
        assert current_principal().service == "insights"
        allowed = (request.owner, request.grantee, request.scope) in self._grants
        return share_grant_internal_service_pb2.CheckShareGrantResponse(allowed=allowed)


@pytest.fixture
async def identity(platform: Platform) -> AsyncIterator[tuple[str, set[tuple[str, str, int]]]]:
    grants: set[tuple[str, str, int]] = set()

    def register(server: grpc.aio.Server) -> None:
        share_grant_internal_service_pb2_grpc.add_ShareGrantInternalServiceServicer_to_server(
            StandInGrants(grants), server
        )

    async with running_server(
        service_name="identity",
        register=register,
        service_names=["vitalis.identity.v1.ShareGrantInternalService"],
        verifier=ServiceTokenVerifier(SERVICE_SECRET),
    ) as server:
        yield server.target, grants


async def test_a_grantee_reads_but_does_not_change_the_owners_insights(
    platform: Platform, identity: tuple[str, set[tuple[str, str, int]]]
) -> None:
    target, grants = identity
    owner, clinician, stranger = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    grants.add((f"users/{owner}", f"users/{clinician}", share_grant_pb2.SHARE_SCOPE_INSIGHTS))
    grants.add((f"users/{owner}", f"users/{stranger}", share_grant_pb2.SHARE_SCOPE_WEARABLES))
    async with running_insights(platform, platform.settings(identity_target=target)) as insights:
        await platform.publish("biomarkers", owner, ldl_panel(owner))
        stub = insight_service_pb2_grpc.InsightServiceStub(insights.channel)

        async def listed_by_clinician() -> list[str]:
            response = await stub.ListInsights(
                insight_service_pb2.ListInsightsRequest(parent=f"users/{owner}"),
                metadata=bearer(platform, clinician),
            )
            return [insight.name for insight in response.insights]

        names = await eventually(listed_by_clinician)
        assert len(names) == 1
        got = await stub.GetInsight(
            insight_service_pb2.GetInsightRequest(name=names[0]), metadata=bearer(platform, clinician)
        )
        assert got.rule == "rules/biomarker-out-of-range"

        with pytest.raises(grpc.aio.AioRpcError) as no_writes:
            await stub.DismissInsight(
                insight_service_pb2.DismissInsightRequest(name=names[0]), metadata=bearer(platform, clinician)
            )
        assert no_writes.value.code() == grpc.StatusCode.NOT_FOUND
        for caller in (stranger, uuid.uuid4()):
            with pytest.raises(grpc.aio.AioRpcError) as hidden:
                await stub.ListInsights(
                    insight_service_pb2.ListInsightsRequest(parent=f"users/{owner}"),
                    metadata=bearer(platform, caller),
                )
            assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
