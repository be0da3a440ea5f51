"""`OrderStateChanged`: the one shape of an order event, built once from its outbox row and
mapped once per edge (subscription payload, webhook body, `Order.history`)."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app import public_ids
from app.accounts.models import Mode
from app.events.models import Event


@dataclass(frozen=True, slots=True)
class OrderStateChanged:
    """`sequence` is None only while the relay has not yet published the event (history may
    show it that early; subscribers and replays never see it before it has one)."""

    sequence: int | None
    type: str
    account_id: uuid.UUID
    mode: Mode
    subaccount_id: uuid.UUID | None
    order_id: uuid.UUID
    previous_state: str | None
    state: str
    occurred_at: datetime
    callback_url: str | None

    @classmethod
    def from_row(cls, event: Event) -> "OrderStateChanged | None":
        """The change an outbox row records, or None for a row that is not an order change."""
        if event.order_id is None or event.state is None:
            return None
        callback = event.payload.get("callbackUrl")
        return cls(
            sequence=event.sequence,
            type=event.type,
            account_id=event.account_id,
            mode=event.mode,
            subaccount_id=event.subaccount_id,
            order_id=event.order_id,
            previous_state=event.previous_state,
            state=event.state,
            occurred_at=event.occurred_at,
            callback_url=callback if isinstance(callback, str) else None,
        )

    def as_webhook_body(self, previous_sequence: int | None = None) -> dict[str, Any]:
        """The JSON body POSTed to webhook endpoints and callback URLs; `previous_sequence` is
        that of the event queued before it to the same target (app.events.webhooks.queue)."""
        return {
            "type": self.type,
            "timestamp": self.occurred_at.isoformat(),
            "data": {
                "orderId": public_ids.encode("Order", self.order_id),
                "previousState": self.previous_state,
                "state": self.state,
                "sequence": self.sequence,
                "previousSequence": previous_sequence,
                "mode": self.mode.value,
            },
        }
