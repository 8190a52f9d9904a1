"""Merge one normalised event into the store: an ignored event, a repeat, a delivery report,
a further event of a known call, a touch on an open lead, or a new lead."""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.pipeline import calls
from hub.pipeline.confirm import fallback_email
from hub.pipeline.dedupe import ContactIndex, merge_contact
from hub.pipeline.normalise import Normalised
from hub.pipeline.store import NewLead, NewTouch
from hub.store.models import DeliveryStatus, Lead, Notification, RawEvent, Touch

# Handed to the provider (or maybe): a delivery report may still come for these.
HANDED_OVER = (DeliveryStatus.SENT, DeliveryStatus.UNKNOWN, DeliveryStatus.DELIVERED, DeliveryStatus.SENDING)


@dataclass
class CallChange:
    lead: Lead | NewLead
    touch: Touch | NewTouch
    outcome: str | None  # "missed" | "answered" | None
    at: object


@dataclass
class Batch:
    hub: object
    session: Session
    out: object  # hub.writer.RowWriter
    touches: dict[str, Touch | NewTouch]
    contacts: ContactIndex
    threads: dict[str, int] = field(default_factory=dict)  # Message-ID -> lead id
    new_leads: list[NewLead] = field(default_factory=list)
    new_touches: list[NewTouch] = field(default_factory=list)
    links: list[tuple[RawEvent, Lead | NewLead]] = field(default_factory=list)  # event -> its lead
    touched: dict[int, Lead] = field(default_factory=dict)  # stored leads that changed, by id
    call_changes: list[CallChange] = field(default_factory=list)

    def apply(self, raw: RawEvent, item: Normalised) -> None:
        if item.ignore:
            raw.status, raw.error = "ignored", item.ignore
        elif item.extra.get("delivery"):
            self.apply_delivery(raw, item.extra["delivery"])
        elif item.touch_key in self.touches:
            self.apply_repeat(raw, item, self.touches[item.touch_key])
        elif item.call and (reason := call_without_lead(item, self.contacts)):
            raw.status, raw.error = "ignored", reason
        elif not (item.lead.get("phone") or item.lead.get("email")) and not self.thread_lead(item):
            raw.status, raw.error = "ignored", "no contact: neither a phone nor an e-mail"
        else:
            self.apply_touch(raw, item)

    def apply_repeat(self, raw: RawEvent, item: Normalised, touch: Touch | NewTouch) -> None:
        """The same touch again: a replay changes nothing; a further call event merges."""
        self.links.append((raw, touch.lead))
        if not item.call or raw.event_id in touch.details.get("applied", []):
            return
        before = touch.details
        touch.details = calls.merge(before, item.call, item.details.get("provider", {})) | {
            "applied": before.get("applied", []) + [raw.event_id]}
        self.note_call(touch.lead, touch, before, item)
        self.changed(touch.lead)

    def apply_touch(self, raw: RawEvent, item: Normalised) -> None:
        lead = self.thread_lead(item) or self.contacts.find(item.lead)
        if lead is None:
            lead = NewLead(channel=item.channel, source=item.source, last_source=item.last_source,
                           created_at=item.at, **item.lead)
            self.contacts.add(lead)
            self.new_leads.append(lead)
        else:
            merge_contact(lead, item.lead)
            lead.last_source = item.last_source
            self.changed(lead)
        details = item.details | ({"applied": [raw.event_id]} if item.call else {})
        touch = NewTouch(lead=lead, touch_key=item.touch_key, event_id=raw.event_id, channel=item.channel,
                         at=item.at, source=item.source, details=details)
        if isinstance(lead, NewLead):
            lead.touches.append(touch)
        self.new_touches.append(touch)
        self.touches[item.touch_key] = touch
        self.links.append((raw, lead))
        if item.call:
            self.note_call(lead, touch, None, item)

    def changed(self, lead: Lead | NewLead) -> None:
        if isinstance(lead, Lead):
            self.touched[lead.id] = lead

    def note_call(self, lead: Lead, touch: Touch, before: dict | None, item: Normalised) -> None:
        self.call_changes.append(CallChange(lead, touch, calls.outcome(before, touch.details), item.at))

    def thread_lead(self, item: Normalised) -> Lead | None:
        """A reply in a thread we know (the client's earlier mail or our confirmation)."""
        for message_id in item.extra.get("thread") or ():
            lead_id = self.threads.get(message_id)
            if lead_id:
                return self.session.get(Lead, lead_id)
        return None

    def apply_delivery(self, raw: RawEvent, report) -> None:
        """A provider's delivery report updates the notification it is about."""
        row = self.session.scalar(select(Notification).where(
            Notification.provider_message_id == report.provider_message_id))
        if row is None:
            raw.status, raw.error = "ignored", f"no notification with message id {report.provider_message_id}"
            return
        if row.status in HANDED_OVER and report.status in ("delivered", "failed"):
            # "undelivered", not "failed": the outbox retries failed rows, and resending a
            # message the network could not deliver would only repeat the failure
            row.status = DeliveryStatus.DELIVERED if report.status == "delivered" else DeliveryStatus.UNDELIVERED
            if report.status == "failed":
                row.last_error = f"delivery failed: {report.error or 'no reason given'}"
                if row.channel == "sms":
                    fallback_email(self.session, self.out, self.hub, self.session.get(Lead, row.lead_id),
                                   row.rule, row.text)
        raw.status, raw.lead_id = "processed", row.lead_id


def call_without_lead(item: Normalised, contacts: ContactIndex) -> str | None:
    """Calls that are recorded but make no lead: withheld numbers, and outgoing calls to
    numbers that have no open lead (we never make leads of our own calls)."""
    state = item.call
    if state.anonymous or not item.lead.get("phone"):
        return "anonymous caller: the call is recorded, no lead can be made without a number"
    if state.direction == "outbound" and contacts.find(item.lead) is None:
        return "outgoing call to a number with no open lead"
    return None


def thread_index(session: Session, items: list[Normalised]) -> dict[str, int]:
    """Lead ids of the messages that replies in this batch point at."""
    ids = {m for item in items for m in item.extra.get("thread") or ()}
    if not ids:
        return {}
    variants = ids | {f"<{m}>" for m in ids}
    index = {}
    rows = session.execute(select(Touch.touch_key, Touch.lead_id).where(
        Touch.touch_key.in_([f"mail:{m}" for m in ids])))
    for key, lead_id in rows:
        index[key.removeprefix("mail:")] = lead_id
    rows = session.execute(select(Notification.provider_message_id, Notification.lead_id).where(
        Notification.provider_message_id.in_(variants)))
    for message_id, lead_id in rows:
        index[message_id.strip("<>")] = lead_id
    return index
