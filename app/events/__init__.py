"""State-change events: the outbox, the relay that numbers and publishes it, doorbells, the
per-process feed that fans events out to subscribers, webhooks, and the one event shape."""
