"""Writing events: every state change adds one row in the transaction that makes it."""

import uuid
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from app.accounts.models import Mode
from app.events.models import Event


def record_event(
    session: AsyncSession,
    *,
    type: str,
    account_id: uuid.UUID,
    mode: Mode,
    subaccount_id: uuid.UUID | None,
    order_id: uuid.UUID | None = None,
    previous_state: str | None = None,
    state: str | None = None,
    payload: dict[str, Any] | None = None,
) -> Event:
    event = Event(
        type=type,
        account_id=account_id,
        mode=mode,
        subaccount_id=subaccount_id,
        order_id=order_id,
        previous_state=previous_state,
        state=state,
        payload=payload or {},
    )
    session.add(event)
    return event
