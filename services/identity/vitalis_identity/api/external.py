"""vitalis.identity.v1.WebhookService and ExternalIdentityInternalService."""

from __future__ import annotations

from google.protobuf import empty_pb2

from vitalis.identity.v1 import (
    external_identity_internal_service_pb2,
    external_identity_internal_service_pb2_grpc,
    webhook_service_pb2,
    webhook_service_pb2_grpc,
)
from vitalis_identity.api.context import Context, metadata_value
from vitalis_identity.external import SVIX_HEADERS, ClerkWebhooks, ExternalIdentities
from vitalis_runtime.external_tokens import ExternalProfile


class WebhookServicer(webhook_service_pb2_grpc.WebhookServiceServicer):
    """Deliveries from external identity providers."""

    def __init__(self, clerk: ClerkWebhooks) -> None:
        self._clerk = clerk

    async def HandleClerkWebhook(
        self, request: webhook_service_pb2.HandleClerkWebhookRequest, context: Context
    ) -> empty_pb2.Empty:
        """Verify a Clerk delivery and apply it once."""
        headers = {name: metadata_value(context, name) for name in SVIX_HEADERS}
        await self._clerk.handle(bytes(request.http_body.data), headers)
        return empty_pb2.Empty()


class ExternalIdentityInternalServicer(
    external_identity_internal_service_pb2_grpc.ExternalIdentityInternalServiceServicer
):
    """Maps external subjects to users."""

    def __init__(self, identities: ExternalIdentities) -> None:
        self._identities = identities

    async def ResolveExternalIdentity(
        self, request: external_identity_internal_service_pb2.ResolveExternalIdentityRequest, context: Context
    ) -> external_identity_internal_service_pb2.ResolveExternalIdentityResponse:
        """The user linked to a verified external subject, provisioned on first use when configured."""
        user_id, provisioned = await self._identities.link(
            request.issuer,
            request.subject,
            ExternalProfile(
                email=request.email,
                given_name=request.given_name,
                family_name=request.family_name,
                email_verified=bool(request.email),
            ),
        )
        return external_identity_internal_service_pb2.ResolveExternalIdentityResponse(
            user=f"users/{user_id}", provisioned=provisioned
        )
