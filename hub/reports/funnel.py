"""The funnel: for the leads created in the period (whole days in the team's time zone) that
pass the filters, per pipeline, how many reached each stage, the conversion from each stage to
the next, the median time a stay at a stage took, how many are at it now, and how many were
won and lost.

Every figure is one SQL aggregation over ``stage_visits`` (one row per stay) joined to the
period's leads, so the database does the counting: no lead is loaded into Python. A lead
*reached* a stage when it entered that stage or any later one (stages may be skipped); the
order is the config's. Source filters match the attributed touch, as in the other reports.
"""
from __future__ import annotations

from sqlalchemy import String, and_, case, cast, distinct, func, literal, or_, select

from hub.reports.queries import CAMPAIGN_KEYS, Query
from hub.store.models import Lead, StageVisit

CLOSED = {"converted": "won", "junk": "lost"}


def funnel(session, query: Query, pipelines: dict) -> list[dict]:
    """One entry per configured pipeline, in the config's order."""
    cohort = cohort_conditions(query)
    entered = pairs(session, select(StageVisit.pipeline, StageVisit.stage, func.count(distinct(StageVisit.lead_id)))
                    .join(Lead, Lead.id == StageVisit.lead_id).where(*cohort)
                    .group_by(StageVisit.pipeline, StageVisit.stage))
    furthest = furthest_counts(session, cohort, pipelines)
    medians = pairs(session, median_statement(cohort))
    current = pairs(session, select(Lead.pipeline, Lead.stage, func.count()).where(*cohort, Lead.stage.is_not(None))
                    .group_by(Lead.pipeline, Lead.stage))
    closed = pairs(session, select(Lead.pipeline, Lead.status, func.count())
                   .where(*cohort, Lead.pipeline.is_not(None), Lead.status.in_(tuple(CLOSED)))
                   .group_by(Lead.pipeline, Lead.status))
    return [pipeline_rows(name, [stage["name"] for stage in pipeline["stages"]], entered, furthest, medians,
                          current, closed) for name, pipeline in pipelines.items()]


def pairs(session, statement) -> dict[tuple, float]:
    return {(first, second): value for first, second, value in session.execute(statement)}


def cohort_conditions(query: Query) -> list:
    conditions = [Lead.created_at >= query.start, Lead.created_at < query.end]
    columns = {"channel": Lead.channel, "status": Lead.status, "assignee": Lead.assignee_id}
    for key, value in query.filters:
        conditions.append((columns[key] if key in columns else attributed(key, query.model)) == value)
    return conditions


def source_value(column, key: str):
    return column[key].as_string()


def attributed(key: str, model: str):
    """A source field of the touch the model attributes the lead to, as SQL (see
    ``queries.attributed``): the last touch's fields stand in only when the lead has them."""
    first = source_value(Lead.source, key)
    no_last = or_(Lead.last_source.is_(None), cast(Lead.last_source, String).in_(("{}", "null")))
    last = case((no_last, first), else_=source_value(Lead.last_source, key))
    if model == "first":
        return first
    if model == "last":
        return last
    tagged = or_(*(func.coalesce(source_value(Lead.last_source, name), literal("")) != "" for name in CAMPAIGN_KEYS))
    return case((and_(~no_last, tagged), last), else_=first)


def position(pipelines: dict):
    """A stay's stage as its place in its pipeline (the config's order)."""
    whens = [(and_(StageVisit.pipeline == name, StageVisit.stage == stage["name"]), index)
             for name, pipeline in pipelines.items() for index, stage in enumerate(pipeline["stages"])]
    return case(*whens, else_=None) if whens else literal(None)


def furthest_counts(session, cohort: list, pipelines: dict) -> dict[tuple, int]:
    """(pipeline, place of the furthest stage a lead entered) -> leads."""
    per_lead = (select(StageVisit.pipeline.label("pipeline"), func.max(position(pipelines)).label("furthest"))
                .join(Lead, Lead.id == StageVisit.lead_id).where(*cohort)
                .group_by(StageVisit.lead_id, StageVisit.pipeline).subquery())
    return pairs(session, select(per_lead.c.pipeline, per_lead.c.furthest, func.count())
                 .where(per_lead.c.furthest.is_not(None)).group_by(per_lead.c.pipeline, per_lead.c.furthest))


def median_statement(cohort: list):
    """The median of the finished stays' seconds per stage: the middle row (or the mean of
    the two middle rows) by window functions, which SQLite and PostgreSQL both have."""
    partition = (StageVisit.pipeline, StageVisit.stage)
    ranked = (select(StageVisit.pipeline, StageVisit.stage, StageVisit.seconds,
                     func.row_number().over(partition_by=partition, order_by=StageVisit.seconds).label("rank"),
                     func.count().over(partition_by=partition).label("stays"))
              .join(Lead, Lead.id == StageVisit.lead_id).where(*cohort, StageVisit.seconds.is_not(None))
              .subquery())
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
