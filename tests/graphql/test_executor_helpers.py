"""GatewayExecution's async helpers (`info.async_helpers`) work as graphql-core's own and hold
no reference back to the executor, so an execution is freed without a garbage collection."""

import asyncio
import gc
import weakref

from graphql import parse

from app.graphql.schema import GatewayExecution, get_schema


async def test_the_helpers_gather_and_track_and_leave_no_cycle() -> None:
    executor = GatewayExecution.build(get_schema()._schema, parse("{ __typename }"))
    assert isinstance(executor, GatewayExecution)
    helpers = executor.async_helpers

    async def value(number: int) -> int:
        await asyncio.sleep(0)
        return number

    assert await helpers.gather([value(1), value(2)]) == [1, 2]
    tracked = asyncio.ensure_future(value(3))
    helpers.track([tracked, 4])
    assert await tracked == 3

    gone = weakref.ref(executor)
    gc.disable()
    try:
        del executor
        assert gone() is None  # by reference counting alone
        straggler = value(5)
        helpers.track([straggler])  # after its executor: still settled, not left unawaited
        await asyncio.sleep(0.01)
        assert straggler.cr_frame is None
    finally:
        gc.enable()
