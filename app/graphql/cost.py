"""Query cost in Shopify's dialect: requested before execution, actual after, charged to the key.

The rule (README "Cost and rate limits" has the table):
- a scalar or enum field costs 0, `__typename` included;
- an object, interface or union field costs 1 plus what is selected below it;
- a connection (a field taking `first`/`last`) costs 2, plus its page of items: the items of
  its list fields (`edges`) times the page size asked for (`first`/`last`, 20 when not given).
  The connection plumbing itself is free: an edge (a type with `cursor` and `node`) and
  `PageInfo` cost 0 of their own, so `edges { node { … } }` costs what `node` costs;
- any other list of objects costs its assumed size (ASSUMED_LIST_SIZES, 1 for a list not in
  it) times 1 plus what is selected below one item. The table names the lists whose size
  the data model lets grow large (a customer order's items, a project's credit batches, an
  order's webhook deliveries and their attempts, a device's orders); the others (an order's
  allocations, a portfolio's bundles) stay small;
- a root mutation field costs 10, its payload included, plus what is selected below it;
- an operation costs at least 1, so no request is free.

`first`/`last` are read with the operation's variables coerced, defaults included.

The actual cost applies the same rule to the response: a connection's page counts the items
returned instead of the page size asked for, any other list every item it returned (at
least 1 for the field, when empty), and a field that is absent (skipped, or cut off by an
error) costs nothing. It can be above the requested cost (a list longer than assumed): the
difference is then charged after execution, and the key's bucket may go below zero, so the
key waits until it has refilled. Fields sharing a response key are merged by GraphQL and
counted once.
"""

import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    ArgumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SchemaMetaFieldDef,
    SelectionSetNode,
    TypeMetaFieldDef,
    get_named_type,
    get_nullable_type,
    value_from_ast_untyped,
)
from graphql.execution.values import get_variable_values
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from app.accounts.rate_limits import RateLimiter, ThrottleStatus, retry_after_header
from app.errors import ErrorCode
from app.pagination import DEFAULT_PAGE_SIZE

PAGING_ARGUMENTS = ("first", "last")
OBJECT_COST = 1
CONNECTION_COST = 2
MUTATION_COST = 10
MINIMUM_COST = 1
META_FIELDS = {"__schema": SchemaMetaFieldDef, "__type": TypeMetaFieldDef}
# The assumed length of the unpaginated lists that can grow long, by (type, field). A customer
# order holds up to 10,000 items: at 50, one order's items (51 and up) fit in any bucket while
# a page of 100 orders with their items (5,102 and up) is over the maximum cost of 1,000.
ASSUMED_LIST_SIZES: dict[tuple[str, str], int] = {
    ("CustomerOrder", "items"): 50,
    ("DeviceEmissions", "orders"): 20,
    ("Project", "creditBatches"): 10,
    ("Order", "webhookDeliveries"): 10,
    ("WebhookDelivery", "attempts"): 10,
}
DEFAULT_LIST_SIZE = 1

# Stands for "no response to look at" (the requested cost) and for a key absent from one.
_Missing = object()


@dataclass(frozen=True, slots=True)
class FieldPlan:
    """One priced field of an operation, its fields sharing a response key merged, with the
    fields below it: what the rule needs of the document and the schema, worked out once per
    operation. Scalars, enums and `__typename` cost 0 and are left out (below a mutation's
    root, which costs MUTATION_COST whatever it returns, `children` may be empty)."""

    key: str
    own: int  # OBJECT_COST, or 0 for a connection's edges and page info
    connection: bool  # takes `first`/`last`
    is_list: bool
    assumed_size: int  # ASSUMED_LIST_SIZES' size for a list that is not a page
    paging: tuple[tuple[ArgumentNode, ...], ...]  # each merged field's `first`/`last`
    children: tuple["FieldPlan", ...]


class _PlanCache:
    """Plans by operation node, as long as the node lives (the parser cache keeps a document's
    nodes while its text is asked for), for the last few hundred operations."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._plans: dict[tuple[int, int], tuple[Any, Any, tuple[FieldPlan, ...]]] = {}

    def get(
        self, schema: GraphQLSchema, operation: OperationDefinitionNode
    ) -> tuple[FieldPlan, ...] | None:
        found = self._plans.get((id(schema), id(operation)))
        if found is None or found[0]() is not schema or found[1]() is not operation:
            return None  # an id reused by a new object
        return found[2]

    def put(
        self,
        schema: GraphQLSchema,
        operation: OperationDefinitionNode,
        plan: tuple[FieldPlan, ...],
    ) -> None:
        if len(self._plans) >= self.maxsize:
            del self._plans[next(iter(self._plans))]
        self._plans[(id(schema), id(operation))] = (
            weakref.ref(schema),
            weakref.ref(operation),
            plan,
        )


_PLANS = _PlanCache(maxsize=512)


class CostCalculator:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: dict[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments  # the operation's document's: a plan is cached per operation
        self.variables = variables

    @classmethod
    def for_operation(
        cls,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        operation: OperationDefinitionNode,
        variables: dict[str, Any] | None,
    ) -> "CostCalculator":
        """With the operation's variables as execution sees them: coerced, defaults filled in
        (`query($n: Int = 100)` asks for 100). Values that do not coerce fail execution anyway;
        the raw ones are used then."""
        if not operation.variable_definitions:
            return cls(schema, fragments, {})
        values = get_variable_values(schema, operation.variable_definitions, variables or {})
        # graphql-core 3.3 answers VariableValues (`coerced`), or a list of errors.
        coerced = getattr(values, "coerced", values)
        return cls(schema, fragments, coerced if isinstance(coerced, dict) else variables or {})

    def requested(self, operation: OperationDefinitionNode) -> int:
        """The cost of the operation as asked, before anything runs."""
        return max(MINIMUM_COST, self._operation_cost(operation, _Missing))

    def actual(self, operation: OperationDefinitionNode, data: dict[str, Any] | None) -> int:
        """The cost of what was resolved, from the response's data."""
        return max(MINIMUM_COST, self._operation_cost(operation, data if data is not None else {}))

    def _operation_cost(self, operation: OperationDefinitionNode, data: Any) -> int:
        plan = self.plan(operation)
        if operation.operation is not OperationType.MUTATION:
            return self._selection_cost(plan, data)
        total = 0
        for field in plan:
            value = _field_value(data, field.key)
            if value is not _Missing or data is _Missing:
                total += MUTATION_COST + self._children_cost(field.children, value)
        return total

    def plan(self, operation: OperationDefinitionNode) -> tuple[FieldPlan, ...]:
        """The operation's priced fields, from the cache when the operation was priced before."""
        plan = _PLANS.get(self.schema, operation)
        if plan is None:
            plan = self._compile_operation(operation)
            _PLANS.put(self.schema, operation, plan)
        return plan

    def _compile_operation(self, operation: OperationDefinitionNode) -> tuple[FieldPlan, ...]:
        root = self.schema.get_root_type(operation.operation)
        if root is None:
            return ()
        if operation.operation is not OperationType.MUTATION:
            return self._compile([operation.selection_set], root)
        plan = []
        for key, fields in self._merged_fields([operation.selection_set], root).items():
            definition, selections = self._merged_field(fields)
            if definition is not None:
                children = self._compile(selections, get_named_type(definition.type))
                plan.append(FieldPlan(key, 0, False, False, 0, (), children))
        return tuple(plan)

    def _compile(
        self, selection_sets: list[SelectionSetNode], parent: GraphQLNamedType
    ) -> tuple[FieldPlan, ...]:
        plan = []
        for key, fields in self._merged_fields(selection_sets, parent).items():
            definition, selections = self._merged_field(fields)
            if definition is None or not selections:
                continue  # scalars, enums, __typename: 0
            child = get_named_type(definition.type)
            plan.append(
                FieldPlan(
                    key=key,
                    own=0 if self._is_plumbing(child) else OBJECT_COST,
                    connection=any(name in definition.args for name in PAGING_ARGUMENTS),
                    is_list=isinstance(get_nullable_type(definition.type), GraphQLList),
                    assumed_size=self._list_cost(fields[0][1], fields[0][0].name.value),
                    paging=tuple(
                        tuple(a for a in f.arguments or () if a.name.value in PAGING_ARGUMENTS)
                        for f, _ in fields
                    ),
                    children=self._compile(selections, child),
                )
            )
        return tuple(plan)

    def _list_cost(self, parent: GraphQLNamedType, name: str) -> int:
        return ASSUMED_LIST_SIZES.get((parent.name, name), DEFAULT_LIST_SIZE)

    def _merged_fields(
        self, selection_sets: list[SelectionSetNode], parent: GraphQLNamedType
    ) -> dict[str, list[tuple[FieldNode, GraphQLNamedType]]]:
        """The fields of one level by response key: GraphQL merges those sharing a key."""
        merged: dict[str, list[tuple[FieldNode, GraphQLNamedType]]] = {}
        for selection_set in selection_sets:
            for field, owner in self._fields(selection_set, parent, frozenset()):
                key = field.alias.value if field.alias else field.name.value
                merged.setdefault(key, []).append((field, owner))
        return merged

    def _merged_field(
        self, fields: list[tuple[FieldNode, GraphQLNamedType]]
    ) -> tuple[GraphQLField | None, list[SelectionSetNode]]:
        definition = next(
            (d for d in (self._definition(f, owner) for f, owner in fields) if d is not None),
            None,
        )
        return definition, [f.selection_set for f, _ in fields if f.selection_set is not None]

    def _fields(
        self,
        selection_set: SelectionSetNode,
        parent: GraphQLNamedType,
        seen: frozenset[str],
    ) -> Iterator[tuple[FieldNode, GraphQLNamedType]]:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                yield selection, parent
            elif isinstance(selection, InlineFragmentNode):
                condition = (
                    self.schema.get_type(selection.type_condition.name.value)
                    if selection.type_condition
                    else parent
                )
                yield from self._fields(selection.selection_set, condition or parent, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in seen:
                    continue
                condition = self.schema.get_type(fragment.type_condition.name.value)
                yield from self._fields(fragment.selection_set, condition or parent, seen | {name})

    def _selection_cost(
        self, plan: tuple[FieldPlan, ...], data: Any, page: int | None = None
    ) -> int:
        """`page` is set for the fields of a connection: its lists are the page of items."""
        total = 0
        if data is _Missing:  # priced as asked
            for field in plan:
                total += self._field_cost(field, _Missing, page)
            return total
        if not isinstance(data, dict):
            return 0
        get = data.get  # one lookup per field: a page of 20 orders walks ~400 objects
        for field in plan:
            value = get(field.key, _Missing)
            if value is _Missing:
                continue  # not in the response: skipped, or cut off by an error
            total += self._field_cost(field, value, page)
        return total

    def _field_cost(self, field: FieldPlan, value: Any, page: int | None) -> int:
        children = field.children
        if field.connection:
            size = max(self._page_size(arguments) for arguments in field.paging)
            return CONNECTION_COST + self._children_cost(children, value, page=size)
        own = field.own
        if not field.is_list:
            return own + self._children_cost(children, value)
        if page is not None:
            # A connection's page (`edges`): `first: 0` asks for no items and costs none.
            if value is _Missing:
                return own + page * self._children_cost(children, _Missing)
            items = value if isinstance(value, list) else []
            return own + sum(self._children_cost(children, item) for item in items)
        # Any other list: every item costs 1 plus its selection, the assumed number of them
        # asked for, every one returned counted.
        if value is _Missing:
            return field.assumed_size * (own + self._children_cost(children, _Missing))
        if value is None:
            return own  # resolved to null
        items = value if isinstance(value, list) else []
        return max(own, sum(own + self._children_cost(children, item) for item in items))

    def _children_cost(
        self, children: tuple[FieldPlan, ...], value: Any, page: int | None = None
    ) -> int:
        if value is None:
            return 0  # resolved to null: nothing below it ran
        return self._selection_cost(children, value, page)

    def _definition(self, field: FieldNode, owner: GraphQLNamedType) -> GraphQLField | None:
        name = field.name.value
        if name in META_FIELDS:
            return META_FIELDS[name]
        if isinstance(owner, GraphQLObjectType | GraphQLInterfaceType):
            return owner.fields.get(name)
        return None  # __typename, or a field of an unknown type (validation reports it)

    @staticmethod
    def _is_plumbing(named: GraphQLNamedType) -> bool:
        """A connection's edges and page info: wrappers around the items, free in themselves."""
        if named.name == "PageInfo":
            return True
        return (
            isinstance(named, GraphQLObjectType)
            and "cursor" in named.fields
            and "node" in named.fields
        )

    def _page_size(self, arguments: tuple[ArgumentNode, ...]) -> int:
        sizes = []
        for argument in arguments:
            value = value_from_ast_untyped(argument.value, self.variables)
            if isinstance(value, int) and value >= 0:
                sizes.append(value)
        return max(sizes) if sizes else DEFAULT_PAGE_SIZE


def _field_value(data: Any, key: str) -> Any:
    if data is _Missing:
        return _Missing
    if isinstance(data, dict):
        return data.get(key, _Missing)
    return _Missing


class QueryCostLimiter(SchemaExtension):
    """Calculates the requested cost before execution and refuses what is too costly
    (QUERY_TOO_COMPLEX) or more than the key's bucket holds now (RATE_LIMITED); after execution
    refunds what was not used, or takes what was used beyond it (into debt if need be).
    Reports `extensions.cost` in Shopify's shape on every response that got as far as
    execution. Subscriptions are charged once, when they start."""

    requested: int | None = None
    actual: int | None = None
    throttle: ThrottleStatus | None = None

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context = execution.context
        settings = getattr(context, "settings", None)
        priced = _calculator(execution)
        if priced is None or settings is None:
            yield
            return
        calculator, operation = priced
        self.requested = calculator.requested(operation)
        maximum = settings.max_query_cost
        if settings.rate_limit_per_second > 0:
            maximum = min(maximum, settings.rate_limit_burst)  # more could never be paid
        if self.requested > maximum:
            raise GraphQLError(
                f"Query cost {self.requested} exceeds the maximum of {maximum}; "
                "ask for smaller pages or fewer fields.",
                extensions={"code": ErrorCode.QUERY_TOO_COMPLEX.value},
            )
        limiter = getattr(context, "rate_limiter", None)
        key = getattr(context, "rate_limit_key", None)
        if limiter is not None and key is not None:
            self.throttle = await limiter.take(key, self.requested)
            context.throttle = self.throttle
            if self.throttle is not None and self.throttle.refused:
                raise GraphQLError(
                    f"Throttled: this query costs {self.requested} points and the key's bucket "
                    f"holds {int(self.throttle.currently_available)}; retry after "
                    f"{retry_after_header(self.throttle.retry_after)} s.",
                    extensions={"code": ErrorCode.RATE_LIMITED.value},
                )
        yield
        if operation.operation is OperationType.SUBSCRIPTION:
            self.actual = self.requested  # events are pushed, not asked for: nothing to refund
            return
        result = execution.result
        if isinstance(result, PricedResult):
            self.actual = result.actual_cost
        else:
            self.actual = calculator.actual(operation, getattr(result, "data", None))
        if limiter is not None and key is not None:
            settled = await settle_cost(limiter, key, self.requested, self.actual)
            if settled is not None:
                self.throttle = context.throttle = settled

    def get_results(self) -> dict[str, Any]:
        if self.requested is None:
            return {}
        return {"cost": cost_extension(self.requested, self.actual, self.throttle)}


async def settle_cost(
    limiter: RateLimiter, key: str, requested: int, actual: int
) -> ThrottleStatus | None:
    """After an operation that took `requested` points: back what it did not use, or, when
    more came back than assumed, the overrun taken too, whatever the bucket holds (it may go
    below zero: the key then waits). The bucket after it, or None when nothing changed."""
    if requested == actual:
        return None
    return await limiter.refund(key, requested - actual)


def cost_extension(
    requested: int, actual: int | None, throttle: ThrottleStatus | None
) -> dict[str, Any]:
    """`extensions.cost` in Shopify's shape: what an operation asked for and used, and its
    key's bucket after it (null when rate limiting is off)."""
    return {
        "requestedQueryCost": requested,
        "actualQueryCost": actual,
        "throttleStatus": None
        if throttle is None
        else {
            "maximumAvailable": float(throttle.maximum_available),
            "currentlyAvailable": int(throttle.currently_available),
            "restoreRate": float(throttle.restore_rate),
        },
    }


class PricedResult(ExecutionResult):
    """A result whose actual cost is already known (a response-cache hit: the cost of the
    same data, computed when it was executed), so it is not walked again."""

    __slots__ = ("actual_cost",)

    def __init__(self, data: dict[str, Any], actual_cost: int) -> None:
        super().__init__(data=data)
        self.actual_cost = actual_cost


def requested_cost(execution: ExecutionContext) -> int | None:
    """The requested cost of a query, as the limiter charged it before execution."""
    priced = _calculator(execution)
    if priced is None:
        return None
    calculator, operation = priced
    return calculator.requested(operation)


def actual_cost(execution: ExecutionContext) -> int | None:
    """The actual cost of an executed query's result, as the limiter charges it."""
    priced = _calculator(execution)
    if priced is None:
        return None
    calculator, operation = priced
    return calculator.actual(operation, getattr(execution.result, "data", None))


def _calculator(
    execution: ExecutionContext,
) -> tuple[CostCalculator, OperationDefinitionNode] | None:
    operation = _chosen_operation(execution.graphql_document, execution.operation_name)
    if operation is None:
        return None
    fragments = {
        d.name.value: d
        for d in execution.graphql_document.definitions  # type: ignore[union-attr]
        if isinstance(d, FragmentDefinitionNode)
    }
    # Strawberry keeps graphql-core's schema, which has the argument definitions.
    calculator = CostCalculator.for_operation(
        execution.schema._schema, fragments, operation, execution.variables
    )
    return calculator, operation


def _chosen_operation(document: Any, operation_name: str | None) -> OperationDefinitionNode | None:
    if document is None:
        return None
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode) and (
            operation_name is None
            or (definition.name is not None and definition.name.value == operation_name)
        ):
            return definition
    return None
