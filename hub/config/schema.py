"""The config's shape: every section, every key, with marshmallow. A key no section declares is
reported with the nearest known one."""
from __future__ import annotations

import difflib
import zoneinfo
from enum import StrEnum

from marshmallow import INCLUDE, Schema, ValidationError, fields, post_load, validate, validates_schema

from hub.durations import DAYS, opening_window, parse_duration
from hub.mapping import SOURCE_KEYS


class Role(StrEnum):
    MANAGER = "manager"    # works their own leads
    HEAD = "head"          # first to hear of a lead nobody works
    DIRECTOR = "director"  # next in the escalation chain
    ADMIN = "admin"        # runs the hub: inbox, dead letters, sources, the config


ROLES = tuple(Role)
ESCALATION_ROLES = (Role.HEAD, Role.DIRECTOR)  # an escalation step names one of these or a person
LOCALES = ("ru", "en")
CHANNELS = ("form", "mail", "call", "sms")
SCORE_CLASSES = ("A", "B", "C")  # best first
# what the learned probability may be computed from: the facts every lead has (``fields.<name>``
# adds a form field)
MODEL_FIELDS = ("channel", "form", "mailbox", "called_number", "utm_source", "utm_medium", "utm_campaign",
                "utm_term", "utm_content", "country", "region", "business_hours", "known_client",
                "has_email", "has_phone")


def did_you_mean(value: str, choices) -> str:
    close = difflib.get_close_matches(str(value), sorted(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f" (one of {', '.join(sorted(choices))})"


def unknown_keys(original, known) -> dict[str, list[str]]:
    if not isinstance(original, dict):
        return {}
    return {key: [f"unknown key{did_you_mean(key, known)}"] for key in original if key not in known}


class Section(Schema):
    """A config section: every key it may hold is declared, and a key that is not (a typo) is
    reported with the nearest known key."""

    class Meta:
        unknown = INCLUDE  # only keys that known_keys admits get this far

    def known_keys(self, original: dict) -> set[str] | None:
        """None: nothing to check here (the section's own problem is reported elsewhere)."""
        return {field.data_key or name for name, field in self.load_fields.items()}

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def refuse_unknown_keys(self, data, original, **kwargs):
        known = self.known_keys(original) if isinstance(original, dict) else None
        problems = unknown_keys(original, known) if known is not None else {}
        if problems:
            raise ValidationError(problems)


class Values(fields.Field):
    """One accepted value or a list of them, as a list."""

    def _deserialize(self, value, attr, data, **kwargs):
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, (str, int, float, bool)) for v in values):
            raise ValidationError("a value or a list of values")
        return values


class Duration(fields.String):
    """``"90s"``, ``"5m"``, ``"1h"``, ``"2d"``, ``"500ms"``, parsed once into a ``timedelta``."""

    def __init__(self, **kwargs):
        if isinstance(kwargs.get("load_default"), str):
            kwargs["load_default"] = parse_duration(kwargs["load_default"])
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parse_duration(text)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class TimeZone(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        name = super()._deserialize(value, attr, data, **kwargs)
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValidationError(f"unknown time zone {name!r}") from exc
        return name


class BusinessHoursSchema(Section):
    timezone = TimeZone(load_default=None, allow_none=True)
    weekly = fields.Dict(keys=fields.String(validate=validate.OneOf(DAYS)),
                         values=fields.List(fields.String()), load_default=dict)
    holidays = fields.List(fields.Date(), load_default=list)

    @validates_schema
    def check_windows(self, data, **kwargs):
        for day, windows in data.get("weekly", {}).items():
            for index, window in enumerate(windows):
                try:
                    opening_window(window)
                except ValueError as exc:
                    raise ValidationError(f"{window!r}: {exc}", f"weekly.{day}.{index}") from exc


class EscalationStepSchema(Section):
    to = fields.String(required=True)  # a role (head, director) or a team member id
    after = Duration(required=True)


class SlaSchema(Section):
    first_response = Duration(load_default="1h")
    remind_every = Duration(load_default="1h", allow_none=True)
    escalation = fields.List(fields.Nested(EscalationStepSchema), load_default=lambda: [
        {"to": Role.HEAD, "after": parse_duration("1h")}, {"to": Role.DIRECTOR, "after": parse_duration("1d")}])
    stage_limits = fields.Dict(keys=fields.String(validate=validate.OneOf(("new", "in_progress"))),
                               values=Duration(), load_default=dict)


class AssignSchema(Section):
    to = fields.List(fields.String(), load_default=list)
    group = fields.String(load_default=None, allow_none=True)
    strategy = fields.String(load_default="round_robin",
                             validate=validate.OneOf(("round_robin", "least_busy", "weighted", "manual")))
    # strategy manual: the lead waits unassigned; ``by`` (a role or a team id) gets the task to
    # assign it, due ``within`` (default: the SLA's first_response), then ``escalate_to`` is told
    by = fields.String(load_default="head")
    within = Duration(load_default=None, allow_none=True)
    escalate_to = fields.String(load_default="director")


class FieldValues(fields.Field):
    """A form field's condition: ``true`` (filled in), ``false`` (missing or empty), or the
    values it may hold."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            return value
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
            raise ValidationError("true, false, or a value or a list of values")
        return [str(v) for v in values]


class LeadConditionSchema(Section):
    """What a rule can ask about a lead: routing rules and scoring rules share it."""

    channel = fields.List(fields.String(validate=validate.OneOf(CHANNELS)))
    form = fields.List(fields.String())
    mailbox = fields.List(fields.String())
    called_number = fields.List(fields.String())
    utm_source = fields.List(fields.String())
    utm_medium = fields.List(fields.String())
    utm_campaign = fields.List(fields.String())
    utm_term = fields.List(fields.String())
    utm_content = fields.List(fields.String())
    country = fields.List(fields.String())
    region = fields.List(fields.String())
    words = fields.List(fields.String())
    business_hours = fields.Boolean()
    known_client = fields.Boolean()
    has_email = fields.Boolean()
    has_phone = fields.Boolean()
    fields_ = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=200)), values=FieldValues(),
                          data_key="fields")  # the form's own fields (budget, company, ...)

    @post_load
    def restore_keys(self, data, **kwargs):
        if "fields_" in data:
            data["fields"] = data.pop("fields_")
        return data


class RoutingConditionSchema(LeadConditionSchema):
    """Routing may also ask about the lead's score (with a ``scoring:`` section)."""

    class_ = fields.List(fields.String(validate=validate.OneOf(SCORE_CLASSES)), data_key="class")
    min_probability = fields.Float(validate=validate.Range(min=0, max=1))
    max_probability = fields.Float(validate=validate.Range(min=0, max=1))

    @post_load
    def restore_keys(self, data, **kwargs):
        data = super().restore_keys(data, **kwargs)
        if "class_" in data:
            data["class"] = data.pop("class_")
        return data


class RoutingRuleSchema(Section):
    name = fields.String(required=True)
    when = fields.Nested(RoutingConditionSchema, load_default=dict)
    assign = fields.Nested(AssignSchema, load_default=lambda: AssignSchema().load({}))
    sla = fields.Nested(SlaSchema, load_default=None, allow_none=True)


STAGE_NAME = r"^[A-Za-z0-9_-]{1,40}$"
CLOSING_OUTCOMES = {"won": "converted", "lost": "junk"}  # an outcome leading here closes the lead
# outcome targets, and the names the status chains use for their timers: no stage is called so
RESERVED_STAGE_NAMES = ("next", *CLOSING_OUTCOMES, "new", "in_progress", "converted", "junk", "archived", "assign")


class OutcomeSchema(Section):
    to = fields.String(required=True)
    label = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=80))


class OutcomeTarget(fields.Field):
    """Where a named outcome leads (``next``, ``won``, ``lost`` or a stage), or that and the
    words its button shows instead of the name: ``{to: lost, label: "Refused"}``."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            return {"to": value, "label": None}
        if isinstance(value, dict):
            return OutcomeSchema().load(value)
        raise ValidationError("next, won, lost or a stage, or {to: ..., label: ...}")


def outcomes_field(**kwargs) -> fields.Dict:
    return fields.Dict(keys=fields.String(validate=validate.Regexp(STAGE_NAME)), values=OutcomeTarget(), **kwargs)


def split_labels(data: dict) -> dict:
    """Loaded, ``outcomes`` maps each name to its target (the short form) and ``outcome_labels``
    each labelled outcome to its label."""
    outcomes = data.get("outcomes", {})
    data["outcome_labels"] = {name: value["label"] for name, value in outcomes.items()
                              if isinstance(value, dict) and value.get("label")}
    data["outcomes"] = {name: target_of(value) for name, value in outcomes.items()}
    return data


def target_of(value) -> str:
    return value["to"] if isinstance(value, dict) else value


class StageSchema(Section):
    """One stage of a pipeline: its limit (counted in business hours) starts the escalation
    chain; its outcomes add to the pipeline's."""

    name = fields.String(required=True, validate=[validate.Regexp(STAGE_NAME),
                                                  validate.NoneOf(
        RESERVED_STAGE_NAMES, error="{input!r} is reserved (next, won, lost and the lead statuses)")])
    limit = Duration(load_default=None, allow_none=True)
    outcomes = outcomes_field(load_default=dict)

    @post_load
    def labels(self, data, **kwargs):
        return split_labels(data)


class PipelineConditionSchema(Section):
    channel = fields.List(fields.String(validate=validate.OneOf(CHANNELS)))
    locals().update({key: Values() for key in SOURCE_KEYS})  # form, mailbox, utm_*, ...


class SalesPipelineSchema(Section):
    """A pipeline ("theme"): ordered stages refining ``in_progress``, and named outcomes that
    lead to ``next``, another stage, ``won`` (converted) or ``lost`` (junk)."""

    when = fields.Nested(PipelineConditionSchema, load_default=None, allow_none=True)
    stages = fields.List(fields.Nested(StageSchema), required=True, validate=validate.Length(min=1))
    outcomes = outcomes_field(load_default=lambda: {"won": "won", "lost": "lost"})

    @validates_schema
    def check_stages(self, data, **kwargs):
        names = [stage["name"] for stage in data.get("stages", [])]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValidationError(f"stage names must differ: {', '.join(duplicates)}", "stages")
        targets = {"next", *CLOSING_OUTCOMES, *names}
        for index, stage in enumerate(data.get("stages", [])):
            check_outcomes(stage["outcomes"], targets, f"stages.{index}.outcomes")
        check_outcomes(data.get("outcomes", {}), targets, "outcomes")

    @post_load
    def labels(self, data, **kwargs):
        return split_labels(data)


def check_outcomes(outcomes: dict, targets: set[str], where: str) -> None:
    for name, value in outcomes.items():
        target = target_of(value)
        if target not in targets:
            raise ValidationError(f"{target!r} is not next, won, lost or a stage of this pipeline"
                                  f"{did_you_mean(target, targets)}", f"{where}.{name}")


class CallbacksSchema(Section):
    ladder = fields.List(Duration(), load_default=lambda: [parse_duration(d) for d in ("5m", "30m", "3h", "1d")])
    then = fields.String(load_default="archive", validate=validate.OneOf(("archive", "keep")))


class MemberSchema(Section):
    id = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_.-]{1,64}$"))
    name = fields.String(required=True)
    role = fields.String(load_default=Role.MANAGER, validate=validate.OneOf(ROLES))
    email = fields.Email(load_default=None, allow_none=True)
    phone = fields.String(load_default=None, allow_none=True)
    away = fields.Boolean(load_default=False)
    weight = fields.Integer(load_default=1, validate=validate.Range(min=1))
    groups = fields.List(fields.String(), load_default=list)


class FormSchema(Section):
    mapping = fields.String(load_default="generic")
    required = fields.List(fields.String(), load_default=list)
    secret_env = fields.String(load_default=None, allow_none=True)
    redirect = fields.Url(load_default=None, allow_none=True)
    honeypot = fields.String(load_default="website", allow_none=True)
    cors_origins = fields.List(fields.String(), load_default=list)
    quiet_after = Duration(load_default="6h", allow_none=True)  # silence alarm, in business hours


class MailboxSchema(Section):
    """One IMAP mailbox polled by ``hub mail poll``."""

    host = fields.String(required=True)
    port = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=65535))
    ssl = fields.Boolean(load_default=True)
    starttls = fields.Boolean(load_default=False)
    ssl_ca_file = fields.String(load_default=None, allow_none=True)  # trust this CA (self-signed)
    username = fields.String(required=True)
    password_env = fields.String(load_default=None, allow_none=True)
    folder = fields.String(load_default="INBOX")
    after_commit = fields.String(load_default="keep", validate=validate.OneOf(("keep", "seen", "move")))
    move_to = fields.String(load_default=None, allow_none=True)
    poll_interval = Duration(load_default="60s")
    stale_after = Duration(load_default="15m")
    timeout = Duration(load_default="30s")
    batch_size = fields.Integer(load_default=200, validate=validate.Range(min=1, max=1000))
    own_addresses = fields.List(fields.String(), load_default=list)
    company_phones = fields.List(fields.String(), load_default=list)
    quiet_after = Duration(load_default="6h", allow_none=True)

    @validates_schema
    def check_actions(self, data, **kwargs):
        if data.get("after_commit") == "move" and not data.get("move_to"):
            raise ValidationError("after_commit: move needs a move_to folder", "move_to")
        if data.get("move_to") and data.get("move_to") == data.get("folder", "INBOX"):
            raise ValidationError("move_to must differ from folder", "move_to")
        if data.get("ssl", True) and data.get("starttls"):
            raise ValidationError("use either ssl (implicit TLS) or starttls, not both", "starttls")


class SmtpSchema(Section):
    host = fields.String(load_default="127.0.0.1")
    port = fields.Integer(load_default=25)
    from_ = fields.String(data_key="from", load_default="Lead Hub <hub@localhost>")
    starttls = fields.Boolean(load_default=False)
    ssl = fields.Boolean(load_default=False)
    username = fields.String(load_default=None, allow_none=True)
    password_env = fields.String(load_default=None, allow_none=True)
    timeout = fields.Float(load_default=10.0)

    @post_load
    def restore_from_key(self, data, **kwargs):
        data["from"] = data.pop("from_")  # "from" is a Python keyword, not a config problem
        return data


class EmailSchema(Section):
    sender = fields.String(load_default="log")
    smtp = fields.Nested(SmtpSchema, load_default=lambda: SmtpSchema().load({}))


class SmsSchema(Section):
    """Beside its own keys, one section per SMS sender (``twilio: {...}``), checked against the
    sender module's declared settings."""

    inbound = fields.Dict(keys=fields.String(), values=fields.Dict(), load_default=dict)
    sender = fields.String(load_default="log")
    quiet_hours = fields.String(load_default="21:00-09:00", allow_none=True,
                                validate=validate.Regexp(r"^\d{2}:\d{2}-\d{2}:\d{2}$"))
    max_segments = fields.Integer(load_default=3, validate=validate.Range(min=1, max=10))

    def known_keys(self, original: dict) -> set[str] | None:
        from hub import registry

        return super().known_keys(original) | set(registry.senders("sms"))


class ConditionSchema(Section):
    channel = fields.List(fields.String(validate=validate.OneOf(CHANNELS)))
    call_status = fields.List(fields.String(validate=validate.OneOf(("answered", "missed"))))
    mobile = fields.Boolean()
    locals().update({key: Values() for key in SOURCE_KEYS})  # utm_*, form, mailbox, ...


class ConfirmationSchema(Section):
    name = fields.String(load_default=None, allow_none=True)
    channel = fields.String(required=True, validate=validate.OneOf(("sms", "email")))
    when = fields.Nested(ConditionSchema, load_default=dict)
    text = fields.String(required=True, validate=validate.Length(min=1))
    subject = fields.String(load_default="Ваша заявка №{number}")


class LimitsSchema(Section):
    body_bytes = fields.Integer(load_default=1024 * 1024, validate=validate.Range(min=1024))
    requests_per_minute = fields.Integer(load_default=120, validate=validate.Range(min=1))
    duplicate_window = Duration(load_default="5m")
    body_timeout = Duration(load_default="30s")  # a body that stops arriving this long: 400
    trusted_proxies = fields.Integer(load_default=0, validate=validate.Range(min=0, max=5))


class PipelineSchema(Section):
    batch_size = fields.Integer(load_default=500, validate=validate.Range(min=1, max=10000))
    max_attempts = fields.Integer(load_default=5, validate=validate.Range(min=1))
    sweep_after = Duration(load_default="10s")
    linger = Duration(load_default="500ms")  # must exceed hub.store.queue.KICK_EVERY
    slice = Duration(load_default="20ms")  # a batch's aimed length; 0: whole batches of batch_size


class OutboxSchema(Section):
    max_attempts = fields.Integer(load_default=8, validate=validate.Range(min=1))
    backoff = Duration(load_default="30s")
    backoff_max = Duration(load_default="1h")
    sending_timeout = Duration(load_default="10m")


class SyncSchema(Section):
    max_attempts = fields.Integer(load_default=12, validate=validate.Range(min=1))
    backoff = Duration(load_default="30s")
    backoff_max = Duration(load_default="1h")


class CrmTargetSchema(Section):
    """The keys every target has, and the target module's own (``registry.crm_settings``)."""

    target = fields.String(required=True)
    name = fields.String(load_default=None, allow_none=True)
    timeout = fields.Float(load_default=10.0, validate=validate.Range(min=0.1, max=300))
    rate = fields.Dict(keys=fields.String(validate=validate.OneOf(("per_second", "burst"))),
                       values=fields.Float(validate=validate.Range(min=0.01)), load_default=None,
                       allow_none=True)
    # CRMs that report changes back: how often to ask for what the webhooks may have missed
    # (null: never), and how long after a push the CRM showing just that is the push's echo
    poll_every = Duration(load_default="5m", allow_none=True)
    echo_window = Duration(load_default="2m")

    def known_keys(self, original: dict) -> set[str] | None:
        from hub import registry

        target = original.get("target")
        if not isinstance(target, str) or not registry.has_crm(target):
            return None  # the unknown target is the problem, reported by the checks
        return super().known_keys(original) | registry.crm_settings(target)


class ScoringRuleSchema(Section):
    name = fields.String(load_default=None, allow_none=True)  # the explanation's label
    when = fields.Nested(LeadConditionSchema, load_default=dict)
    points = fields.Integer(required=True, validate=validate.Range(min=-1000, max=1000))


class ClassThresholdSchema(Section):
    points = fields.Integer(required=True)  # at least this many points
    probability = fields.Float(load_default=None, allow_none=True,  # at least this, once it is learned
                               validate=validate.Range(min=0, max=1))


class AmountDefaultSchema(Section):
    when = fields.Nested(LeadConditionSchema, load_default=dict)
    amount = fields.Float(required=True, validate=validate.Range(min=0))


class AmountSchema(Section):
    """The lead's value: the expected amount. (Named ``amount`` in the config: marshmallow
    reports a mapping's entries under ``key``/``value``, which a ``value`` key would blur.)"""

    field = fields.String(load_default=None, allow_none=True)  # a form field holding the amount
    defaults = fields.List(fields.Nested(AmountDefaultSchema), load_default=list)  # per source, first match
    default = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=0))


class ModelField(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        name = super()._deserialize(value, attr, data, **kwargs)
        if name in MODEL_FIELDS or (name.startswith("fields.") and len(name) > len("fields.")):
            return name
        raise ValidationError(f"unknown field {name!r}{did_you_mean(name, MODEL_FIELDS)} "
                              "(or fields.<form field>)")


class ModelSchema(Section):
    fields_ = fields.List(ModelField(), data_key="fields", required=True, validate=validate.Length(min=1))
    min_closed = fields.Integer(load_default=200, validate=validate.Range(min=1))
    retrain_at = fields.String(load_default="03:00", allow_none=True,  # daily, team's time zone; null: never
                               validate=validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$", error="a time of day, HH:MM"))

    @post_load
    def restore_keys(self, data, **kwargs):
        data["fields"] = data.pop("fields_")
        return data


class ScoringSchema(Section):
    rules = fields.List(fields.Nested(ScoringRuleSchema), load_default=list)
    classes = fields.Dict(keys=fields.String(validate=validate.OneOf(SCORE_CLASSES[:2])),
                          values=fields.Nested(ClassThresholdSchema), load_default=dict)
    amount = fields.Nested(AmountSchema, load_default=lambda: AmountSchema().load({}))
    model = fields.Nested(ModelSchema, load_default=None, allow_none=True)

    @validates_schema
    def check_order(self, data, **kwargs):
        a, b = (data.get("classes") or {}).get("A"), (data.get("classes") or {}).get("B")
        if a and b and a["points"] < b["points"]:
            raise ValidationError("A needs at least as many points as B", "classes")


class ConfigSchema(Section):
    region = fields.String(load_default="RU", validate=validate.Regexp(r"^[A-Z]{2}$"))
    locale = fields.String(load_default="ru", validate=validate.OneOf(LOCALES))  # the console's language
    timezone = TimeZone(load_default="Europe/Moscow")
    public_url = fields.Url(load_default=None, allow_none=True, require_tld=False)
    business_hours = fields.Nested(BusinessHoursSchema, load_default=None, allow_none=True)
    sla = fields.Nested(SlaSchema, load_default=lambda: SlaSchema().load({}))
    callbacks = fields.Nested(CallbacksSchema, load_default=lambda: CallbacksSchema().load({}))
    sticky_owner = fields.Boolean(load_default=True)
    team = fields.List(fields.Nested(MemberSchema), load_default=list)
    forms = fields.Dict(keys=fields.String(validate=validate.Regexp(r"^[A-Za-z0-9_-]{1,64}$")),
                        values=fields.Nested(FormSchema), load_default=dict)
    mailboxes = fields.Dict(keys=fields.String(validate=validate.Regexp(r"^[A-Za-z0-9_-]{1,64}$")),
                            values=fields.Nested(MailboxSchema), load_default=dict)
    telephony = fields.Dict(keys=fields.String(), values=fields.Raw(), load_default=dict)
    sms = fields.Nested(SmsSchema, load_default=lambda: SmsSchema().load({}))
    email = fields.Nested(EmailSchema, load_default=lambda: EmailSchema().load({}))
    confirmations = fields.List(fields.Nested(ConfirmationSchema), load_default=list)
    routing = fields.List(fields.Nested(RoutingRuleSchema), load_default=list)
    crm = fields.List(fields.Nested(CrmTargetSchema), load_default=list)
    sync = fields.Nested(SyncSchema, load_default=lambda: SyncSchema().load({}))
    limits = fields.Nested(LimitsSchema, load_default=lambda: LimitsSchema().load({}))
    pipeline = fields.Nested(PipelineSchema, load_default=lambda: PipelineSchema().load({}))
    outbox = fields.Nested(OutboxSchema, load_default=lambda: OutboxSchema().load({}))
    pipelines = fields.Dict(keys=fields.String(validate=validate.Regexp(STAGE_NAME)),
                            values=fields.Nested(SalesPipelineSchema), load_default=dict)
    default_pipeline = fields.String(load_default=None, allow_none=True)  # for leads no pipeline's when matches
    scoring = fields.Nested(ScoringSchema, load_default=None, allow_none=True)  # none: leads are not scored
