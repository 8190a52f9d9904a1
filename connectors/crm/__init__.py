"""CRM targets: one module per CRM.

Every module exposes ``push`` (a lead out to the CRM). Modules whose CRM reports changes back
(received at ``/hooks/crm/<target>``, see ``connectors.base.CrmEvent``) also expose:

``INBOUND``        the config keys receiving needs (all of them, once one is given);
``verify``, ``parse``, ``reply``   as the intake modules (``connectors.base``);
``read_back(event, settings, throttle)``   the ``CrmLead`` an event is about, as the CRM has it now;
``changed_since(settings, since, throttle)``   pages of ``CrmLead`` modified after ``since``;
``hub_status(lead, settings)``   the hub status a CRM stage means, or ``None`` when unmapped;
``hub_stage(lead, settings)``   the hub pipeline stage a CRM stage means (``stage_ids``), or ``None``;
``sent_state(lead, settings, created)``   the stage and user a push sends (``None``: not sent);
``connect(settings, url, throttle)``   registers the CRM's events, or says how; lines to print.

Targets that take ``score_fields`` (``{class: <field>, probability: <field>, value: <field>}``)
send the lead's score there on every push: the class as a letter, the probability as whole
percent, the value as a number.
"""
from __future__ import annotations

import functools
from datetime import datetime
from urllib.parse import parse_qsl

import yaml

import mappings
from connectors.base import Inbound

MAPPINGS = mappings.FOLDER / "crm"


@functools.cache
def load_mapping(name: str) -> dict:
    """``mappings/crm/<name>.yaml``: field names, source ids and stages, as data."""
    with (MAPPINGS / f"{name}.yaml").open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def form_fields(inbound: Inbound) -> dict[str, str]:
    """A form-encoded body as flat ``name -> value`` pairs (PHP bracket names kept whole)."""
    return dict(parse_qsl(inbound.body.decode("utf-8", "replace"), keep_blank_values=True))


def first(value):
    """The value a push sends for a mapping entry that may list several (``[IN_PROCESS, PROCESSED]``)."""
    return value[0] if isinstance(value, list) and value else (None if isinstance(value, list) else value)


def reverse(mapping: dict) -> dict[str, str]:
    """``{ours: theirs | [theirs, ...]}`` read backwards: ``{str(theirs): ours}``; the first
    entry naming a value wins."""
    back: dict[str, str] = {}
    for ours, theirs in mapping.items():
        for value in theirs if isinstance(theirs, list) else [theirs]:
            if value is not None:
                back.setdefault(str(value), ours)
    return back


def text(value) -> str | None:
    """A CRM value as text; ``None`` for absent, empty or zero ids."""
    if value is None or str(value).strip() in ("", "0"):
        return None
    return str(value).strip()


def timestamp(value) -> datetime | None:
    """An ISO 8601 date-time with its offset, or ``None`` when absent or unreadable."""
    try:
        moment = datetime.fromisoformat(str(value).strip())
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else None


def hub_values(lead: dict) -> dict:
    """The lead's status, assignee and pipeline stage as the hub has them."""
    return {"status": lead.get("status"), "assignee": (lead.get("assignee") or {}).get("id"),
            "stage": (lead.get("stage") or {}).get("name")}


def changed_since_last_push(lead: dict, settings: dict) -> set[str]:
    """Which of status and assignee moved in the hub since the last push (``last_pushed``):
    only those go out, so an update never overwrites what a manager changed in the CRM. With
    no record of the last push, both."""
    previous = settings.get("last_pushed")
    current = hub_values(lead)
    if previous is None:
        return set(current)
    return {key for key, value in current.items() if previous.get(key) != value}


def stage_code(lead: dict, settings: dict, status_codes: dict):
    """The CRM stage for the lead: its pipeline stage's (``stage_ids``) when mapped, else its status's."""
    stage = (lead.get("stage") or {}).get("name")
    mapped = first((settings.get("stage_ids") or {}).get(stage)) if stage else None
    return mapped or first(status_codes.get(lead.get("status")))


def moved(lead: dict, settings: dict, status_codes: dict, user, created: bool = False) -> dict:
    """The CRM's stage code and user a push sends: what moved in the hub since the last push
    (a new status or pipeline stage moves the CRM's stage); a create sends the user and leaves
    the stage to the CRM's default. ``None``: not sent."""
    changed = {"assignee"} if created else changed_since_last_push(lead, settings)
    return {"status": stage_code(lead, settings, status_codes) if changed & {"status", "stage"} else None,
            "user": user if "assignee" in changed else None}


def hub_stage(code: str | None, settings: dict) -> str | None:
    """The hub pipeline stage a CRM stage code means: ``stage_ids`` read backwards."""
    return reverse(settings.get("stage_ids") or {}).get(code or "")


def sent_state(sent: dict, lead: dict) -> dict:
    """What a push sent, as the echo check reads it, beside the lead as the hub had it."""
    return {"status": text(sent["status"]), "user": text(sent["user"]), "hub": hub_values(lead)}


SCORE_KEYS = ("class", "probability", "value")


def score_values(lead: dict, settings: dict) -> dict:
    """``{<CRM field>: value}`` for the score parts ``score_fields`` maps; empty when the lead
    has no score. A probability not learned yet is left out, never sent as 0."""
    score, fields = lead.get("score"), settings.get("score_fields") or {}
    if not score or not fields:
        return {}
    probability = score.get("probability")
    values = {"class": score.get("class"), "value": score.get("value"),
              "probability": None if probability is None else round(probability * 100)}
    return {field: values[key] for key, field in fields.items() if field and values.get(key) is not None}
