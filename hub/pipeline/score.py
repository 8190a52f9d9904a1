"""Lead scoring: a class (A, B, C), an expected value and a learned probability, each explained.

Points come from the config's ``scoring.rules`` (the routing rules' conditions, plus ``fields``
of the form, ``has_email`` and ``has_phone``); the class from thresholds on the points, or on
the learned probability once there is enough history (``hub.pipeline.score_model``); the value
from a form field or a per-source default. A head or director may move the class up or down
by one: the override is kept by every later rescoring. Scores are written with the lead by the
pipeline (before routing, so rules may route on them) and again for open leads whenever the
model is retrained.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, selectinload

from hub.config import SCORE_CLASSES
from hub.pipeline import score_model
from hub.pipeline.route import facts_of, matches, uses_geography
from hub.pipeline.sync import queue_update
from hub.rules.history import record
from hub.rules.tasks import business_hours
from hub.store.encoding import EncodedJSON
from hub.store.models import Lead
from hub.store.writer import RowWriter

OPEN = ("new", "in_progress")
CLOSED = score_model.WON + score_model.LOST
DEFAULT_CLASSES = {"A": {"points": 50, "probability": None}, "B": {"points": 20, "probability": None}}
CHANGES = ("up", "down", "reset")
CHUNK = 500
CURRENCY = r"(?:₽|руб\.?|р\.?|rub|\$|€|usd|eur)?"
AMOUNT = re.compile(rf"{CURRENCY}(\d+(?:[.,]\d{{1,2}})?){CURRENCY}", re.IGNORECASE)


class OverrideRefused(ValueError):
    """The class cannot move that way (already A, already C, not scored, nothing to reset)."""


@dataclass(frozen=True)
class Score:
    klass: str
    probability: float | None
    value: float | None
    details: dict


def parse_amount(text) -> float | None:
    """``150000``, ``150 000 ₽``, ``99.90``, ``1 200,50 руб.``; anything else is no amount."""
    compact = re.sub(r"[\s\u00a0\u202f']", "", str(text or ""))
    found = AMOUNT.fullmatch(compact)
    return float(found.group(1).replace(",", ".")) if found else None


def number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def signed(points: int) -> str:
    return f"+{points}" if points >= 0 else f"−{-points}"


BOOLEAN_WORDS = {"business_hours": ("business hours", "outside business hours"),
                 "known_client": ("known client", "new client"),
                 "has_email": ("e-mail", "no e-mail"), "has_phone": ("phone", "no phone")}


def condition_text(when: dict) -> str:
    """A rule without a name is explained by its conditions: ``utm_source=yandex``."""
    parts = []
    for key, expected in when.items():
        if key in BOOLEAN_WORDS:
            parts.append(BOOLEAN_WORDS[key][0 if expected else 1])
        elif key == "fields":
            parts += [f"{name} {'filled in' if wanted else 'empty'}" if isinstance(wanted, bool)
                      else f"{name}={'|'.join(wanted)}" for name, wanted in expected.items()]
        elif key == "words":
            parts.append(f"words {'|'.join(expected)}")
        else:
            parts.append(f"{key}={'|'.join(str(v) for v in expected)}")
    return ", ".join(parts) or "every lead"


def class_by(thresholds: dict, reached) -> str:
    """The best class whose threshold ``reached`` says is met; C when none is."""
    for name in SCORE_CLASSES[:2]:
        if name in thresholds and reached(thresholds[name]):
            return name
    return SCORE_CLASSES[-1]


def explain(details: dict) -> str:
    """The score's explanation in words, from the parts stored with it (the lead JSON's
    ``details.text``): rendered when read, so each stored score stays small."""
    hits = ", ".join(f"{signed(hit['points'])} {hit['rule']}" for hit in details["rules"])
    total = signed(details["points"]).lstrip("+")
    parts = [f"{hits} = {total} points" if hits else "no rule matched = 0 points"]
    parts[0] += f" (class {details['points_class']})"
    if details.get("value") is not None:
        parts.append(f"value {number(details['value'])} ({details['value_from']})")
    learned = details.get("probability")
    if learned and learned.get("value") is not None:
        factors = ", ".join(f"{f['field']}={f['value']} ×{f['ratio']:.1f}" for f in learned["factors"])
        parts.append(f"probability {learned['value']:.0%} from {learned['closed']:,} closed leads"
                     + (f": {factors}" if factors else ""))
    elif learned:
        parts.append(f"probability not learned yet ({learned['closed']:,} closed leads, "
                     f"{learned['needed']:,} needed): class from points")
    if details["class_from"] == "probability":
        parts.append(f"class {details['scored_class']} by probability")
    override = details.get("override")
    if override:
        parts.append(f"class {override['class']} set by {override['by']} (scored {details['scored_class']})")
    return "; ".join(parts)


class Scorer:
    """Scores leads from their facts (``hub.pipeline.route.facts_of``) with one config and model."""

    MEMO_SIZE = 20_000

    def __init__(self, scoring: dict, model: score_model.Model | None):
        self.scoring = scoring
        self.classes = scoring["classes"] or DEFAULT_CLASSES
        self.model_config = scoring["model"]
        self.model = model if self.model_config else None
        self.labels = [rule["name"] or condition_text(rule["when"]) for rule in scoring["rules"]]
        self.default_labels = [f"default for {condition_text(entry['when'])}"
                               for entry in scoring["amount"]["defaults"]]
        # leads that match the same rules and share the model's field values get the same score:
        # computed once (scores are read-only once made; an override copies the details)
        self.memo: dict[tuple, Score] = {}

    @classmethod
    def load(cls, session: Session, config) -> Scorer | None:
        """None without a ``scoring:`` section: leads are not scored."""
        scoring = config.get("scoring")
        if not scoring:
            return None
        return cls(scoring, score_model.current(session) if scoring["model"] else None)

    def learned(self) -> bool:
        return bool(self.model) and self.model.closed >= self.model_config["min_closed"]

    def score(self, facts: dict, override: dict | None = None) -> Score:
        rules = self.scoring["rules"]
        hits = tuple(index for index, rule in enumerate(rules) if matches(rule["when"], facts))
        value = self.value(facts)
        values = score_model.features(facts, self.model.fields) if self.learned() else None
        key = (hits, value, tuple(values.values()) if values else None)
        if override is None and key in self.memo:
            return self.memo[key]
        made = self.compute(hits, value, values, override)
        if override is None and len(self.memo) < self.MEMO_SIZE:
            self.memo[key] = made
        return made

    def compute(self, hits: tuple[int, ...], value: tuple, values: dict | None, override: dict | None) -> Score:
        rules = self.scoring["rules"]
        points = sum(rules[index]["points"] for index in hits)
        details = {"points": points, "rules": [{"rule": self.labels[i], "points": rules[i]["points"]} for i in hits],
                   "points_class": class_by(self.classes, lambda t: points >= t["points"])}
        details["value"], details["value_from"] = value
        probability = self.probability(values, details)
        scored, details["class_from"] = details["points_class"], "points"
        if probability is not None and any(t.get("probability") is not None for t in self.classes.values()):
            scored = class_by(self.classes, lambda t: probability >= t["probability"] if t.get("probability")
                              is not None else points >= t["points"])
            details["class_from"] = "probability"
        details["scored_class"] = scored
        if override:
            details["override"] = override
        return Score(override["class"] if override else scored, probability, details["value"], EncodedJSON(details))

    def value(self, facts: dict) -> tuple[float | None, str | None]:
        settings = self.scoring["amount"]
        if settings["field"]:
            written = facts["fields"].get(settings["field"])
            amount = parse_amount(written)
            if amount is not None:
                return amount, f"form field {settings['field']}"
        for entry, label in zip(settings["defaults"], self.default_labels, strict=True):
            if matches(entry["when"], facts):
                return entry["amount"], label
        if settings["default"] is not None:
            return settings["default"], "default"
        return None, None

    def probability(self, values: dict | None, details: dict) -> float | None:
        if not self.model_config:
            return None
        closed = self.model.closed if self.model else 0
        if values is None:
            details["probability"] = {"value": None, "closed": closed, "needed": self.model_config["min_closed"]}
            return None
        value, factors = self.model.predict(values)
        details["probability"] = {"value": round(value, 4), "closed": closed,
                                  "factors": [{"field": f.field, "value": f.value, "ratio": round(f.ratio, 3)}
                                              for f in factors]}
        return round(value, 4)

    @property
    def needs_geography(self) -> bool:
        return bool(self.model) and any(name in ("country", "region") for name in self.model.fields)


def apply(lead, score: Score) -> None:
    lead.score_class, lead.score_probability = score.klass, score.probability
    lead.score_value, lead.score_details = score.value, score.details


def route_facts(facts: dict, lead) -> dict:
    """Routing rules may ask for the class and the probability just given."""
    facts["class"], facts["probability"] = lead.score_class, lead.score_probability
    return facts


# --- stored leads: rescoring, training, overrides --------------------------------------------

def earlier_clients(session: Session, leads: list[Lead]) -> set[int]:
    """The ids of leads whose phone or e-mail an earlier, assigned lead had (known clients)."""
    phones = {lead.phone for lead in leads if lead.phone}
    emails = {lead.email for lead in leads if lead.email}
    if not phones and not emails:
        return set()
    first: dict[tuple[str, str], int] = {}
    query = select(Lead.id, Lead.phone, Lead.email).where(
        Lead.assignee_id.is_not(None), Lead.phone.in_(phones) | Lead.email.in_(emails)).order_by(Lead.id)
    for lead_id, phone, email in session.execute(query):
        for key in (("phone", phone), ("email", email)):
            if key[1]:
                first.setdefault(key, lead_id)
    return {lead.id for lead in leads
            if min(first.get(("phone", lead.phone), lead.id), first.get(("email", lead.email), lead.id)) < lead.id}


def stored_facts(session: Session, config, leads: list[Lead]) -> list[dict]:
    hours, geography = business_hours(config), uses_geography(config)
    known = earlier_clients(session, leads)
    return [facts_of(lead, hours.is_open(lead.created_at), lead.id in known, geography) for lead in leads]


def chunks(session: Session, statuses: tuple[str, ...]):
    """Leads of these statuses with their touches, a chunk at a time, oldest first."""
    last = 0
    while True:
        query = (select(Lead).options(selectinload(Lead.touches)).where(Lead.status.in_(statuses), Lead.id > last)
                 .order_by(Lead.id).limit(CHUNK))
        leads = list(session.scalars(query))
        if not leads:
            return
        yield leads
        last = leads[-1].id


def train(hub) -> score_model.Model:
    """Learn the probability from every closed lead, store the model, rescore the open leads."""
    config = hub.config
    names = config["scoring"]["model"]["fields"]
    with hub.db.write() as session:
        rows = []
        for leads in chunks(session, CLOSED):
            rows += [(lead.status, score_model.features(facts, names))
                     for lead, facts in zip(leads, stored_facts(session, config, leads), strict=True)]
        model = score_model.train(rows, names)
        score_model.save(session, model, hub.now())
    rescore(hub)
    return model


def last_retrain_time(at: str, zone: str, now: datetime) -> datetime:
    """The latest ``retrain_at`` time of day (in the team's zone) at or before ``now``."""
    local = now.astimezone(ZoneInfo(zone))
    hour, minute = (int(part) for part in at.split(":"))
    moment = datetime.combine(local.date(), time(hour, minute), local.tzinfo)
    return moment if moment <= local else moment - timedelta(days=1)


def training_due(hub) -> bool:
    """Nightly: no model trained since the last ``scoring.model.retrain_at``."""
    model = (hub.config.get("scoring") or {}).get("model")
    if not model or not model["retrain_at"]:
        return False
    with hub.db.read() as session:
        trained = score_model.last_trained(session)
    return trained is None or trained < last_retrain_time(model["retrain_at"], hub.config["timezone"], hub.now())


def rescore(hub) -> int:
    """Score every open lead again (a new model, a changed config); overrides are kept. Leads
    whose class or probability changed are pushed to the CRMs again. Returns how many changed."""
    changed = 0
    with hub.db.write() as session:
        scorer = Scorer.load(session, hub.config)
        if scorer is None:
            return 0
        for leads in chunks(session, OPEN):
            changed += rescore_chunk(session, hub, scorer, leads)
    return changed


def rescore_chunk(session: Session, hub, scorer: Scorer, leads: list[Lead]) -> int:
    rows, moved = [], []
    for lead, facts in zip(leads, stored_facts(session, hub.config, leads), strict=True):
        previous = (lead.score_class, lead.score_probability)
        score = scorer.score(facts, (lead.score_details or {}).get("override") if lead.score_override else None)
        rows.append({"lead": lead.id, "klass": score.klass, "probability": score.probability,
                     "amount": score.value, "details": score.details, "updated": lead.updated_at})
        if previous != (score.klass, score.probability):
            moved.append(lead.id)
    session.expunge_all()  # written below in one statement, keeping each lead's updated_at
    table = Lead.__table__
    session.connection().execute(update(table).where(table.c.id == bindparam("lead")).values(
        score_class=bindparam("klass"), score_probability=bindparam("probability"),
        score_value=bindparam("amount"), score_details=bindparam("details"), updated_at=bindparam("updated")), rows)
    if moved:
        queue_update(session, moved, hub.now())
    return len(moved)


def next_class(current: str, change: str) -> str:
    position = SCORE_CLASSES.index(current) + (-1 if change == "up" else 1)
    if not 0 <= position < len(SCORE_CLASSES):
        raise OverrideRefused(f"the class is already {current}")
    return SCORE_CLASSES[position]


def override(session: Session, hub, lead: Lead, change: str, actor: str) -> None:
    """A head or director raises (``up``: C→B→A) or lowers the class by one, or ``reset``s it
    to the scored one; recorded in the lead's history, pushed to the CRMs."""
    if lead.score_class is None or lead.score_details is None:
        raise OverrideRefused("the lead has no score")
    details, now = dict(lead.score_details), hub.now()
    if change == "reset":
        if lead.score_override is None:
            raise OverrideRefused("the class is not overridden")
        target = details["scored_class"]
        details.pop("override", None)
    else:
        target = next_class(lead.score_class, change)
        details["override"] = {"class": target, "by": actor, "at": now.isoformat()}
    out = RowWriter(session)
    record(out, lead.id, "score_override", now, actor=actor, **{"from": lead.score_class, "to": target,
                                                                 "scored": details["scored_class"]})
    lead.score_class, lead.score_details = target, details
    lead.score_override = None if change == "reset" else target
    lead.updated_at = now
    out.flush()
    queue_update(session, [lead.id], now)
