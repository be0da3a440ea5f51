"""Tables of the emissions domain: stored estimates (products and customer orders come later)."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index
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
