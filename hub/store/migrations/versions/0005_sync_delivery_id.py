"""sync delivery id (a random id per push, kept by its retries)

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sync_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delivery_id', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sync_deliveries', schema=None) as batch_op:
        batch_op.drop_column('delivery_id')
