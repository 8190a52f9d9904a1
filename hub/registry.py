"""The explicit map from (kind, provider) to provider module. The only place in ``hub/``
that names providers; adding one means adding a line here."""
from __future__ import annotations

from types import ModuleType

from connectors import log
from connectors.mail import smtp
from connectors.sms import smsru
from connectors.sms import twilio as twilio_sms
from connectors.webforms import cf7, generic, tilda

INTAKE: dict[tuple[str, str], ModuleType] = {
    ("forms", "generic"): generic,
    ("forms", "tilda"): tilda,
    ("forms", "cf7"): cf7,
    ("sms", "twilio"): twilio_sms,
    ("sms", "smsru"): smsru,
}

SENDERS: dict[tuple[str, str], ModuleType] = {
    ("sms", "log"): log,
    ("sms", "twilio"): twilio_sms,
    ("sms", "smsru"): smsru,
    ("email", "log"): log,
    ("email", "smtp"): smtp,
}


CRM: dict[str, ModuleType] = {}


def has_crm(target: str) -> bool:
    return target in CRM


def has(kind: str, provider: str) -> bool:
    return (kind, provider) in INTAKE


def providers(kind: str) -> list[str]:
    return sorted(provider for (k, provider) in INTAKE if k == kind)


def intake(kind: str, provider: str) -> ModuleType:
    return INTAKE[(kind, provider)]


def sender(channel: str, provider: str) -> ModuleType:
    return SENDERS[(channel, provider)]
