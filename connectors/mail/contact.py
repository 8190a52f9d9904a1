"""Who wrote, and how to reach them: the sender, a site form's fields, a forward's original
sender, a phone from the body (not from quoted text, not one of ours), a plus-address tag."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from email.message import Message
from email.utils import parseaddr

import phonenumbers

from connectors.mail import parse

NO_REPLY_RE = re.compile(r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|robot|mailer|wordpress|"
                         r"notify|notifications?)(?:[+-].*)?$", re.I)
FORM_KEYS = {
    "name": ("name", "your name", "имя", "ваше имя", "фио", "контактное лицо"),
    "phone": ("phone", "phone number", "tel", "telephone", "mobile", "телефон", "тел",
              "номер телефона", "мобильный"),
    "email": ("e-mail", "email", "your email", "почта", "эл. почта", "электронная почта"),
    "page": ("page", "page url", "landing page", "страница", "адрес страницы", "url страницы",
             "страница отправки", "ссылка на страницу"),
}
PAGE_RE = re.compile(r"^(?:https?://)?[\w-]+(?:\.[\w-]+)+(?::\d+)?(?:[/?#]\S*)?$")
FIELD_LINE_RE = re.compile(r"^[ \t]*([^:\n]{1,40}?)[ \t]*:[ \t]*(\S.*?)[ \t]*$", re.M)
FORWARD_RE = re.compile(r"^[-=_\s]*(?:Forwarded message|Begin forwarded message|"
                        r"Пересылаемое сообщение|Переадресованное сообщение)[-=_\s:]*$", re.I | re.M)
FORWARD_END_RE = re.compile(r"^[-=_\s]*(?:End of forwarded message|Конец пересылаемого сообщения)"
                            r"[-=_\s]*$", re.I | re.M)
SENDER_LINE_RE = re.compile(r"^\s*(?:From|От|Отправитель)\s*:\s*(.+)$", re.I)
ANGLE_ADDRESS_RE = re.compile(r"\"?([^\"<>,]*?)\"?\s*<([^<>\s]+@[^<>\s]+)>")
ATTRIBUTION_RE = re.compile(r"(?:\bwrote|пишет|написал[аи]?)\s*:\s*$", re.I)
ORIGINAL_RE = re.compile(r"^-{2,}\s*(?:Original Message|Исходное сообщение)\s*-{2,}$", re.I)
SIGNATURE_RE = re.compile(r"^(?:--|—|с уважением|best regards|regards|kind regards|спасибо)\b", re.I)


@dataclass
class Contact:
    name: str = ""
    email: str = ""
    phone: str = ""
    phone_ext: str = ""
    forwarded_by: str = ""
    relayed_by: str = ""  # who sent the client's words to us: a forwarding colleague, a form mailer
    page: str = ""  # a form notification's page URL
    text: str = ""  # the text the lead wrote (the original of a forward)


def is_own(address: str, own: list[str]) -> bool:
    address = address.lower()
    domain = address.rpartition("@")[2]
    return any(address == item.lower() or domain == item.lower().lstrip("@") for item in own)


def is_no_reply(address: str, own: list[str]) -> bool:
    return bool(NO_REPLY_RE.match(address.partition("@")[0])) or is_own(address, own)


def find_contact(message: Message, content: parse.Content, settings) -> Contact:
    own = list(settings.get("own_addresses") or [])
    name, email = parse.first_address(message, "From")
    contact = Contact(name=name, email=email, text=content.text)
    forward = forwarded_original(content)
    if forward is not None and (forward.email or forward.phone):
        forward.forwarded_by = forward.relayed_by = email
        contact = forward
    else:
        fields = form_fields(contact.text)
        if is_no_reply(email, own) or is_form(fields):
            contact = form_contact(message, contact, fields, own)
    if not contact.phone:
        contact.phone, contact.phone_ext = find_phone(contact.text, settings)
    return contact


def is_form(fields: dict[str, str]) -> bool:
    """A site form's notification, whoever sends it: a name or page line and another field
    (a signature's "Tel:" and "E-mail:" lines alone do not make one)."""
    return len(fields) >= 2 and bool({"name", "page"} & fields.keys())


def form_contact(message: Message, sender: Contact, fields: dict[str, str], own: list[str]) -> Contact:
    """A site-form notification: its ``Key: value`` lines, then Reply-To. The sender is the
    site's mailer, so its name and address count only when they are the form's e-mail."""
    reply_name, reply_to = parse.first_address(message, "Reply-To")
    if reply_to and is_no_reply(reply_to, own):
        reply_name, reply_to = "", ""
    email = reply_to or fields.get("email", "")
    wrote_itself = bool(email) and email.lower() == sender.email.lower()
    return Contact(name=fields.get("name") or reply_name or (sender.name if wrote_itself else ""),
                   email=email, phone=fields.get("phone", ""), page=fields.get("page", ""),
                   relayed_by="" if wrote_itself else sender.email, text=sender.text)


def form_fields(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in FIELD_LINE_RE.findall(text):
        label = key.strip(" *").lower()
        for field, labels in FORM_KEYS.items():
            if label in labels and field not in found:
                found[field] = value.strip()
    if "email" in found:
        found["email"] = parseaddr(found["email"])[1] or found["email"]
    if "page" in found and not PAGE_RE.match(found["page"]):
        del found["page"]
    return found


def forwarded_original(content: parse.Content) -> Contact | None:
    """The original of a forward: a message/rfc822 part, else an inline forwarded block."""
    for original in content.forwarded:
        name, email = parse.first_address(original, "From")
        inner = parse.read_content(original)
        return Contact(name=name, email=email, text=inner.text)
    return inline_forward(content.text)


def inline_forward(text: str) -> Contact | None:
    marker = FORWARD_RE.search(text)
    if marker is None:
        return None
    block = text[marker.end():].lstrip("\n")
    end = FORWARD_END_RE.search(block)
    block = block[:end.start()] if end else block
    head, _, body = block.partition("\n\n")
    name, email = forward_sender(head.split("\n")[:8])
    return Contact(name=name, email=email, text=parse.clean_text(body or head))


def forward_sender(lines: list[str]) -> tuple[str, str]:
    for line in lines:
        match = SENDER_LINE_RE.match(line)
        if match:
            name, email = parseaddr(match.group(1))
            if "@" in email:
                return name, email
    for line in lines:  # Yandex/Mail.ru: 20.11.2026, 10:15, "Иван" <ivan@example.ru>:
        match = ANGLE_ADDRESS_RE.search(line)
        if match:
            return match.group(1).strip(), match.group(2)
    return "", ""


def unquoted(text: str) -> str:
    """The text without quoted lines and without the quoted reply after "... wrote:"."""
    kept = []
    for line in text.split("\n"):
        if ATTRIBUTION_RE.search(line) or ORIGINAL_RE.match(line.strip()):
            break
        if not line.lstrip().startswith(">"):
            kept.append(line)
    return "\n".join(kept)


def find_phone(text: str, settings) -> tuple[str, str]:
    """(E.164 phone, extension) of the client: the first number in the signature, else the
    first in the text, never one of the company's own. The matcher is lazy and costs time in
    proportion to the text it reads, so the (short) signature is read first and reading
    stops at the first number found."""
    region = settings.get("region") or "RU"
    ours = own_numbers(tuple(settings.get("company_phones") or ()), region)
    body = unquoted(text)
    signature = signature_start(body)
    parts = [body] if signature is None else [body[signature:], body[:signature]]
    for part in parts:
        for match in phonenumbers.PhoneNumberMatcher(part, region, leniency=phonenumbers.Leniency.VALID):
            number = format_e164(match.number)
            if number not in ours:
                return number, match.number.extension or ""
    return "", ""


@functools.lru_cache(maxsize=64)
def own_numbers(phones: tuple[str, ...], region: str) -> frozenset[str]:
    return frozenset(e164(phone, region) for phone in phones)


def signature_start(text: str) -> int | None:
    offset = 0
    for line in text.split("\n"):
        if SIGNATURE_RE.match(line.strip()):
            return offset
        offset += len(line) + 1
    return None


def format_e164(number) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def e164(phone: str, region: str) -> str:
    try:
        return format_e164(phonenumbers.parse(phone, region))
    except phonenumbers.NumberParseException:
        return phone


def plus_tag(message: Message, username: str | None) -> str:
    """``sales+yandex@…`` among the recipients of the mailbox ``sales@…`` → ``yandex``."""
    local, _, domain = (username or "").lower().partition("@")
    if not local:
        return ""
    names = ("Delivered-To", "X-Original-To", "To", "Cc")
    if not any("+" in str(value) for name in names for value in message.get_all(name, ())):
        return ""  # no plus address: skip parsing the address lists
    recipients = parse.addresses(message, *names)
    for _, address in recipients:
        box, _, host = address.lower().rpartition("@")
        base, plus, tag = box.partition("+")
        if plus and tag and base == local and (not domain or host == domain):
            return address.rpartition("@")[0].partition("+")[2]
    return ""
