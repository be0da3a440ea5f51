"""Schema assembly: each domain module contributes its queries and mutations."""

import asyncio
import functools
import inspect
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import strawberry
from graphql import ASTValidationRule, GraphQLError, GraphQLObjectType, GraphQLResolveInfo
from graphql.pyutils.gather_with_cancel import gather_with_cancel
from graphql.type.definition import GraphQLResolveInfoHelpers
from strawberry import relay
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext
from strawberry.types.base import StrawberryObjectDefinition

from app.graphql.accounts import AccountMutations, AccountQueries
from app.graphql.catalog import CatalogMutations, CatalogQueries
from app.graphql.context import Info
from app.graphql.cost import QueryCostLimiter
from app.graphql.emissions import EmissionMutations, EmissionQueries
from app.graphql.events import EventSubscriptions, SharedEventExecution
from app.graphql.extensions import (
    CachedParsing,
    ErrorPolicy,
    RequestGuard,
    SafeText,
    classify,
    debug_enabled,
)
from app.graphql.introspection import CachedValidation, Executor
from app.graphql.offsets import OffsetMutations, OffsetQueries
from app.graphql.persisted import PersistedQueryRegistration, TrustedDocumentsGuard
from app.graphql.plans import PlannedExecution
from app.graphql.reads import OperationReads
from app.graphql.relay import decode_global_id
from app.graphql.response_cache import ResponseCaching
from app.graphql.scalars import SCALAR_OVERRIDES
from app.graphql.webhooks import WebhookMutations, WebhookQueries

MAX_DEPTH = 12
MAX_ALIASES = 30
MAX_TOKENS = 2_000
PARSE_CACHE_SIZE = 256  # documents; the HTTP cache-hit path shares this cache
# The depth and alias rules, built once: each QueryDepthLimiter or MaxAliasesLimiter instance
# makes a new rule class, and CachedValidation is keyed by the rule classes, so a fresh
# instance per operation would validate every document again (every one of 1,000
# identical subscriptions, every HTTP request).
DEPTH_RULES = QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules
ALIAS_RULES = MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules
# Added by one extension, not three: each costs an instance, its hook and a suspended
# generator per operation, held for a subscription's whole life (~20 tracked objects per
# subscription, walked by every full garbage collection). The rules' order is unchanged.
GATEWAY_RULES: list[type[ASTValidationRule]] = [SafeText, *DEPTH_RULES, *ALIAS_RULES]


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
        if not isinstance(type_def, StrawberryObjectDefinition) or type_def.is_interface:
            return None  # `Node:x` names the interface, not an object
        origin = type_def.origin
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


class GatewayExecution(PlannedExecution, SharedEventExecution, Executor):
    """graphql-core's execution, answering planned queries from their plan (PlannedExecution),
    sharing one event's result among identical subscriptions
    (SharedEventExecution) and hiding suggestions when introspection is off (Executor).

    Its resolvers' async helpers hold no reference back to it: graphql-core binds them to the
    executor (`info.async_helpers`, 3.3), a cycle that kept every execution — its context, and
    through it a subscription's socket — alive until a full garbage collection. `gather` needs
    no executor; `track` reaches it through a weak reference, and graphql-core's own per-event
    copies share the original's helpers as before."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        executor = weakref.ref(self)

        def track(values: Sequence[Any]) -> None:
            alive = executor()
            if alive is not None:
                alive.track_async_work(values)
            else:  # the operation is over; its stragglers still settle, their errors seen
                for value in values:
                    if inspect.isawaitable(value):
                        straggler = asyncio.ensure_future(value)
                        _STRAGGLERS.add(straggler)  # the loop keeps only a weak reference
                        straggler.add_done_callback(_observe)

        self.async_helpers = GraphQLResolveInfoHelpers(gather=_gather, track=track)


def _gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
    return gather_with_cancel(*values)  # as graphql-core's Executor.gather_async_work


_STRAGGLERS: "set[asyncio.Future[Any]]" = set()


def _observe(future: "asyncio.Future[Any]") -> None:
    _STRAGGLERS.discard(future)
    if not future.cancelled():
        future.exception()


class _NoStreamResultHooks:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc_info: object) -> None:
        return None


_NO_STREAM_RESULT_HOOKS = _NoStreamResultHooks()


def _overrides(extension: SchemaExtension, hook: str) -> bool:
    return getattr(type(extension), hook) is not getattr(SchemaExtension, hook)


class GatewayExtensionsRunner(SchemaExtensionsRunner):
    """Strawberry's extension runner without its per-result overhead where no extension has
    work to do. For every streamed result (each event, for each subscriber) Strawberry builds
    an `on_stream_result` context manager over all ten extensions and awaits every
    extension's `get_results` through a coroutine of its own: together a fifth of the
    server's time in a fan-out burst (py-spy, bench/fanout.py). Here the extensions that override
    neither hook are skipped, so the hooks that run and the results are the same; errors
    are classified before this, by `GatewaySchema.process_errors`, for every result."""

    def __init__(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension] | None = None
    ) -> None:
        super().__init__(execution_context, extensions)
        self._with_results = [e for e in self.extensions if _overrides(e, "get_results")]
        self._stream_hooks = any(_overrides(e, "on_stream_result") for e in self.extensions)

    def on_stream_result(self, result: Any) -> Any:
        if self._stream_hooks:
            return super().on_stream_result(result)
        return _NO_STREAM_RESULT_HOOKS

    async def get_extensions_results(self, ctx: ExecutionContext) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for extension in self._with_results:
            results = extension.get_results()
            data.update(await results if inspect.isawaitable(results) else results)
        data.update(ctx.extensions_results)
        return data


def _global_id_resolver(type_name: str, id_attr: str) -> Callable[[Any, GraphQLResolveInfo], str]:
    def resolve_global_id(root: Any, _info: GraphQLResolveInfo) -> str:
        return relay.to_base64(type_name, getattr(root, id_attr))

    return resolve_global_id


def _resolve_global_ids_plainly(schema: strawberry.Schema) -> None:
    """Every Node's `id` resolved as a plain function of the object: `base64("<Type>:<id>")`,
    what Strawberry's `Node._id` answers for types that keep its default `resolve_id` and
    `resolve_typename`, without its per-field machinery (an Info object, argument parsing,
    a GlobalID built then turned into its string): 140 ids in a nested read of 20 orders."""
    for graphql_type in schema._schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType) or "id" not in graphql_type.fields:
            continue
        definition = schema.get_type_by_name(graphql_type.name)
        origin = getattr(definition, "origin", None)
        if not (
            isinstance(origin, type)
            and issubclass(origin, relay.Node)
            and origin.resolve_id.__func__ is relay.Node.resolve_id.__func__  # type: ignore[attr-defined]
            and origin.resolve_typename.__func__ is relay.Node.resolve_typename.__func__  # type: ignore[attr-defined]
        ):
            continue
        graphql_type.fields["id"].resolve = _global_id_resolver(
            graphql_type.name, origin.resolve_id_attr()
        )


class GatewaySchema(strawberry.Schema):
    """Strawberry's schema, classifying the errors it produces outside execution (syntax,
    token and depth limits, exceptions in extensions), which skip ErrorPolicy. Strawberry
    would also log every error, a client's bad request included, at ERROR with a traceback:
    only bugs are logged here (by `classify`). Node ids are resolved plainly (see above)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _resolve_global_ids_plainly(self)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        debug = bool(execution_context and debug_enabled(execution_context.context))
        errors[:] = [classify(error, debug=debug) for error in errors]

    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        return GatewayExtensionsRunner(execution_context, extensions)


@functools.cache
def get_schema() -> strawberry.Schema:
    """The schema, built once per process: Strawberry's relay fields cannot be converted twice,
    and nothing in it depends on settings (the error policy and the introspection switch read
    them from the context)."""
    return GatewaySchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(sort_schema=True, scalar_map=SCALAR_OVERRIDES),
        execution_context_class=GatewayExecution,
        extensions=[
            ErrorPolicy,
            RequestGuard,
            lambda: AddValidationRules(GATEWAY_RULES),  # text safety, depth, aliases
            TrustedDocumentsGuard,  # before the cost limiter: untrusted text costs nothing
            QueryCostLimiter,
            PersistedQueryRegistration,  # after the cost limiter: a refused request stores nothing
            OperationReads,  # before the cache, which reads its data versions in the shared session
            ResponseCaching,  # after the cost limiter: a hit is charged like an execution
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: CachedParsing(maxsize=PARSE_CACHE_SIZE),
            CachedValidation,
        ],
    )


def export_sdl() -> str:
    return get_schema().as_str() + "\n"
