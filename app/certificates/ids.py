"""Unguessable, deterministic certificate ids derived from an order id and the server secret."""

import hashlib
import hmac
import re
import uuid

CERTIFICATE_ID_LENGTH = 32
"""Hex characters in a certificate id: 128 bits, too many to enumerate public URLs."""

# Domain separation: the same server secret may sign other things (API keys, webhooks), and
# an HMAC over a bare order id must never double as one of those.
_CERTIFICATE_ID_CONTEXT = b"carbon-gateway/certificate-id/v1\x00"

_WELL_FORMED_CERTIFICATE_ID = re.compile(rf"[0-9a-f]{{{CERTIFICATE_ID_LENGTH}}}")


def certificate_id(order_id: uuid.UUID, secret: str) -> str:
    """The public id of an order's certificate: the same for the same order and secret, and
    impossible to guess or to link back to the order without the secret."""
    if not secret:
        # An empty key still yields ids that look random but anyone can recompute them.
        raise ValueError("a non-empty server secret is required to derive certificate ids")
    digest = hmac.new(
        secret.encode("utf-8"), _CERTIFICATE_ID_CONTEXT + order_id.bytes, hashlib.sha256
    ).hexdigest()
    return digest[:CERTIFICATE_ID_LENGTH]


def is_well_formed_certificate_id(value: str) -> bool:
    """Whether `value` could be a certificate id at all, so routes can 404 without a query."""
    return _WELL_FORMED_CERTIFICATE_ID.fullmatch(value) is not None
