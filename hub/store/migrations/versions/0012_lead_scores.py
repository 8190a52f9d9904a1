"""lead scores: class, probability, value, explanation and override on leads; the trained
models of the learned probability

Revision ID: 0012
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('score_class', sa.String(length=1), nullable=True))
        batch_op.add_column(sa.Column('score_probability', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('score_value', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('score_details', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('score_override', sa.String(length=1), nullable=True))
    op.create_index('ix_leads_score_class_id', 'leads', ['score_class', 'id'], unique=False)
    op.create_table(
        'score_models',
        sa.Column('id', Id, nullable=False),
        sa.Column('token', sa.String(length=32), nullable=False),
        sa.Column('trained_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('fields', sa.JSON(), nullable=False),
        sa.Column('closed', sa.Integer(), nullable=False),
        sa.Column('won', sa.Integer(), nullable=False),
        sa.Column('tables', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade() -> None:
    op.drop_table('score_models')
    op.drop_index('ix_leads_score_class_id', table_name='leads')
    with op.batch_alter_table('leads', schema=None) as batch_op:
        for column in ('score_override', 'score_details', 'score_value', 'score_probability', 'score_class'):
            batch_op.drop_column(column)
