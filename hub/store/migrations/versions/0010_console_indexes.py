"""indexes for the console at a million leads: lists by assignee, status and last change
(replacing the single-column ones they start with); my tasks; a day's touches; a CRM
target's last sync

Revision ID: 0010
Revises: 0009
"""
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_leads_assignee_id_id", "leads", ["assignee_id", "id"]),
    ("ix_leads_status_id", "leads", ["status", "id"]),
    ("ix_leads_updated_at_id", "leads", ["updated_at", "id"]),
    ("ix_tasks_assignee_status_due", "tasks", ["assignee_id", "status", "due_at"]),
    ("ix_touches_at", "touches", ["at"]),
    ("ix_sync_deliveries_target_synced", "sync_deliveries", ["target", "synced_at"]),
)


REPLACED = (("ix_leads_assignee_id", ["assignee_id"]), ("ix_leads_status", ["status"]))


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)
    for name, _ in REPLACED:
        op.drop_index(name, table_name="leads")


def downgrade() -> None:
    for name, columns in REPLACED:
        op.create_index(name, "leads", columns, unique=False)
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
