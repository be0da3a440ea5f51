"""Quotes, offset orders, allocation and fulfilment, cancellation and idempotency."""
