"""source states (last event, silence alarm); notifications to the team need no lead

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'source_states',
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('last_event_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('watched_since', sa.DateTime(timezone=True), nullable=True),
        sa.Column('silent_since', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('key'),
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.alter_column('lead_id', existing_type=sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                              nullable=True)


def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.alter_column('lead_id', existing_type=sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                              nullable=False)
    op.drop_table('source_states')
