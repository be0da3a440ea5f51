"""API key format: generation, hashing and recognising a key's mode from its prefix."""

import hashlib
import hmac
import secrets
from base64 import urlsafe_b64encode

from app.accounts.models import Mode

KEY_PREFIXES = {Mode.TEST: "cg_test_", Mode.LIVE: "cg_live_"}
KEY_RANDOM_BYTES = 32
DISPLAY_PREFIX_LENGTH = 12


def generate_api_key(mode: Mode) -> str:
    """A new key: its mode's prefix and 32 random bytes, URL-safe base64 (43 characters)."""
    return KEY_PREFIXES[mode] + secrets.token_urlsafe(KEY_RANDOM_BYTES)


def derive_demo_api_key(secret: str, mode: Mode, *, admin: bool) -> str:
    """The demo account's keys, derived from the server secret so `serve` can print them on
    every start without storing them. Unguessable unless the secret is the insecure default."""
    label = f"demo-key:{mode.value}:{'admin' if admin else 'standard'}".encode()
    digest = hmac.new(secret.encode(), label, hashlib.sha256).digest()
    return KEY_PREFIXES[mode] + urlsafe_b64encode(digest).rstrip(b"=").decode()


def hash_api_key(plain_key: str) -> str:
    # A plain SHA-256 suffices: keys carry 256 bits of randomness, so there is nothing to
    # brute-force and no salt is needed; it also keeps lookup a single indexed equality.
    return hashlib.sha256(plain_key.encode()).hexdigest()


def mode_of_key(plain_key: str) -> Mode | None:
    for mode, prefix in KEY_PREFIXES.items():
        if plain_key.startswith(prefix):
            return mode
    return None


def display_prefix(plain_key: str) -> str:
    return plain_key[:DISPLAY_PREFIX_LENGTH]
