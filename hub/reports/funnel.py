"""The funnel: for the leads created in the period (whole days in the team's time zone) that
pass the filters, per pipeline, how many reached each stage, the conversion from each stage to
the next, the median time a stay at a stage took, how many are at it now, and how many were
won and lost.

The stays are the period's frame (``hub.reports.frame``): each stay carries its lead's creation
time, so the period needs no join, and a filter keeps the stays of the leads that pass it. A
lead *reached* a stage when it entered that stage or any later one (stages may be skipped);
the order is the config's. Source filters match the attributed touch, as in the other reports.
"""
from __future__ import annotations

import numpy as np

from hub.reports.queries import Groups, Query, load_leads, passing

CLOSED = {"converted": "won", "junk": "lost"}


def funnel(session, query: Query, pipelines: dict) -> list[dict]:
    """One entry per configured pipeline, in the config's order."""
    frame = load_leads(session, query, [], "pipeline", "stage", "status",
                       parts={"stays": {"pipeline", "stage", "seconds"}})
    keep = passing(session, frame, query)
    stays = {name: frame.column("stays", name) for name in ("lead_id", "pipeline", "stage", "seconds")}
    leads = {name: frame.column("leads", name) for name in ("lead_id", "pipeline", "stage")}
    places = [(name, stage["name"]) for name, pipeline in pipelines.items() for stage in pipeline["stages"]]
    place_of = place_lookup(frame, places)
    stay_place = place_of[stays["pipeline"], stays["stage"]]
    counted = stay_place >= 0
    if query.filters:
        counted &= np.isin(stays["lead_id"], leads["lead_id"][keep])
    entered, furthest = entries(*(stays[name][counted] for name in ("lead_id", "pipeline", "stage")),
                                stay_place[counted], len(places))
    medians = Groups(stay_place[counted], len(places)).median(stays["seconds"][counted])
    lead_place = place_of[leads["pipeline"], leads["stage"]][keep]
    current = np.bincount(lead_place[lead_place >= 0], minlength=len(places))
    by_place = {"entered": {place: int(count) for place, count in zip(places, entered, strict=True)},
                "medians": {place: None if np.isnan(value) else float(value)
                            for place, value in zip(places, medians, strict=True)},
                "current": {place: int(count) for place, count in zip(places, current, strict=True)}}
    return [pipeline_rows(name, [stage["name"] for stage in pipeline["stages"]], by_place["entered"],
                          furthest_by_stage(furthest, places, name), by_place["medians"], by_place["current"],
                          closed_counts(frame, keep, name)) for name, pipeline in pipelines.items()]


def place_lookup(frame, places: list[tuple[str, str]]) -> np.ndarray:
    """[pipeline code, stage code] -> the stage's place among all configured stages, -1 if none."""
    lookup = np.full((len(frame.values("pipeline")), len(frame.values("stage"))), -1, np.int64)
    for place, (pipeline, stage) in enumerate(places):
        if frame.code("pipeline", pipeline) >= 0 and frame.code("stage", stage) >= 0:
            lookup[frame.code("pipeline", pipeline), frame.code("stage", stage)] = place
    return lookup


def entries(lead: np.ndarray, pipeline: np.ndarray, stage: np.ndarray, place: np.ndarray,
            places: int) -> tuple[np.ndarray, np.ndarray]:
    """Per place: the leads that entered it, and the leads for which it was the furthest one
    entered in its pipeline. The stays come grouped by lead and, within a lead, sorted by
    pipeline and stage (``frame.read_tables``), so a repeated stay follows its first and a
    lead's stays in one pipeline are one run, whose largest place is its furthest."""
    if not len(place):
        return np.zeros(places, np.int64), np.zeros(places, np.int64)
    same_pipeline = (lead[1:] == lead[:-1]) & (pipeline[1:] == pipeline[:-1])
    repeated = np.concatenate([[False], same_pipeline & (stage[1:] == stage[:-1])])
    furthest = np.maximum.reduceat(place, np.flatnonzero(np.concatenate([[True], ~same_pipeline])))
    return np.bincount(place[~repeated], minlength=places), np.bincount(furthest, minlength=places)


def furthest_by_stage(furthest: np.ndarray, places: list, name: str) -> dict[tuple, int]:
    """(pipeline, index of the stage in it) -> leads that went no further."""
    mine = [count for (pipeline, _), count in zip(places, furthest, strict=True) if pipeline == name]
    return {(name, index): int(count) for index, count in enumerate(mine)}


def closed_counts(frame, keep: np.ndarray, name: str) -> dict[tuple, int]:
    mine = keep & (frame.column("leads", "pipeline") == frame.code("pipeline", name))
    status = frame.column("leads", "status")[mine]
    return {(name, closed): int(np.count_nonzero(status == frame.code("status", closed))) for closed in CLOSED}


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
