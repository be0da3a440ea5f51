"""Schema assembly: each domain module contributes its queries and mutations."""

import functools

import strawberry
from strawberry import relay
from strawberry.extensions import (
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
from app.graphql.cost import QueryCostLimiter
from app.graphql.emissions import EmissionMutations, EmissionQueries
from app.graphql.events import EventSubscriptions, SharedEventExecution
from app.graphql.extensions import ErrorPolicy
from app.graphql.offsets import OffsetMutations, OffsetQueries
from app.graphql.webhooks import WebhookMutations, WebhookQueries

MAX_DEPTH = 12
MAX_ALIASES = 30
MAX_TOKENS = 2_000


@strawberry.type
class NodeQueries:
    node: relay.Node | None = relay.node(description="Fetch any object by its global id.")


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
        config=StrawberryConfig(sort_schema=True),
        execution_context_class=SharedEventExecution,
        extensions=[
            ErrorPolicy,
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
