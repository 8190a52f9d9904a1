"""One call, one touch: every webhook of a call merges into the touch keyed by its call id.

Events arrive out of order and repeated. A final event (the provider's end-of-call word) fixes
the status; a later non-final one (a late "ringing") never turns it back; a recording link is
added whenever it comes.
"""
from __future__ import annotations

from dataclasses import asdict

from connectors.base import CallState

STATE_KEYS = ("call_id", "direction", "status", "duration", "recording_url", "extension", "final", "seq")


def initial_details(state: CallState, provider_details: dict) -> dict:
    details = {key: value for key, value in asdict(state).items() if key in STATE_KEYS}
    return details | {"anonymous": state.anonymous, "events": 1, "provider": provider_details}


def merge(details: dict, state: CallState, provider_details: dict) -> dict:
    """The touch's details after one more event of the call."""
    merged = dict(details, events=details.get("events", 1) + 1)
    if state.recording_url:
        merged["recording_url"] = state.recording_url
    if state.extension and not merged.get("extension"):
        merged["extension"] = state.extension
    if supersedes(details, state):
        merged.update(status=state.status, final=state.final, seq=state.seq,
                      provider=details.get("provider", {}) | provider_details)
        if state.duration is not None:
            merged["duration"] = state.duration
        if state.extension:
            merged["extension"] = state.extension
    return merged


def supersedes(details: dict, state: CallState) -> bool:
    if details.get("final") and not state.final:
        return False
    if state.final and not details.get("final"):
        return True
    if details.get("seq") is None or state.seq is None:
        return state.final or not details.get("final")
    return state.seq >= details["seq"]


def outcome(before: dict | None, after: dict) -> str | None:
    """What changed for the timed rules: the call just ended missed, or someone talked."""
    was_final = bool(before and before.get("final"))
    if after["status"] == "answered" and (before or {}).get("status") != "answered":
        return "answered"
    if after.get("final") and not was_final and after["status"] == "missed":
        return "missed"
    return None
