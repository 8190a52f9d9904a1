"""pipeline stages: a lead's pipeline, stage, when it entered it and its deadline; one row per
stay at a stage, which the funnel report aggregates

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LEAD_COLUMNS = (("pipeline", sa.String(64)), ("stage", sa.String(64)),
                ("stage_entered_at", sa.DateTime(timezone=True)), ("stage_due_at", sa.DateTime(timezone=True)))


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        for name, kind in LEAD_COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))
    op.create_index("ix_leads_stage_id", "leads", ["stage", "id"], unique=False)
    op.create_table(
        "stage_visits",
        sa.Column("id", Id, primary_key=True),
        sa.Column("lead_id", Id, sa.ForeignKey("leads.id"), nullable=False),
        sa.Column("pipeline", sa.String(64), nullable=False),
        sa.Column("stage", sa.String(64), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seconds", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(64), nullable=True),
    )
    op.create_index("ix_stage_visits_lead_id", "stage_visits", ["lead_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_stage_visits_lead_id", table_name="stage_visits")
    op.drop_table("stage_visits")
    op.drop_index("ix_leads_stage_id", table_name="leads")
    with op.batch_alter_table("leads") as batch:
        for name, _ in reversed(LEAD_COLUMNS):
            batch.drop_column(name)
