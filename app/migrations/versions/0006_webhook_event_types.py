"""webhook endpoints choose event types; deliveries indexed by endpoint and sequence

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 21:56:46.900745
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_delivery_endpoint_sequence', ['endpoint_id', 'event_sequence'], unique=False)

    with op.batch_alter_table('webhook_endpoint', schema=None) as batch_op:
        batch_op.add_column(sa.Column('event_types', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('webhook_endpoint', schema=None) as batch_op:
        batch_op.drop_column('event_types')

    with op.batch_alter_table('webhook_delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_delivery_endpoint_sequence')
