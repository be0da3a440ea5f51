"""The SSRF address policy: which addresses a webhook may connect to, in every IPv6 form that
carries an IPv4 address."""

import ipaddress

import pytest

from app.events.webhooks.addresses import address_allowed, embedded_ipv4

ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.215.14",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",  # IPv4-mapped public
    "::8.8.8.8",  # IPv4-compatible public
    "::ffff:0:808:808",  # IPv4-translated public (RFC 2765)
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "64:ff9b:1:808:8:808:808:808",  # local-use NAT64 of 8.8.8.8 in every RFC 6052 layout
    "2002:808:808::1",  # 6to4 of 8.8.8.8
    "2001:0:4136:e378:8000:ffff:f7f7:f7f7",  # Teredo: server 65.54.227.120, client 8.8.8.8
]

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.0.0.5", "private"),
    ("172.16.3.4", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local: cloud metadata"),
    ("100.64.0.1", "shared address space (carrier-grade NAT)"),
    ("0.0.0.0", "unspecified"),  # noqa: S104
    ("0.1.2.3", "this network"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("192.0.2.1", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("fc00::1", "unique local"),
    ("fd12:3456::1", "unique local"),
    ("fec0::1", "site-local (deprecated, RFC 3879)"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "global-scope multicast"),
    ("2001:db8::1", "documentation"),
    ("100::1", "discard-only"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:169.254.169.254", "IPv4-mapped metadata"),
    ("::127.0.0.1", "IPv4-compatible loopback"),
    ("::169.254.169.254", "IPv4-compatible metadata"),
    ("::ffff:0:7f00:1", "IPv4-translated loopback (RFC 2765)"),
    ("::ffff:0:a00:1", "IPv4-translated private"),
    ("64:ff9b::7f00:1", "NAT64 of 127.0.0.1"),
    ("64:ff9b::a9fe:a9fe", "NAT64 of 169.254.169.254"),
    ("64:ff9b:1::7f00:1", "local-use NAT64 (RFC 8215) of 127.0.0.1"),
    ("64:ff9b:1:7f00:0:100::", "local-use NAT64, /48 layout, of 127.0.0.1"),
    ("64:ff9b:1::808:808", "local-use NAT64: 8.8.8.8 as /96, but 0.0.0.0 as /48"),
    ("2002:7f00:1::", "6to4 of 127.0.0.1"),
    ("2002:a9fe:a9fe::1", "6to4 of 169.254.169.254"),
    ("2001:0:4136:e378:8000:ffff:80ff:fffe", "Teredo with client 127.0.0.1"),
    ("2001:0:a00:1:8000:ffff:f7f7:f7f7", "Teredo with server 10.0.0.1"),
]


@pytest.mark.parametrize("address", ALLOWED)
def test_public_unicast_addresses_are_allowed(address: str) -> None:
    assert address_allowed(ipaddress.ip_address(address)) is True


@pytest.mark.parametrize(("address", "why"), REFUSED, ids=[a for a, _ in REFUSED])
def test_non_public_addresses_are_refused_in_every_form(address: str, why: str) -> None:
    assert address_allowed(ipaddress.ip_address(address)) is False, why


def test_local_use_nat64_is_read_in_every_rfc6052_layout() -> None:
    # 127.0.0.1 behind a /48 prefix: bits 48-63, then (past the u octet) bits 72-87.
    found = set(embedded_ipv4(ipaddress.IPv6Address("64:ff9b:1:7f00:0:100::")))
    assert ipaddress.IPv4Address("127.0.0.1") in found


def test_an_ordinary_ipv6_address_embeds_nothing() -> None:
    assert list(embedded_ipv4(ipaddress.IPv6Address("2606:4700:4700::1111"))) == []
