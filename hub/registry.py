"""The explicit map from (kind, provider) to provider module. The only place in ``hub/``
that names providers; adding one means adding a line here."""
from __future__ import annotations

from types import ModuleType

from connectors import log
from connectors.crm import amocrm, bitrix24, webhook
from connectors.mail import imap, smtp
from connectors.sms import smsru
from connectors.sms import twilio as twilio_sms
from connectors.telephony import mango, zadarma
from connectors.telephony import twilio as twilio_voice
from connectors.webforms import cf7, generic, tilda

INTAKE: dict[tuple[str, str], ModuleType] = {
    ("forms", "generic"): generic,
    ("forms", "tilda"): tilda,
    ("forms", "cf7"): cf7,
    ("mail", "imap"): imap,
    ("telephony", "twilio"): twilio_voice,
    ("telephony", "zadarma"): zadarma,
    ("telephony", "mango"): mango,
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


CRM: dict[str, ModuleType] = {
    "bitrix24": bitrix24,
    "amocrm": amocrm,
    "webhook": webhook,
}


def has_crm(target: str) -> bool:
    return target in CRM


def crm(target: str) -> ModuleType:
    return CRM[target]


def has(kind: str, provider: str) -> bool:
    return (kind, provider) in INTAKE


def providers(kind: str) -> list[str]:
    return sorted(provider for (k, provider) in INTAKE if k == kind)


def intake(kind: str, provider: str) -> ModuleType:
    return INTAKE[(kind, provider)]


def sender(channel: str, provider: str) -> ModuleType:
    return SENDERS[(channel, provider)]


def senders(channel: str) -> list[str]:
    return sorted(provider for (c, provider) in SENDERS if c == channel)


def crm_settings(target: str) -> set[str]:
    return set(CRM[target].SETTINGS)
