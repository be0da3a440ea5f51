"""Tables of offsetting: orders, their priced lines, and allocations of credits to them."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from app.accounts.models import Mode
from app.db import UTCDateTime, enum_column_type, utcnow


class OrderState(StrEnum):
    PLACED = "PLACED"
    FULFILLED = "FULFILLED"
    CANCELLED = "CANCELLED"


class OffsetOrder(SQLModel, table=True):
    __tablename__ = "offset_order"
    __table_args__ = (
        # Duplicates are impossible, not merely checked for: see offsets.service.create_order.
        UniqueConstraint("account_id", "mode", "idempotency_key"),
        # At most one live order per estimate; a cancelled one frees the estimate.
        Index(
            "uq_offset_order_estimate",
            "estimate_id",
            unique=True,
            sqlite_where=text("state != 'CANCELLED'"),
            postgresql_where=text("state != 'CANCELLED'"),
        ),
        Index("ix_offset_order_account_mode_created", "account_id", "mode", "created_at"),
        # The fulfilment queue: placed orders not parked for lack of stock, oldest first.
        Index("ix_offset_order_queue", "state", "awaiting_inventory", "created_at"),
        CheckConstraint("mass_grams > 0", name="mass_positive"),
        CheckConstraint("price_minor >= 0", name="price_not_negative"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    account_id: uuid.UUID = Field(foreign_key="account.id", ondelete="CASCADE")
    mode: Mode = Field(sa_type=enum_column_type(Mode))
    subaccount_id: uuid.UUID | None = Field(
        default=None, foreign_key="subaccount.id", ondelete="CASCADE"
    )
    state: OrderState = Field(default=OrderState.PLACED, sa_type=enum_column_type(OrderState))
    portfolio_id: uuid.UUID = Field(foreign_key="portfolio.id")
    estimate_id: uuid.UUID | None = Field(default=None, foreign_key="estimate.id")
    mass_grams: int = Field(sa_column=Column(BigInteger, nullable=False))
    price_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3)
    description: str | None = Field(default=None, max_length=512)
    # Never shown publicly (not on certificates).
    metadata_: dict[str, Any] | None = Field(
        default=None, sa_column=Column("metadata", JSON, nullable=True)
    )
    callback_url: str | None = Field(default=None, max_length=2048)
    idempotency_key: str | None = Field(default=None, max_length=255)
    # SHA-256 of the normalised create input: same key + same hash replays, else conflicts.
    request_hash: str = Field(max_length=64)
    awaiting_inventory: bool = False
    certificate_id: str | None = Field(default=None, max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    fulfilled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class OrderLine(SQLModel, table=True):
    """The part of an order drawn from one bundle, with its price fixed when ordered."""

    __tablename__ = "order_line"
    __table_args__ = (UniqueConstraint("order_id", "bundle_id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    order_id: uuid.UUID = Field(foreign_key="offset_order.id", ondelete="CASCADE", index=True)
    bundle_id: uuid.UUID = Field(foreign_key="bundle.id")
    position: int
    weight_bp: int
    mass_grams: int = Field(sa_column=Column(BigInteger, nullable=False))
    unit_price_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    cost_minor: int = Field(sa_column=Column(BigInteger, nullable=False))


class Allocation(SQLModel, table=True):
    """Credits of one batch retired for one order line; serials are offsets in the batch's
    gram-denominated serial space, `serial_start`..`serial_end` inclusive."""

    __table_args__ = (CheckConstraint("mass_grams > 0", name="mass_positive"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    account_id: uuid.UUID = Field(foreign_key="account.id", ondelete="CASCADE")
    mode: Mode = Field(sa_type=enum_column_type(Mode))
    order_id: uuid.UUID = Field(foreign_key="offset_order.id", ondelete="CASCADE", index=True)
    bundle_id: uuid.UUID = Field(foreign_key="bundle.id")
    project_id: uuid.UUID = Field(foreign_key="project.id")
    credit_batch_id: uuid.UUID = Field(foreign_key="credit_batch.id", index=True)
    mass_grams: int = Field(sa_column=Column(BigInteger, nullable=False))
    serial_start: int = Field(sa_column=Column(BigInteger, nullable=False))
    serial_end: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
