"""Schema assembly: each domain module contributes its queries and mutations."""

import functools
import inspect

import strawberry
from strawberry import relay
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from app.graphql.accounts import AccountMutations, AccountQueries
from app.graphql.catalog import CatalogMutations, CatalogQueries
from app.graphql.context import Info
from app.graphql.cost import QueryCostLimiter
from app.graphql.emissions import EmissionMutations, EmissionQueries
from app.graphql.events import EventSubscriptions
from app.graphql.extensions import ErrorPolicy, RequestGuard, SafeText
from app.graphql.offsets import OffsetMutations, OffsetQueries
from app.graphql.relay import decode_global_id
from app.graphql.scalars import SCALAR_OVERRIDES
from app.graphql.webhooks import WebhookMutations, WebhookQueries

MAX_DEPTH = 12
MAX_ALIASES = 30
MAX_TOKENS = 2_000


@strawberry.type
class NodeQueries:
    @strawberry.field(
        description="Fetch any object by its global id; null when the id is not one of ours, "
        "names no object, or names one you may not see."
    )
    async def node(self, info: Info, id: strawberry.ID) -> relay.Node | None:
        global_id = decode_global_id(id)
        if global_id is None:
            return None
        # Only object types that implement Node: `Query:x` or `Mass:x` name no object.
        type_def = info.schema.get_type_by_name(global_id.type_name)
        origin = getattr(type_def, "origin", None) if type_def is not None else None
        if not (isinstance(origin, type) and issubclass(origin, relay.Node)):
            return None
        node = origin.resolve_node(global_id.node_id, info=info, required=False)
        return await node if inspect.isawaitable(node) else node


Query = merge_types(
    "Query",
    (
        NodeQueries,
        AccountQueries,
        CatalogQueries,
        OffsetQueries,
        EmissionQueries,
        WebhookQueries,
    ),
)
Subscription = merge_types("Subscription", (EventSubscriptions,))
Mutation = merge_types(
    "Mutation",
    (AccountMutations, CatalogMutations, OffsetMutations, EmissionMutations, WebhookMutations),
)


@functools.cache
def get_schema() -> strawberry.Schema:
    """The schema, built once per process: Strawberry's relay fields cannot be converted twice,
    and nothing in it depends on settings (the error policy reads them from the context)."""
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(sort_schema=True, scalar_map=SCALAR_OVERRIDES),
        extensions=[
            ErrorPolicy,
            RequestGuard,
            lambda: AddValidationRules([SafeText]),
            QueryCostLimiter,
            lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
            lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: ParserCache(maxsize=256),
            lambda: ValidationCache(maxsize=256),
        ],
    )


def export_sdl() -> str:
    return get_schema().as_str() + "\n"
