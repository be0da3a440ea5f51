"""The grouped execution of a live event (app/graphql/events.py SharedEventExecution): one
run per event for every subscription of the group, which none of them can take from the
others."""

import asyncio
import inspect
from typing import Any

from graphql import parse

from app.config import Settings
from app.db import Database
from app.graphql.context import Context
from app.graphql.dataloaders import create_dataloaders
from app.graphql.events import OrderStatusChange, SharedEventExecution
from app.graphql.offsets import Order
from app.graphql.reads import RequestReads
from app.graphql.schema import get_schema
from app.offsets import models as order_models
from app.offsets import service as offsets
from tests.conftest import make_account
from tests.offsets_fixtures import place_one_tonne, principal_for, stock_of_tonnes

# `allocations` is read through a dataloader: the execution awaits the database.
DOCUMENT = parse(
    "subscription { orderStatusChanged { sequence order { id allocations { __typename } } } }"
)


async def test_a_subscription_cancelled_mid_execution_leaves_its_group_the_result(
    db: Database, settings: Settings
) -> None:
    """A client completing (or leaving) while its group's execution of an event runs must
    not cancel that execution for the rest of the group: they would each silently stop."""
    account = await make_account(db)
    admin = principal_for(account)
    await stock_of_tonnes(db, admin, [10])
    order_id = await place_one_tonne(db, admin)
    async with db.session() as session:
        row = await offsets.get_order(session, admin, order_id)
    event = OrderStatusChange(
        sequence=1,
        order=Order.from_row(row),
        previous_state=None,
        state=order_models.OrderState.PLACED,
        occurred_at=row.created_at,
    )

    def subscription() -> Any:
        reads = RequestReads(db)
        context = Context(
            db=db,
            settings=settings,
            principal=admin,
            reads=reads,
            loaders=create_dataloaders(reads, admin),
        )
        executor = SharedEventExecution.build(get_schema()._schema, DOCUMENT, context_value=context)
        assert isinstance(executor, SharedEventExecution)
        return executor

    async def execute(executor: Any) -> Any:
        result = executor.build_per_event_executor(event).execute_operation(False)
        return await result if inspect.isawaitable(result) else result

    leaving = asyncio.create_task(execute(subscription()))
    await asyncio.sleep(0)  # it started the group's execution, which now awaits the database
    staying = asyncio.create_task(execute(subscription()))
    await asyncio.sleep(0)
    leaving.cancel()
    async with asyncio.timeout(10):
        result = await staying
    assert result.errors is None
    assert result.data["orderStatusChanged"]["order"]["allocations"] == []
