"""Domain errors as typed `userErrors`, in one place."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import strawberry
from sqlmodel.ext.asyncio.session import AsyncSession

from app.db import Database
from app.errors import DomainError
from app.errors import ErrorCode as DomainErrorCode
from app.graphql.reads import RequestReads
from app.group_commit import Staged

ErrorCode = strawberry.enum(DomainErrorCode, name="ErrorCode")

T = TypeVar("T")
R = TypeVar("R")


@strawberry.type
class UserError:
    code: ErrorCode  # type: ignore[valid-type]
    field: str | None = strawberry.field(
        description="Path of the offending input field, relative to `input` (e.g. `mass.amount`)."
    )
    message: str

    @classmethod
    def from_domain(cls, error: DomainError) -> "UserError":
        return cls(code=error.code, field=error.field, message=error.message)


@dataclass
class Outcome(Generic[T]):
    value: T | None = None
    user_errors: list[UserError] = field(default_factory=list)

    def map(self, to_type: Callable[[T], R]) -> R | None:
        """The value as a GraphQL type, or None when the use case failed."""
        return to_type(self.value) if self.value is not None else None


async def perform(
    db: Database,
    use_case: Callable[[AsyncSession], Awaitable[T]],
    *,
    reads: RequestReads | None = None,
    grouped: bool = False,
) -> Outcome[T]:
    """Run a use case in one transaction; a domain error rolls it back and becomes userErrors.

    A read-only use case (a quote) is given the operation's `reads` instead: it reads in the
    operation's session, which takes no write lock, and an HTTP query holds one connection,
    not one more for its quote. `grouped` ones (order creation) run in a savepoint of a
    transaction shared with concurrent writes of this process (`Database.grouped`), answered
    after its commit."""
    try:
        if reads is not None:
            async with reads.session() as session:
                return Outcome(value=await use_case(session))
        if grouped:
            return Outcome(value=await db.grouped(use_case))
        async with db.transaction() as session:
            return Outcome(value=await use_case(session))
    except DomainError as error:
        return Outcome(user_errors=[UserError.from_domain(error)])


async def perform_staged(
    db: Database, stage: Callable[[AsyncSession], Awaitable[Staged[T] | T]]
) -> Outcome[T]:
    """Run a use case that validates and prices, then stages its rows (order creation), in a
    group commit without a savepoint (`Database.grouped_staged`): answered after its commit,
    a domain error becoming userErrors."""
    try:
        value: T = await db.grouped_staged(stage)
    except DomainError as error:
        return Outcome(user_errors=[UserError.from_domain(error)])
    return Outcome(value=value)
