"""Reports: channels and campaigns, managers, leads per day; each a chart with its table beside
it, the numbers of ``/api/reports/…``, and a CSV or XLSX download."""
from __future__ import annotations

from flask import abort, render_template, request

from hub.config import CHANNELS
from hub.reports import export, queries
from hub.web import current_hub
from hub.web.console import access
from hub.web.console.blueprint import bp
from hub.web.console.labels import label, value_label
from hub.web.console.leads import download
from hub.web.console.views import roles
from hub.web.reportapi import run

REPORTS = ("channels", "managers", "timeseries", "funnel")
SCORES = "scores"  # with a scoring: section
COLUMNS = {"scores": ("key", "leads", "converted", "conversion", "open", "value", "expected", "value_lost",
                      "unestimated"),
           "channels": ("key", "leads", "converted", "conversion", "first_response_median"),
           "managers": ("key", "leads", "converted", "conversion", "first_response_median", "first_response_p90",
                        "sla_breaches", "escalations", "callbacks")}


@bp.get("/reports")
@roles(*access.SEES_ALL)
def reports():
    args = request.args.to_dict()
    try:
        answers = {name: run(name, args) for name in reports_here()}
    except queries.ReportError as error:
        return render_template("console/reports.html", error=error, args=args, **choices()), 400
    channels = answers["channels"]
    key_labels = [value_label(channels["by"], row["key"]) for row in channels["rows"]]
    channel_labels = {channel: label(channel) for channel in answers["timeseries"]["series"]}
    return render_template("console/reports.html", answers=answers, args=args, key_labels=key_labels,
                           channel_labels=channel_labels, **choices())


def reports_here() -> tuple[str, ...]:
    return (*REPORTS, SCORES) if current_hub().config["scoring"] else REPORTS


def choices() -> dict:
    return {"models": queries.MODELS, "dimensions": queries.DIMENSIONS, "reports": reports_here(),
            "channel_choices": CHANNELS, "pipeline_choices": list(current_hub().config.get("pipelines") or {})}


@bp.get("/reports/<name>.<fmt>")
@roles(*access.SEES_ALL)
def report_download(name: str, fmt: str):
    if name not in reports_here() or fmt not in export.FORMATS:
        abort(404)
    try:
        answer = run(name, request.args.to_dict())
    except queries.ReportError:
        abort(400)
    header, rows = table_of(name, answer)
    return download(fmt, f"report-{name}", header, rows)


FUNNEL_COLUMNS = ("stage", "entered", "reached", "conversion", "at_stage", "time_in_stage_median")


def table_of(name: str, answer: dict) -> tuple[tuple, list]:
    if name == "funnel":  # one row per stage, pipeline by pipeline, then each one's won and lost
        rows = [[entry["pipeline"], *(row[column] for column in FUNNEL_COLUMNS)]
                for entry in answer["pipelines"] for row in entry["stages"]]
        rows += [[entry["pipeline"], outcome, entry[outcome], None, None, None, None]
                 for entry in answer["pipelines"] for outcome in ("won", "lost")]
        return ("pipeline", *FUNNEL_COLUMNS), rows
    if name == "timeseries":
        channels = tuple(answer["series"])
        return ("day", *channels), [[day, *(answer["series"][c][i] for c in channels)]
                                    for i, day in enumerate(answer["days"])]
    header = COLUMNS[name]
    first = {"channels": answer.get("by"), "managers": "assignee", "scores": "class"}[name]
    header = (first, *header[1:])
    return header, [[row[column] for column in COLUMNS[name]] for row in answer["rows"]]
