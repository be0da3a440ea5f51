"""data versions: one counter per scope, advanced by every commit that writes in it

The response cache keys every cached read on the versions of the scopes it depends on
(app/data_versions.py). The `epoch` row is a random number, so that a database created anew
never repeats an older one's versions (a shared Redis cache may still hold those).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 05:00:00
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    data_version = op.create_table(
        "data_version",
        sa.Column("scope", sa.String(length=80), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_data_version")),
    )
    op.bulk_insert(data_version, [{"scope": "epoch", "version": secrets.randbits(62)}])


def downgrade() -> None:
    op.drop_table("data_version")
