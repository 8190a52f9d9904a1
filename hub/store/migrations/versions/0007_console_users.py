"""console users (password hashes, one-time invitations)

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'console_users',
        sa.Column('member_id', sa.String(length=64), nullable=False),
        sa.Column('password_hash', sa.String(length=256), nullable=True),
        sa.Column('invite_hash', sa.String(length=64), nullable=True),
        sa.Column('invite_expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('member_id'),
        sa.UniqueConstraint('invite_hash'),
    )


def downgrade() -> None:
    op.drop_table('console_users')
