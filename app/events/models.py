"""The outbox: one row per state change, written in the transaction that makes the change."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer
from sqlmodel import Field, SQLModel

from app.accounts.models import Mode
from app.db import UTCDateTime, enum_column_type, utcnow


class Event(SQLModel, table=True):
    """One state change. `position` is the order rows were written in, which is not the order
    their transactions commit in; `sequence` is the public order, given by the relay when it
    publishes the row (see app/events/relay.py) and null until then."""

    __table_args__ = (
        Index("ix_event_order_position", "order_id", "position"),
        Index("ix_event_account_mode_sequence", "account_id", "mode", "sequence"),
        Index("ix_event_unpublished", "published_at", "position"),
    )

    position: int | None = Field(
        default=None,
        # SQLite autoincrements only an INTEGER PRIMARY KEY (the rowid); PostgreSQL gets BIGINT.
        sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    )
    sequence: int | None = Field(default=None, sa_column=Column(BigInteger, unique=True))
    id: uuid.UUID = Field(default_factory=uuid.uuid4, unique=True)
    account_id: uuid.UUID = Field(foreign_key="account.id", ondelete="CASCADE")
    mode: Mode = Field(sa_type=enum_column_type(Mode))
    subaccount_id: uuid.UUID | None = Field(default=None)
    type: str = Field(max_length=64)
    order_id: uuid.UUID | None = Field(default=None)
    previous_state: str | None = Field(default=None, max_length=32)
    state: str | None = Field(default=None, max_length=32)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    published_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebhookEndpoint(SQLModel, table=True):
    """An account's URL told of the order state changes in its mode (and subaccount)."""

    __tablename__ = "webhook_endpoint"
    __table_args__ = (Index("ix_webhook_endpoint_account_mode", "account_id", "mode"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    account_id: uuid.UUID = Field(foreign_key="account.id", ondelete="CASCADE")
    mode: Mode = Field(sa_type=enum_column_type(Mode))
    subaccount_id: uuid.UUID | None = Field(
        default=None, foreign_key="subaccount.id", ondelete="CASCADE"
    )
    url: str = Field(max_length=2048)
    description: str = Field(default="", max_length=200)
    # Standard Webhooks secret ("whsec_" + base64): kept to sign, shown once at creation.
    secret: str = Field(max_length=100)
    # The event types sent here, e.g. ["order.fulfilled"]; null: every type, new ones too.
    event_types: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class DeliveryState(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class WebhookDelivery(SQLModel, table=True):
    """One event for one URL, retried with backoff until it succeeds or gives up."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        Index("ix_webhook_delivery_due", "state", "next_attempt_at"),
        Index("ix_webhook_delivery_order", "order_id"),
        Index("ix_webhook_delivery_account_mode_created", "account_id", "mode", "created_at"),
        # The last sequence queued to an endpoint, for each body's `previousSequence`.
        Index("ix_webhook_delivery_endpoint_sequence", "endpoint_id", "event_sequence"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    account_id: uuid.UUID = Field(foreign_key="account.id", ondelete="CASCADE")
    mode: Mode = Field(sa_type=enum_column_type(Mode))
    subaccount_id: uuid.UUID | None = Field(default=None)
    event_sequence: int = Field(sa_column=Column(BigInteger, nullable=False))
    event_type: str = Field(max_length=64)
    order_id: uuid.UUID | None = Field(default=None)
    endpoint_id: uuid.UUID | None = Field(
        default=None, foreign_key="webhook_endpoint.id", ondelete="CASCADE"
    )
    url: str = Field(max_length=2048)
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    state: DeliveryState = Field(
        default=DeliveryState.PENDING, sa_type=enum_column_type(DeliveryState)
    )
    attempt_count: int = 0
    next_attempt_at: datetime | None = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_status_code: int | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebhookAttempt(SQLModel, table=True):
    __tablename__ = "webhook_attempt"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    delivery_id: uuid.UUID = Field(
        foreign_key="webhook_delivery.id", ondelete="CASCADE", index=True
    )
    attempted_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=500)
    duration_ms: int = 0
