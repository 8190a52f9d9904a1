"""report snapshots: ``report_snapshots``, each day's report columns built once, and
``report_changes``, the days changed since, written by triggers on every change the reports
read (a lead's row, an escalation, a callback task, a stage stay); every day with leads starts
out changed, so the first sweep builds its snapshot

Revision ID: 0014
Revises: 0013
"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LEAD_COLUMNS = ("created_at", "channel", "status", "assignee_id", "pipeline", "stage", "source", "last_source",
                "handled_at", "score_class", "score_probability", "score_value")  # what the reports read
# (table, when a row counts, the columns whose update counts)
CHILDREN = (("lead_history", "{row}.action = 'escalated'", ("action", "lead_id")),
            ("tasks", "{row}.kind = 'callback'", ("kind", "status", "assignee_id", "lead_id")),
            ("stage_visits", "1 = 1", ("pipeline", "stage", "seconds", "lead_id")))


def upgrade() -> None:
    op.create_table(
        "report_changes",
        sa.Column("id", Id, primary_key=True),
        sa.Column("day", sa.String(10), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_report_changes_day", "report_changes", ["day", "id"])
    op.create_table(
        "report_snapshots",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("name", sa.String(48), primary_key=True),
        sa.Column("format", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("dictionary", sa.JSON(), nullable=True),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_report_snapshots_built_at", "report_snapshots", ["built_at"])
    if op.get_bind().dialect.name == "sqlite":
        sqlite_upgrade()
    else:
        postgresql_upgrade()


# -- SQLite: created_at is stored as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC ------------------------

def sqlite_day_of_lead(lead_id: str) -> str:
    return f"INSERT INTO report_changes (day) SELECT substr(created_at, 1, 10) FROM leads WHERE id = {lead_id}"


def sqlite_upgrade() -> None:
    op.execute("CREATE TRIGGER report_changes_lead_insert AFTER INSERT ON leads BEGIN "
               "INSERT INTO report_changes (day) VALUES (substr(NEW.created_at, 1, 10)); END")
    op.execute(f"CREATE TRIGGER report_changes_lead_update AFTER UPDATE OF {', '.join(LEAD_COLUMNS)} ON leads BEGIN "
               "INSERT INTO report_changes (day) VALUES (substr(NEW.created_at, 1, 10)); "
               "INSERT INTO report_changes (day) SELECT substr(OLD.created_at, 1, 10) "
               "WHERE substr(OLD.created_at, 1, 10) <> substr(NEW.created_at, 1, 10); END")
    op.execute("CREATE TRIGGER report_changes_lead_delete AFTER DELETE ON leads BEGIN "
               "INSERT INTO report_changes (day) VALUES (substr(OLD.created_at, 1, 10)); END")
    for table, counts, columns in CHILDREN:
        new, old = counts.format(row="NEW"), counts.format(row="OLD")
        op.execute(f"CREATE TRIGGER report_changes_{table}_insert AFTER INSERT ON {table} WHEN {new} BEGIN "
                   f"{sqlite_day_of_lead('NEW.lead_id')}; END")
        op.execute(f"CREATE TRIGGER report_changes_{table}_update AFTER UPDATE OF {', '.join(columns)} ON {table} "
                   f"WHEN {new} OR {old} BEGIN {sqlite_day_of_lead('NEW.lead_id')}; "
                   f"{sqlite_day_of_lead('OLD.lead_id')}; END")
        op.execute(f"CREATE TRIGGER report_changes_{table}_delete AFTER DELETE ON {table} WHEN {old} BEGIN "
                   f"{sqlite_day_of_lead('OLD.lead_id')}; END")
    op.execute("INSERT INTO report_changes (day) SELECT DISTINCT substr(created_at, 1, 10) FROM leads")


# -- PostgreSQL ------------------------------------------------------------------------------

DAY = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


def postgresql_upgrade() -> None:
    op.execute(f"""
        CREATE FUNCTION report_changes_lead() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'DELETE' THEN
                INSERT INTO report_changes (day) VALUES ({DAY.format("NEW.created_at")});
            END IF;
            IF TG_OP = 'DELETE' OR {DAY.format("OLD.created_at")} <> {DAY.format("NEW.created_at")} THEN
                INSERT INTO report_changes (day) VALUES ({DAY.format("OLD.created_at")});
            END IF;
            RETURN NULL;
        END
        $$""")
    op.execute(f"""
        CREATE TRIGGER report_changes_lead AFTER INSERT OR DELETE OR UPDATE OF {", ".join(LEAD_COLUMNS)} ON leads
            FOR EACH ROW EXECUTE FUNCTION report_changes_lead()""")
    op.execute(f"""
        CREATE FUNCTION report_changes_child() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                INSERT INTO report_changes (day) SELECT {DAY.format("created_at")} FROM leads WHERE id = OLD.lead_id;
            END IF;
            IF TG_OP <> 'DELETE' THEN
                INSERT INTO report_changes (day) SELECT {DAY.format("created_at")} FROM leads WHERE id = NEW.lead_id;
            END IF;
            RETURN NULL;
        END
        $$""")
    for table, counts, columns in CHILDREN:
        new, old = counts.format(row="NEW"), counts.format(row="OLD")
        for event, when in (("INSERT", new), (f"UPDATE OF {', '.join(columns)}", f"{new} OR {old}"),
                            ("DELETE", old)):
            name = f"report_changes_{table}_{event.split()[0].lower()}"
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW WHEN ({when}) "
                       "EXECUTE FUNCTION report_changes_child()")
    op.execute(f"INSERT INTO report_changes (day) SELECT DISTINCT {DAY.format('created_at')} FROM leads")


def downgrade() -> None:
    events = ("insert", "update", "delete")
    if op.get_bind().dialect.name == "sqlite":
        for name in (*(f"lead_{event}" for event in events),
                     *(f"{table}_{event}" for table, _, _ in CHILDREN for event in events)):
            op.execute(f"DROP TRIGGER report_changes_{name}")
    else:
        op.execute("DROP TRIGGER report_changes_lead ON leads")
        for table, _, _ in CHILDREN:
            for event in events:
                op.execute(f"DROP TRIGGER report_changes_{table}_{event} ON {table}")
        op.execute("DROP FUNCTION report_changes_lead()")
        op.execute("DROP FUNCTION report_changes_child()")
    op.drop_index("ix_report_snapshots_built_at", table_name="report_snapshots")
    op.drop_table("report_snapshots")
    op.drop_index("ix_report_changes_day", table_name="report_changes")
    op.drop_table("report_changes")
