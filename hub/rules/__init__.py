"""Timed rules that keep leads from rotting: tasks and reminders, SLA escalations, stage
limits and the missed-call callback ladder. All of them run on ``hub.rules.timers``."""
