"""The outbox: one row per state change, written in the transaction that makes the change."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer
from sqlmodel import Field, SQLModel

from app.accounts.models import Mode
from app.db import UTCDateTime, enum_column_type, utcnow


class Event(SQLModel, table=True):
    """`sequence` orders events for replay (`afterSequence`); `published_at` is set by the relay
    once the broker has it."""

    __table_args__ = (
        Index("ix_event_order_sequence", "order_id", "sequence"),
        Index("ix_event_account_mode_sequence", "account_id", "mode", "sequence"),
        Index("ix_event_unpublished", "published_at", "sequence"),
    )

    sequence: int | None = Field(
        default=None,
        # SQLite autoincrements only an INTEGER PRIMARY KEY (the rowid); PostgreSQL gets BIGINT.
        sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    )
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
