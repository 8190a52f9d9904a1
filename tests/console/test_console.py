"""The console through Flask's test client: sign-in, sessions, CSRF, roles, tasks, lead actions."""
from __future__ import annotations

from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import select

from hub.pipeline import manager_actions
from hub.runtime import scheduler
from hub.store.models import LeadHistory, Task, Timer

from tests.console.conftest import PASSWORD, Console, csrf_token


def test_signing_in_with_the_right_and_a_wrong_password(app, team):
    session = Console(app.test_client())
    wrong = session.sign_in("anna", "not her password")
    assert wrong.status_code == 401 and "Неверный логин или пароль" in wrong.text
    unknown = session.sign_in("nobody", PASSWORD)
    assert unknown.status_code == 401
    right = session.sign_in("ANNA@example.com")  # the e-mail works too, in any case
    assert right.status_code == 302 and right.headers["Location"] == "/console/"
    assert session.get("/console/tasks").status_code == 200


def test_pages_need_a_session_and_sign_out_ends_it(app, console):
    anonymous = app.test_client().get("/console/leads?status=new")
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"] == "/console/sign-in?next=/console/leads?status%3Dnew"
    anna = console("anna")
    assert anna.post("/console/sign-out").status_code == 302
    assert anna.get("/console/leads").status_code == 302


def test_the_session_cookie_is_httponly_samesite_and_secure_behind_tls(app, team):
    response = Console(app.test_client()).sign_in("anna")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    secure = Console(app.test_client())
    secure.token = csrf_token(secure.client.get("/console/sign-in", base_url="https://hub.example").data)
    over_tls = secure.client.post("/console/sign-in", base_url="https://hub.example", headers={
        "Referer": "https://hub.example/console/sign-in"},
        data={"login": "anna", "password": PASSWORD, "csrf_token": secure.token})
    assert over_tls.status_code == 302 and "Secure" in over_tls.headers["Set-Cookie"]


def test_a_new_password_ends_the_old_sessions(console, hub):
    anna = console("anna")
    from hub.web.console import accounts
    accounts.set_password(hub, "anna", "another long password")
    assert anna.get("/console/tasks").status_code == 302


def test_a_form_without_its_csrf_token_is_refused(console, make_lead):
    number = make_lead()
    vera = console("vera")
    refused = vera.client.post(f"/console/leads/{number}/note", data={"text": "no token"})
    assert refused.status_code == 400 and "Форма устарела" in refused.text
    forged = vera.client.post(f"/console/leads/{number}/note", data={"text": "x", "csrf_token": "forged"})
    assert forged.status_code == 400
    assert vera.post(f"/console/leads/{number}/note", {"text": "with its token"}).status_code == 302


def test_sign_in_is_rate_limited_per_account(app, team):
    session = Console(app.test_client())
    codes = [session.sign_in("boris", "wrong").status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]
    assert session.sign_in("boris").status_code == 429  # even the right password waits out the minute
    assert session.sign_in("anna").status_code == 302  # another account is not held up


def test_pages_carry_a_content_security_policy_without_inline_scripts(console):
    response = console("anna").get("/console/tasks")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "<script>" not in response.text and " style=" not in response.text
    assert response.headers["X-Frame-Options"] == "DENY"


def test_a_manager_sees_only_their_own_leads(console, make_lead):
    first, second = make_lead("Client One", "+79161110001"), make_lead("Client Two", "+79161110002")
    owners = {}
    for member in ("anna", "boris"):
        page = console(member).get("/console/leads").text
        owners[member] = [n for n in (first, second) if f'href="/console/leads/{n}"' in page]
    assert sorted(owners["anna"] + owners["boris"]) == [first, second]
    assert len(owners["anna"]) == 1
    other = owners["boris"][0]
    assert console("anna").get(f"/console/leads/{other}").status_code == 404
    assert console("anna").post(f"/console/leads/{other}/status", {"status": "junk"}).status_code == 404
    assert console("vera").get(f"/console/leads/{other}").status_code == 200


def test_search_finds_a_lead_by_phone_in_any_format_number_email_and_name(console, make_lead):
    number = make_lead("Иван Петров", "+7 916 123-45-67", email="ivan@example.com")
    make_lead("Someone Else", "+79160000000")
    vera = console("vera")
    for q in ("8 (916) 123-45-67", "+79161234567", str(number), "IVAN@example.com", "иван", "Петр"):
        page = vera.get("/console/leads", query_string={"q": q}).text
        assert f'href="/console/leads/{number}"' in page and "Someone Else" not in page, q


def test_filters_narrow_the_list_and_pages_follow_the_cursor(console, make_lead, monkeypatch):
    from hub.web.console import leadlist
    monkeypatch.setattr(leadlist, "PAGE", 2)
    numbers = [make_lead(f"Client {i}", f"+7916111000{i}", utm_term=f"term{i % 2}") for i in range(5)]
    vera = console("vera")
    first = vera.get("/console/leads", query_string={"utm_term": "term0"}).text
    assert [n for n in numbers if f'href="/console/leads/{n}"' in first] == [numbers[2], numbers[4]]
    cursor = first.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    second = vera.get(cursor).text
    assert [n for n in numbers if f'href="/console/leads/{n}"' in second] == [numbers[0]]
    assert 'rel="next"' not in second
    by_pair = vera.get("/console/leads", query_string={"source_key": "utm_term", "source_value": "term1"}).text
    assert [n for n in numbers if f'href="/console/leads/{n}"' in by_pair] == [numbers[1], numbers[3]]
    assert "Заявок не найдено" in vera.get("/console/leads?status=junk").text


def test_my_tasks_are_ordered_by_due_time_with_the_clients_time(console, make_lead, hub):
    number = make_lead()
    with hub.db.read() as session:
        task = session.scalar(select(Task).where(Task.lead_id == number))
    page = console(task.assignee_id).get("/console/tasks").text
    assert f'href="/console/leads/{number}"' in page
    assert "11:00" in page and "Europe/Moscow" in page  # the client's local time at the hub's noon
    assert "просрочена" not in page
    hub.clock = lambda: task.due_at + timedelta(minutes=1)
    assert "просрочена" in console(task.assignee_id).get("/console/tasks").text


def test_closing_a_call_task_with_no_answer_starts_the_callback_ladder(console, make_lead, hub):
    number = make_lead()
    with hub.db.read() as session:
        task = session.scalar(select(Task).where(Task.lead_id == number))
    manager = console(task.assignee_id)
    assert manager.post(f"/console/tasks/{task.id}/close", {"outcome": "bogus"}).status_code == 400
    assert manager.post(f"/console/tasks/{task.id}/close", {"outcome": "no_answer"}).status_code == 302
    with hub.db.read() as session:
        tasks = list(session.scalars(select(Task).where(Task.lead_id == number).order_by(Task.id)))
        done = session.scalar(select(LeadHistory).where(LeadHistory.action == "task_done"))
    assert [(t.kind, t.status, t.step) for t in tasks] == [("call", "done", None), ("callback", "open", 1)]
    assert tasks[1].due_at == hub.now() + timedelta(minutes=5)
    assert done.actor == task.assignee_id and done.details["outcome"] == "no answer"


def test_a_free_outcome_and_the_lead_actions_are_recorded_with_their_actor(console, make_lead, hub):
    number = make_lead()
    vera = console("vera")
    with hub.db.read() as session:
        task = session.scalar(select(Task).where(Task.lead_id == number))
    closing = {"outcome": "other", "other": "asked for a quote"}
    assert vera.post(f"/console/tasks/{task.id}/close", closing).status_code == 302
    assert vera.post(f"/console/leads/{number}/status", {"status": "in_progress"}).status_code == 302
    new_owner = "boris" if task.assignee_id == "anna" else "anna"
    assert vera.post(f"/console/leads/{number}/assignee", {"assignee": new_owner}).status_code == 302
    assert vera.post(f"/console/leads/{number}/note", {"text": "<b>VIP</b>"}).status_code == 302
    with hub.db.read() as session:
        rows = list(session.scalars(select(LeadHistory).where(LeadHistory.actor == "vera").order_by(LeadHistory.id)))
    assert [r.action for r in rows] == ["task_done", "status_changed", "reassigned", "note"]
    assert rows[0].details["outcome"] == "asked for a quote"
    card = vera.get(f"/console/leads/{number}").text
    assert "&lt;b&gt;VIP&lt;/b&gt;" in card and "<b>VIP</b>" not in card


def test_a_console_status_change_drives_the_timed_rules_like_the_api(console, make_lead, hub, config_document):
    number = make_lead()
    vera = console("vera")
    vera.post(f"/console/leads/{number}/status", {"status": "junk"})
    with hub.db.read() as session:
        pending = session.scalars(select(Timer.kind).where(Timer.lead_id == number, Timer.status == "pending")).all()
    assert pending == []  # a closed lead cancels its reminders and escalations
    later = hub.now() + timedelta(days=2)
    hub.clock = lambda: later
    scheduler.tick(hub)
    with hub.db.read() as session:
        assert session.scalar(select(Task).where(Task.kind == "escalation")) is None


def test_only_heads_and_directors_reassign(console, make_lead):
    number = make_lead()
    for member, code in (("anna", 404), ("ada", 404), ("oleg", 302)):
        assert console(member).post(f"/console/leads/{number}/assignee", {"assignee": "boris"}).status_code == code


def test_russian_by_default_english_on_request_and_in_the_config(app, console, config_document):
    anna = console("anna")
    assert 'lang="ru"' in anna.get("/console/tasks").text and "Мои задачи" in anna.get("/console/tasks").text
    anna.post("/console/language", {"locale": "en", "next": "/console/tasks"})
    page = anna.get("/console/tasks").text
    assert 'lang="en"' in page and "My tasks" in page and "Мои задачи" not in page


def test_english_as_the_configured_locale(config_document, hub, team):
    from hub.web.app import create_app

    hub.config.data["locale"] = "en"
    page = create_app({"hub": hub}).test_client().get("/console/sign-in").text
    assert 'lang="en"' in page and "Sign in" in page


def test_hub_user_password_sets_a_password_or_prints_an_invitation(hub, team, app):
    from hub.runtime.cli import main  # the command works on the installed hub (the fixture's)

    result = CliRunner().invoke(main, ["user", "password", "boris"], input="a brand new secret\na brand new secret\n")
    assert result.exit_code == 0, result.output
    assert Console(app.test_client()).sign_in("boris", "a brand new secret").status_code == 302
    assert CliRunner().invoke(main, ["user", "password", "nobody"], input="x\nx\n").exit_code == 1
    invited = CliRunner().invoke(main, ["user", "password", "vera", "--invite"])
    link = invited.output.strip().splitlines()[-1]
    path = link[link.index("/console/invitation/") :]
    client = app.test_client()
    token = csrf_token(client.get(path).data)
    short = client.post(path, data={"password": "short", "confirm": "short", "csrf_token": token})
    assert short.status_code == 422
    accepted = client.post(
        path, data={"password": "vera's own password", "confirm": "vera's own password", "csrf_token": token}
    )
    assert accepted.status_code == 302 and client.get("/console/tasks").status_code == 200
    assert app.test_client().get(path).status_code == 404  # one time only


def test_manager_actions_default_to_the_api_actor(hub, make_lead):
    number = make_lead()
    with hub.db.write() as session:
        from hub.store.models import Lead

        manager_actions.update_lead(session, hub, session.get(Lead, number), "in_progress", None)
    with hub.db.read() as session:
        row = session.scalar(select(LeadHistory).where(LeadHistory.action == "status_changed"))
    assert row.actor == "api"


def test_the_intake_neither_reads_nor_sets_the_console_session(console):
    anna = console("anna")
    response = anna.client.post("/hooks/forms/landing", data={"phone": "+79160000501"})
    assert response.status_code == 202
    assert "Set-Cookie" not in response.headers
    assert anna.get("/console/leads").status_code == 200  # the session is still there
