"""Schema extensions: error codes for expected errors, masking for the unexpected, and the
checks every request passes before it runs."""

import logging
import re
from collections.abc import Iterator

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import OperationDefinitionNode, StringValueNode, ValidationRule
from graphql.error import GraphQLError
from strawberry.extensions import MaskErrors, SchemaExtension

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


def _is_unexpected(error: GraphQLError) -> bool:
    # Parse, validation and coercion errors are the client's; only other exceptions are bugs.
    original = _cause(error)
    return original is not None and not isinstance(original, (DomainError, GraphQLError))


class ErrorPolicy(MaskErrors):
    """Domain errors get `extensions.code`; unexpected ones are logged with their traceback and,
    unless debugging, replaced by a bland message so internals never reach clients."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_unexpected, error_message="Internal server error.")

    @property
    def debug(self) -> bool:
        context = self.execution_context.context
        settings = getattr(context, "settings", None)
        return bool(settings and settings.debug)

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        processed: list[GraphQLError] = []
        for error in errors:
            original = _cause(error)
            if isinstance(original, DomainError):
                extensions = {**(error.extensions or {}), "code": original.code.value}
                field = original.field or _variable_path(error.message)
                if field:
                    extensions["field"] = field
                error.extensions = extensions
                processed.append(error)
            elif _is_unexpected(error):
                log.error("unexpected error in %s", error.path, exc_info=original)
                if self.debug:
                    error.extensions = {
                        **(error.extensions or {}),
                        "code": ErrorCode.INTERNAL_ERROR.value,
                    }
                    processed.append(error)
                else:
                    masked = self.anonymise_error(error)
                    masked.extensions = {"code": ErrorCode.INTERNAL_ERROR.value}
                    processed.append(masked)
            else:
                # The request itself is wrong (syntax, unknown field, wrong variable type).
                if not (error.extensions or {}).get("code"):
                    extensions = {**(error.extensions or {}), "code": ErrorCode.BAD_REQUEST.value}
                    field = _variable_path(error.message)
                    if field:
                        extensions["field"] = field
                    error.extensions = extensions
                processed.append(error)
        return processed


def _unsafe_text(value: object) -> str | None:
    """The first problem with any string (or object key) inside a variable value."""
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _unsafe_text(key) or _unsafe_text(item)
            if problem:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = _unsafe_text(item)
            if problem:
                return problem
    return None


class SafeText(ValidationRule):
    """String literals in the document obey the same text rule as variables (app.text)."""

    def enter_string_value(self, node: StringValueNode, *_args: object) -> None:
        problem = text_problem(node.value)
        if problem:
            self.report_error(
                GraphQLError(problem, node, extensions={"code": ErrorCode.INVALID_INPUT.value})
            )


class RequestGuard(SchemaExtension):
    """Refuses, before execution, what graphql-core or Strawberry would get wrong: a document
    of several operations without `operationName` (Strawberry silently runs the first), and
    variables holding text no database can store. Runs for HTTP and WebSocket alike."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        problem: GraphQLError | None = None
        # Strawberry falls back to the first operation's name when none was sent.
        provided_name = getattr(context, "_provided_operation_name", None)
        if document is not None and provided_name is None:
            operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
            if len(operations) > 1:
                problem = GraphQLError(
                    "The document has several operations: say which to run in operationName.",
                    extensions={"code": ErrorCode.BAD_REQUEST.value},
                )
        text = _unsafe_text(context.variables) if context.variables else None
        if problem is None and text:
            problem = GraphQLError(text, extensions={"code": ErrorCode.INVALID_INPUT.value})
        if problem is not None:
            context.result = GraphQLExecutionResult(data=None, errors=[problem])
        yield
