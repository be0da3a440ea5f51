"""Compiled plans: a query of a known shape answered straight from rows, without the executor.

graphql-core executes a nested read of 20 orders as ~900 fields, each through its resolver,
Strawberry's wrapper around it and the completion of its value: most of the CPU of such a
read. A plan is compiled once per document (and values of the booleans its @skip/@include may
read): the fields it selects (collected by graphql-core's own `collect_fields`, so fragments,
aliases and @skip/@include mean what they mean to the executor), for each a *reader* taking
its value from the parent's row, and the GraphQL type's own `serialize` for each leaf. Running
it reads the same statements through the same service functions and loaders as the
resolvers, level by level (one loader batch per relation, as the executor batches them), and
builds the response's dicts directly.

What can be planned is explicit: `plannable(...)` beside each type says how each of its
fields reads from the row (or value) the type is built from, and `plannable_root(...)` names
the root fields, with the function that reads their page. Anything else — a field without a
reader, arguments below the root, abstract types, introspection, mutations, subscriptions,
directives other than @skip/@include, @defer/@stream — is not planned, and the operation runs
through graphql-core as before. So does a planned operation whose run raises anything (a
bad argument, a null where the schema promises a value): the executor then answers it, with
the error it would have given. Everything around execution (validation, limits, cost, the
response cache) is untouched: a plan only replaces `execute_operation`.
"""

import functools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter
from typing import Any, TypeVar

from graphql import (
    GraphQLID,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLString,
    OperationDefinitionNode,
    OperationType,
    is_leaf_type,
)
from graphql.execution.collect_fields import (
    FieldDetails,
    FragmentDetails,
    collect_fields,
    collect_subfields,
)
from graphql.execution.values import VariableValues, get_argument_values
from strawberry import relay
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.base import get_object_definition

log = logging.getLogger(__name__)

# String's and ID's serialize answer a str as it is: done inline for the many str leaves.
_STR_AS_IS = (GraphQLString.serialize, GraphQLID.serialize)

PLAN_CACHE_SIZE = 256  # compiled plans (documents x @skip/@include values) per process
_DEFINITION = "strawberry-definition"  # Strawberry's back-reference on graphql-core types
_SKIP_INCLUDE = frozenset({"skip", "include"})

T = TypeVar("T")
Reader = Callable[[Any, Any], Any]  # (source, context) -> the field's value


@dataclass(frozen=True)
class Loaded:
    """A field read through one of the operation's dataloaders: `loader_of(loaders)` loaded
    with `key(source)` for every source of a level in one batch, then `then(value)`."""

    loader_of: Callable[[Any], Any]
    key: Callable[[Any], Any]
    then: Callable[[Any], Any] | None = None


RootReader = Callable[[Any, dict[str, Any], frozenset[str]], Awaitable[Any]]
"""(context, arguments, names of the fields selected under it) -> the field's value."""


@dataclass(frozen=True)
class _TypeReaders:
    readers: Mapping[str, Reader | Loaded]  # by Python field name
    attributes: bool  # fields without a reader (and without a resolver) read the attribute


# By GraphQL type name. Filled at import by the modules declaring the types.
_TYPES: dict[str, _TypeReaders] = {}
_ROOTS: dict[str, tuple[RootReader, frozenset[str]]] = {}


def plannable(strawberry_type: type, readers: Mapping[str, Reader | Loaded] | None = None) -> None:
    """Declare how a type's fields read from the value it is built from, by Python field
    name. Without `readers` (a value type: Mass, Money, PageInfo…) each field without a
    resolver reads the attribute of the same name; with them, only the named fields plan."""
    definition = get_object_definition(strawberry_type, strict=True)
    _TYPES[definition.name] = _TypeReaders(dict(readers or {}), attributes=readers is None)


def row_readers(fields: Mapping[str, Callable[[Any], Any]]) -> dict[str, Reader]:
    """Readers from functions of the row alone (a type's `from_row` fields)."""
    return {name: OfRow(read) for name, read in fields.items()}


class OfRow:
    """A reader needing only the source (most are): mapped over a level's sources at once."""

    __slots__ = ("read",)

    def __init__(self, read: Callable[[Any], Any]) -> None:
        self.read = read

    def __call__(self, source: Any, _context: Any) -> Any:
        return self.read(source)


def from_fields(cls: type[T], fields: Mapping[str, Callable[[Any], Any]], row: Any) -> T:
    """A Strawberry object built from `row` by the same field functions its plan reads."""
    return cls(**{name: read(row) for name, read in fields.items()})


def plannable_type_name(name: str) -> None:
    """A type known only by its GraphQL name (a connection's `OrderEdge`), read by attribute."""
    _TYPES[name] = _TypeReaders({}, attributes=True)


def plannable_root(field_name: str, read: RootReader, arguments: frozenset[str]) -> None:
    """A root field a plan may answer, when it is sent no arguments but `arguments`."""
    _ROOTS[field_name] = (read, arguments)


class Unplannable(Exception):
    """The document has something no plan answers: the executor runs it."""


@dataclass(frozen=True, slots=True)
class _Field:
    key: str  # response key (alias or name)
    read: Reader | Loaded | None  # None: __typename
    typename: str | None
    nullable: bool
    many: bool  # a list of values (each `item_nullable`)
    item_nullable: bool
    serialize: Callable[[Any], Any] | None  # a leaf
    children: "tuple[_Field, ...] | None"  # an object


@dataclass(frozen=True, slots=True)
class _Root:
    key: str
    read: RootReader
    field_def: Any
    node: Any
    selected: frozenset[str]
    field: _Field


class Plan:
    """One operation's compiled plan for given @skip/@include values."""

    def __init__(self, roots: Sequence[_Root | str], typename: str) -> None:
        self._roots = roots  # a str is a root `__typename` response key
        self._typename = typename

    async def run(self, context: Any, variable_values: VariableValues) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for root in self._roots:
            if isinstance(root, str):
                data[root] = self._typename
                continue
            arguments = get_argument_values(root.field_def, root.node, variable_values)
            value = await root.read(context, arguments, root.selected)
            data[root.key] = (await _values(root.field, [value], context))[0]
        return data


async def _shape(fields: tuple[_Field, ...], sources: list[Any], context: Any) -> list[Any]:
    """Each source as the response's dict of `fields`."""
    if not sources:
        return []
    keys = [field.key for field in fields]
    columns = [await _values(field, sources, context) for field in fields]
    # All in C (map, zip, dict): a page's few hundred dicts are a good part of shaping.
    return list(map(dict, map(zip, repeat(keys), zip(*columns, strict=True))))


async def _values(field: _Field, sources: list[Any], context: Any) -> list[Any]:
    """The field's completed value for each source."""
    read = field.read
    if read is None:
        return [field.typename] * len(sources)
    if isinstance(read, Loaded):
        loaded = await read.loader_of(context.loaders).load_many([read.key(s) for s in sources])
        values = loaded if read.then is None else [read.then(value) for value in loaded]
    else:
        values = (
            list(map(read.read, sources))
            if isinstance(read, OfRow)
            else [read(source, context) for source in sources]
        )
    if not field.many:
        return await _complete(field, values, field.nullable, context)
    completed: list[Any] = []
    flat: list[Any] = []
    for value in values:
        if value is None and not field.nullable:
            raise Unplannable(f"null for non-null {field.key}")
        if value is not None:
            flat.extend(value)
    done = await _complete(field, flat, field.item_nullable, context)
    start = 0
    for value in values:
        if value is None:
            completed.append(None)
            continue
        completed.append(done[start : start + len(value)])
        start += len(value)
    return completed


async def _complete(field: _Field, values: list[Any], nullable: bool, context: Any) -> list[Any]:
    if field.serialize is not None:
        serialize = field.serialize
        if not nullable and None in values:
            raise Unplannable(f"null for non-null {field.key}")
        if serialize in _STR_AS_IS:
            return [
                value if type(value) is str or value is None else serialize(value)
                for value in values
            ]
        return [None if value is None else serialize(value) for value in values]
    assert field.children is not None
    present = [value for value in values if value is not None]
    if len(present) != len(values) and not nullable:
        raise Unplannable(f"null for non-null {field.key}")
    shaped = iter(await _shape(field.children, present, context))
    return [None if value is None else next(shaped) for value in values]


class _Compiler:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDetails],
        variable_values: VariableValues,
        operation: OperationDefinitionNode,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variable_values = variable_values
        self.operation = operation

    def plan(self) -> Plan:
        root_type = self.schema.query_type
        assert root_type is not None
        collected = collect_fields(
            self.schema, self.fragments, self.variable_values, root_type, self.operation
        )
        if collected.new_defer_usages:
            raise Unplannable("@defer")
        roots: list[_Root | str] = []
        for key, details in collected.grouped_field_set.items():
            self._check(details)
            name = details[0].node.name.value
            if name == "__typename":
                roots.append(key)
                continue
            if name not in _ROOTS:
                raise Unplannable(f"root field {name}")
            read, arguments = _ROOTS[name]
            for detail in details:
                for argument in detail.node.arguments or ():
                    if argument.name.value not in arguments:
                        raise Unplannable(f"argument {name}({argument.name.value}:)")
            field_def = root_type.fields[name]
            field = self._field(key, field_def.type, details, read=lambda source, _: source)
            selected = frozenset(
                child.node.name.value for child in self._subfields(field_def.type, details)
            )
            roots.append(_Root(key, read, field_def, details[0].node, selected, field))
        return Plan(roots, root_type.name)

    def _check(self, details: list[FieldDetails]) -> None:
        for detail in details:
            if detail.defer_usage is not None or detail.fragment_variable_values is not None:
                raise Unplannable("@defer or fragment variables")
            for directive in detail.node.directives or ():
                if directive.name.value not in _SKIP_INCLUDE:
                    raise Unplannable(f"@{directive.name.value}")

    def _subfields(
        self, field_type: GraphQLOutputType, details: list[FieldDetails]
    ) -> list[FieldDetails]:
        grouped = self._collect(_named_object(field_type), details)
        return [group[0] for group in grouped.values()]

    def _collect(
        self, object_type: GraphQLObjectType, details: list[FieldDetails]
    ) -> Mapping[str, list[FieldDetails]]:
        """The fields selected under `details` on `object_type`, by response key, as the
        executor collects them."""
        collected = collect_subfields(
            self.schema,
            self.fragments,
            self.variable_values,
            self.operation,
            object_type,
            details,
        )
        if collected.new_defer_usages:
            raise Unplannable("@defer")
        return collected.grouped_field_set

    def _field(
        self,
        key: str,
        field_type: GraphQLOutputType,
        details: list[FieldDetails],
        read: Reader | Loaded,
    ) -> _Field:
        nullable = not isinstance(field_type, GraphQLNonNull)
        inner = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
        many = isinstance(inner, GraphQLList)
        item_nullable = True
        if many:
            assert isinstance(inner, GraphQLList)
            item = inner.of_type
            item_nullable = not isinstance(item, GraphQLNonNull)
            inner = item.of_type if isinstance(item, GraphQLNonNull) else item
            if isinstance(inner, GraphQLList):
                raise Unplannable("nested lists")
        if is_leaf_type(inner):
            return _Field(key, read, None, nullable, many, item_nullable, inner.serialize, None)
        if not isinstance(inner, GraphQLObjectType):
            raise Unplannable(f"abstract type {inner}")
        children = self._children(inner, details)
        return _Field(key, read, None, nullable, many, item_nullable, None, children)

    def _children(
        self, object_type: GraphQLObjectType, details: list[FieldDetails]
    ) -> tuple[_Field, ...]:
        readers = _TYPES.get(object_type.name)
        if readers is None:
            raise Unplannable(f"type {object_type.name}")
        children: list[_Field] = []
        for key, group in self._collect(object_type, details).items():
            self._check(group)
            name = group[0].node.name.value
            if name == "__typename":
                children.append(_Field(key, None, object_type.name, False, False, True, None, None))
                continue
            if any(detail.node.arguments for detail in group):
                raise Unplannable(f"arguments of {object_type.name}.{name}")
            field_def = object_type.fields[name]
            read = _reader(object_type, name, field_def, readers)
            children.append(self._field(key, field_def.type, group, read))
        return tuple(children)


def _named_object(field_type: GraphQLOutputType) -> GraphQLObjectType:
    inner: Any = field_type
    while isinstance(inner, (GraphQLNonNull, GraphQLList)):
        inner = inner.of_type
    if not isinstance(inner, GraphQLObjectType):
        raise Unplannable(f"abstract type {inner}")
    return inner


def _reader(
    object_type: GraphQLObjectType, name: str, field_def: Any, readers: _TypeReaders
) -> Reader | Loaded:
    if name == "id" and any(i.name == "Node" for i in object_type.interfaces):
        # Relay's own `id` field (Python name `_id`, with a resolver): the row id's reader.
        node_id = readers.readers.get("id")
        if node_id is None:
            raise Unplannable(f"{object_type.name}.id has no reader")
        return _node_id(object_type.name, node_id)
    definition = (field_def.extensions or {}).get(_DEFINITION)
    python_name = getattr(definition, "python_name", None)
    if python_name is None:
        raise Unplannable(f"{object_type.name}.{name} has no Strawberry field")
    read = readers.readers.get(python_name)
    if read is None:
        if not readers.attributes or getattr(definition, "base_resolver", None) is not None:
            raise Unplannable(f"{object_type.name}.{name} has no reader")
        read = _attribute(python_name)
    return read


def _attribute(python_name: str) -> Reader:
    return OfRow(attrgetter(python_name))


def _node_id(type_name: str, read: Reader | Loaded) -> Reader:
    """`base64("<Type>:<id>")`, as the schema resolves every Node's id (schema.py)."""
    if not isinstance(read, OfRow):
        raise Unplannable("a node id read from more than its row")
    row_id = read.read
    return OfRow(lambda source: _global_id(type_name, row_id(source)))


@functools.lru_cache(maxsize=4096)
def _global_id(type_name: str, row_id: str) -> str:
    # A page's allocations repeat a few projects, bundles and batches: 140 ids, few distinct.
    return relay.to_base64(type_name, row_id)


class Plans:
    """Compiled plans by operation and @skip/@include values, the least recently used
    dropped beyond `size`; a document that cannot be planned is remembered as such."""

    def __init__(self, size: int = PLAN_CACHE_SIZE) -> None:
        self.size = size
        self._plans: OrderedDict[tuple[int, tuple[Any, ...]], tuple[Any, Plan | None]] = (
            OrderedDict()
        )

    def plan_for(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDetails],
        variable_values: VariableValues,
        operation: OperationDefinitionNode,
    ) -> Plan | None:
        if operation.operation is not OperationType.QUERY:
            return None
        # The booleans among the variables: all that @skip/@include can read (no planned
        # field takes a boolean argument), so the plan compiled for them is the same.
        switches = tuple(
            (name, value)
            for name, value in variable_values.coerced.items()
            if isinstance(value, bool)
        )
        key = (id(operation), switches)
        entry = self._plans.get(key)
        if entry is not None and entry[0] is operation:  # not another one at a reused id
            self._plans.move_to_end(key)
            return entry[1]
        plan: Plan | None
        try:
            plan = _Compiler(schema, fragments, variable_values, operation).plan()
        except Unplannable as reason:
            log.debug("not planned: %s", reason)
            plan = None
        self._plans[key] = (operation, plan)
        if len(self._plans) > self.size:
            self._plans.popitem(last=False)
        return plan


PLANS = Plans()


class PlannedExecution(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor, answering a query from its compiled plan when it has one
    (and CG_COMPILED_PLANS is on), else, or when the plan's run raises, as before."""

    def execute_operation(self, serially: bool | None = None) -> Any:
        plan = self._plan()
        if plan is None:
            return super().execute_operation(serially)
        return self._run_plan(plan, serially)

    def _plan(self) -> Plan | None:
        context = self.context_value
        settings = getattr(context, "settings", None)
        if (
            not getattr(settings, "compiled_plans", False)
            or self.root_value is not None
            or getattr(context, "loaders", None) is None
        ):
            return None
        return PLANS.plan_for(self.schema, self.fragments, self.variable_values, self.operation)

    async def _run_plan(self, plan: Plan, serially: bool | None) -> Any:
        try:
            data = await plan.run(self.context_value, self.variable_values)
        except Exception as error:  # the executor answers, errors included
            log.debug("plan not followed: %r", error)
            result = super().execute_operation(serially)
            return await result if self.is_awaitable(result) else result
        return self.build_response(data)
