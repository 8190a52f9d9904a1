"""Route: give every new lead a responsible manager, and say why.

Rules from the config are tried in order, first match wins; a known client goes back to their
owner first (sticky); with no match, round-robin over all managers. People marked away are
skipped. Batches are routed by one writer at a time (the pipeline's lock), so counters and
open-lead counts never race.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import phonenumbers
from phonenumbers import geocoder
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.config import Role
from hub.mapping import stored_phone
from hub.store.models import Lead, RouteCounter, TeamMember

OPEN_STATUSES = ("new", "in_progress")
UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


@dataclass
class Decision:
    member_id: str | None
    reason: str
    rule: dict | None = None

    @property
    def manual(self) -> bool:
        """The rule leaves the choice to a person (``assign: {strategy: manual, by: head}``)."""
        return bool(self.rule) and self.rule["assign"]["strategy"] == "manual"


def sync_team(session: Session, team: list[dict]) -> None:
    """Mirror the config's team into the database (upsert; people removed become inactive)."""
    existing = {m.id: m for m in session.scalars(select(TeamMember))}
    for entry in team:
        member = existing.pop(entry["id"], None) or TeamMember(id=entry["id"])
        for attr in ("name", "role", "email", "phone", "away", "weight"):
            setattr(member, attr, entry[attr])
        member.active = True
        session.add(member)
    for member in existing.values():
        member.active = False


class Counters:
    """Round-robin positions and open-lead counts; in memory, optionally backed by the database.

    The open-lead counts are read from the database only when a rule asks for them (the least
    loaded member): counting every open lead costs a scan of them, too much to pay on every
    batch for nothing. Leads assigned before that are added on top of what is read."""

    def __init__(self, session: Session | None = None):
        self.session = session
        self.positions: dict[str, RouteCounter] = {}
        self.open: dict[str, int] | None = None
        self.assigned_here: dict[str, int] = {}  # assigned before the counts were read

    def next_position(self, pool: str) -> int:
        counter = self.positions.get(pool)
        if counter is None:
            counter = self.session.get(RouteCounter, pool) if self.session else None
            if counter is None:
                counter = RouteCounter(pool=pool, position=0)
                if self.session:
                    self.session.add(counter)
            self.positions[pool] = counter
        position = counter.position or 0
        counter.position = position + 1
        return position

    def open_count(self, member_id: str) -> int:
        if self.open is None:
            self.open = dict(self.assigned_here)
            if self.session:
                rows = self.session.execute(select(Lead.assignee_id, func.count()).where(
                    Lead.status.in_(OPEN_STATUSES), Lead.assignee_id.is_not(None)).group_by(Lead.assignee_id))
                for member, count in rows:
                    self.open[member] = self.open.get(member, 0) + count
        return self.open.get(member_id, 0)

    def assigned(self, member_id: str) -> None:
        counts = self.assigned_here if self.open is None else self.open
        counts[member_id] = counts.get(member_id, 0) + 1


@functools.lru_cache(maxsize=4096)
def phone_geography(phone: str | None) -> tuple[str | None, str | None]:
    number = stored_phone(phone)
    if number is None:
        return None, None
    return phonenumbers.region_code_for_number(number), geocoder.description_for_number(number, "en") or None


GEOGRAPHY = ("country", "region")


def uses_geography(config) -> bool:
    """Whether any rule (routing, scoring, the scoring model) asks for the phone's country or region."""
    scoring = config.get("scoring") or {}
    conditions = [rule["when"] for rule in config["routing"]]
    conditions += [rule["when"] for rule in scoring.get("rules", [])]
    conditions += [entry["when"] for entry in scoring.get("amount", {}).get("defaults", [])]
    model_fields = (scoring.get("model") or {}).get("fields", [])
    return any(key in when for when in conditions for key in GEOGRAPHY) or any(f in GEOGRAPHY for f in model_fields)


def form_fields(lead) -> dict:
    """The fields of the lead's first form submission (empty for other channels)."""
    for touch in lead.touches or ():
        fields = (touch.details or {}).get("fields")
        if fields is not None:
            return fields
    return {}


def facts_of(lead: Lead, open_now: bool, known: bool, geography: bool = True) -> dict:
    """What routing and scoring rules can ask about a lead. Looking up the phone's country and
    region costs more than the rest together, so a config whose rules never ask skips it."""
    source = lead.source or {}
    country, region = phone_geography(lead.phone) if geography else (None, None)
    facts = {key: source.get(key) for key in (*UTM, "form", "mailbox", "called_number")}
    return facts | {"channel": lead.channel, "country": country, "region": region,
                    "message": lead.message or "", "business_hours": open_now, "known_client": known,
                    "has_email": bool(lead.email), "has_phone": bool(lead.phone), "fields": form_fields(lead)}


def fields_match(expected: dict, fields: dict) -> bool:
    for name, wanted in expected.items():
        value = str(fields.get(name) or "").strip()
        if (bool(value) is not wanted) if isinstance(wanted, bool) else (value not in wanted):
            return False
    return True


def matches(when: dict, facts: dict) -> bool:
    for key, expected in when.items():
        if key == "words":
            text = facts["message"].lower()
            if not any(word.lower() in text for word in expected):
                return False
        elif key == "fields":
            if not fields_match(expected, facts["fields"]):
                return False
        elif key in ("min_probability", "max_probability"):
            probability = facts.get("probability")
            if probability is None or (probability < expected if key == "min_probability" else probability > expected):
                return False
        elif isinstance(expected, bool):
            if facts.get(key) is not expected:
                return False
        elif facts.get(key) not in expected:
            return False
    return True


def candidates(config, assign: dict | None) -> list[dict]:
    team = [m for m in config["team"] if not m["away"]]
    if assign and assign["to"]:
        return [m for m in team if m["id"] in assign["to"]]
    if assign and assign["group"]:
        return [m for m in team if assign["group"] in m["groups"]]
    return [m for m in team if m["role"] == Role.MANAGER]


def pick(strategy: str, pool: list[dict], counters: Counters, pool_key: str) -> tuple[str, str]:
    ids = sorted(m["id"] for m in pool)
    if strategy == "least_busy":
        loads = {i: counters.open_count(i) for i in ids}
        chosen = min(ids, key=lambda i: (loads[i], i))
        return chosen, f"least-busy over [{', '.join(ids)}] (open leads: " + ", ".join(
            f"{i} {loads[i]}" for i in ids) + ")"
    if strategy == "weighted":
        weights = {m["id"]: m["weight"] for m in pool}
        wheel = [i for i in ids for _ in range(weights[i])]
        position = counters.next_position(pool_key)
        shares = ", ".join(f"{i}×{weights[i]}" for i in ids)
        return wheel[position % len(wheel)], f"weighted round-robin over [{shares}] (turn {position + 1})"
    position = counters.next_position(pool_key)
    return ids[position % len(ids)], f"round-robin over [{', '.join(ids)}] (turn {position + 1})"


def decide(config, facts: dict, counters: Counters, owner: tuple[str, int] | None = None) -> Decision:
    if owner and config["sticky_owner"]:
        person = next((m for m in config["team"] if m["id"] == owner[0] and not m["away"]), None)
        if person:
            earlier = f" (lead {owner[1]})" if owner[1] else ""
            return Decision(person["id"], f"known client -> back to their owner {person['id']}{earlier}")
    skipped = None
    for rule in config["routing"]:
        if not matches(rule["when"], facts):
            continue
        if rule["assign"]["strategy"] == "manual":
            who = rule["assign"]["by"]
            return Decision(None, f"rule '{rule['name']}' -> waits for the {who} to assign a manager", rule)
        pool = candidates(config, rule["assign"])
        if pool:
            member, how = pick(rule["assign"]["strategy"], pool, counters, f"rule:{rule['name']}")
            return Decision(member, f"rule '{rule['name']}' -> {how}", rule)
        skipped = skipped or rule["name"]
    pool = candidates(config, None)
    if not pool:
        return Decision(None, "no manager available (everyone is away or the team has no manager)")
    member, how = pick("round_robin", pool, counters, "default")
    prefix = f"rule '{skipped}' matched but everyone in it is away" if skipped else "no routing rule matched"
    return Decision(member, f"{prefix} -> {how}")


def simulate(config, samples: list[dict], counters: Counters, hours, scorer=None) -> list[tuple[dict, Decision]]:
    """Route sample leads without storing anything: who would get each, and why. With a
    ``scorer`` (``hub.pipeline.score.Scorer``) each is scored first (a sample's ``fields`` are
    its form fields) and its score is put in the sample as ``score``."""
    from datetime import datetime

    from hub import clock
    from hub.mapping import normalise_phone

    results = []
    for sample in samples:
        phone = normalise_phone(str(sample["phone"]), config["region"]) if sample.get("phone") else None
        created = sample.get("at") or clock.now()
        created = datetime.fromisoformat(created) if isinstance(created, str) else created
        lead = Lead(channel=sample.get("channel", "form"), phone=phone, email=sample.get("email"),
                    message=sample.get("message"), source=sample.get("source") or {})
        owner = (sample["owner"], 0) if sample.get("owner") else None
        facts = facts_of(lead, hours.is_open(created), owner is not None) | {"fields": sample.get("fields") or {}}
        if scorer:
            score = scorer.score(facts)
            sample = {**sample, "score": score}
            facts |= {"class": score.klass, "probability": score.probability}
        decision = decide(config, facts, counters, owner)
        if decision.member_id:
            counters.assigned(decision.member_id)
        results.append((sample, decision))
    return results
