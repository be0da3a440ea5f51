"""The one error vocabulary: domain errors carry a code and the input field they concern."""

from enum import StrEnum


class ErrorCode(StrEnum):
    """Every code a client can meet: in `userErrors`, in `errors[].extensions.code` over HTTP and
    WebSocket. Codes may be added; clients must tolerate ones they do not know."""

    # Transport level: top-level errors, never userErrors.
    UNAUTHENTICATED = "UNAUTHENTICATED"
    RATE_LIMITED = "RATE_LIMITED"
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
    BAD_REQUEST = "BAD_REQUEST"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
    OPERATION_NOT_TRUSTED = "OPERATION_NOT_TRUSTED"
    # Use cases.
    INVALID_INPUT = "INVALID_INPUT"
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    ACCOUNT_SUSPENDED = "ACCOUNT_SUSPENDED"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    ESTIMATE_ALREADY_ORDERED = "ESTIMATE_ALREADY_ORDERED"
    QUANTITY_NOT_POSITIVE = "QUANTITY_NOT_POSITIVE"
    ORDER_NOT_CANCELLABLE = "ORDER_NOT_CANCELLABLE"
    # Live events: the outbox went back behind the sequences already delivered (app/events/feed.py).
    EVENT_HISTORY_REWOUND = "EVENT_HISTORY_REWOUND"


class DomainError(Exception):
    """An expected failure of a use case; nothing was written when it is raised."""

    def __init__(self, code: ErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class InvalidInput(DomainError):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(ErrorCode.INVALID_INPUT, message, field)


class NotFound(DomainError):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(ErrorCode.NOT_FOUND, message, field)


class Forbidden(DomainError):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(ErrorCode.FORBIDDEN, message, field)
