"""The CG_INTROSPECTION switch: off, no introspection and no "Did you mean …?" suggestions.

Without both, the schema can be rebuilt from error messages alone. The schema is built once
per process (get_schema), so the switch is read from each operation's context: validation
is done here (cached, like Strawberry's ValidationCache) and the executor hides suggestions
from variable coercion errors.
"""

import functools
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
    if private:
        rules = (*rules, NoSchemaIntrospectionCustomRule)
    return validate(schema, document, rules, hide_suggestions=private)


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
        if not introspection_allowed(context):
            kwargs["hide_suggestions"] = True
        return super().build(*args, **kwargs)
