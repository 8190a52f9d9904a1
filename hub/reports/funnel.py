"""The funnel: for the leads created in the period (whole days in the team's time zone) that
pass the filters, per pipeline, how many reached each stage, the conversion from each stage to
the next, the median time a stay at a stage took, how many are at it now, and how many were
won and lost.

Every figure is one SQL aggregation, so the database does the counting and no lead is loaded
into Python: the stays are ``stage_visits`` rows of the period, found by the lead's creation
time each row carries (an index holds every column read, so the table itself is not read),
and joined to the lead's facts only when a filter asks; where the leads are now and how they
closed come from ``lead_facts``. A lead
*reached* a stage when it entered that stage or any later one (stages may be skipped); the
order is the config's. Source filters match the attributed touch, as in the other reports.
"""
from __future__ import annotations

from sqlalchemy import and_, case, distinct, func, literal, or_, select

from hub.reports.queries import Query, filtered, in_period
from hub.store.models import LeadFact, StageVisit

CLOSED = {"converted": "won", "junk": "lost"}


def funnel(session, query: Query, pipelines: dict) -> list[dict]:
    """One entry per configured pipeline, in the config's order."""
    leads = func.count(distinct(StageVisit.lead_id))
    entered = pairs(session, stays(select(StageVisit.pipeline, StageVisit.stage, leads), query)
                    .group_by(StageVisit.pipeline, StageVisit.stage))
    furthest = furthest_counts(session, query, pipelines)
    medians = pairs(session, median_statement(query))
    current = pairs(session, in_period(select(LeadFact.pipeline, LeadFact.stage, func.count()), query)
                    .where(LeadFact.stage.is_not(None)).group_by(LeadFact.pipeline, LeadFact.stage))
    closed = pairs(session, in_period(select(LeadFact.pipeline, LeadFact.status, func.count()), query)
                   .where(LeadFact.pipeline.is_not(None), LeadFact.status.in_(tuple(CLOSED)))
                   .group_by(LeadFact.pipeline, LeadFact.status))
    return [pipeline_rows(name, [stage["name"] for stage in pipeline["stages"]], entered, furthest, medians,
                          current, closed) for name, pipeline in pipelines.items()]


def pairs(session, statement) -> dict[tuple, float]:
    return {(first, second): value for first, second, value in session.execute(statement)}


def stays(statement, query: Query):
    """The stays of the period's leads (by the lead's creation time, copied into each stay)
    that pass the filters; only a filter joins the lead's facts."""
    statement = statement.where(StageVisit.lead_created_at >= query.start, StageVisit.lead_created_at < query.end)
    if not query.filters:
        return statement
    return filtered(statement.join(LeadFact, LeadFact.lead_id == StageVisit.lead_id), query)


def position(pipelines: dict):
    """A stay's stage as its place in its pipeline (the config's order)."""
    whens = [(and_(StageVisit.pipeline == name, StageVisit.stage == stage["name"]), index)
             for name, pipeline in pipelines.items() for index, stage in enumerate(pipeline["stages"])]
    return case(*whens, else_=None) if whens else literal(None)


def furthest_counts(session, query: Query, pipelines: dict) -> dict[tuple, int]:
    """(pipeline, place of the furthest stage a lead entered) -> leads."""
    per_lead = (stays(select(StageVisit.pipeline.label("pipeline"), func.max(position(pipelines)).label("furthest")),
                      query).group_by(StageVisit.lead_id, StageVisit.pipeline).subquery())
    return pairs(session, select(per_lead.c.pipeline, per_lead.c.furthest, func.count())
                 .where(per_lead.c.furthest.is_not(None)).group_by(per_lead.c.pipeline, per_lead.c.furthest))


def median_statement(query: Query):
    """The median of the finished stays' seconds per stage: the middle row (or the mean of
    the two middle rows) by window functions, which SQLite and PostgreSQL both have."""
    partition = (StageVisit.pipeline, StageVisit.stage)
    ranked = stays(select(StageVisit.pipeline, StageVisit.stage, StageVisit.seconds,
                          func.row_number().over(partition_by=partition, order_by=StageVisit.seconds).label("rank"),
                          func.count().over(partition_by=partition).label("stays")), query) \
        .where(StageVisit.seconds.is_not(None)).subquery()
    middle = or_(ranked.c.rank == (ranked.c.stays + 1) // 2, ranked.c.rank == (ranked.c.stays + 2) // 2)
    return (select(ranked.c.pipeline, ranked.c.stage, func.avg(ranked.c.seconds)).where(middle)
            .group_by(ranked.c.pipeline, ranked.c.stage))


def pipeline_rows(name: str, stages: list[str], entered: dict, furthest: dict, medians: dict, current: dict,
                  closed: dict) -> dict:
    reached, running = [], 0
    for index in reversed(range(len(stages))):
        running += furthest.get((name, index), 0)
        reached.insert(0, running)
    rows = []
    for index, stage in enumerate(stages):
        following = reached[index + 1] if index + 1 < len(stages) else None
        median = medians.get((name, stage))
        rows.append({"stage": stage, "entered": entered.get((name, stage), 0), "reached": reached[index],
                     "conversion": rate(following, reached[index]), "at_stage": current.get((name, stage), 0),
                     "time_in_stage_median": float(median) if median is not None else None})
    won, lost = (closed.get((name, status), 0) for status in CLOSED)
    return {"pipeline": name, "leads": reached[0] if reached else 0, "stages": rows, "won": won, "lost": lost,
            "won_rate": rate(won, reached[0] if reached else 0)}


def rate(part: int | None, whole: int) -> float | None:
    """``part / whole`` to four places; ``None`` after the last stage."""
    if part is None:
        return None
    return round(part / whole, 4) if whole else 0.0
