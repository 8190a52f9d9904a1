"""CRM read-back: what a push sent, the last read-back, sync rows found by the CRM's id

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sync_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pushed', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('readback', sa.JSON(), nullable=True))
        batch_op.create_index('ix_sync_deliveries_target_external', ['target', 'external_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sync_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_sync_deliveries_target_external')
        batch_op.drop_column('readback')
        batch_op.drop_column('pushed')
