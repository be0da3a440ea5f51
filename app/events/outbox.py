"""Writing events: every state change adds one row in the transaction that makes it."""

import uuid
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from app.accounts.models import Mode
from app.db import utcnow
from app.events.models import Event


def record_event(session: AsyncSession, **fields: Any) -> Event:
    """Add an event to the session's transaction (see `event_row` for the fields)."""
    event = Event(**event_row(**fields))
    session.add(event)
    return event


def event_row(
    *,
    type: str,
    account_id: uuid.UUID,
    mode: Mode,
    subaccount_id: uuid.UUID | None,
    order_id: uuid.UUID | None = None,
    previous_state: str | None = None,
    state: str | None = None,
    payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An event as the row to insert (its position is the database's to give), for callers
    that insert many at once with `app.db.insert_rows`."""
    return {
        "id": uuid.uuid4(),
        "account_id": account_id,
        "mode": mode,
        "subaccount_id": subaccount_id,
        "type": type,
        "order_id": order_id,
        "previous_state": previous_state,
        "state": state,
        "payload": payload or {},
        "occurred_at": utcnow(),
    }
