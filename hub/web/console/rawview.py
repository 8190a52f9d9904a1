"""A stored raw request as an admin may see it: headers, query and body as text, with every
credential masked. The hub never stores the request's own credentials (Authorization, cookies,
X-Hub-Secret), but providers sign in headers and forms may post their secret as a field."""
from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

CREDENTIAL = re.compile(r"secret|token|passw|signature|sign$|api_?key|auth|salt|^key$", re.IGNORECASE)
MASK = "••••••"
SHOWN_BYTES = 65536
MULTIPART_FIELD = re.compile(r'(name="([^"]*)"[^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*\r?\n)(.*?)(?=\r?\n--)', re.DOTALL)


def masked(name: str, value):
    return MASK if CREDENTIAL.search(name or "") else value


def headers(stored: dict) -> list[tuple[str, str]]:
    return [(name, masked(name, value)) for name, value in sorted(stored.items())]


def query(pairs: list) -> list[tuple[str, str]]:
    return [(name, masked(name, value)) for name, value in pairs]


def masked_json(value):
    if isinstance(value, dict):
        return {key: MASK if CREDENTIAL.search(str(key)) else masked_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [masked_json(item) for item in value]
    return value


def body(raw: bytes, content_type: str) -> str:
    """The body as text, credentials masked; cut at 64 KB."""
    text = raw[:SHOWN_BYTES].decode("utf-8", errors="replace")
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        return "\n".join(f"{name}={masked(name, value)}" for name, value in parse_qsl(text, keep_blank_values=True))
    if kind.endswith("json"):
        try:
            return json.dumps(masked_json(json.loads(text)), ensure_ascii=False, indent=2)
        except ValueError:
            return text
    if kind.startswith("multipart/"):
        return MULTIPART_FIELD.sub(lambda m: m.group(1) + (MASK if CREDENTIAL.search(m.group(2)) else m.group(3)), text)
    return text


def view(raw_event) -> dict:
    stored = raw_event.headers or {}
    content_type = next((v for k, v in stored.items() if k.lower() == "content-type"), "")
    return {"method": raw_event.method, "url": url_without_credentials(raw_event.url),
            "headers": headers(stored), "query": query(raw_event.query or []),
            "body": body(raw_event.body or b"", content_type), "size": len(raw_event.body or b""),
            "cut": len(raw_event.body or b"") > SHOWN_BYTES}


def url_without_credentials(url: str) -> str:
    """The URL without its query (shown, masked, on its own) and without user:password@."""
    base = (url or "").split("?", 1)[0]
    return re.sub(r"//[^/@]*@", "//", base)
