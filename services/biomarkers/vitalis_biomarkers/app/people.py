"""The people whose data this service holds, as identity knows them (sex and birth date)."""

from __future__ import annotations

import logging
import uuid
from datetime import date
from typing import Protocol

import grpc

from vitalis.identity.v1 import user_pb2, user_service_pb2, user_service_pb2_grpc
from vitalis_biomarkers.domain.people import UNKNOWN_PERSON, PersonProfile, Sex
from vitalis_runtime.auth import optional_principal
from vitalis_runtime.service_auth import ServiceCredentials

logger = logging.getLogger(__name__)
_SEXES = {
    user_pb2.SEX_FEMALE: Sex.FEMALE,
    user_pb2.SEX_MALE: Sex.MALE,
    user_pb2.SEX_OTHER: Sex.OTHER,
}


class PersonDirectory(Protocol):
    """Looks up the facts about a person that ranges and formulas depend on."""

    async def profile(self, user_id: uuid.UUID) -> PersonProfile:
        """The person's sex and birth date; unknown facts stay unset."""
        ...


class IdentityPersonDirectory:
    """Reads profiles from identity's ``UserService.GetUser``.

    The call carries a service token acting for the user when a service secret is configured,
    otherwise the caller's own access token (which works for the user's own requests). When identity
    cannot answer, the person is treated as unknown: flags then use the ranges for every sex and
    age-dependent scores are not computed, which is logged.
    """

    def __init__(self, channel: grpc.aio.Channel, credentials: ServiceCredentials | None) -> None:
        """Call identity over ``channel``."""
        self._stub = user_service_pb2_grpc.UserServiceStub(channel)
        self._credentials = credentials

    def _metadata(self, user_id: uuid.UUID) -> tuple[tuple[str, str], ...] | None:
        if self._credentials is not None:
            return self._credentials.metadata(user_id)
        principal = optional_principal()
        if principal is not None and principal.user_id == user_id and principal.service is None:
            return (("authorization", f"Bearer {principal.token}"),)
        return None

    async def profile(self, user_id: uuid.UUID) -> PersonProfile:
        """The person's sex and birth date from identity, or an unknown person."""
        metadata = self._metadata(user_id)
        if metadata is None:
            logger.warning(
                "no credentials to read the profile of user %s; treating the person as unknown", user_id
            )
            return UNKNOWN_PERSON
        try:
            user = await self._stub.GetUser(
                user_service_pb2.GetUserRequest(name=f"users/{user_id}"), metadata=metadata, timeout=5.0
            )
        except grpc.aio.AioRpcError as error:
            logger.warning("identity did not give the profile of user %s: %s", user_id, error.code().name)
            return UNKNOWN_PERSON
        birth_date = None
        if user.HasField("birth_date") and user.birth_date.year:
            birth_date = date(user.birth_date.year, user.birth_date.month, user.birth_date.day)
        return PersonProfile(sex=_SEXES.get(user.sex, Sex.UNSPECIFIED), birth_date=birth_date)
