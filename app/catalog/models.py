"""Tables of the catalog: projects, credit batches, bundles and portfolios.

The catalog belongs to an account and a mode, like every row: an account sells its own
inventory to itself and its subaccounts, and test stock never mixes with live stock.
"""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from app.accounts.models import Mode
from app.db import UTCDateTime, enum_column_type, utcnow


class ProjectType(StrEnum):
    REFORESTATION = "REFORESTATION"
    AFFORESTATION = "AFFORESTATION"
    AVOIDED_DEFORESTATION = "AVOIDED_DEFORESTATION"
    DIRECT_AIR_CAPTURE = "DIRECT_AIR_CAPTURE"
    BIOCHAR = "BIOCHAR"
    ENHANCED_WEATHERING = "ENHANCED_WEATHERING"
    COOKSTOVES = "COOKSTOVES"
    RENEWABLE_ENERGY = "RENEWABLE_ENERGY"
    BLUE_CARBON = "BLUE_CARBON"
    LANDFILL_GAS = "LANDFILL_GAS"
    SOIL_CARBON = "SOIL_CARBON"


class Project(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("account_id", "mode", "registry_name", "registry_id"),
        Index("ix_project_account_mode_created", "account_id", "mode", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    account_id: uuid.UUID = Field(foreign_key="account.id", ondelete="CASCADE")
    mode: Mode = Field(sa_type=enum_column_type(Mode))
    name: str = Field(max_length=200)
    project_type: ProjectType = Field(sa_type=enum_column_type(ProjectType))
    registry_name: str = Field(max_length=100)
    registry_id: str = Field(max_length=100)
    country: str = Field(max_length=2)  # ISO 3166-1 alpha-2
    description: str = Field(default="", max_length=2000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CreditBatch(SQLModel, table=True):
    """A lot of one project's credits; `remaining_grams` only ever goes down, atomically."""

    __tablename__ = "credit_batch"
    __table_args__ = (
        CheckConstraint("remaining_grams >= 0", name="remaining_not_negative"),
        CheckConstraint("remaining_grams <= quantity_grams", name="remaining_within_quantity"),
        CheckConstraint("quantity_grams > 0", name="quantity_positive"),
        Index("ix_credit_batch_project_vintage", "project_id", "vintage"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    account_id: uuid.UUID = Field(foreign_key="account.id", ondelete="CASCADE")
    mode: Mode = Field(sa_type=enum_column_type(Mode))
    project_id: uuid.UUID = Field(foreign_key="project.id", ondelete="CASCADE")
    vintage: int
    serial_prefix: str = Field(max_length=100)
    quantity_grams: int = Field(sa_column=Column(BigInteger, nullable=False))
    remaining_grams: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Bundle(SQLModel, table=True):
    """Credits of a kind sold at one price per tonne, drawn from its projects' batches."""

    __table_args__ = (
        CheckConstraint("unit_price_minor > 0", name="price_positive"),
        Index("ix_bundle_account_mode_created", "account_id", "mode", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    account_id: uuid.UUID = Field(foreign_key="account.id", ondelete="CASCADE")
    mode: Mode = Field(sa_type=enum_column_type(Mode))
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=2000)
    # Price of one tonne in minor units of `currency` (e.g. cents).
    unit_price_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class BundleProject(SQLModel, table=True):
    __tablename__ = "bundle_project"

    bundle_id: uuid.UUID = Field(foreign_key="bundle.id", primary_key=True, ondelete="CASCADE")
    project_id: uuid.UUID = Field(foreign_key="project.id", primary_key=True, ondelete="CASCADE")


class Portfolio(SQLModel, table=True):
    __table_args__ = (
        # At most one default portfolio per account and mode.
        Index(
            "uq_portfolio_default",
            "account_id",
            "mode",
            unique=True,
            sqlite_where=text("is_default"),
            postgresql_where=text("is_default"),
        ),
        Index("ix_portfolio_account_mode_created", "account_id", "mode", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    account_id: uuid.UUID = Field(foreign_key="account.id", ondelete="CASCADE")
    mode: Mode = Field(sa_type=enum_column_type(Mode))
    name: str = Field(max_length=200)
    currency: str = Field(max_length=3)
    is_default: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PortfolioBundle(SQLModel, table=True):
    """A bundle's share of a portfolio, in basis points (a portfolio's shares sum to 10,000)."""

    __tablename__ = "portfolio_bundle"
    __table_args__ = (CheckConstraint("weight_bp > 0 AND weight_bp <= 10000", name="weight_range"),)

    portfolio_id: uuid.UUID = Field(
        foreign_key="portfolio.id", primary_key=True, ondelete="CASCADE"
    )
    bundle_id: uuid.UUID = Field(foreign_key="bundle.id", primary_key=True, ondelete="CASCADE")
    position: int = 0
    weight_bp: int
