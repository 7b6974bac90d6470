"""The identity service's composition root: wires real dependencies once."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import grpc

from vitalis.identity.v1 import (
    account_internal_service_pb2_grpc,
    account_service_pb2_grpc,
    audit_log_internal_service_pb2_grpc,
    audit_log_service_pb2_grpc,
    auth_service_pb2_grpc,
    consent_service_pb2_grpc,
    data_rights_service_pb2_grpc,
    external_identity_internal_service_pb2_grpc,
    session_service_pb2_grpc,
    share_grant_internal_service_pb2_grpc,
    share_grant_service_pb2_grpc,
    signing_key_internal_service_pb2_grpc,
    user_data_service_pb2_grpc,
    user_service_pb2_grpc,
    webhook_service_pb2_grpc,
)
from vitalis_identity.accounts import Accounts
from vitalis_identity.api.accounts import AccountInternalServicer, AccountServicer
from vitalis_identity.api.audit import AuditLogInternalServicer, AuditLogServicer
from vitalis_identity.api.auth import AuthServicer
from vitalis_identity.api.consents import ConsentServicer
from vitalis_identity.api.data_rights import DataRightsServicer
from vitalis_identity.api.external import ExternalIdentityInternalServicer, WebhookServicer
from vitalis_identity.api.keys import SigningKeyInternalServicer
from vitalis_identity.api.sessions import SessionServicer
from vitalis_identity.api.sharing import ShareGrantInternalServicer, ShareGrantServicer
from vitalis_identity.api.user_data import IdentityUserData, UserDataServicer
from vitalis_identity.api.users import UserServicer
from vitalis_identity.audit import AuditTrail
from vitalis_identity.authentication import Authentication, SessionPolicy
from vitalis_identity.consents import Consents
from vitalis_identity.data_rights import DataRights, UserDataClient
from vitalis_identity.domain.keys import KeySchedule
from vitalis_identity.external import ClerkWebhooks, ExternalIdentities
from vitalis_identity.keyring import KeyRing
from vitalis_identity.paging import Pager
from vitalis_identity.profiles import Profiles
from vitalis_identity.sessions import Sessions
from vitalis_identity.settings import IdentitySettings
from vitalis_identity.sharing import Sharing
from vitalis_identity.throttle import RedisSignInThrottle
from vitalis_identity.user_data_clients import GrpcUserDataClient, LocalUserDataClient
from vitalis_runtime.auth import JwksCache, JwksFetch, TokenVerifier
from vitalis_runtime.bootstrap import Dependencies, ServiceParts, create_service_server
from vitalis_runtime.events import StreamNames
from vitalis_runtime.external_tokens import ExternalTokenVerifier, http_jwks
from vitalis_runtime.pagination import page_tokens_from
from vitalis_runtime.relay import OutboxRelay
from vitalis_runtime.service_auth import CallerVerifier, ServiceCredentials

PACKAGE = "vitalis.identity.v1"
SERVICE_NAMES = tuple(
    f"{PACKAGE}.{name}"
    for name in (
        "AuthService",
        "UserService",
        "AccountService",
        "AccountInternalService",
        "SessionService",
        "ConsentService",
        "ShareGrantService",
        "ShareGrantInternalService",
        "ExternalIdentityInternalService",
        "WebhookService",
        "DataRightsService",
        "UserDataService",
        "AuditLogService",
        "AuditLogInternalService",
        "SigningKeyInternalService",
    )
)
PUBLIC_METHODS = (
    *(f"/{PACKAGE}.AuthService/{method}" for method in ("SignUp", "SignIn", "RefreshSession", "GetJwks")),
    f"/{PACKAGE}.WebhookService/HandleClerkWebhook",
)
OTHER_SERVICES = ("ingestion", "biomarkers", "documents", "insights")


def _user_data_clients(
    settings: IdentitySettings, local: IdentityUserData
) -> tuple[list[UserDataClient], list[grpc.aio.Channel]]:
    """Identity's own part in-process, and every other service whose address and credentials are set."""
    from vitalis_client import create_channel

    clients: list[UserDataClient] = []
    channels: list[grpc.aio.Channel] = []
    credentials = ServiceCredentials.of(settings)
    if credentials is not None:
        for name in OTHER_SERVICES:
            target = getattr(settings, f"{name}_target")
            if target:
                channel = create_channel(target)
                channels.append(channel)
                clients.append(GrpcUserDataClient(name, channel, credentials))
    clients.append(LocalUserDataClient(local.export, local.erase))
    return clients, channels


def _verifier(
    settings: IdentitySettings, identities: ExternalIdentities, local_jwks: JwksFetch
) -> CallerVerifier:
    """Vitalis's own tokens, and the tokens of every external issuer with a configured JWKS."""
    vitalis = TokenVerifier(JwksCache(local_jwks), issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    jwks_uris = settings.external_jwks_uris()
    if not jwks_uris:
        return vitalis
    jwks = {issuer: http_jwks(uri) for issuer, uri in jwks_uris.items()}
    return ExternalTokenVerifier(vitalis, identities, jwks, audience=settings.external_token_audience)


async def create_identity_server(settings: IdentitySettings, deps: Dependencies) -> ServiceParts:
    """Build the identity server bound to ``settings.grpc_port`` (0 → a free port)."""
    schedule = KeySchedule(
        rotation_period=timedelta(days=settings.key_rotation_days),
        access_token_ttl=timedelta(seconds=settings.access_token_ttl_seconds),
    )
    keyring = KeyRing(
        deps.db,
        secret=settings.signing_key_secret.get_secret_value(),
        schedule=schedule,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    await keyring.refresh()

    async def local_jwks() -> dict[str, Any]:
        return keyring.jwks()

    db = deps.db
    grace = timedelta(days=settings.deletion_grace_days)
    pager = Pager(page_tokens_from(settings))
    audit = AuditTrail(db)
    throttle = RedisSignInThrottle(
        deps.redis,
        max_failures=settings.sign_in_max_failures,
        window=timedelta(seconds=settings.sign_in_failure_window_seconds),
    )
    authentication = Authentication(
        db,
        keyring,
        policy=SessionPolicy(
            refresh_token_ttl=timedelta(days=settings.refresh_token_ttl_days),
            session_ttl=timedelta(days=settings.session_ttl_days),
        ),
        throttle=throttle,
        audit=audit,
    )
    sharing = Sharing(db, audit)
    local_data = IdentityUserData(db, throttle=throttle)
    clients, channels = _user_data_clients(settings, local_data)
    rights = DataRights(db, audit, clients)
    identities = ExternalIdentities(
        db,
        clerk_issuer=settings.clerk_issuer,
        oidc_issuers=(*settings.oidc_issuers, *settings.oidc_jwks_uris),
        provision_on_first_use=settings.oidc_provision_on_first_use,
    )
    secret = settings.clerk_webhook_secret
    clerk = ClerkWebhooks(
        db, identities, rights.start_external_erasure, secret=secret.get_secret_value() if secret else None
    )
    accounts = Accounts(db, audit, deletion_grace=grace)

    def register(server: grpc.aio.Server) -> None:
        auth_service_pb2_grpc.add_AuthServiceServicer_to_server(AuthServicer(authentication, keyring), server)
        user_service_pb2_grpc.add_UserServiceServicer_to_server(
            UserServicer(Profiles(db, audit, deletion_grace=grace), sharing), server
        )
        account_service_pb2_grpc.add_AccountServiceServicer_to_server(AccountServicer(accounts), server)
        account_internal_service_pb2_grpc.add_AccountInternalServiceServicer_to_server(
            AccountInternalServicer(accounts), server
        )
        session_service_pb2_grpc.add_SessionServiceServicer_to_server(
            SessionServicer(Sessions(db), pager), server
        )
        consent_service_pb2_grpc.add_ConsentServiceServicer_to_server(
            ConsentServicer(Consents(db, audit), pager), server
        )
        share_grant_service_pb2_grpc.add_ShareGrantServiceServicer_to_server(
            ShareGrantServicer(sharing, pager), server
        )
        share_grant_internal_service_pb2_grpc.add_ShareGrantInternalServiceServicer_to_server(
            ShareGrantInternalServicer(sharing), server
        )
        external_identity_internal_service_pb2_grpc.add_ExternalIdentityInternalServiceServicer_to_server(
            ExternalIdentityInternalServicer(identities), server
        )
        webhook_service_pb2_grpc.add_WebhookServiceServicer_to_server(WebhookServicer(clerk), server)
        data_rights_service_pb2_grpc.add_DataRightsServiceServicer_to_server(
            DataRightsServicer(rights, pager), server
        )
        user_data_service_pb2_grpc.add_UserDataServiceServicer_to_server(UserDataServicer(local_data), server)
        audit_log_service_pb2_grpc.add_AuditLogServiceServicer_to_server(
            AuditLogServicer(audit, pager), server
        )
        audit_log_internal_service_pb2_grpc.add_AuditLogInternalServiceServicer_to_server(
            AuditLogInternalServicer(audit), server
        )
        signing_key_internal_service_pb2_grpc.add_SigningKeyInternalServiceServicer_to_server(
            SigningKeyInternalServicer(keyring, pager), server
        )

    parts = await create_service_server(
        settings,
        deps,
        register=register,
        service_names=SERVICE_NAMES,
        public_methods=PUBLIC_METHODS,
        verifier=_verifier(settings, identities, local_jwks),
    )

    relay = OutboxRelay(db, deps.redis, schema="identity", streams=StreamNames.of("identity", settings))

    async def close() -> None:
        for channel in channels:
            await channel.close()

    return replace(
        parts,
        background=[*parts.background, keyring.run_rotation, rights.run, relay.run],
        on_stop=[*parts.on_stop, close],
    )
