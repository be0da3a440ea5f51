"""Tables of the accounts domain: accounts, subaccounts and API keys."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, enum_column_type, utcnow


class Mode(StrEnum):
    """Test data and live data never mix: a key of one mode sees only rows of that mode."""

    TEST = "TEST"
    LIVE = "LIVE"


class AccountStatus(StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"


class Account(SQLModel, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=200)
    slug: str = Field(max_length=64, unique=True)
    status: AccountStatus = Field(
        default=AccountStatus.ACTIVE, sa_type=enum_column_type(AccountStatus)
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Subaccount(SQLModel, table=True):
    """A customer of the account (e.g. a platform's client) whose data is kept apart."""

    __table_args__ = (
        Index("ix_subaccount_account_mode_created", "account_id", "mode", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    account_id: uuid.UUID = Field(foreign_key="account.id", ondelete="CASCADE")
    mode: Mode = Field(sa_type=enum_column_type(Mode))
    name: str = Field(max_length=200)
    external_ref: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ApiKey(SQLModel, table=True):
    """A secret key; only its SHA-256 is stored, the plain key is shown once at creation."""

    __tablename__ = "api_key"
    __table_args__ = (Index("ix_api_key_account_mode_created", "account_id", "mode", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    account_id: uuid.UUID = Field(foreign_key="account.id", ondelete="CASCADE")
    mode: Mode = Field(sa_type=enum_column_type(Mode))
    name: str = Field(max_length=200)
    # The first characters of the key (e.g. "cg_test_AbCd"), enough to recognise it in a list.
    display_prefix: str = Field(max_length=16)
    key_hash: str = Field(max_length=64, unique=True)
    is_admin: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
