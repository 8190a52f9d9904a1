"""report facts: ``lead_facts``, one narrow row per lead with what the reports group and filter
by as plain columns, kept in step with ``leads`` by triggers on every insert, update and delete
(SQLite triggers, a PostgreSQL plpgsql trigger) and filled here for the leads already stored;
``stage_visits.lead_created_at``, the lead's creation time copied by a trigger, so the funnel
scans the period's stays by index; indexes for escalations and callbacks by lead

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "form", "mailbox", "called_number")
CAMPAIGN_KEYS = ("utm_source", "utm_medium", "utm_campaign", "gclid", "yclid")
COPIED = ("created_at", "channel", "status", "assignee_id", "pipeline", "stage")
WATCHED = (*COPIED, "source", "last_source", "handled_at")  # an update of any other column leaves the facts
INDEXES = (
    ("ix_lead_facts_created_at", "lead_facts", ["created_at"]),
    ("ix_stage_visits_lead_created_at", "stage_visits",
     ["lead_created_at", "pipeline", "stage", "lead_id", "seconds"]),
    ("ix_lead_history_action_lead_id", "lead_history", ["action", "lead_id"]),
    ("ix_tasks_kind_status_lead_id", "tasks", ["kind", "status", "lead_id"]),
)


def fact_columns() -> list[str]:
    touches = [f"{touch}_{key}" for touch in ("first", "last") for key in KEYS]
    return ["lead_id", *COPIED, "response_seconds", *touches, "first_click", "last_click", "last_direct"]


def upgrade() -> None:
    op.create_table(
        "lead_facts",
        sa.Column("lead_id", Id, primary_key=True, autoincrement=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignee_id", sa.String(64), nullable=True),
        sa.Column("pipeline", sa.String(64), nullable=True),
        sa.Column("stage", sa.String(64), nullable=True),
        sa.Column("response_seconds", sa.Float(), nullable=True),
        *(sa.Column(f"{touch}_{key}", sa.Text(), nullable=True) for touch in ("first", "last") for key in KEYS),
        sa.Column("first_click", sa.Boolean(), nullable=False),
        sa.Column("last_click", sa.Boolean(), nullable=False),
        sa.Column("last_direct", sa.Boolean(), nullable=False),
    )
    op.add_column("stage_visits", sa.Column("lead_created_at", sa.DateTime(timezone=True), nullable=True))
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)
    if op.get_bind().dialect.name == "sqlite":
        sqlite_upgrade()
    else:
        postgresql_upgrade()


# -- SQLite ----------------------------------------------------------------------------------

def sqlite_last(row: str) -> str:
    """A last touch counts when it is a non-empty object; otherwise the first stands in."""
    return (f"CASE WHEN json_valid({row}.last_source) AND json_type({row}.last_source) = 'object'"
            f" AND EXISTS (SELECT 1 FROM json_each({row}.last_source)) THEN {row}.last_source"
            f" ELSE {row}.source END")


def sqlite_values(row: str, first: str, last: str) -> str:
    """The facts of ``row`` (``NEW`` in a trigger, ``leads`` when filling) as a SELECT list,
    given SQL for its first and last touch."""
    def text(touch, key):
        return f"json_extract({touch}, '$.{key}')"

    def tagged(touch, keys):
        return "(" + " OR ".join(f"coalesce({text(touch, key)}, '') <> ''" for key in keys) + ")"

    micros = (f"((strftime('%s', {row}.handled_at) - strftime('%s', {row}.created_at)) * 1000000"
              f" + CAST(substr({row}.handled_at, 21, 6) AS INTEGER) - CAST(substr({row}.created_at, 21, 6) AS INTEGER))")
    return ", ".join([
        f"{row}.id", *(f"{row}.{name}" for name in COPIED),
        f"CASE WHEN {row}.handled_at IS NULL THEN NULL ELSE {micros} / 1000000.0 END",
        *(text(first, key) for key in KEYS), *(text(last, key) for key in KEYS),
        tagged(first, ("gclid", "yclid")), tagged(last, ("gclid", "yclid")), f"NOT {tagged(last, CAMPAIGN_KEYS)}"])


def sqlite_fill(row: str) -> str:
    """In a trigger the last touch is worked out once, in a subquery over ``NEW``; filling the
    table from ``leads`` repeats it per column (a subquery in FROM cannot see ``leads``)."""
    insert = f"INSERT OR REPLACE INTO lead_facts ({', '.join(fact_columns())}) SELECT "
    if row == "NEW":
        return (insert + sqlite_values("NEW", "touch.f", "touch.l")
                + f" FROM (SELECT NEW.source AS f, {sqlite_last('NEW')} AS l) AS touch")
    return insert + sqlite_values("leads", "leads.source", f"({sqlite_last('leads')})") + " FROM leads"


def sqlite_upgrade() -> None:
    fill = sqlite_fill("NEW")
    watched = ", ".join(WATCHED)
    op.execute(f"CREATE TRIGGER lead_facts_insert AFTER INSERT ON leads BEGIN {fill}; END")
    op.execute(f"CREATE TRIGGER lead_facts_update AFTER UPDATE OF {watched} ON leads BEGIN {fill}; END")
    op.execute("CREATE TRIGGER lead_facts_delete AFTER DELETE ON leads BEGIN "
               "DELETE FROM lead_facts WHERE lead_id = OLD.id; END")
    op.execute("CREATE TRIGGER stage_visits_lead_created_at AFTER INSERT ON stage_visits BEGIN "
               "UPDATE stage_visits SET lead_created_at = (SELECT created_at FROM leads WHERE id = NEW.lead_id) "
               "WHERE id = NEW.id; END")
    op.execute("CREATE TRIGGER stage_visits_lead_created_at_moved AFTER UPDATE OF created_at ON leads BEGIN "
               "UPDATE stage_visits SET lead_created_at = NEW.created_at WHERE lead_id = NEW.id; END")
    op.execute(sqlite_fill("leads"))
    op.execute("UPDATE stage_visits SET lead_created_at = (SELECT created_at FROM leads "
               "WHERE leads.id = stage_visits.lead_id)")


# -- PostgreSQL ------------------------------------------------------------------------------

def postgresql_values(row: str, last: str) -> str:
    def text(touch, key):
        return f"({touch}->>'{key}')"

    def tagged(touch, keys):
        return "(" + " OR ".join(f"coalesce({text(touch, key)}, '') <> ''" for key in keys) + ")"

    first = f"{row}.source"
    return ", ".join([
        f"{row}.id", *(f"{row}.{name}" for name in COPIED),
        f"EXTRACT(EPOCH FROM {row}.handled_at - {row}.created_at)::double precision",
        *(text(first, key) for key in KEYS), *(text(last, key) for key in KEYS),
        tagged(first, ("gclid", "yclid")), tagged(last, ("gclid", "yclid")), f"NOT {tagged(last, CAMPAIGN_KEYS)}"])


def postgresql_upgrade() -> None:
    columns = ", ".join(fact_columns())
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in fact_columns()[1:])
    op.execute("""
        CREATE FUNCTION lead_facts_has_keys(touch json) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
            SELECT CASE WHEN json_typeof(touch) = 'object'
                        THEN EXISTS (SELECT 1 FROM json_object_keys(touch)) ELSE false END
        $$""")
    op.execute(f"""
        CREATE FUNCTION lead_facts_sync() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            last json;
        BEGIN
            IF TG_OP = 'DELETE' THEN
                DELETE FROM lead_facts WHERE lead_id = OLD.id;
                RETURN OLD;
            END IF;
            last := CASE WHEN lead_facts_has_keys(NEW.last_source) THEN NEW.last_source ELSE NEW.source END;
            INSERT INTO lead_facts ({columns}) VALUES ({postgresql_values("NEW", "last")})
                ON CONFLICT (lead_id) DO UPDATE SET {updates};
            IF TG_OP = 'UPDATE' AND NEW.created_at IS DISTINCT FROM OLD.created_at THEN
                UPDATE stage_visits SET lead_created_at = NEW.created_at WHERE lead_id = NEW.id;
            END IF;
            RETURN NEW;
        END
        $$""")
    op.execute(f"""
        CREATE TRIGGER lead_facts_sync AFTER INSERT OR DELETE OR UPDATE OF {", ".join(WATCHED)} ON leads
            FOR EACH ROW EXECUTE FUNCTION lead_facts_sync()""")
    op.execute("""
        CREATE FUNCTION stage_visits_lead_created_at() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.lead_created_at := (SELECT created_at FROM leads WHERE id = NEW.lead_id);
            RETURN NEW;
        END
        $$""")
    op.execute("""
        CREATE TRIGGER stage_visits_lead_created_at BEFORE INSERT ON stage_visits
            FOR EACH ROW EXECUTE FUNCTION stage_visits_lead_created_at()""")
    last = "CASE WHEN lead_facts_has_keys(leads.last_source) THEN leads.last_source ELSE leads.source END"
    op.execute(f"INSERT INTO lead_facts ({columns}) SELECT {postgresql_values('leads', 'touch.l')} "
               f"FROM leads CROSS JOIN LATERAL (SELECT {last} AS l) AS touch")
    op.execute("UPDATE stage_visits SET lead_created_at = leads.created_at FROM leads "
               "WHERE leads.id = stage_visits.lead_id")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("lead_facts_insert", "lead_facts_update", "lead_facts_delete", "stage_visits_lead_created_at",
                     "stage_visits_lead_created_at_moved"):
            op.execute(f"DROP TRIGGER {name}")
    else:
        op.execute("DROP TRIGGER stage_visits_lead_created_at ON stage_visits")
        op.execute("DROP TRIGGER lead_facts_sync ON leads")
        op.execute("DROP FUNCTION stage_visits_lead_created_at()")
        op.execute("DROP FUNCTION lead_facts_sync()")
        op.execute("DROP FUNCTION lead_facts_has_keys(json)")
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    with op.batch_alter_table("stage_visits") as batch:
        batch.drop_column("lead_created_at")
    op.drop_table("lead_facts")
