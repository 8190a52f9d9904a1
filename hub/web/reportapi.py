"""``GET /api/reports/<report>``: the console's reports as JSON, behind the API's token."""
from __future__ import annotations

from flask import jsonify, request

from hub.reports import funnel, queries
from hub.web import current_hub
from hub.web.api import bp, only_filters
from hub.web.errors import HubError

PARAMETERS = ("from", "to", "model", *queries.FILTERS)


def run(report: str, args) -> dict:
    """The report's answer for a query string; shared with the console. A bad parameter is a
    ``queries.ReportError`` naming it."""
    hub = current_hub()
    query = queries.parse_query(args, hub.config["timezone"], hub.now().astimezone(queries.ZoneInfo(
        hub.config["timezone"])).date())
    answer = {"from": query.since.isoformat(), "to": query.until.isoformat(), "timezone": hub.config["timezone"],
              "model": query.model, "filters": dict(query.filters)}
    with hub.db.read() as session:
        if report == "channels":
            by = args.get("by") or "channel"
            return answer | {"by": by, "rows": queries.channels(session, query, by)}
        if report == "managers":
            return answer | {"rows": queries.managers(session, query)}
        if report == "funnel":
            chosen = chosen_pipelines(hub.config.get("pipelines") or {}, args.get("pipeline"))
            return answer | {"pipelines": funnel.funnel(session, query, chosen)}
        if report == "scores":
            return answer | queries.scores(session, query)
        return answer | queries.timeseries(session, query)


def chosen_pipelines(pipelines: dict, name: str | None) -> dict:
    """Every configured pipeline, or only the one ``pipeline`` names."""
    if not name:
        return pipelines
    if name not in pipelines:
        raise queries.ReportError("pipeline", f"no pipeline is called {name!r}; configured: "
                                              f"{', '.join(pipelines) or 'none'}")
    return {name: pipelines[name]}


def api_report(report: str, *extra: str):
    only_filters(*PARAMETERS, *extra)
    try:
        return jsonify(run(report, request.args))
    except queries.ReportError as error:
        raise HubError(400, f"{error.field}: {error}", {error.field: str(error)}) from None


@bp.get("/reports/channels")
def report_channels():
    return api_report("channels", "by")


@bp.get("/reports/managers")
def report_managers():
    return api_report("managers")


@bp.get("/reports/timeseries")
def report_timeseries():
    return api_report("timeseries")


@bp.get("/reports/funnel")
def report_funnel():
    return api_report("funnel", "pipeline")


@bp.get("/reports/scores")
def report_scores():
    return api_report("scores")
