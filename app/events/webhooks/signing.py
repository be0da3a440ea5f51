"""Signing webhooks the Standard Webhooks way: a secret per endpoint, one derived secret per
account and mode for orders' callback URLs, and the three `webhook-*` headers."""

import base64
import hashlib
import hmac
import secrets
import uuid
from datetime import datetime

from standardwebhooks import Webhook

from app.accounts.models import Mode


def new_endpoint_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def callback_secret(server_secret: str, account_id: uuid.UUID, mode: Mode) -> str:
    """The secret that signs deliveries to orders' `callbackUrl`s, one per account and mode."""
    key = hmac.new(
        server_secret.encode(),
        f"callback-secret:{account_id}:{mode.value}".encode(),
        hashlib.sha256,
    ).digest()
    return "whsec_" + base64.b64encode(key).decode()


def signature_headers(
    secret: str, message_id: str, timestamp: datetime, body: str
) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp` and `webhook-signature` for one attempt."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, timestamp, body),
    }
