"""vitalis.identity.v1.UserService."""

from __future__ import annotations

from vitalis.identity.v1 import preferences_pb2, user_pb2, user_service_pb2, user_service_pb2_grpc
from vitalis_identity.api.context import Context
from vitalis_identity.api.convert import populated_profile_fields, profile_changes, user_to_proto
from vitalis_identity.api.messages import (
    populated_preferences_paths,
    preferences_changes,
    preferences_to_proto,
)
from vitalis_identity.api.names import any_user, own_user, split_user
from vitalis_identity.domain.grants import ShareScope
from vitalis_identity.profiles import Profiles, user_not_found
from vitalis_identity.sharing import Sharing
from vitalis_runtime.auth import current_principal
from vitalis_runtime.errors import InvalidArgument


class UserServicer(user_service_pb2_grpc.UserServiceServicer):
    """A user's own profile and preferences; another user's profile under a PROFILE share grant."""

    def __init__(self, profiles: Profiles, sharing: Sharing) -> None:
        self._profiles = profiles
        self._sharing = sharing

    async def GetUser(self, request: user_service_pb2.GetUserRequest, context: Context) -> user_pb2.User:
        """The profile of ``users/{user}`` or ``users/me``."""
        user_id = any_user(split_user(request.name, field="name"), field="name")
        caller = current_principal().user_id
        if user_id == caller:
            return user_to_proto(await self._profiles.get(user_id))
        grant = await self._sharing.check(user_id, caller, ShareScope.PROFILE)
        if grant is None:
            raise user_not_found(request.name)
        user = await self._profiles.get(user_id, share_grant=grant.name)
        shared = user_to_proto(user)
        # A grantee sees the profile fields the PROFILE scope names, not the owner's account details.
        shared.ClearField("email")
        shared.ClearField("external_identities")
        shared.ClearField("account")
        return shared

    async def UpdateUser(
        self, request: user_service_pb2.UpdateUserRequest, context: Context
    ) -> user_pb2.User:
        """Change the fields named by the update mask."""
        if not request.HasField("user"):
            raise InvalidArgument.for_field("user", "is required")
        user_id = own_user(
            split_user(request.user.name, field="user.name"), field="user.name", name=request.user.name
        )
        paths = list(request.update_mask.paths) if request.HasField("update_mask") else []
        if not paths:
            paths = populated_profile_fields(request.user)
        if paths == ["*"]:
            paths = ["given_name", "family_name", "birth_date", "sex", "time_zone", "unit_system"]
        updated = await self._profiles.update(
            user_id, profile_changes(request.user), paths, etag=request.user.etag
        )
        return user_to_proto(updated)

    async def DeleteUser(
        self, request: user_service_pb2.DeleteUserRequest, context: Context
    ) -> user_pb2.User:
        """Soft-delete the caller."""
        user_id = own_user(split_user(request.name, field="name"), field="name", name=request.name)
        return user_to_proto(await self._profiles.delete(user_id, etag=request.etag))

    async def UndeleteUser(
        self, request: user_service_pb2.UndeleteUserRequest, context: Context
    ) -> user_pb2.User:
        """Restore the soft-deleted caller."""
        user_id = own_user(split_user(request.name, field="name"), field="name", name=request.name)
        return user_to_proto(await self._profiles.undelete(user_id, etag=request.etag))

    async def GetPreferences(
        self, request: user_service_pb2.GetPreferencesRequest, context: Context
    ) -> preferences_pb2.Preferences:
        """The caller's preferences."""
        user_id = own_user(_preferences_user(request.name, "name"), field="name", name=request.name)
        return preferences_to_proto(await self._profiles.get_preferences(user_id))

    async def UpdatePreferences(
        self, request: user_service_pb2.UpdatePreferencesRequest, context: Context
    ) -> preferences_pb2.Preferences:
        """Change the caller's preferences named by the update mask."""
        if not request.HasField("preferences"):
            raise InvalidArgument.for_field("preferences", "is required")
        name = request.preferences.name
        user_id = own_user(_preferences_user(name, "preferences.name"), field="preferences.name", name=name)
        paths = list(request.update_mask.paths) if request.HasField("update_mask") else []
        if not paths:
            paths = populated_preferences_paths(request.preferences)
        updated = await self._profiles.update_preferences(
            user_id, preferences_changes(request.preferences), paths, etag=request.preferences.etag
        )
        return preferences_to_proto(updated)


def _preferences_user(name: str, field: str) -> str:
    parts = name.split("/")
    if len(parts) != 3 or parts[0] != "users" or parts[2] != "preferences" or not parts[1]:
        raise InvalidArgument.for_field(
            field, f"{name!r} is not a name of the form users/{{user}}/preferences"
        )
    return parts[1]
