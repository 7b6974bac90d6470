"""vitalis.identity.v1.AccountService and AccountInternalService."""

from __future__ import annotations

import uuid

from vitalis.identity.v1 import (
    account_internal_service_pb2,
    account_internal_service_pb2_grpc,
    account_pb2,
    account_service_pb2,
    account_service_pb2_grpc,
)
from vitalis_identity.accounts import Accounts, account_not_found
from vitalis_identity.api.context import Context
from vitalis_identity.api.messages import TIERS_FROM_PROTO, account_to_proto
from vitalis_runtime.auth import current_principal
from vitalis_runtime.errors import InvalidArgument


def account_id_of(name: str, field: str = "name") -> uuid.UUID:
    """The id of ``accounts/{account}``; a malformed id cannot exist and is NOT_FOUND."""
    prefix, _, ident = name.partition("/")
    if prefix != "accounts" or not ident or "/" in ident:
        raise InvalidArgument.for_field(
            field, f"{name!r} is not an account name; expected accounts/{{account}}"
        )
    try:
        return uuid.UUID(ident)
    except ValueError:
        raise account_not_found(ident) from None


class AccountServicer(account_service_pb2_grpc.AccountServiceServicer):
    """The caller's account."""

    def __init__(self, accounts: Accounts) -> None:
        self._accounts = accounts

    async def GetAccount(
        self, request: account_service_pb2.GetAccountRequest, context: Context
    ) -> account_pb2.Account:
        """An account the caller belongs to."""
        account = await self._accounts.get(current_principal().user_id, account_id_of(request.name))
        return account_to_proto(account)

    async def UpdateAccount(
        self, request: account_service_pb2.UpdateAccountRequest, context: Context
    ) -> account_pb2.Account:
        """Change the display name or billing e-mail."""
        if not request.HasField("account"):
            raise InvalidArgument.for_field("account", "is required")
        paths = list(request.update_mask.paths) if request.HasField("update_mask") else []
        if not paths:
            paths = [
                f.name for f, _ in request.account.ListFields() if f.name in {"display_name", "billing_email"}
            ]
        changes = {
            "display_name": request.account.display_name,
            "billing_email": request.account.billing_email,
        }
        account = await self._accounts.update(
            current_principal().user_id,
            account_id_of(request.account.name, "account.name"),
            changes,
            paths,
            etag=request.account.etag,
        )
        return account_to_proto(account)

    async def DeleteAccount(
        self, request: account_service_pb2.DeleteAccountRequest, context: Context
    ) -> account_pb2.Account:
        """Soft-delete the account and its users."""
        account = await self._accounts.delete(
            current_principal().user_id, account_id_of(request.name), etag=request.etag
        )
        return account_to_proto(account)

    async def UndeleteAccount(
        self, request: account_service_pb2.UndeleteAccountRequest, context: Context
    ) -> account_pb2.Account:
        """Restore a soft-deleted account."""
        account = await self._accounts.undelete(
            current_principal().user_id, account_id_of(request.name), etag=request.etag
        )
        return account_to_proto(account)


class AccountInternalServicer(account_internal_service_pb2_grpc.AccountInternalServiceServicer):
    """Back-office account operations."""

    def __init__(self, accounts: Accounts) -> None:
        self._accounts = accounts

    async def SetAccountTier(
        self, request: account_internal_service_pb2.SetAccountTierRequest, context: Context
    ) -> account_pb2.Account:
        """Set the subscription tier."""
        if request.tier not in TIERS_FROM_PROTO:
            raise InvalidArgument.for_field("tier", "is required")
        account = await self._accounts.set_tier(
            current_principal().user_id,
            account_id_of(request.name),
            TIERS_FROM_PROTO[request.tier],
            etag=request.etag,
        )
        return account_to_proto(account)
