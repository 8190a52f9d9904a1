"""The learned probability that a lead converts: naive Bayes over chosen fields, learned from
the store's own closed leads (converted against junk and archived), as Odoo's predictive lead
scoring does.

Training counts, for every chosen field and each of its values, how many converted (won) and
how many lost leads had it. A value missing on a lead counts as the value ``(none)``. With
Laplace smoothing, where ``k`` is the number of distinct values the field had plus one (a value
never seen), ``won``/``lost`` the numbers of won and lost leads and ``w``/``l`` the value's
counts::

    P(value | won) = (w + 1) / (won + k)        P(value | lost) = (l + 1) / (lost + k)
    prior odds     = (won + 1) / (lost + 1)
    odds           = prior odds × Π over the fields of P(value | won) / P(value | lost)
    probability    = odds / (1 + odds)

Each field's ratio ``P(value | won) / P(value | lost)`` is its factor: above 1 it raises the
probability, below 1 it lowers it; the strongest ones explain the score.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hub.store.models import ScoreModel

WON = ("converted",)
LOST = ("junk", "archived")
NONE = "(none)"
FACTORS_SHOWN = 3
KEPT = 30  # trained models kept (a month of nightly trainings); older ones are deleted


def feature_value(value) -> str:
    if value is None or value == "":
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).strip() or NONE


def features(facts: dict, names) -> dict[str, str]:
    """The model's fields of a lead, from its facts (``fields.<name>``: a form field)."""
    found = {}
    for name in names:
        value = facts["fields"].get(name[len("fields."):]) if name.startswith("fields.") else facts.get(name)
        found[name] = feature_value(value)
    return found


@dataclass(frozen=True)
class Factor:
    field: str
    value: str
    ratio: float

    def text(self) -> str:
        return f"{self.field}={self.value} ×{self.ratio:.1f}"


@dataclass
class Model:
    fields: tuple[str, ...]
    closed: int
    won: int
    tables: dict[str, dict[str, list[int]]]
    trained_at: datetime | None = None
    token: str | None = None
    logs: dict[str, dict[str, float]] = field(init=False)  # field -> value -> log of its ratio
    unseen: dict[str, float] = field(init=False)  # field -> log ratio of a value never seen

    def __post_init__(self):
        lost = self.lost
        self.logs, self.unseen = {}, {}
        self.prior = math.log((self.won + 1) / (lost + 1))
        for name in self.fields:
            table = self.tables.get(name, {})
            k = len(table) + 1
            self.logs[name] = {value: math.log(((w + 1) / (self.won + k)) / ((n + 1) / (lost + k)))
                               for value, (w, n) in table.items()}
            self.unseen[name] = math.log((1 / (self.won + k)) / (1 / (lost + k)))

    @property
    def lost(self) -> int:
        return self.closed - self.won

    def predict(self, values: dict[str, str]) -> tuple[float, list[Factor]]:
        """The probability, and the factors, strongest first (in log odds, so the sum is exact
        and cheap)."""
        log_odds = self.prior
        contributions = []
        for name in self.fields:
            value = values.get(name, NONE)
            log_ratio = self.logs[name].get(value, self.unseen[name])
            log_odds += log_ratio
            contributions.append((name, value, log_ratio))
        contributions.sort(key=lambda c: -abs(c[2]))
        factors = [Factor(name, value, math.exp(log_ratio)) for name, value, log_ratio in contributions[:FACTORS_SHOWN]]
        return 1 / (1 + math.exp(-log_odds)), factors


def train(rows, names) -> Model:
    """``rows``: (status, features) of closed leads."""
    names = tuple(names)
    tables: dict[str, dict[str, list[int]]] = {name: {} for name in names}
    closed = won = 0
    for status, values in rows:
        is_won = status in WON
        closed += 1
        won += is_won
        for name in names:
            counts = tables[name].setdefault(values.get(name, NONE), [0, 0])
            counts[0 if is_won else 1] += 1
    return Model(names, closed, won, tables)


def save(session: Session, model: Model, now: datetime) -> ScoreModel:
    row = ScoreModel(trained_at=now, fields=list(model.fields), closed=model.closed, won=model.won,
                     tables=model.tables)
    session.add(row)
    session.flush()
    oldest_kept = select(ScoreModel.id).order_by(ScoreModel.id.desc()).offset(KEPT - 1).limit(1).scalar_subquery()
    session.execute(delete(ScoreModel).where(ScoreModel.id < oldest_kept))
    model.trained_at, model.token = row.trained_at, row.token
    return row


_cache: dict[str, Model] = {}


def current(session: Session) -> Model | None:
    """The newest trained model (parsed once per process, however many batches ask)."""
    latest = session.execute(select(ScoreModel.id, ScoreModel.token).order_by(ScoreModel.id.desc()).limit(1)).first()
    if latest is None:
        return None
    model = _cache.get(latest.token)
    if model is None:
        row = session.get(ScoreModel, latest.id)
        model = Model(tuple(row.fields), row.closed, row.won, row.tables, row.trained_at, row.token)
        _cache.clear()  # only the newest is ever used
        _cache[row.token] = model
    return model


def last_trained(session: Session) -> datetime | None:
    return session.scalar(select(ScoreModel.trained_at).order_by(ScoreModel.id.desc()).limit(1))
