"""Webhooks: signed (Standard Webhooks) POSTs of order events, retried with backoff, every
attempt recorded, and never sent to private addresses unless CG_ALLOW_PRIVATE_WEBHOOKS is on.

One concern per module: `addresses` (the SSRF address policy), `urls` (URL checks and
resolution), `signing`, `queue` (what the relay calls), `dispatcher` (the sending loop),
`endpoints` (account endpoints) and `deliveries` (reads for the graph).
"""

from app.events.webhooks.queue import enqueue_for_events

__all__ = ["enqueue_for_events"]
