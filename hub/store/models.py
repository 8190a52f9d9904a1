"""The tables. The database is the source of truth; Redis only carries wake-up calls."""
from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from hub import clock
from hub.config import Role

Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only


def utcnow() -> datetime:
    return clock.now()


def new_event_id() -> str:
    return uuid.uuid4().hex


class DeliveryStatus(StrEnum):
    """The states of a row the hub delivers from (notifications, CRM pushes)."""

    PENDING = "pending"
    SENDING = "sending"      # a notification in flight
    SYNCING = "syncing"      # a CRM push in flight
    SENT = "sent"
    SYNCED = "synced"
    DELIVERED = "delivered"  # the SMS provider says so
    UNDELIVERED = "undelivered"  # the SMS provider says it failed (not retried: it may arrive late)
    FAILED = "failed"        # retried at next_attempt_at
    DEAD = "dead"            # given up; replayable
    UNKNOWN = "unknown"      # maybe taken by the provider: never resent blindly
    DELETED = "deleted"      # the lead was deleted in that CRM: never pushed to again


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in and out, on SQLite (which keeps no offset) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    # SQLite keeps text ('YYYY-MM-DD HH:MM:SS.ffffff', UTC). Converting there and back in one
    # step each, with the datetime type's own ISO formatting and parsing, instead of SQLAlchemy's
    # field-by-field formatting and regular expression after the conversion to UTC: a batch
    # stores and reads thousands of timestamps, and those two cost more than the rest of a row.
    def bind_processor(self, dialect):
        return sqlite_timestamp if dialect.name == "sqlite" else super().bind_processor(dialect)

    def result_processor(self, dialect, coltype):
        return sqlite_datetime if dialect.name == "sqlite" else super().result_processor(dialect, coltype)


def sqlite_timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    return utc_text(value)


@functools.lru_cache(maxsize=1024)
def utc_text(value: datetime) -> str:
    """Kept for the instants a batch writes many times (its "now" in every row it makes);
    equal instants in other zones are equal keys, and have the same text."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def sqlite_datetime(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime}


class RawEvent(Base):
    """One delivery exactly as it arrived, committed before the provider gets its 2xx."""

    __tablename__ = "raw_events"
    __table_args__ = (Index("ix_raw_events_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_event_id)
    channel: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(32))
    endpoint: Mapped[str | None] = mapped_column(String(64))
    delivery_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    fingerprint: Mapped[str | None] = mapped_column(String(64), index=True)
    method: Mapped[str] = mapped_column(String(8), default="POST")
    url: Mapped[str] = mapped_column(Text, default="")
    subpath: Mapped[str] = mapped_column(String(200), default="")
    query: Mapped[list] = mapped_column(JSON, default=list)
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    body: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"), index=True)
    processed_at: Mapped[datetime | None]
    retry_at: Mapped[datetime | None]
    override: Mapped[str | None] = mapped_column(String(16))  # "as-lead": an operator overrode an ignore; "spam"
    triaged_by: Mapped[str | None] = mapped_column(String(64))  # who made a lead of it, or called it spam
    triaged_at: Mapped[datetime | None]

    lead: Mapped[Lead | None] = relationship()


class TeamMember(Base):
    __tablename__ = "team_members"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default=Role.MANAGER)
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    away: Mapped[bool] = mapped_column(Boolean, default=False)
    weight: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ConsoleUser(Base):
    """A team member's console sign-in: a password hash, or a pending one-time invitation
    (only its hash is kept). The member's role and name come from the config."""

    __tablename__ = "console_users"

    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str | None] = mapped_column(String(256))
    invite_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    invite_expires_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Lead(Base):
    """``id`` is the lead number quoted to the client: one sequence for every channel."""

    __tablename__ = "leads"
    __table_args__ = (  # the console's list pages: newest first within an assignee or a status
        Index("ix_leads_assignee_id_id", "assignee_id", "id"),
        Index("ix_leads_status_id", "status", "id"),
        Index("ix_leads_updated_at_id", "updated_at", "id"),
        Index("ix_leads_score_class_id", "score_class", "id"),
        Index("ix_leads_stage_id", "stage", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="new")
    name: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(String(32), index=True)
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    message: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(8))
    source: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_source: Mapped[dict[str, Any]] = mapped_column(default=dict)
    assignee_id: Mapped[str | None] = mapped_column(ForeignKey("team_members.id"))
    assignment_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    routing_rule: Mapped[str | None] = mapped_column(String(100))  # whose SLA applies
    handled_at: Mapped[datetime | None]  # a manager's first action: stops the escalation chain
    status_changed_at: Mapped[datetime | None]
    # the score (hub.pipeline.score): null without a ``scoring:`` section
    score_class: Mapped[str | None] = mapped_column(String(1))  # A | B | C, the override included
    score_probability: Mapped[float | None] = mapped_column(Float)  # learned; null while history is thin
    score_value: Mapped[float | None] = mapped_column(Float)  # the expected amount
    score_details: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # why: points, factors, text
    score_override: Mapped[str | None] = mapped_column(String(1))  # the class a head or director set
    # the pipeline stage refining in_progress (hub.rules.stages): since when, and its deadline
    pipeline: Mapped[str | None] = mapped_column(String(64))
    stage: Mapped[str | None] = mapped_column(String(64))
    stage_entered_at: Mapped[datetime | None]
    stage_due_at: Mapped[datetime | None]

    assignee: Mapped[TeamMember | None] = relationship(lazy="joined")
    touches: Mapped[list[Touch]] = relationship(back_populates="lead", order_by="Touch.id")
    tasks: Mapped[list[Task]] = relationship(order_by="Task.id")
    notifications: Mapped[list[Notification]] = relationship(order_by="Notification.id")
    syncs: Mapped[list[SyncDelivery]] = relationship(order_by="SyncDelivery.id")
    history: Mapped[list[LeadHistory]] = relationship(order_by="LeadHistory.id")

    @property
    def number(self) -> int:
        return self.id


class Touch(Base):
    """One contact of a client with us. ``touch_key`` makes merging idempotent: one per form
    event, one per call (however many webhooks the call sends), one per e-mail."""

    __tablename__ = "touches"
    __table_args__ = (Index("ix_touches_at", "at"),)  # a day's calls per tracked number

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    touch_key: Mapped[str] = mapped_column(String(300), unique=True)
    event_id: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(8))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[dict[str, Any]] = mapped_column(default=dict)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)

    lead: Mapped[Lead] = relationship(back_populates="touches")


class Assignment(Base):
    __tablename__ = "assignments"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("team_members.id"))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class RouteCounter(Base):
    """Round-robin position per candidate pool, so the order survives restarts."""

    __tablename__ = "route_counters"

    pool: Mapped[str] = mapped_column(String(200), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_assignee_status_due", "assignee_id", "status", "due_at"),  # my tasks
        Index("ix_tasks_kind_status_lead_id", "kind", "status", "lead_id"),  # callbacks made, by lead
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(Text)
    due_at: Mapped[datetime | None]
    assignee_id: Mapped[str | None] = mapped_column(ForeignKey("team_members.id"))
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    outcome: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
    step: Mapped[int | None] = mapped_column(Integer)  # the rung of a callback ladder


class Timer(Base):
    """Something due at a time: a reminder, an escalation step, a callback. Fired at most once
    by ``hub scheduler``, in the same transaction as its effects."""

    __tablename__ = "timers"
    __table_args__ = (Index("ix_timers_status_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"), index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"))
    due_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending|fired|cancelled|failed
    fired_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LeadHistory(Base):
    """Everything that happened to a lead, in order: who did what and why."""

    __tablename__ = "lead_history"
    __table_args__ = (Index("ix_lead_history_action_lead_id", "action", "lead_id"),)  # escalations by lead

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))  # "hub", "api", a team member id
    action: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class StageVisit(Base):
    """One stay of a lead at a pipeline stage: entered, left (with the outcome that moved it:
    a named outcome, ``moved``, or the status that closed it) and how long it took. The lead's
    history tells the same story in words; this table is what the funnel aggregates."""

    __tablename__ = "stage_visits"
    __table_args__ = (
        Index("ix_stage_visits_lead_id", "lead_id", "id"),
        # the funnel's period scan reads only this index
        Index("ix_stage_visits_lead_created_at", "lead_created_at", "pipeline", "stage", "lead_id", "seconds"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"))
    pipeline: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(64))
    entered_at: Mapped[datetime]
    left_at: Mapped[datetime | None]
    seconds: Mapped[int | None] = mapped_column(BigInteger)  # left_at - entered_at
    outcome: Mapped[str | None] = mapped_column(String(64))
    lead_created_at: Mapped[datetime | None]  # the lead's, copied by a database trigger (migration 0013)


class LeadFact(Base):
    """What the reports group and filter by, one narrow row per lead, as plain columns: the
    lead's own fields, the seconds to its first response, and each attribution field of its
    first touch and of its last (the first standing in when it has none), whether either
    carries a click id, and whether the last is direct. Database triggers (migration 0013)
    write it on every insert, update and delete of a lead, whatever code made the change, so
    nothing here is written by the application. Scanning these rows instead of the wide
    ``leads`` rows with their JSON is what keeps a year of a million leads under a second."""

    __tablename__ = "lead_facts"
    __table_args__ = (Index("ix_lead_facts_created_at", "created_at"),)

    lead_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime]
    channel: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    assignee_id: Mapped[str | None] = mapped_column(String(64))
    pipeline: Mapped[str | None] = mapped_column(String(64))
    stage: Mapped[str | None] = mapped_column(String(64))
    response_seconds: Mapped[float | None] = mapped_column(Float)  # handled_at - created_at
    first_utm_source: Mapped[str | None] = mapped_column(Text)
    first_utm_medium: Mapped[str | None] = mapped_column(Text)
    first_utm_campaign: Mapped[str | None] = mapped_column(Text)
    first_utm_term: Mapped[str | None] = mapped_column(Text)
    first_utm_content: Mapped[str | None] = mapped_column(Text)
    first_form: Mapped[str | None] = mapped_column(Text)
    first_mailbox: Mapped[str | None] = mapped_column(Text)
    first_called_number: Mapped[str | None] = mapped_column(Text)
    last_utm_source: Mapped[str | None] = mapped_column(Text)
    last_utm_medium: Mapped[str | None] = mapped_column(Text)
    last_utm_campaign: Mapped[str | None] = mapped_column(Text)
    last_utm_term: Mapped[str | None] = mapped_column(Text)
    last_utm_content: Mapped[str | None] = mapped_column(Text)
    last_form: Mapped[str | None] = mapped_column(Text)
    last_mailbox: Mapped[str | None] = mapped_column(Text)
    last_called_number: Mapped[str | None] = mapped_column(Text)
    first_click: Mapped[bool] = mapped_column(Boolean)  # a gclid or a yclid
    last_click: Mapped[bool] = mapped_column(Boolean)
    last_direct: Mapped[bool] = mapped_column(Boolean)  # no campaign tag and no click id


class Notification(Base):
    """The outbox: a message is sent only from here, and only once per lead, rule and channel."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("lead_id", "rule", "channel", name="uq_notifications_lead_rule_channel"),
        Index("ix_notifications_status_next", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"), index=True)  # None: to the team (alarms)
    rule: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(8))
    sender: Mapped[str] = mapped_column(String(32))
    to: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    provider_message_id: Mapped[str | None] = mapped_column(String(200), index=True)
    reply_to_message_id: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class SyncDelivery(Base):
    """One row per lead and external CRM target; failure is data, replayable. It also links
    the lead to the CRM's id, and keeps what the hub last pushed there and what it last read
    back (CRM changes coming back)."""

    __tablename__ = "sync_deliveries"
    __table_args__ = (
        UniqueConstraint("lead_id", "target", name="uq_sync_deliveries_lead_target"),
        Index("ix_sync_deliveries_status_next", "status", "next_attempt_at"),
        Index("ix_sync_deliveries_target_external", "target", "external_id"),
        Index("ix_sync_deliveries_target_synced", "target", "synced_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    target: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(12), default=DeliveryStatus.PENDING)
    external_id: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    synced_at: Mapped[datetime | None]
    # random, minted by the first attempt of a push and kept by its retries; a new push of the
    # changed lead gets a new one (targets name their requests by it: webhook-id)
    delivery_id: Mapped[str | None] = mapped_column(String(32))
    # the stage and user the last successful push sent (null: left alone), and when
    pushed: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # the CRM's lead as last read back (webhook or poll), and what the hub made of it
    readback: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class SourceState(Base):
    """One configured source (a form, a mailbox, a telephony or SMS provider, a tracked number):
    when its last event came, written by the pipeline, and its silence alarm, kept by the
    scheduler. ``key`` is ``forms/landing``, ``mail/sales``, ``telephony/zadarma``,
    ``number/+74951234567``, ``sms/twilio``."""

    __tablename__ = "source_states"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_event_at: Mapped[datetime | None]
    watched_since: Mapped[datetime | None]  # when the scheduler first saw it configured
    silent_since: Mapped[datetime | None]  # set while the alarm is on


class Checkpoint(Base):
    """How far a pulled source has been read, saved with what it covers: an IMAP folder (by UID),
    or a polled CRM (``crm:<target>``, folder ``leads``; ``last_uid`` holds the Unix time of
    the newest change applied)."""

    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("source", "folder", name="uq_checkpoints_source_folder"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    folder: Mapped[str] = mapped_column(String(200))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Mailbox health, written by the poller, read by /healthz and /metrics.
    last_success_at: Mapped[datetime | None]
    consecutive_errors: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    behind: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class ScoreModel(Base):
    """One training of the learned probability: per chosen field, how many converted and how
    many lost (junk, archived) leads had each value. The newest row is the one in use."""

    __tablename__ = "score_models"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    token: Mapped[str] = mapped_column(String(32), default=new_event_id)  # identifies it in caches
    trained_at: Mapped[datetime] = mapped_column(default=utcnow)
    fields: Mapped[list] = mapped_column(JSON, default=list)
    closed: Mapped[int] = mapped_column(Integer, default=0)
    won: Mapped[int] = mapped_column(Integer, default=0)
    tables: Mapped[dict[str, Any]] = mapped_column(default=dict)  # field -> value -> [won, lost]


class ReportChange(Base):
    """A day (UTC, of a lead's creation) whose leads changed since its report snapshot was
    built: written by database triggers (migration 0014) on every change the reports read, and
    removed by the snapshot builder for the changes its snapshot includes. Append-only, so
    concurrent writers never wait on each other's rows."""

    __tablename__ = "report_changes"
    __table_args__ = (Index("ix_report_changes_day", "day", "id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    day: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD


class ReportSnapshot(Base):
    """One column of one day's report data (``hub.reports.snapshots``): a NumPy array's bytes
    and, for a column of coded values, the values its codes stand for."""

    __tablename__ = "report_snapshots"
    __table_args__ = (Index("ix_report_snapshots_built_at", "built_at"),)  # the scheduler's max(built_at)

    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    name: Mapped[str] = mapped_column(String(48), primary_key=True)  # part.column, e.g. leads.status
    format: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    dictionary: Mapped[list | None] = mapped_column(JSON)
    built_at: Mapped[datetime] = mapped_column(default=utcnow)
