"""Checks that look across the config: names that must exist (team members, groups, mappings,
senders, providers, CRM targets), the keys of provider sections (each provider module declares
them), secrets a provider cannot work without, and confirmation templates.

They read the document as written, leniently: a value of the wrong shape is the schema's
problem, reported beside these in the same pass, so one run of ``hub check-config`` lists all."""
from __future__ import annotations

from typing import Any

from hub import registry
from hub.config.schema import ESCALATION_ROLES, did_you_mean, unknown_keys
from hub.durations import parse_duration
from hub.mapping import SOURCE_KEYS

PLACEHOLDERS = ("number", "name", "manager", "manager_phone", "phone", "email")


def mapping(document: dict, key: str) -> dict:
    value = document.get(key)
    return value if isinstance(value, dict) else {}


def listing(document: dict, key: str) -> list:
    value = document.get(key)
    return value if isinstance(value, list) else []


def entries(values: list) -> list[tuple[int, dict]]:
    return [(index, item) for index, item in enumerate(values) if isinstance(item, dict)]


def problems(document: dict) -> list[str]:
    return (team_problems(document) + form_problems(document) + routing_problems(document)
            + sender_problems(document) + provider_problems(document) + crm_problems(document)
            + confirmation_problems(document) + pipeline_problems(document) + scoring_problems(document))


def team_problems(document: dict) -> list[str]:
    ids = [member.get("id") for _, member in entries(listing(document, "team"))]
    duplicates = sorted({i for i in ids if isinstance(i, str) and ids.count(i) > 1})
    return [f"team: duplicate team ids {duplicates}"] if duplicates else []


def form_problems(document: dict) -> list[str]:
    names = registry.providers("forms")
    return [f"forms.{key}.mapping: unknown mapping {form['mapping']!r}{did_you_mean(form['mapping'], names)}"
            for key, form in mapping(document, "forms").items()
            if isinstance(form, dict) and isinstance(form.get("mapping"), str)
            and not registry.has("forms", form["mapping"])]


def routing_problems(document: dict) -> list[str]:
    """Rules and escalations may only name people, groups and roles that exist."""
    team = entries(listing(document, "team"))
    ids = {m.get("id") for _, m in team}
    groups = {g for _, m in team for g in (m.get("groups") or []) if isinstance(g, str)}
    found = []
    chains = [("sla", mapping(document, "sla"))]
    for index, rule in entries(listing(document, "routing")):
        assign = rule.get("assign") if isinstance(rule.get("assign"), dict) else {}
        people = assign.get("to") if isinstance(assign.get("to"), list) else []
        found += [f"routing.{index}.assign.to: unknown team member {p!r}" for p in people if p not in ids]
        for key in ("by", "escalate_to"):
            who = assign.get(key)
            if isinstance(who, str) and who not in ids | set(ESCALATION_ROLES):
                found.append(f"routing.{index}.assign.{key}: not a role (head, director) or team member id")
        group = assign.get("group")
        if isinstance(group, str) and group not in groups:
            found.append(f"routing.{index}.assign.group: no team member is in group {group!r}")
        if isinstance(rule.get("sla"), dict):
            chains.append((f"routing.{index}.sla", rule["sla"]))
    for where, sla in chains:
        for step, escalation in entries(listing(sla, "escalation")):
            if escalation.get("to") not in ids | set(ESCALATION_ROLES):
                found.append(f"{where}.escalation.{step}.to: not a role (head, director) or team member id")
    return found


def sender_problems(document: dict) -> list[str]:
    found = []
    for channel, section in (("sms", mapping(document, "sms")), ("email", mapping(document, "email"))):
        names = registry.senders(channel)
        sender = section.get("sender")
        if isinstance(sender, str) and sender not in names:
            found.append(f"{channel}.sender: unknown sender {sender!r}{did_you_mean(sender, names)}")
    sms = mapping(document, "sms")
    for name in registry.senders("sms"):
        module = registry.sender("sms", name)
        found += section_key_problems(f"sms.{name}", sms.get(name), module.SENDER_SETTINGS)
    return found


def provider_problems(document: dict) -> list[str]:
    """Telephony and inbound SMS: known providers, their declared keys, their secrets."""
    found = []
    telephony = dict(mapping(document, "telephony"))
    found += number_problems(telephony.pop("numbers", None))
    sections = [("telephony", telephony), ("sms.inbound", mapping(mapping(document, "sms"), "inbound"))]
    for where, providers in sections:
        kind = where.partition(".")[0]
        names = registry.providers(kind)
        for name, section in providers.items():
            known = names + ["numbers"] if kind == "telephony" else names
            if not registry.has(kind, name):
                found.append(f"{where}.{name}: unknown provider{did_you_mean(name, known)}")
                continue
            module = registry.intake(kind, name)
            found += section_key_problems(f"{where}.{name}", section, {*module.SETTINGS, "quiet_after"})
            found += duration_problems(f"{where}.{name}", section)
            found += secret_problems(f"{where}.{name}", section, module)
    return found


def number_problems(numbers: Any) -> list[str]:
    if not isinstance(numbers, dict):
        return []
    return [line for number, source in numbers.items()
            for line in section_key_problems(f"telephony.numbers.{number}", source, {*SOURCE_KEYS, "quiet_after"})
            + duration_problems(f"telephony.numbers.{number}", source)]


def duration_problems(where: str, section: Any) -> list[str]:
    """``quiet_after`` in a provider's or a number's section (sections checked by key)."""
    value = section.get("quiet_after") if isinstance(section, dict) else None
    if value is None:
        return []
    try:
        parse_duration(str(value))
    except ValueError as exc:
        return [f"{where}.quiet_after: {exc}"]
    return []


def crm_problems(document: dict) -> list[str]:
    found = []
    targets = entries(listing(document, "crm"))
    names = [entry.get("name") or entry.get("target") for _, entry in targets]
    for position, (index, entry) in enumerate(targets):
        target = entry.get("target")
        if not isinstance(target, str):
            continue  # missing: the schema says so
        if not registry.has_crm(target):
            found.append(f"crm.{index}.target: unknown target {target!r}{did_you_mean(target, registry.CRM)}")
            continue
        if names.count(names[position]) > 1:
            found.append(f"crm.{index}.name: two targets are called {names[position]!r}; give each a name")
        found += secret_problems(f"crm.{index}", entry, registry.crm(target))
        found += inbound_problems(f"crm.{index}", entry, registry.crm(target))
        found += score_field_problems(f"crm.{index}.score_fields", entry.get("score_fields"), document)
    return found


SCORE_PARTS = ("class", "probability", "value")


def score_field_problems(where: str, fields, document: dict) -> list[str]:
    """``score_fields``: which CRM field takes the class, the probability, the value."""
    if fields is None:
        return []
    if not isinstance(fields, dict):
        return [f"{where}: a mapping of class, probability, value to CRM fields"]
    found = [f"{where}.{key}: unknown key{did_you_mean(key, SCORE_PARTS)}" for key in fields if key not in SCORE_PARTS]
    found += [f"{where}.{key}: a CRM field name or id" for key, field in fields.items()
              if key in SCORE_PARTS and field is not None and not isinstance(field, (str, int))]
    if not isinstance(document.get("scoring"), dict):
        found.append(f"{where}: leads have no score without a scoring: section")
    return found


def inbound_problems(where: str, entry: dict, module) -> list[str]:
    """Receiving a CRM's events needs every key its module names, once one of them is given."""
    needed = getattr(module, "INBOUND", ())
    given = [key for key in needed if entry.get(key)]
    if not given:
        return []
    return [f"{where}.{key}: required to receive events ({given[0]} is set)"
            for key in needed if not entry.get(key)]


def confirmation_problems(document: dict) -> list[str]:
    found = []
    for index, rule in entries(listing(document, "confirmations")):
        for key in ("text", "subject"):
            if isinstance(rule.get(key), str):
                found += [f"confirmations.{index}.{key}: {p}" for p in template_problems(rule[key])]
    return found


def template_problems(text: str) -> list[str]:
    try:
        text.format_map(TemplateCheck())
    except KeyError as exc:
        return [f"bad placeholder {exc}{did_you_mean(exc.args[0], PLACEHOLDERS)}"]
    except (ValueError, IndexError) as exc:
        return [f"bad placeholder: {exc}"]
    return []


class TemplateCheck(dict):
    """Accepts exactly the placeholders a confirmation template may use."""

    def __missing__(self, key):
        if key in PLACEHOLDERS:
            return ""
        raise KeyError(key)


def section_key_problems(where: str, section: Any, allowed) -> list[str]:
    if section is None:
        return []
    if not isinstance(section, dict):
        return [f"{where}: expected a mapping of keys"]
    return [f"{where}.{key}: {messages[0]}" for key, messages in unknown_keys(section, set(allowed)).items()]


def secret_problems(where: str, section: Any, module) -> list[str]:
    """A provider cannot verify or call without the secrets its module requires."""
    if not isinstance(section, dict):
        return []
    required = set(module.SECRETS) - set(getattr(module, "OPTIONAL_SECRETS", ()))
    return [f"{where}.{key}: required (names the environment variable holding the secret)"
            for key in sorted(required) if not section.get(key)]


def scoring_problems(document: dict) -> list[str]:
    """Routing on a score needs scores; on a probability, a model that learns it."""
    scoring = document.get("scoring")
    found = []
    for index, rule in entries(listing(document, "routing")):
        when = rule.get("when") if isinstance(rule.get("when"), dict) else {}
        if "class" in when and not isinstance(scoring, dict):
            found.append(f"routing.{index}.when.class: leads have no class without a scoring: section")
        for key in ("min_probability", "max_probability"):
            if key in when and not (isinstance(scoring, dict) and isinstance(scoring.get("model"), dict)):
                found.append(f"routing.{index}.when.{key}: leads have no probability without scoring.model")
    return found


def pipeline_problems(document: dict) -> list[str]:
    """The default pipeline must exist; a CRM's ``stage_ids`` may only name stages a pipeline has."""
    pipelines = mapping(document, "pipelines")
    stages = {stage.get("name") for pipeline in pipelines.values() if isinstance(pipeline, dict)
              for _, stage in entries(listing(pipeline, "stages"))}
    found = []
    default = document.get("default_pipeline")
    if isinstance(default, str) and default not in pipelines:
        found.append(f"default_pipeline: no pipeline is called {default!r}{did_you_mean(default, pipelines)}")
    for index, entry in entries(listing(document, "crm")):
        found += [f"crm.{index}.stage_ids.{stage}: no pipeline has the stage {stage!r}"
                  f"{did_you_mean(stage, stages - {None}) if stages - {None} else ''}"
                  for stage in mapping(entry, "stage_ids") if stage not in stages]
    return found
