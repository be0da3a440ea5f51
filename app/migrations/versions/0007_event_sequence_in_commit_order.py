"""event sequence assigned by the relay in commit order

The old `event.sequence` was the row's autoincrement key, handed out when the row was written,
so sequences could commit out of order. It becomes `position` (the write order, internal), and
a new unique, nullable `sequence` is set by the relay when it publishes the row. Events already
published keep the sequence clients saw.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 22:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index('ix_event_account_mode_sequence')
        batch_op.drop_index('ix_event_order_sequence')
        batch_op.drop_index('ix_event_unpublished')
        batch_op.alter_column('sequence', new_column_name='position')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER SEQUENCE IF EXISTS event_sequence_seq RENAME TO event_position_seq')
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sequence', sa.BigInteger(), nullable=True))
    op.execute('UPDATE event SET sequence = position WHERE published_at IS NOT NULL')
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f('uq_event_sequence'), ['sequence'])
        batch_op.create_index('ix_event_account_mode_sequence', ['account_id', 'mode', 'sequence'], unique=False)
        batch_op.create_index('ix_event_order_position', ['order_id', 'position'], unique=False)
        batch_op.create_index('ix_event_unpublished', ['published_at', 'position'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index('ix_event_unpublished')
        batch_op.drop_index('ix_event_order_position')
        batch_op.drop_index('ix_event_account_mode_sequence')
        batch_op.drop_constraint(batch_op.f('uq_event_sequence'), type_='unique')
        batch_op.drop_column('sequence')
        batch_op.alter_column('position', new_column_name='sequence')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER SEQUENCE IF EXISTS event_position_seq RENAME TO event_sequence_seq')
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.create_index('ix_event_account_mode_sequence', ['account_id', 'mode', 'sequence'], unique=False)
        batch_op.create_index('ix_event_order_sequence', ['order_id', 'sequence'], unique=False)
        batch_op.create_index('ix_event_unpublished', ['published_at', 'sequence'], unique=False)
