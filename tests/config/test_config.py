"""``hub check-config`` finds every problem in one pass: one ``path.to.key: message`` line each."""
from __future__ import annotations

import copy

import pytest
from click.testing import CliRunner

from hub.config import ConfigError, load_config
from hub.runtime.cli import main

from tests.helpers import sample_document

ENV = {"ZADARMA_SECRET": "s", "BITRIX24_WEBHOOK_URL": "https://b24.example/rest/1/x/"}


def problems_of(edit) -> list[str]:
    document = copy.deepcopy(sample_document())
    edit(document)
    try:
        load_config(document=document, environ=ENV)
    except ConfigError as error:
        return error.problems
    return []


def put(path: str, value):
    """An edit that sets ``a.b.0.c`` in the document, creating mappings on the way."""
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]

    def edit(document):
        node = document
        for key in parents:
            node = node[key] if isinstance(key, int) else node.setdefault(key, {})
        node[last] = value

    return edit


CASES = {
    "bad role": (put("team.0.role", "boss"), ["team.0.role: Must be one of: manager, head, director, admin."]),
    "duplicate team ids": (put("team.1.id", "anna"), ["team: duplicate team ids ['anna']"]),
    "form key of the wrong type": (put("forms.landing.required", "phone"),
                                   ["forms.landing.required: Not a valid list."]),
    "unknown mapping": (put("forms.landing.mapping", "typeform"),
                        ["forms.landing.mapping: unknown mapping 'typeform' (one of cf7, generic, tilda)"]),
    "mapping typo": (put("forms.landing.mapping", "tilde"),
                     ["forms.landing.mapping: unknown mapping 'tilde'; did you mean 'tilda'?"]),
    "unset secret": (put("forms.landing.secret_env", "NOT_SET_ANYWHERE"),
                     ["forms.landing.secret_env: environment variable NOT_SET_ANYWHERE is not set"]),
    "typo under sms": (put("sms.sendr", "log"), ["sms.sendr: unknown key; did you mean 'sender'?"]),
    "typo under sms, quiet hours": (put("sms.quiet_hour", "22:00-08:00"),
                                    ["sms.quiet_hour: unknown key; did you mean 'quiet_hours'?"]),
    "typo in a confirmation's when": (put("confirmations.0.when.chanel", ["form"]),
                                      ["confirmations.0.when.chanel: unknown key; did you mean 'channel'?"]),
    "utm typo in a confirmation's when": (
        put("confirmations.0.when.utm_sorce", "yandex"),
        ["confirmations.0.when.utm_sorce: unknown key; did you mean 'utm_source'?"]),
    "typo in a confirmation": (put("confirmations.0.txt", "x"),
                               ["confirmations.0.txt: unknown key; did you mean 'text'?"]),
    "bad placeholder": (put("confirmations.0.text", "Номер {lead_id}"),
                        ["confirmations.0.text: bad placeholder 'lead_id' "
                         "(one of email, manager, manager_phone, name, number, phone)"]),
    "unknown sms sender": (put("sms.sender", "carrier-pigeon"),
                           ["sms.sender: unknown sender 'carrier-pigeon' (one of log, smsru, twilio)"]),
    "unknown e-mail sender": (put("email.sender", "smpt"),
                              ["email.sender: unknown sender 'smpt'; did you mean 'smtp'?"]),
    "typo in a sender section": (put("sms.smsru", {"api_id_env": "X", "form": "Shop"}),
                                 ["sms.smsru.form: unknown key; did you mean 'from'?",
                                  "sms.smsru.api_id_env: environment variable X is not set"]),
    "typo under email": (put("email.smtp.hots", "mail"), ["email.smtp.hots: unknown key; did you mean 'host'?"]),
    "typo in a routing rule": (put("routing", [{"name": "r", "asign": {"to": ["anna"]}}]),
                               ["routing.0.asign: unknown key; did you mean 'assign'?"]),
    "typo in a routing condition": (
        put("routing", [{"name": "r", "when": {"utm_sourse": ["yandex"]}}]),
        ["routing.0.when.utm_sourse: unknown key; did you mean 'utm_source'?"]),
    "unknown assignee": (put("routing", [{"name": "r", "assign": {"to": ["igor"]}}]),
                         ["routing.0.assign.to: unknown team member 'igor'"]),
    "typo in a mailbox": (put("mailboxes.sales", {"host": "h", "username": "u", "pasword_env": "P"}),
                          ["mailboxes.sales.pasword_env: unknown key; did you mean 'password_env'?"]),
    "typo in limits": (put("limits.body_byte", 2048), ["limits.body_byte: unknown key; did you mean 'body_bytes'?"]),
    "not a duration": (put("limits.duplicate_window", "five minutes"),
                       ["limits.duplicate_window: not a duration: 'five minutes' (write it as 90s, 5m, 1h or 2d)"]),
    "unknown CRM target": (put("crm", [{"target": "bitrix"}]),
                           ["crm.0.target: unknown target 'bitrix'; did you mean 'bitrix24'?"]),
    "typo in a CRM entry": (
        put("crm", [{"target": "bitrix24", "webhook_ur_env": "BITRIX24_WEBHOOK_URL"}]),
        ["crm.0.webhook_ur_env: unknown key; did you mean 'webhook_url_env'?",
         "crm.0.webhook_url_env: required (names the environment variable holding the secret)"]),
    "unknown telephony provider": (put("telephony.zadarm", {"secret_env": "ZADARMA_SECRET"}),
                                   ["telephony.zadarm: unknown provider; did you mean 'zadarma'?"]),
    "provider section without its secret": (
        put("telephony.zadarma", {"secret": "ZADARMA_SECRET"}),
        ["telephony.zadarma.secret: unknown key; did you mean 'secret_env'?",
         "telephony.zadarma.secret_env: required (names the environment variable holding the secret)"]),
    "typo in a tracked number": (put("telephony.numbers", {"+74951234567": {"utm_sorce": "yandex"}}),
                                 ["telephony.numbers.+74951234567.utm_sorce: unknown key; did you mean 'utm_source'?"]),
    "unknown top-level key": (put("routeing", []), ["routeing: unknown key; did you mean 'routing'?"]),
    "typo in a labelled outcome": (put("pipelines.sales.stages", [{"name": "a", "outcomes": {
        "refused": {"to": "lost", "lable": "Отказ"}}}]),
        ["pipelines.sales.stages.0.outcomes.refused.lable: unknown key; did you mean 'label'?"]),
    "labelled outcome without its target": (put("pipelines.sales.outcomes", {"won": {"label": "Оплачено"}}),
                                            ["pipelines.sales.stages: Missing data for required field.",
                                             "pipelines.sales.outcomes.won.to: Missing data for required field."]),
    "labelled outcome to a stage the pipeline lacks": (
        put("pipelines.sales", {"stages": [{"name": "a"}], "outcomes": {"ok": {"to": "b", "label": "Дальше"}}}),
        ["pipelines.sales.outcomes.ok: 'b' is not next, won, lost or a stage of this pipeline (one of a, lost, "
         "next, won)"]),
    "outcome label of the wrong type": (
        put("pipelines.sales", {"stages": [{"name": "a", "outcomes": {"ok": {"to": "won", "label": 5}}}]}),
        ["pipelines.sales.stages.0.outcomes.ok.label: Not a valid string."]),
    "outcome neither a target nor a mapping": (
        put("pipelines.sales", {"stages": [{"name": "a", "outcomes": {"ok": ["won"]}}]}),
        ["pipelines.sales.stages.0.outcomes.ok: next, won, lost or a stage, or {to: ..., label: ...}"]),
}


@pytest.mark.parametrize("edit, expected", CASES.values(), ids=CASES.keys())
def test_each_problem_is_one_line_naming_its_key(edit, expected):
    assert sorted(problems_of(edit)) == sorted(expected)


def test_the_sample_and_a_full_config_have_no_problems():
    assert problems_of(lambda document: None) == []
    full = {"telephony": {"zadarma": {"secret_env": "ZADARMA_SECRET", "allowed_ips": ["185.45.152.40/30"]},
                          "numbers": {"+74951234567": {"utm_source": "yandex", "utm_medium": "cpc"}}},
            "crm": [{"target": "bitrix24", "webhook_url_env": "BITRIX24_WEBHOOK_URL", "team": {"anna": 17},
                     "rate": {"per_second": 2, "burst": 50}},
                    {"target": "webhook", "url": "https://example.com/leads"}]}
    assert problems_of(lambda document: document.update(full)) == []


def test_an_outcome_may_carry_the_label_its_button_shows(tmp_path, monkeypatch):
    document = copy.deepcopy(sample_document())
    document["pipelines"] = {"sales": {
        "stages": [{"name": "offer", "outcomes": {"accepted": "next", "declined": {"to": "lost", "label": "Отказ"}}},
                   {"name": "invoice"}],
        "outcomes": {"won": {"to": "won", "label": "Оплачено"}, "lost": "lost"}}}
    sales = load_config(document=document, environ=ENV)["pipelines"]["sales"]
    assert (sales["outcomes"], sales["outcome_labels"]) == ({"won": "won", "lost": "lost"}, {"won": "Оплачено"})
    offer = sales["stages"][0]
    assert (offer["outcomes"], offer["outcome_labels"]) == ({"accepted": "next", "declined": "lost"},
                                                            {"declined": "Отказ"})
    import yaml
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert (result.exit_code, result.output) == (0, f"{path}: ok\n")


def test_one_broken_file_with_five_problems_gets_five_lines_from_one_run(tmp_path):
    document = copy.deepcopy(sample_document())
    for edit, _ in (CASES["bad role"], CASES["duplicate team ids"], CASES["typo under sms"],
                    CASES["unknown sms sender"], CASES["typo in a confirmation's when"]):
        edit(document)
    path = tmp_path / "hub.yaml"
    import yaml
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    result = CliRunner().invoke(main, ["check-config", str(path)])
    assert result.exit_code == 1
    assert sorted(result.output.strip().splitlines()) == sorted(
        CASES["bad role"][1] + CASES["duplicate team ids"][1] + CASES["typo under sms"][1]
        + CASES["unknown sms sender"][1] + CASES["typo in a confirmation's when"][1])
