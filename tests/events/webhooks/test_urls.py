"""Webhook URLs are checked in full when given: scheme, host and port."""

import pytest

from app.errors import InvalidInput
from app.events.webhooks.urls import WebhookTarget, parse_webhook_url, validate_webhook_url

VALID = [
    (
        "https://example.com/hook",
        WebhookTarget("https", "example.com", 443, "/hook", "example.com"),
    ),
    ("http://example.com", WebhookTarget("http", "example.com", 80, "/", "example.com")),
    (
        "https://Hooks.Example.com:8443/a/b?x=1",
        WebhookTarget("https", "hooks.example.com", 8443, "/a/b?x=1", "hooks.example.com:8443"),
    ),
    (
        "http://[2606:4700::1111]:8080/",
        WebhookTarget("http", "2606:4700::1111", 8080, "/", "[2606:4700::1111]:8080"),
    ),
    ("http://93.184.215.14/x", WebhookTarget("http", "93.184.215.14", 80, "/x", "93.184.215.14")),
    (
        "https://bücher.example/h",
        WebhookTarget("https", "xn--bcher-kva.example", 443, "/h", "xn--bcher-kva.example"),
    ),
    (
        "https://example.com.:65535/",
        WebhookTarget("https", "example.com.", 65535, "/", "example.com.:65535"),
    ),
]

INVALID = [
    "http://example.com:99999/",  # port beyond 65535
    "http://example.com:0/",
    "http://example.com:-1/",
    "http://example.com:http/",
    "http://[::1/",  # unclosed IPv6 bracket
    "http://[::1]x/",
    "http://[not-ipv6]/",
    "http://[fe80::1%25eth0]/",  # zone ids name a local interface
    "ftp://example.com/",
    "javascript:alert(1)",
    "example.com/hook",
    "//example.com/hook",
    "https:///path-only",
    "https://user:pw@example.com/x",
    "https://user@example.com/x",
    "http://exa mple.com/",
    "http://example.com/a b",
    "http://example.com/\x00",
    "http://example.com/\ud800",  # a lone surrogate
    "http://-bad-.example.com/",
    "http://under_score.example.com/",
    "http://" + "a" * 64 + ".example.com/",
    "http://999.1.1.1/",
    "http://2130706433/",  # 127.0.0.1 as one number
    "http://127.1/",
    "https://example.com/" + "x" * 2048,
    "",
]


@pytest.mark.parametrize(("url", "target"), VALID, ids=[u for u, _ in VALID])
def test_valid_urls_parse_to_where_they_are_sent(url: str, target: WebhookTarget) -> None:
    assert validate_webhook_url(url, "url") == url
    assert parse_webhook_url(url) == target


@pytest.mark.parametrize("url", INVALID, ids=[repr(u[:40]) for u in INVALID])
def test_invalid_urls_are_invalid_input_on_their_field(url: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_webhook_url(url, "callbackUrl")
    assert raised.value.field == "callbackUrl"
