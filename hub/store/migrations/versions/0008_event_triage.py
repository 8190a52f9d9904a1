"""raw event triage (who made a lead of an ignored event, or called it spam)

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('raw_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('triaged_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('triaged_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('raw_events', schema=None) as batch_op:
        batch_op.drop_column('triaged_at')
        batch_op.drop_column('triaged_by')
