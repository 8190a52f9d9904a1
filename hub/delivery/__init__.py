"""Delivery: what leaves the hub (confirmations from the outbox, CRM pushes), retried from
its rows, and replay of what failed."""
