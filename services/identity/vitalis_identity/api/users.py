"""vitalis.identity.v1.UserService."""

from __future__ import annotations

import grpc

from vitalis.identity.v1 import user_pb2, user_service_pb2, user_service_pb2_grpc
from vitalis_identity.api.convert import (
    populated_profile_fields,
    profile_changes,
    resolve_user_name,
    user_to_proto,
)
from vitalis_identity.profiles import Profiles
from vitalis_runtime.errors import InvalidArgument


class UserServicer(user_service_pb2_grpc.UserServiceServicer):
    """A user's own profile."""

    def __init__(self, profiles: Profiles) -> None:
        self._profiles = profiles

    async def GetUser(
        self, request: user_service_pb2.GetUserRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> user_pb2.User:
        """The profile of ``users/{user}`` or ``users/me``."""
        user_id = resolve_user_name(request.name)
        return user_to_proto(await self._profiles.get(user_id))

    async def UpdateUser(
        self, request: user_service_pb2.UpdateUserRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> user_pb2.User:
        """Change the fields named by the update mask."""
        if not request.HasField("user"):
            raise InvalidArgument.for_field("user", "is required")
        user_id = resolve_user_name(request.user.name, field="user.name")
        paths = list(request.update_mask.paths) if request.HasField("update_mask") else []
        if not paths:
            paths = populated_profile_fields(request.user)
        updated = await self._profiles.update(
            user_id, profile_changes(request.user), paths, etag=request.user.etag
        )
        return user_to_proto(updated)
