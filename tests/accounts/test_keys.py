"""API key format and hashing."""

from app.accounts.keys import (
    derive_demo_api_key,
    display_prefix,
    generate_api_key,
    hash_api_key,
    mode_of_key,
)
from app.accounts.models import Mode


def test_generated_keys_carry_their_mode_prefix_and_32_random_bytes() -> None:
    test_key, live_key = generate_api_key(Mode.TEST), generate_api_key(Mode.LIVE)
    assert test_key.startswith("cg_test_")
    assert live_key.startswith("cg_live_")
    assert len(test_key.removeprefix("cg_test_")) == 43  # 32 bytes in URL-safe base64
    assert mode_of_key(test_key) is Mode.TEST
    assert mode_of_key(live_key) is Mode.LIVE
    assert mode_of_key("sk_test_123") is None


def test_generated_keys_do_not_repeat() -> None:
    assert len({generate_api_key(Mode.TEST) for _ in range(1000)}) == 1000


def test_hash_is_sha256_hex_and_does_not_contain_the_key() -> None:
    key = generate_api_key(Mode.TEST)
    digest = hash_api_key(key)
    assert len(digest) == 64
    assert key not in digest
    assert hash_api_key(key) == digest


def test_display_prefix_reveals_only_the_start() -> None:
    key = generate_api_key(Mode.LIVE)
    assert display_prefix(key) == key[:12]


def test_demo_keys_are_stable_for_a_secret_and_differ_across_secrets() -> None:
    first = derive_demo_api_key("secret-a", Mode.TEST, admin=False)
    assert first == derive_demo_api_key("secret-a", Mode.TEST, admin=False)
    assert first != derive_demo_api_key("secret-b", Mode.TEST, admin=False)
    assert first != derive_demo_api_key("secret-a", Mode.TEST, admin=True)
    assert derive_demo_api_key("secret-a", Mode.LIVE, admin=False).startswith("cg_live_")
