"""Tables of the emissions domain: stored estimates, the product catalog and customer orders."""

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from app.accounts.models import Mode
from app.db import UTCDateTime, enum_column_type, utcnow


class EstimateKind(StrEnum):
    GROUND_TRANSPORT = "GROUND_TRANSPORT"
    FLIGHT = "FLIGHT"
    FREIGHT = "FREIGHT"
    ELECTRICITY = "ELECTRICITY"
    CUSTOMER_ORDER = "CUSTOMER_ORDER"


class Estimate(SQLModel, table=True):
    """One calculation, kept with its inputs and the factors it used, so it can be audited and
    offset once (see offsets: an order references at most one estimate)."""

    __table_args__ = (
        Index("ix_estimate_account_mode_created", "account_id", "mode", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    account_id: uuid.UUID = Field(foreign_key="account.id", ondelete="CASCADE")
    mode: Mode = Field(sa_type=enum_column_type(Mode))
    subaccount_id: uuid.UUID | None = Field(
        default=None, foreign_key="subaccount.id", ondelete="CASCADE"
    )
    kind: EstimateKind = Field(sa_type=enum_column_type(EstimateKind))
    # Exact milligrams of CO2e: per-item figures such as 0.01815 kg must survive storage; the
    # offset of an estimate is this rounded *up* to whole grams.
    total_emission_mg: int = Field(sa_column=Column(BigInteger, nullable=False))
    inputs: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    # [{factor_id, quantity, unit, kgco2e}, ...] as returned by the calculators, as strings.
    factors: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Product(SQLModel, table=True):
    """A device in the account's catalog, with what the customer-order method needs.

    Masses are whole grams, the shipping distance whole metres, power milliwatts and daily use
    seconds: exact integers on both backends (SQLite has no exact decimal type).
    """

    __table_args__ = (
        UniqueConstraint("account_id", "mode", "product_id"),
        Index("ix_product_account_mode_created", "account_id", "mode", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    account_id: uuid.UUID = Field(foreign_key="account.id", ondelete="CASCADE")
    mode: Mode = Field(sa_type=enum_column_type(Mode))
    product_id: str = Field(max_length=200)  # the account's own id for the product
    name: str = Field(max_length=200)
    lifetime_embodied_grams: int = Field(sa_column=Column(BigInteger, nullable=False))
    lifetime_months: int
    weight_grams: int = Field(sa_column=Column(BigInteger, nullable=False))
    packaging_factor_id: str = Field(max_length=64)
    packaging_grams: int = Field(sa_column=Column(BigInteger, nullable=False))
    shipping_mode: str = Field(max_length=16)
    shipping_distance_metres: int = Field(sa_column=Column(BigInteger, nullable=False))
    power_milliwatts: int = Field(sa_column=Column(BigInteger, nullable=False))
    daily_use_seconds: int
    grid_country: str = Field(max_length=2)  # ISO 3166-1 alpha-2
    source: str = Field(default="", max_length=1000)  # where the figures come from
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CustomerOrderStatus(StrEnum):
    CREATED = "CREATED"


class CustomerOrder(SQLModel, table=True):
    """A customer's rental order of devices with its per-item emissions; an estimate too.

    `(customer_id, order_id)` is unique per account, mode and subaccount: two partial indexes,
    because NULL subaccounts never collide in a plain unique constraint. `input_hash` tells a
    replay (same items) from a conflict (other items).
    """

    __tablename__ = "customer_order"
    __table_args__ = (
        Index(
            "uq_customer_order_account_reference",
            "account_id",
            "mode",
            "customer_id",
            "order_id",
            unique=True,
            sqlite_where=text("subaccount_id IS NULL"),
            postgresql_where=text("subaccount_id IS NULL"),
        ),
        Index(
            "uq_customer_order_subaccount_reference",
            "account_id",
            "mode",
            "subaccount_id",
            "customer_id",
            "order_id",
            unique=True,
            sqlite_where=text("subaccount_id IS NOT NULL"),
            postgresql_where=text("subaccount_id IS NOT NULL"),
        ),
        Index("ix_customer_order_account_mode_created", "account_id", "mode", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    account_id: uuid.UUID = Field(foreign_key="account.id", ondelete="CASCADE")
    mode: Mode = Field(sa_type=enum_column_type(Mode))
    subaccount_id: uuid.UUID | None = Field(
        default=None, foreign_key="subaccount.id", ondelete="CASCADE"
    )
    customer_id: str = Field(max_length=200)
    order_id: str = Field(max_length=200)
    order_date: date
    tenure_start_date: date
    status: CustomerOrderStatus = Field(
        default=CustomerOrderStatus.CREATED, sa_type=enum_column_type(CustomerOrderStatus)
    )
    estimate_id: uuid.UUID = Field(foreign_key="estimate.id", ondelete="CASCADE", unique=True)
    item_count: int
    total_emission_mg: int = Field(sa_column=Column(BigInteger, nullable=False))
    input_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CustomerOrderItem(SQLModel, table=True):
    """One device of a customer order and its four emission parts, in exact milligrams.

    Written in bulk (one executemany per order), so it carries its own scope columns and every
    read filters on them like any other row.
    """

    __tablename__ = "customer_order_item"
    __table_args__ = (
        Index("ix_customer_order_item_order_position", "customer_order_id", "position"),
        Index("ix_customer_order_item_account_mode_serial", "account_id", "mode", "serial_number"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    customer_order_id: uuid.UUID = Field(foreign_key="customer_order.id", ondelete="CASCADE")
    account_id: uuid.UUID = Field(foreign_key="account.id", ondelete="CASCADE")
    mode: Mode = Field(sa_type=enum_column_type(Mode))
    subaccount_id: uuid.UUID | None = Field(
        default=None, foreign_key="subaccount.id", ondelete="CASCADE"
    )
    position: int
    product_id: str = Field(max_length=200)  # the catalog's external id, as ordered
    serial_number: str = Field(max_length=200)
    tenure_months: int
    weight_grams: int = Field(sa_column=Column(BigInteger, nullable=False))  # as shipped
    embodied_mg: int = Field(sa_column=Column(BigInteger, nullable=False))
    packaging_mg: int = Field(sa_column=Column(BigInteger, nullable=False))
    transportation_mg: int = Field(sa_column=Column(BigInteger, nullable=False))
    use_mg: int = Field(sa_column=Column(BigInteger, nullable=False))
    total_emission_mg: int = Field(sa_column=Column(BigInteger, nullable=False))
    embodied_description: str = Field(sa_column=Column(Text, nullable=False))
    packaging_description: str = Field(sa_column=Column(Text, nullable=False))
    transportation_description: str = Field(sa_column=Column(Text, nullable=False))
    use_description: str = Field(sa_column=Column(Text, nullable=False))
