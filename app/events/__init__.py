"""State-change events: the outbox written with each change, and (later) broker and webhooks."""
