"""Accounts in the graph: the viewer, subaccounts and API keys."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import strawberry
from strawberry import relay

from app.accounts import models, service
from app.graphql.context import Info
from app.graphql.errors import UserError, perform
from app.graphql.relay import connection_field, nodes_loaded_by, parse_global_id

Mode = strawberry.enum(models.Mode, name="Mode")
AccountStatus = strawberry.enum(models.AccountStatus, name="AccountStatus")


@strawberry.type
class Account(relay.Node):
    id: relay.NodeID[str]
    name: str
    slug: str
    status: AccountStatus  # type: ignore[valid-type]
    created_at: datetime

    @classmethod
    def from_row(cls, row: models.Account) -> "Account":
        return cls(
            id=str(row.id),
            name=row.name,
            slug=row.slug,
            status=row.status,
            created_at=row.created_at,
        )

    @classmethod
    def resolve_nodes(  # type: ignore[override]  # Strawberry's overloads; one impl
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list["Account | None"]:
        # An account sees only itself.
        principal = info.context.principal
        own = str(principal.account_id) if principal else None
        return [
            cls.from_row(principal.account) if principal and i == own else None for i in node_ids
        ]


@strawberry.type
class Subaccount(relay.Node):
    id: relay.NodeID[str]
    name: str
    external_ref: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: models.Subaccount) -> "Subaccount":
        return cls(
            id=str(row.id), name=row.name, external_ref=row.external_ref, created_at=row.created_at
        )

    resolve_nodes = nodes_loaded_by(lambda loaders: loaders.subaccount_by_id)


@strawberry.type
class ApiKey(relay.Node):
    id: relay.NodeID[str]
    name: str
    mode: Mode  # type: ignore[valid-type]
    prefix: str = strawberry.field(description="The key's first characters, to recognise it.")
    admin: bool
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None = strawberry.field(
        description="When the key was last used, to the minute."
    )

    @classmethod
    def from_row(cls, row: models.ApiKey) -> "ApiKey":
        return cls(
            id=str(row.id),
            name=row.name,
            mode=row.mode,
            prefix=row.display_prefix,
            admin=row.is_admin,
            created_at=row.created_at,
            revoked_at=row.revoked_at,
            last_used_at=row.last_used_at,
        )

    @classmethod
    def resolve_nodes(  # type: ignore[override]  # Strawberry's overloads; one impl
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list["ApiKey | None"]:
        # Keys are listed by `apiKeys` (admin only); they are not fetched by node id.
        return [None for _ in node_ids]


@strawberry.type
class Viewer:
    account: Account
    mode: Mode  # type: ignore[valid-type]
    subaccount: Subaccount | None
    admin: bool = strawberry.field(description="Whether the key has the admin role.")


@strawberry.type
class SubaccountConnection(relay.Connection[Subaccount]):
    total_count: int


@strawberry.type
class ApiKeyConnection(relay.Connection[ApiKey]):
    total_count: int


@strawberry.type
class AccountQueries:
    @strawberry.field(description="Who the API key acts as.")
    def viewer(self, info: Info) -> Viewer:
        principal = info.context.require_principal()
        return Viewer(
            account=Account.from_row(principal.account),
            mode=principal.mode,
            subaccount=Subaccount.from_row(principal.subaccount) if principal.subaccount else None,
            admin=principal.is_admin,
        )

    subaccounts = connection_field(
        SubaccountConnection,
        service.subaccounts_of,
        models.Subaccount,
        Subaccount.from_row,
        description="Subaccounts of the account in the key's mode, newest first.",
    )

    api_keys = connection_field(
        ApiKeyConnection,
        service.api_keys_of,
        models.ApiKey,
        ApiKey.from_row,
        description="API keys of the account in the key's mode (admin only).",
    )


@strawberry.input
class CreateSubaccountInput:
    name: str
    external_ref: str | None = strawberry.field(
        default=None, description="Your own reference for this customer."
    )


@strawberry.type
class CreateSubaccountPayload:
    subaccount: Subaccount | None
    user_errors: list[UserError]


@strawberry.input
class CreateApiKeyInput:
    name: str
    admin: bool = False


@strawberry.type
class CreateApiKeyPayload:
    api_key: ApiKey | None
    secret: str | None = strawberry.field(
        description="The plain key. Shown only in this response: store it now."
    )
    user_errors: list[UserError]


@strawberry.input
class RevokeApiKeyInput:
    id: strawberry.ID


@strawberry.type
class RevokeApiKeyPayload:
    api_key: ApiKey | None
    user_errors: list[UserError]


@strawberry.type
class AccountMutations:
    @strawberry.mutation(description="Create a subaccount in the key's mode.")
    async def create_subaccount(
        self, info: Info, input: CreateSubaccountInput
    ) -> CreateSubaccountPayload | None:
        principal = info.context.require_principal()
        outcome = await perform(
            info.context.db,
            lambda session: service.create_subaccount(
                session, principal, name=input.name, external_ref=input.external_ref
            ),
        )
        return CreateSubaccountPayload(
            subaccount=outcome.map(Subaccount.from_row),
            user_errors=outcome.user_errors,
        )

    @strawberry.mutation(description="Create an API key in the key's mode (admin only).")
    async def create_api_key(
        self, info: Info, input: CreateApiKeyInput
    ) -> CreateApiKeyPayload | None:
        principal = info.context.require_principal()
        outcome = await perform(
            info.context.db,
            lambda session: service.create_api_key_as(
                session, principal, name=input.name, is_admin=input.admin
            ),
        )
        if outcome.value is None:
            return CreateApiKeyPayload(api_key=None, secret=None, user_errors=outcome.user_errors)
        row, secret = outcome.value
        return CreateApiKeyPayload(api_key=ApiKey.from_row(row), secret=secret, user_errors=[])

    @strawberry.mutation(description="Revoke an API key (admin only). Revoking twice is harmless.")
    async def revoke_api_key(
        self, info: Info, input: RevokeApiKeyInput
    ) -> RevokeApiKeyPayload | None:
        principal = info.context.require_principal()

        async def revoke(session: Any) -> models.ApiKey:
            key_id = parse_global_id(input.id, "ApiKey", "id")
            return await service.revoke_api_key(session, principal, key_id)

        outcome = await perform(info.context.db, revoke)
        return RevokeApiKeyPayload(
            api_key=outcome.map(ApiKey.from_row),
            user_errors=outcome.user_errors,
        )
