"""Query cost, calculated before execution: reported in `extensions.cost`, enforced by a limit.

Every field costs 1. A field that pages (it takes `first`/`last`) multiplies what is selected
below it by the page size asked for (20 when not given). Other lists count once: their size
is bounded by the data model (an order's allocations, a portfolio's bundles), and depth,
alias and token limits bound the rest.
"""

from collections.abc import Iterator
from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    value_from_ast_untyped,
)
from strawberry.extensions import SchemaExtension

from app.errors import ErrorCode
from app.pagination import DEFAULT_PAGE_SIZE

PAGING_ARGUMENTS = ("first", "last")


class CostCalculator:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: dict[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables

    def of_operation(self, operation: OperationDefinitionNode) -> int:
        root = self.schema.get_root_type(operation.operation)
        return self._selection_cost(operation.selection_set, root, frozenset()) if root else 0

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
        self, selection_set: SelectionSetNode, parent: GraphQLNamedType, seen: frozenset[str]
    ) -> int:
        total = 0
        for field, owner in self._fields(selection_set, parent, seen):
            total += self._field_cost(field, owner, seen)
        return total

    def _field_cost(self, field: FieldNode, owner: GraphQLNamedType, seen: frozenset[str]) -> int:
        if field.name.value.startswith("__") or not isinstance(
            owner, GraphQLObjectType | GraphQLInterfaceType
        ):
            return 1
        definition = owner.fields.get(field.name.value)
        if definition is None or field.selection_set is None:
            return 1
        child = get_named_type(definition.type)
        below = self._selection_cost(field.selection_set, child, seen)
        if any(name in definition.args for name in PAGING_ARGUMENTS):
            below *= self._page_size(field)
        return 1 + below

    def _page_size(self, field: FieldNode) -> int:
        for argument in field.arguments or ():
            if argument.name.value in PAGING_ARGUMENTS:
                value = value_from_ast_untyped(argument.value, self.variables)
                if isinstance(value, int) and value >= 0:
                    return value
        return DEFAULT_PAGE_SIZE


class QueryCostLimiter(SchemaExtension):
    """Refuses operations above `settings.max_query_cost` with QUERY_TOO_COMPLEX, and reports
    `extensions.cost = {requested, maximum}` on every response."""

    cost: int | None = None
    maximum: int | None = None

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        settings = getattr(context.context, "settings", None)
        if document is not None and settings is not None:
            fragments = {
                d.name.value: d
                for d in document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
            chosen = [
                op
                for op in operations
                if context.operation_name is None
                or (op.name is not None and op.name.value == context.operation_name)
            ]
            if chosen:
                # Strawberry keeps graphql-core's schema, which has the argument definitions.
                calculator = CostCalculator(
                    context.schema._schema, fragments, context.variables or {}
                )
                self.cost = calculator.of_operation(chosen[0])
                self.maximum = settings.max_query_cost
                if self.cost > self.maximum:
                    context.result = GraphQLExecutionResult(
                        data=None,
                        errors=[
                            GraphQLError(
                                f"Query cost {self.cost} exceeds the maximum of "
                                f"{self.maximum}; ask for smaller pages or fewer fields.",
                                extensions={"code": ErrorCode.QUERY_TOO_COMPLEX.value},
                            )
                        ],
                    )
        yield

    def get_results(self) -> dict[str, Any]:
        if self.cost is None:
            return {}
        return {"cost": {"requested": self.cost, "maximum": self.maximum}}
