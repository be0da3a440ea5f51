"""Schema extensions: error codes for expected errors, masking for the unexpected, and the
checks every request passes before it runs."""

import logging
import re
from collections.abc import Iterator
from typing import Any, cast

from graphql import (
    ArgumentNode,
    DocumentNode,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    ObjectFieldNode,
    OperationDefinitionNode,
    OperationType,
    StringValueNode,
    ValidationRule,
    type_from_ast,
)
from graphql.error import GraphQLError
from starlette.websockets import WebSocket
from strawberry.extensions import ParserCache, SchemaExtension

from app.errors import DomainError, ErrorCode
from app.text import text_problem

log = logging.getLogger(__name__)


def _cause(error: GraphQLError) -> Exception | None:
    """The exception behind an error, through graphql-core's wrapping (a variable's coercion
    error wraps the scalar's error, which wraps what our parser raised)."""
    original = error.original_error
    while isinstance(original, GraphQLError) and original.original_error is not None:
        original = original.original_error
    return original


# graphql-core names where in a variable a value failed: "Variable '$input' has invalid value
# at .legs[0].distanceKm: …". Clients get it as `extensions.field`, as in userErrors.
_VARIABLE_PATH = re.compile(r"^Variable '\$\w+' has invalid value at ((?:\.\w+|\[\d+\])+):")


def _variable_path(message: str) -> str | None:
    match = _VARIABLE_PATH.match(message)
    if match is None:
        return None
    return re.sub(r"\[(\d+)\]", r".\1", match.group(1)).lstrip(".")


MAX_MESSAGE_LENGTH = 300  # graphql-core quotes the offending literal; a 5,000-digit one is noise


def _is_unexpected(error: GraphQLError) -> bool:
    """A bug of ours: an exception in a resolver or extension. Parse, validation and coercion
    errors are the client's, even when a library raised them (an Int literal of 5,000 digits
    makes graphql-core's int() refuse it): those are tied to the document, outside a path."""
    original = _cause(error)
    if original is None or isinstance(original, (DomainError, GraphQLError)):
        return False
    return error.path is not None or not error.nodes


def debug_enabled(context: object) -> bool:
    settings = getattr(context, "settings", None)
    return bool(settings and settings.debug)


def classify(error: GraphQLError, *, debug: bool) -> GraphQLError:
    """The error as clients see it, always with `extensions.code`: a domain error's own code
    and field; INTERNAL_ERROR, logged and masked unless debugging, for a bug; BAD_REQUEST for
    a malformed request (syntax, unknown field, wrong variable type). Idempotent."""
    original = _cause(error)
    extensions = dict(error.extensions or {})
    if len(error.message) > MAX_MESSAGE_LENGTH:
        error.message = error.message[:MAX_MESSAGE_LENGTH] + "…"
    if isinstance(original, DomainError):
        extensions["code"] = original.code.value
        field = original.field or _variable_path(error.message)
        if field:
            extensions["field"] = field
    elif _is_unexpected(error):
        log.error("unexpected error in %s", error.path, exc_info=original)
        if not debug:
            masked = GraphQLError(
                "Internal server error.",
                nodes=error.nodes,
                source=error.source,
                positions=error.positions,
                path=error.path,
                extensions={"code": ErrorCode.INTERNAL_ERROR.value},
            )
            return masked
        extensions["code"] = ErrorCode.INTERNAL_ERROR.value
    elif not extensions.get("code"):
        if original is not None and not isinstance(original, GraphQLError):
            # A library refused a literal (int() of 5,000 digits): say so without its internals.
            error.message = "A literal its type cannot represent, e.g. an Int beyond 32 bits."
        extensions["code"] = ErrorCode.BAD_REQUEST.value
        field = _variable_path(error.message)
        if field:
            extensions["field"] = field
    error.extensions = extensions
    return error


class ErrorPolicy(SchemaExtension):
    """Every error of an executed operation classified (see `classify`) before it leaves.
    Errors raised before execution (syntax, limits) are classified by the schema itself
    (app.graphql.schema.GatewaySchema.process_errors), as they skip extensions."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if errors:
            debug = debug_enabled(self.execution_context.context)
            result.errors = [classify(error, debug=debug) for error in errors]  # type: ignore[union-attr]


MAX_VARIABLE_DEPTH = 64
# Parsing is pure Python: a 3 MB string literal costs half a second. Real documents are a few KB.
MAX_DOCUMENT_CHARACTERS = 64 * 1024
MAX_LIST_ITEMS = 10_000  # the largest list any input takes: a customer order's items


def _variables_problem(variables: dict[str, object]) -> tuple[str, str] | None:
    """The first problem inside the variables, and where: unsafe text in a string or object
    key, a list longer than any input takes, or nesting deeper than any input has. The place
    is a path inside the variable (`description`, `items.3.config.serialNumber`), as in
    userErrors. Iterative, as JSON may nest 1,024 levels, deeper than Python allows."""
    pending: list[tuple[object, tuple[str, ...]]] = [(v, ()) for v in variables.values()]
    while pending:
        item, path = pending.pop()
        if len(path) > MAX_VARIABLE_DEPTH:
            return f"Variables may nest at most {MAX_VARIABLE_DEPTH} levels.", ".".join(path[:8])
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return problem, ".".join(path)
        elif isinstance(item, dict):
            for key, child in item.items():
                pending.append((key, path))
                pending.append((child, (*path, str(key))))
        elif isinstance(item, list):
            if len(item) > MAX_LIST_ITEMS:
                return f"Lists may have at most {MAX_LIST_ITEMS:,} items.", ".".join(path)
            pending.extend((child, (*path, str(index))) for index, child in enumerate(item))
    return None


def _literal_path(ancestors: tuple[object, ...]) -> str:
    """Where a literal sits inside its argument, as userErrors name fields: the `input`
    argument's own name is left out (`description`, `mass.amount`)."""
    names: list[str] = []
    for node in ancestors:
        if isinstance(node, ArgumentNode) and node.name.value != "input":
            names.append(node.name.value)
        if isinstance(node, ObjectFieldNode):
            names.append(node.name.value)
    return ".".join(names)


class SafeText(ValidationRule):
    """String literals in the document obey the same text rule as variables (app.text)."""

    def enter_string_value(
        self, node: StringValueNode, _key: object, parent: object, _path: object, ancestors: Any
    ) -> None:
        problem = text_problem(node.value)
        if problem:
            extensions = {"code": ErrorCode.INVALID_INPUT.value}
            field = _literal_path((*ancestors, parent))
            if field:
                extensions["field"] = field
            self.report_error(GraphQLError(problem, node, extensions=extensions))


# Lists in inputs: at most 100 items, but where an input says otherwise.
DEFAULT_MAX_ITEMS = 100
MAX_ITEMS = {("CreateCustomerOrderInput", "items"): MAX_LIST_ITEMS}


def _list_problem(value: object, input_type: GraphQLInputType, limit: int, path: str) -> str | None:
    """A list longer than its input field allows, found before graphql-core coerces it: a
    50,000-leg flight costs seconds to coerce, then is refused anyway."""
    if isinstance(input_type, GraphQLNonNull):
        input_type = input_type.of_type
    if isinstance(input_type, GraphQLList):
        if not isinstance(value, list):
            return _list_problem(value, input_type.of_type, DEFAULT_MAX_ITEMS, path)
        if len(value) > limit:
            return f"{path} has {len(value):,} items; at most {limit:,} are accepted."
        for index, item in enumerate(value):
            problem = _list_problem(item, input_type.of_type, DEFAULT_MAX_ITEMS, f"{path}.{index}")
            if problem:
                return problem
    elif isinstance(input_type, GraphQLInputObjectType) and isinstance(value, dict):
        for name, field in input_type.fields.items():
            if name in value:
                problem = _list_problem(
                    value[name],
                    field.type,
                    MAX_ITEMS.get((input_type.name, name), DEFAULT_MAX_ITEMS),
                    f"{path}.{name}",
                )
                if problem:
                    return problem
    return None


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name and o.name.value == name), None)


class RequestGuard(SchemaExtension):
    """Refuses, before execution, what graphql-core or Strawberry would get wrong, on HTTP and
    WebSocket alike: several operations without `operationName` (Strawberry silently runs the
    first), a subscription over HTTP, and variables no input can take (see above). Only the
    operation's declared variables are read; graphql-core ignores the others too.

    It raises: Strawberry ignores a preset result for subscriptions, but turns an exception
    in this hook into an error result on every path."""

    def on_parse(self) -> Iterator[None]:
        query = self.execution_context.query
        if query is not None and len(query) > MAX_DOCUMENT_CHARACTERS:
            raise GraphQLError(
                f"The document is over {MAX_DOCUMENT_CHARACTERS:,} characters: send large "
                "inputs as variables.",
                extensions={"code": ErrorCode.BAD_REQUEST.value},
            )
        yield

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            # Strawberry falls back to the first operation's name when none was sent.
            provided_name = getattr(context, "_provided_operation_name", None)
            operation = _operation(document, provided_name)
            if operation is None and provided_name is None:
                raise GraphQLError(
                    "The document has several operations: say which to run in operationName.",
                    extensions={"code": ErrorCode.BAD_REQUEST.value},
                )
            request = getattr(context.context, "request", None)
            if (
                operation is not None
                and operation.operation == OperationType.SUBSCRIPTION
                and not isinstance(request, WebSocket)
            ):
                raise GraphQLError(
                    "Subscriptions run over WebSocket (graphql-transport-ws) at /graphql.",
                    extensions={"code": ErrorCode.BAD_REQUEST.value},
                )
            declared = (
                {d.variable.name.value for d in operation.variable_definitions or ()}
                if operation is not None
                else set()
            )
            variables = context.variables or {}
            problem = None
            definitions = (operation.variable_definitions or ()) if operation is not None else ()
            for definition in definitions:
                name = definition.variable.name.value
                input_type = type_from_ast(context.schema._schema, definition.type)
                if problem is None and name in variables and input_type is not None:
                    problem = _list_problem(
                        variables[name],
                        cast(GraphQLInputType, input_type),
                        DEFAULT_MAX_ITEMS,
                        f"${name}",
                    )
            extensions = {"code": ErrorCode.INVALID_INPUT.value}
            if problem is None and (
                found := _variables_problem({n: variables[n] for n in declared if n in variables})
            ):
                problem, field = found
                if field:
                    extensions["field"] = field
            if problem:
                raise GraphQLError(problem, extensions=extensions)
        yield


class CachedParsing(ParserCache):
    """Strawberry's ParserCache, except that a document that does not parse is left to
    Strawberry's own parse, which reports the syntax error as an error result. ParserCache
    raises it instead, which the WebSocket stream path does not catch: the subscription ended
    silently (legacy protocol: hung) and the error was logged with a traceback."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        try:
            context.graphql_document = self.cached_parse_document(
                context.query, **context.parse_options
            )
        except GraphQLError:
            context.graphql_document = None
        yield
