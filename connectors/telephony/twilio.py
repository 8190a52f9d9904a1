"""Twilio Programmable Voice: call status callbacks (and the incoming-call webhook).

Every callback is a form-encoded POST (a JSON one, or a GET, if so configured) signed with
``X-Twilio-Signature`` (see ``connectors.twilio_signature``). ``CallSid`` names the call; ``SequenceNumber`` orders
its callbacks, which may arrive out of order (without it, the ``Timestamp``).

Missed-call rule (Twilio's call status values): a terminal ``no-answer``, ``busy``, ``canceled``
or ``failed`` is missed; ``completed`` is answered when ``CallDuration`` > 0, else missed.
``completed`` only says audio was connected: an IVR or voicemail that picks up also completes.

A recording status callback (``RecordingSid``, no ``CallStatus``) only adds a recording: it
carries a non-final ``in_progress`` CallState with ``recording_url``, which the hub merges into
the call's touch without changing its status. It names no direction; ``inbound`` is assumed.

The reply is always an empty TwiML ``<Response/>``. That is right for status callbacks; used as
a number's Voice URL it would hang up every call, so point only ``StatusCallback`` at the hub.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors import twilio_signature
from connectors.base import BadRequest, CallState, Inbound, Parsed, Reply
from connectors.fields import integer, rfc2822_seconds

NAME = "twilio"
KIND = "telephony"
CHANNEL = "call"
MAPPING = "telephony/twilio"
SECRETS = ("auth_token_env", "shared_key_env")
OPTIONAL_SECRETS = ("shared_key_env",)  # only for Webhook Settings' shared-key signatures
SETTINGS = SECRETS  # the keys of its config section
METHODS = ("POST", "GET")  # POST by default, GET selectable in the console

# CallStatus → CallState.status; None means "decided by the duration".
STATUS = {
    "queued": "ringing", "initiated": "ringing", "ringing": "ringing",
    "in-progress": "in_progress", "completed": None,
    "busy": "missed", "failed": "missed", "no-answer": "missed", "canceled": "missed",
}
FINAL = ("completed", "busy", "failed", "no-answer", "canceled")
HANDLES = tuple(f"call.{status}" for status in STATUS) + ("recording",)
IGNORES = ("message",)
# How Twilio presents a withheld caller id ("+266696687" spells ANONYMOUS on a keypad).
WITHHELD = {"", "+266696687", "266696687", "anonymous", "restricted", "private", "unknown", "blocked"}
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def verify(inbound: Inbound, settings: Mapping[str, Any]) -> None:
    twilio_signature.verify_request(inbound, settings)


def parse(inbound: Inbound, settings: Mapping[str, Any]) -> list[Parsed]:
    fields = dict(twilio_signature.request_params(inbound))
    call_sid = fields.get("CallSid", "").strip()
    if not call_sid:
        if fields.get("MessageSid"):  # an SMS webhook pointed at the voice endpoint
            return [Parsed("message", fields, ignore="unsupported event message")]
        raise BadRequest("missing CallSid", {"CallSid": "required"})
    status = fields.get("CallStatus", "").strip()
    if not status and fields.get("RecordingSid"):
        return [recording_event(fields, call_sid)]
    if not status:
        raise BadRequest("missing CallStatus", {"CallStatus": "required"})
    if status not in STATUS:
        return [Parsed(f"call.{status}", fields, ignore=f"unsupported event call.{status}")]
    if fields.get("ParentCallSid") and fields.get("Direction") == "outbound-dial":
        # the leg a <Dial> opened to a manager's phone: the parent call carries the client
        return [Parsed(f"call.{status}", fields, ignore=f"forwarded leg of call {fields['ParentCallSid']}")]
    return [call_event(fields, call_sid, status)]


def reply(parsed: Parsed | None) -> Reply:
    return Reply(200, EMPTY_TWIML, "text/xml")


def call_event(fields: dict[str, str], call_sid: str, status: str) -> Parsed:
    outbound = fields.get("Direction", "").startswith("outbound")
    if outbound:
        client, called, anonymous = first(fields, "To", "Called"), "", False
    else:
        client, called = first(fields, "From", "Caller"), first(fields, "To", "Called")
        anonymous = client.lower() in WITHHELD
    duration = integer(fields, "CallDuration")
    state = CallState(
        call_id=call_sid, direction="outbound" if outbound else "inbound",
        status=STATUS[status] or completed_status(fields, duration), final=status in FINAL,
        seq=sequence(fields), duration=duration, anonymous=anonymous,
        recording_url=fields.get("RecordingUrl") or None)
    key = f"{call_sid}:{status}" + (f":{fields['SequenceNumber']}" if fields.get("SequenceNumber") else "")
    return Parsed(f"call.{status}", with_numbers(fields, "" if anonymous else client, called),
                  delivery_key=key, extra={"touch_key": f"call:{NAME}:{call_sid}", "call": state})


def completed_status(fields: dict[str, str], duration: int | None) -> str:
    if duration is None:  # only billed minutes: any minute billed means audio was connected
        duration = integer(fields, "Duration") or 0
    return "answered" if duration > 0 else "missed"


def recording_event(fields: dict[str, str], call_sid: str) -> Parsed:
    recording = fields["RecordingSid"]
    progress = fields.get("RecordingStatus", "completed")
    if progress != "completed":
        return Parsed("recording", fields, ignore=f"recording {progress}")
    state = CallState(call_id=call_sid, direction="inbound", status="in_progress",
                      recording_url=fields.get("RecordingUrl") or None)
    return Parsed("recording", fields, delivery_key=f"{call_sid}:recording:{recording}",
                  extra={"touch_key": f"call:{NAME}:{call_sid}", "call": state})


def sequence(fields: dict[str, str]) -> float | None:
    if fields.get("SequenceNumber", "").strip():
        return float(integer(fields, "SequenceNumber"))
    return rfc2822_seconds(fields, "Timestamp")


def first(fields: dict[str, str], *names: str) -> str:
    return next((fields[name].strip() for name in names if fields.get(name, "").strip()), "")


def with_numbers(fields: dict[str, str], client: str, called: str) -> dict[str, str]:
    """The provider's fields plus the neutral ``call.client`` / ``call.called`` (when known)."""
    extra = {"call.client": client, "call.called": called}
    return {**fields, **{name: value for name, value in extra.items() if value}}
