"""The hostile values and the payload builders the property tests share."""
from __future__ import annotations

from urllib.parse import quote, urlencode

from hypothesis import strategies as st

FORM = "application/x-www-form-urlencoded"
# What the 1,356 hostile requests put in fields, beside whatever Hypothesis makes up.
HOSTILE = [
    "", " ", "²", "٣٤", "１２", "-1", "0", "1" * 25, "9" * 5000, "1e999", "NaN", "3.5", "\x00", "a\x00b",
    "a@b..c", "a@" + "x" * 64 + ".ru", "x" * 70 + "@example.com", "ivan@example.com", "ivan@пример.рф",
    "+7 916 123-45-67", "8 (916) 123-45-67", "+266696687", "anonymous", "7" * 40,
    "Mon, 01 Jan 99999 00:00:00 +0000", "Mon, 01 Jan 2020 00:00:00 +99999999999999999999",
    "Tue, 23 Nov 2026 13:00:00 -0000", "2026-11-23 13:00:00", "253402300800", "99999999999999",
    "<script>alert(1)</script>", "\u202eevil", "😀", "%", "&=;", "\r\n", "x" * 3000, "answered",
    "NOTIFY_END", "completed", "sms_status", "https://example.com/?utm_source=x",
]
SURROGATES = ["\ud800", "a\udfffb", "\udc80\ud800"]
WIRE_TEXT = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=24),
                      st.from_regex(r"[0-9]{1,25}", fullmatch=True))
ANY_TEXT = st.one_of(WIRE_TEXT, st.sampled_from(SURROGATES))  # what JSON escapes can carry

CHARSETS = st.sampled_from(["", "utf-8", "windows-1251", "koi8-r", "utf-16", "idna", "unicode_escape",
                            "raw_unicode_escape", "punycode", "rot13", "x-unknown", "utf\x00", "utf-8\ud800",
                            '"utf-8"', "undefined", "base64"])
FORM_NAMES = st.sampled_from(["name", "phone", "Phone", "email", "Email", "message", "tel-123", "utm_source",
                              "landing_page", "referrer", "page_url", "tranid", "COOKIES", "test", "_secret",
                              "website", "_wpcf7", "submission_id", "your-email", "x"])
PHONES = st.one_of(st.sampled_from(["+7 916 123-45-67", "8 (916) 555-44-33", "+79161112233", "89031234567"]),
                   WIRE_TEXT)
EMAILS = st.one_of(st.sampled_from(["ivan@example.com", "Olga.P@Пример.рф", "a@b..c", "no-at-sign"]),
                   WIRE_TEXT)
CONTACT = st.fixed_dictionaries({}, optional={"phone": PHONES, "Phone": PHONES, "email": EMAILS, "Email": EMAILS})
FORM_FIELDS = st.builds(lambda contact, other: other | contact, CONTACT,
                        st.dictionaries(st.one_of(FORM_NAMES, st.text(max_size=8)), WIRE_TEXT, max_size=6))
ZADARMA_NAMES = st.sampled_from(["caller_id", "called_did", "call_start", "pbx_call_id", "internal", "destination",
                                 "duration", "disposition", "last_internal", "status_code", "is_recorded",
                                 "call_id_with_rec", "result"])
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), ANY_TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(FORM_NAMES, ANY_TEXT), inner, max_size=4)),
    max_leaves=12)


def urlencoded(fields: dict[str, str]) -> bytes:
    return urlencode(fields).encode("ascii")


def multipart(fields: dict[str, str], nameless: bool, boundary: str = "fuzzboundary") -> bytes:
    parts = [f'Content-Disposition: form-data; name="{quote(name)}"\r\n\r\n{value}' for name, value in fields.items()]
    if nameless:
        parts += ["Content-Disposition: form-data\r\n\r\nno name",
                  'Content-Disposition: form-data; filename="f"\r\n\r\nx']
    text = "".join(f"--{boundary}\r\n{part}\r\n" for part in parts) + f"--{boundary}--\r\n"
    return text.encode("utf-8")
