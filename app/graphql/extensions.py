"""Schema extensions: error codes for expected errors, masking for the unexpected."""

import logging

from graphql.error import GraphQLError
from strawberry.extensions import MaskErrors

from app.errors import DomainError, ErrorCode

log = logging.getLogger(__name__)


def _is_unexpected(error: GraphQLError) -> bool:
    # Validation and parse errors carry no original error: they are the client's and stay.
    original = error.original_error
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
            original = error.original_error
            if isinstance(original, DomainError):
                extensions = {**(error.extensions or {}), "code": original.code.value}
                if original.field:
                    extensions["field"] = original.field
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
                processed.append(error)
        return processed
