"""The CG_INTROSPECTION switch: off, no introspection and no "Did you mean …?" suggestions.

Without both, the schema can be rebuilt from error messages alone. Validation messages then
also lose the schema's type names ("of type '<hidden>'"); the field and argument names a
message repeats, and the name of a required argument left out, remain. The schema is built once
per process (get_schema), so the switch is read from each operation's context: validation
is done here (cached, like Strawberry's ValidationCache) and the executor hides suggestions
from variable coercion errors.
"""

import functools
import re
from collections.abc import Iterator
from typing import Any

from graphql import ASTValidationRule, DocumentNode, GraphQLError, GraphQLSchema, validate
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from app.config import Settings

VALIDATION_CACHE_SIZE = 256
# What graphql-core's validation messages say of the schema beyond the names a client sent:
# "of type 'String!'", "on type 'Order'", "in 'OrderState' enum", and the owning type of
# "field 'Order.items'" or "Argument 'Query.order(id:)'".
_TYPE_NAME = re.compile(r"\btype '[^']*'|(?<=exist in )'[^']*'(?= enum)")
_QUALIFIED_FIELD = re.compile(r"'[_A-Za-z][_0-9A-Za-z]*\.(?=[_A-Za-z])")
HIDDEN_TYPE = "type '<hidden>'"


def mask_type_names(error: GraphQLError) -> GraphQLError:
    """A validation error with the schema's type names taken out of its message."""
    message = _QUALIFIED_FIELD.sub("'", _TYPE_NAME.sub(HIDDEN_TYPE, error.message))
    if message == error.message:
        return error
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error,
        extensions=error.extensions,
    )


def introspection_allowed(context: object) -> bool:
    settings = getattr(context, "settings", None)
    return not isinstance(settings, Settings) or settings.introspection


@functools.lru_cache(maxsize=VALIDATION_CACHE_SIZE)
def _validate(
    schema: GraphQLSchema,
    document: DocumentNode,
    rules: tuple[type[ASTValidationRule], ...],
    private: bool,
) -> list[GraphQLError]:
    # The two rules Strawberry adds to every validation (see strawberry.schema.schema).
    rules = (*rules, MaybeNullValidationRule, OneOfInputValidationRule)
    if not private:
        return validate(schema, document, rules)
    rules = (*rules, NoSchemaIntrospectionCustomRule)
    return [mask_type_names(e) for e in validate(schema, document, rules, hide_suggestions=True)]


class CachedValidation(SchemaExtension):
    """Validates each document once per rule set and switch position, keyed by the parsed
    document (ParserCache hands out the same one for the same text)."""

    def on_validate(self) -> Iterator[None]:
        execution = self.execution_context
        assert execution.graphql_document is not None
        execution.pre_execution_errors = _validate(
            execution.schema._schema,
            execution.graphql_document,
            tuple(execution.validation_rules),
            not introspection_allowed(execution.context),
        )
        yield


class Executor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, hiding suggestions in execution errors (e.g. an unknown enum
    value in `variables`) while introspection is off."""

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        # graphql-core passes the context fourth, positionally (see graphql.execution.execute).
        context = args[3] if len(args) > 3 else kwargs.get("context_value")
        if introspection_allowed(context):
            return super().build(*args, **kwargs)
        kwargs["hide_suggestions"] = True
        built = super().build(*args, **kwargs)
        # A list of errors: variables that did not coerce ("… in 'OrderState' enum").
        return [mask_type_names(e) for e in built] if isinstance(built, list) else built
