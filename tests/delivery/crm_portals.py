"""Fake CRMs for the read-back tests, built from the documented formats and served through
``responses``: a Bitrix24 portal behind an incoming webhook (the REST methods the hub calls,
its leaky bucket) and an amoCRM account (API v4). Both keep their leads, so what the hub
pushes, what managers change and what the hub reads back all meet in one place; and both
build the webhooks they would send, from the recorded deliveries in ``tests/fixtures/crm``."""
from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import responses

from tests.helpers import FIXTURES

FOLDER = FIXTURES / "crm"
# the CRMs the read-back tests talk to, and what they sign with
START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday
WEBHOOK = "https://portal.example.bitrix24.ru/rest/1/s3cretcode/"
TOKEN = "r7x2k9m4q1w8e5t3y6u0i2o4p7a9s1d3"
AMO = "https://example.amocrm.ru"
SECRET = "Zq8x1NfA0u4T7cYw3m2LrV5sKd9pHe6B"
FORM = "application/x-www-form-urlencoded"
MSK = timezone(timedelta(hours=3))  # the portal's own time zone, as its dates carry


class VirtualClock:
    """Seconds that pass only when someone sleeps: hours of throttled traffic in no time."""

    def __init__(self):
        self.now, self.lock = 1_000_000.0, threading.Lock()

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


class LeakyBucket:
    """Bitrix24's documented limit: 2 requests a second, bursts of 50."""

    def __init__(self, clock: VirtualClock, rate: float = 2.0, burst: int = 50):
        self.clock, self.rate, self.burst = clock, rate, burst
        self.level, self.stamp, self.limited = 0.0, clock.time(), 0

    def admit(self) -> bool:
        now = self.clock.time()
        self.level = max(0.0, self.level - (now - self.stamp) * self.rate)
        self.stamp = now
        if self.level + 1 > self.burst + 1e-9:
            self.limited += 1
            return False
        self.level += 1
        return True


def answer(result, **extra) -> tuple[int, dict, str]:
    return 200, {}, json.dumps({"result": result, **extra, "time": {"start": 0, "finish": 0, "duration": 0}})


def error(status: int, code: str, description: str) -> tuple[int, dict, str]:
    return status, {}, json.dumps({"error": code, "error_description": description})


class FakeBitrix24:
    """One portal. The hub's incoming webhook acts as user 1; managers act as themselves."""

    SEMANTICS = {"NEW": "P", "IN_PROCESS": "P", "PROCESSED": "P", "CONVERTED": "S", "JUNK": "F"}
    METHODS = ("crm.lead.add", "crm.lead.update", "crm.lead.get", "crm.lead.list",
               "crm.timeline.comment.list", "crm.timeline.comment.add", "event.bind")

    def __init__(self, webhook: str, now: Callable[[], datetime], bucket: LeakyBucket | None = None):
        self.webhook, self.now, self.bucket = webhook.rstrip("/"), now, bucket
        self.leads: dict[str, dict] = {}
        self.calls: Counter = Counter()
        self.lock = threading.Lock()

    def install(self, mocked: responses.RequestsMock) -> FakeBitrix24:
        for method in self.METHODS:
            mocked.add_callback(responses.POST, re.compile(re.escape(f"{self.webhook}/{method}") + r"(\.json)?$"),
                                callback=lambda request, method=method: self.serve(method, request))
        return self

    def serve(self, method: str, request):
        with self.lock:
            if self.bucket and not self.bucket.admit():
                return error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
            self.calls[method] += 1
            return getattr(self, method.replace(".", "_"))(json.loads(request.body))

    def stamp(self, at: datetime | None = None) -> str:
        return (at or self.now()).astimezone(MSK).isoformat(timespec="seconds")

    def crm_lead_add(self, body: dict):
        lead_id = str(1001 + len(self.leads))
        self.leads[lead_id] = {"STATUS_ID": "NEW", **body["fields"], "ID": lead_id, "MODIFY_BY_ID": "1",
                               "DATE_MODIFY": self.stamp()}
        return answer(int(lead_id))

    def crm_lead_update(self, body: dict):
        lead = self.leads.get(str(body["id"]))
        if lead is None:
            return error(400, "", "Not found")
        lead.update({**body["fields"], "MODIFY_BY_ID": "1", "DATE_MODIFY": self.stamp()})
        return answer(True)

    def crm_lead_get(self, body: dict):
        lead = self.leads.get(str(body["id"]))
        return answer(self.shown(lead)) if lead else error(400, "", "Not found")

    def crm_lead_list(self, body: dict):
        wanted = body.get("filter") or {}
        found = [self.shown(lead) for lead in self.leads.values() if self.matches(lead, wanted)]
        found.sort(key=lambda lead: (datetime.fromisoformat(lead["DATE_MODIFY"]), int(lead["ID"])))
        start = int(body.get("start") or 0)
        page = found[start:start + 50]
        more = {"next": start + 50} if start + 50 < len(found) else {}
        return answer([{key: lead.get(key) for key in body.get("select") or lead} for lead in page],
                      total=len(found), **more)

    def matches(self, lead: dict, wanted: dict) -> bool:
        since = wanted.get(">DATE_MODIFY")
        if since and datetime.fromisoformat(lead["DATE_MODIFY"]) <= datetime.fromisoformat(since):
            return False
        return all(str(lead.get(key)) == str(value) for key, value in wanted.items() if not key.startswith(">"))

    def crm_timeline_comment_list(self, body: dict):
        return answer([], total=0)

    def crm_timeline_comment_add(self, body: dict):
        return answer(5001)

    def event_bind(self, body: dict):
        """An incoming webhook is no application: Bitrix24 refuses to bind for it."""
        return error(403, "WRONG_AUTH_TYPE", "Current authorization type is denied for this method "
                                             "Application context required")

    def shown(self, lead: dict) -> dict:
        return {**lead, "ASSIGNED_BY_ID": str(lead.get("ASSIGNED_BY_ID") or ""),
                "STATUS_SEMANTIC_ID": self.SEMANTICS.get(lead["STATUS_ID"], "P")}

    def manager_changes(self, lead_id: str, by: int, at: datetime, **fields) -> None:
        """What a manager does in the portal's UI."""
        self.leads[lead_id].update({**fields, "MODIFY_BY_ID": str(by), "DATE_MODIFY": self.stamp(at)})

    def delete(self, lead_id: str) -> None:
        del self.leads[lead_id]

    def event(self, event: str, lead_id: str, token: str, ts: int = 1796022902, handler: int = 43) -> bytes:
        """The outgoing webhook's POST body for ``event`` about ``lead_id``."""
        fields = dict(parse_qsl((FOLDER / "bitrix24" / "event__lead_update.txt").read_text(encoding="utf-8")))
        fields.update({"event": event, "data[FIELDS][ID]": lead_id, "ts": str(ts),
                       "event_handler_id": str(handler), "auth[application_token]": token})
        return urlencode(fields).encode()


class FakeAmoCRM:
    """One amoCRM account (API v4). The hub's token acts as user 7010000."""

    HUB_USER = 7010000

    def __init__(self, base: str, now: Callable[[], datetime], account_id: int = 31234567):
        self.base, self.now, self.account_id = base.rstrip("/"), now, account_id
        self.leads: dict[int, dict] = {}
        self.calls: Counter = Counter()
        self.lock = threading.Lock()

    def install(self, mocked: responses.RequestsMock) -> FakeAmoCRM:
        routes = [(responses.POST, r"/api/v4/leads/complex", self.complex),
                  (responses.POST, r"/api/v4/leads/(\d+)/notes", self.note),
                  (responses.PATCH, r"/api/v4/leads/(\d+)", self.patch),
                  (responses.GET, r"/api/v4/leads/(\d+)", self.get),
                  (responses.GET, r"/api/v4/leads(\?.*)?", self.search)]
        for method, path, handler in routes:
            pattern = re.compile(re.escape(self.base) + path + r"$")
            mocked.add_callback(method, pattern, callback=lambda request, handler=handler: self.serve(handler, request))
        return self

    def serve(self, handler, request):
        with self.lock:
            self.calls[f"{request.method} {handler.__name__}"] += 1
            return handler(request)

    def unix(self, at: datetime | None = None) -> int:
        return int((at or self.now()).timestamp())

    def complex(self, request):
        [item] = json.loads(request.body)
        lead_id = 30011001 + len(self.leads)
        self.leads[lead_id] = {"id": lead_id, "name": item["name"], "status_id": 61234501, "pipeline_id": 6123450,
                               "responsible_user_id": item.get("responsible_user_id", self.HUB_USER),
                               "updated_by": self.HUB_USER, "updated_at": self.unix(), "is_deleted": False,
                               "account_id": self.account_id}
        return 200, {}, json.dumps([{"id": lead_id, "contact_id": 1, "company_id": None, "request_id": ["0"],
                                     "merged": False}])

    def note(self, request):
        return 200, {}, json.dumps({"_embedded": {"notes": [{"id": 1}]}})

    def patch(self, request):
        lead = self.leads[int(urlsplit(request.url).path.rsplit("/", 1)[1])]
        lead.update({**json.loads(request.body), "updated_by": self.HUB_USER, "updated_at": self.unix()})
        return 200, {}, json.dumps({"id": lead["id"], "updated_at": lead["updated_at"]})

    def get(self, request):
        lead = self.leads.get(int(urlsplit(request.url).path.rsplit("/", 1)[1]))
        if lead is None:
            return 404, {}, json.dumps({"title": "Not Found", "status": 404})
        return 200, {}, json.dumps(lead)

    def search(self, request):
        query = {key: values[0] for key, values in parse_qs(urlsplit(request.url).query).items()}
        since = int(query.get("filter[updated_at][from]", 0))
        found = sorted((lead for lead in self.leads.values() if lead["updated_at"] >= since
                        and query.get("query", "") in lead["name"]), key=lambda lead: lead["updated_at"])
        page, limit = int(query.get("page", 1)), int(query.get("limit", 50))
        chunk = found[(page - 1) * limit:page * limit]
        if not chunk:
            return 204, {}, ""
        links = {"next": {"href": "next"}} if page * limit < len(found) else {}
        return 200, {}, json.dumps({"_page": page, "_links": links, "_embedded": {"leads": chunk}})

    def manager_changes(self, lead_id: int, by: int, at: datetime, **fields) -> None:
        self.leads[lead_id].update({**fields, "updated_by": by, "updated_at": self.unix(at)})

    def delete(self, lead_id: int) -> bytes:
        """Deletes the lead; the webhook's body, which names only its id, stage and pipeline."""
        lead = self.leads.pop(lead_id)
        body = (FOLDER / "amocrm" / "webhook__delete.txt").read_text(encoding="utf-8")
        changes = {"leads[delete][0][id]": str(lead_id), "leads[delete][0][status_id]": str(lead["status_id"])}
        return urlencode([(key, changes.get(key, value)) for key, value in parse_qsl(body)]).encode()

    def webhook(self, action: str, lead_id: int, account_id: int | None = None) -> bytes:
        """The account webhook's POST body: ``leads[<action>][0][...]`` with the lead's fields."""
        body = (FOLDER / "amocrm" / "webhook__status_won.txt").read_text(encoding="utf-8")
        fields = [(key.replace("[status]", f"[{action}]"), value) for key, value in parse_qsl(body)]
        lead = self.leads[lead_id]
        current = {"id": lead_id, "status_id": lead["status_id"], "responsible_user_id": lead["responsible_user_id"],
                   "modified_user_id": lead["updated_by"], "updated_at": lead["updated_at"],
                   "last_modified": lead["updated_at"]}
        prefix = f"leads[{action}][0]["
        fields = [(key, str(current.get(key[len(prefix):-1], value)) if key.startswith(prefix) else value)
                  for key, value in fields]
        if account_id is not None:
            fields = [(key, str(account_id) if key == "account[id]" else value) for key, value in fields]
        return urlencode(fields).encode()
