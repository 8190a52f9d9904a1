"""Pipelines of stages that refine ``in_progress`` (config ``pipelines``).

A lead follows the first pipeline whose ``when`` matches its first touch, else
``default_pipeline``; it is chosen when the lead first enters a stage. Taking a lead
``in_progress`` puts it at the stage it was last at in its pipeline (a closed lead reopened
resumes where it stopped, with a new stay and a new deadline from now), or at the pipeline's
first stage the first time; any other status takes it off its stage.
Entering a stage with a ``limit`` sets the lead's deadline and starts the SLA's escalation chain
(head, then director, as ``hub.rules.sla`` runs it); leaving the stage, or any status change,
stops the chain. Every stay is one ``stage_visits`` row and two history entries
(``stage_entered``, ``stage_left``).
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.config.schema import CLOSING_OUTCOMES
from hub.durations import format_duration
from hub.rules import history, sla, timers
from hub.rules.tasks import business_hours
from hub.store.models import Lead, StageVisit

NEXT = "next"


class StageError(ValueError):
    """A stage or outcome the lead's pipeline does not offer; ``field`` names the input."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def pipelines(config) -> dict:
    return config.get("pipelines") or {}


def matches(when: dict, lead: Lead) -> bool:
    attributes = {"channel": lead.channel, **(lead.source or {})}
    return all(attributes.get(key) in (accepted if isinstance(accepted, list) else [accepted])
               for key, accepted in when.items())


def pipeline_for(config, lead: Lead) -> str | None:
    """The lead's pipeline: the one it follows, else the first whose ``when`` matches, else the default."""
    if lead.pipeline in pipelines(config):
        return lead.pipeline
    chosen = next((name for name, pipeline in pipelines(config).items()
                   if pipeline.get("when") is not None and matches(pipeline["when"], lead)), None)
    return chosen or config.get("default_pipeline")


def stage_names(config, pipeline: str | None) -> list[str]:
    return [stage["name"] for stage in pipelines(config).get(pipeline, {}).get("stages", [])]


def all_stage_names(config) -> list[str]:
    """Every pipeline's stages, each name once, in the config's order."""
    return list(dict.fromkeys(name for pipeline in pipelines(config) for name in stage_names(config, pipeline)))


def stage_of(config, pipeline: str, name: str) -> dict | None:
    return next((s for s in pipelines(config).get(pipeline, {}).get("stages", []) if s["name"] == name), None)


def next_stage(config, pipeline: str | None, name: str | None) -> str | None:
    names = stage_names(config, pipeline)
    if name not in names:
        return None
    position = names.index(name)
    return names[position + 1] if position + 1 < len(names) else None


def outcomes_at(config, lead: Lead) -> dict[str, str]:
    """The named outcomes offered at the lead's stage: the pipeline's and the stage's own."""
    if not lead.stage or lead.pipeline not in pipelines(config):
        return {}
    stage = stage_of(config, lead.pipeline, lead.stage) or {}
    return {**pipelines(config)[lead.pipeline]["outcomes"], **stage.get("outcomes", {})}


def outcome_labels_at(config, lead: Lead) -> dict[str, str]:
    """The labels the config gives the outcomes offered at the lead's stage, each from where
    the outcome is offered (a stage's own outcome replaces the pipeline's of that name)."""
    if not lead.stage or lead.pipeline not in pipelines(config):
        return {}
    stage = stage_of(config, lead.pipeline, lead.stage) or {}
    inherited = {name: text for name, text in pipelines(config)[lead.pipeline].get("outcome_labels", {}).items()
                 if name not in stage.get("outcomes", {})}
    return {**inherited, **stage.get("outcome_labels", {})}


def target_stage(config, lead: Lead, stage: str) -> str:
    """The stage a move asks for (``next``: the one after the lead's), checked against the lead's pipeline."""
    pipeline = pipeline_for(config, lead)
    if pipeline is None:
        raise StageError("stage", "no pipeline applies to this lead (configure pipelines or default_pipeline)")
    if stage == NEXT:
        following = next_stage(config, pipeline, lead.stage)
        if following is None:
            raise StageError("stage", "no next stage: the lead is at no stage, or at the last one")
        return following
    if stage not in stage_names(config, pipeline):
        raise StageError("stage", f"pipeline {pipeline!r} has no stage {stage!r}; its stages: "
                                  f"{', '.join(stage_names(config, pipeline))}")
    return stage


def resolve_outcome(config, lead: Lead, outcome: str) -> tuple[str | None, str | None]:
    """``(stage, status)`` an outcome leads to: a stage of the pipeline, or a closing status."""
    offered = outcomes_at(config, lead)
    if outcome not in offered:
        raise StageError("outcome", f"outcomes here: {', '.join(offered) or 'none (the lead is at no stage)'}")
    target = offered[outcome]
    if target in CLOSING_OUTCOMES:
        return None, CLOSING_OUTCOMES[target]
    return target_stage(config, lead, target), None


def enter(session: Session, out, hub, lead: Lead, stage: str, actor: str) -> None:
    """The lead is at ``stage`` of its pipeline from now; its limit starts the escalation chain."""
    now, pipeline = hub.now(), pipeline_for(hub.config, lead)
    if lead.stage:
        leave(session, out, hub, lead, "moved", actor)
    limit = (stage_of(hub.config, pipeline, stage) or {}).get("limit")
    lead.pipeline, lead.stage, lead.stage_entered_at = pipeline, stage, now
    lead.stage_due_at = business_hours(hub.config).add(now, limit) if limit else None
    session.add(StageVisit(lead_id=lead.id, pipeline=pipeline, stage=stage, entered_at=now))
    history.record(out, lead.id, "stage_entered", now, actor=actor, pipeline=pipeline, stage=stage,
                   due_at=lead.stage_due_at.isoformat() if lead.stage_due_at else None)
    if limit:
        chain = sla.stored_chain(sla.sla_of(hub.config, lead))
        timers.schedule(out, f"lead:{lead.id}:pipeline:{pipeline}:{stage}:{now.isoformat()}:0", "escalation",
                        lead.stage_due_at, lead_id=lead.id, step=0, sla=chain, stage=stage,
                        since=now.isoformat(), limit=format_duration(limit), pipeline=pipeline)


def leave(session: Session, out, hub, lead: Lead, outcome: str, actor: str) -> None:
    """The lead's stay at its stage ends with ``outcome``; a running stage chain stops (the
    escalation finds the lead elsewhere)."""
    now = hub.now()
    visit = session.scalar(select(StageVisit).where(StageVisit.lead_id == lead.id, StageVisit.left_at.is_(None))
                           .order_by(StageVisit.id.desc()).limit(1))
    seconds = None
    if visit is not None:
        visit.left_at, visit.outcome = now, outcome[:64]
        visit.seconds = seconds = int((now - visit.entered_at).total_seconds())
    history.record(out, lead.id, "stage_left", now, actor=actor, pipeline=lead.pipeline, stage=lead.stage,
                   outcome=outcome, seconds=seconds)
    lead.stage = lead.stage_entered_at = lead.stage_due_at = None


def follow_status(session: Session, out, hub, lead: Lead, actor: str, outcome: str | None = None) -> None:
    """After a status change: ``in_progress`` puts the lead at a stage (``resumed_stage``); any
    other status ends the stay at the current stage (``outcome``: the named outcome that closed it)."""
    if lead.status != "in_progress":
        if lead.stage:
            leave(session, out, hub, lead, outcome or lead.status, actor)
        return
    pipeline = pipeline_for(hub.config, lead)
    if not lead.stage and pipeline:
        enter(session, out, hub, lead, resumed_stage(session, hub.config, lead, pipeline), actor)


def resumed_stage(session: Session, config, lead: Lead, pipeline: str) -> str:
    """The stage a lead taken ``in_progress`` goes to: the one it was last at in ``pipeline``
    (a reopened deal picks up where it stopped rather than starting over), else the first.
    A stage since removed from the config counts as none."""
    names = stage_names(config, pipeline)
    last = session.scalar(select(StageVisit.stage).where(StageVisit.lead_id == lead.id,
                                                         StageVisit.pipeline == pipeline)
                          .order_by(StageVisit.id.desc()).limit(1))
    return last if last in names else names[0]
