"""The identity service's composition root: wires real dependencies once."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import grpc

from vitalis.identity.v1 import (
    auth_service_pb2,
    auth_service_pb2_grpc,
    user_service_pb2,
    user_service_pb2_grpc,
)
from vitalis_identity.api.auth import AuthServicer
from vitalis_identity.api.users import UserServicer
from vitalis_identity.authentication import Authentication, SessionPolicy
from vitalis_identity.domain.keys import KeySchedule
from vitalis_identity.keyring import KeyRing
from vitalis_identity.profiles import Profiles
from vitalis_identity.settings import IdentitySettings
from vitalis_runtime.auth import JwksCache, TokenVerifier
from vitalis_runtime.bootstrap import Dependencies, ServiceParts, create_service_server

AUTH_SERVICE = auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
USER_SERVICE = user_service_pb2.DESCRIPTOR.services_by_name["UserService"].full_name
SERVICE_NAMES = (AUTH_SERVICE, USER_SERVICE)
PUBLIC_METHODS = tuple(
    f"/{AUTH_SERVICE}/{method}" for method in ("SignUp", "SignIn", "RefreshSession", "GetJwks")
)


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

    authentication = Authentication(
        deps.db,
        keyring,
        policy=SessionPolicy(
            refresh_token_ttl=timedelta(days=settings.refresh_token_ttl_days),
            session_ttl=timedelta(days=settings.session_ttl_days),
        ),
    )
    profiles = Profiles(deps.db)

    def register(server: grpc.aio.Server) -> None:
        # Not every RPC of these contracts is implemented yet (password change, soft delete,
        # preferences); the generated base class answers those UNIMPLEMENTED.
        auth = AuthServicer(authentication, keyring)  # type: ignore[abstract]
        users = UserServicer(profiles)  # type: ignore[abstract]
        auth_service_pb2_grpc.add_AuthServiceServicer_to_server(auth, server)
        user_service_pb2_grpc.add_UserServiceServicer_to_server(users, server)

    parts = await create_service_server(
        settings,
        deps,
        register=register,
        service_names=SERVICE_NAMES,
        public_methods=PUBLIC_METHODS,
        verifier=TokenVerifier(
            JwksCache(local_jwks), issuer=settings.jwt_issuer, audience=settings.jwt_audience
        ),
    )
    return replace(parts, background=[*parts.background, keyring.run_rotation])
