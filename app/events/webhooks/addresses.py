"""Which IP addresses a webhook may be sent to: globally routable unicast only, seen through
every IPv6 form that carries an IPv4 address inside it.

`ipaddress.is_global` alone is not enough: it calls 64:ff9b::7f00:1 (NAT64 of 127.0.0.1) or
fec0::1 (site-local) global, and a host can be reached through such wrappers of a private
IPv4 address. So an IPv6 address that embeds an IPv4 address is judged by the IPv4 address
it embeds, with the same IPv4 policy; every other address must pass all the checks below.
"""

import ipaddress
from collections.abc import Iterator

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # RFC 4291 2.5.5.1, deprecated but routable
IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")  # RFC 4291 2.5.5.2
IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 (SIIT)
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052
NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215
SIX_TO_FOUR = ipaddress.ip_network("2002::/16")  # RFC 3056
TEREDO = ipaddress.ip_network("2001::/32")  # RFC 4380
# RFC 6052 2.2: where a NAT64 prefix of each length puts the 32 IPv4 bits (bits 64-71, the
# "u" octet, are always skipped). A local-use /48 may be subdivided by the operator into any
# of these, so every layout that fits inside it is checked.
NAT64_LAYOUTS = (48, 56, 64, 96)


def address_allowed(address: Address) -> bool:
    """True when a webhook may connect to `address`."""
    embedded = list(embedded_ipv4(address)) if isinstance(address, ipaddress.IPv6Address) else []
    if embedded:
        return all(_public_unicast(ipv4) for ipv4 in embedded)
    if isinstance(address, ipaddress.IPv4Address):
        return _public_unicast(address)
    return _public_unicast(address) and not address.is_site_local  # fec0::/10


def embedded_ipv4(address: ipaddress.IPv6Address) -> Iterator[ipaddress.IPv4Address]:
    """Every IPv4 address a packet to `address` could end up at, by the IPv6 forms that
    carry one (none for an ordinary IPv6 address)."""
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in IPV4_MAPPED or address in IPV4_TRANSLATED or address in NAT64_WELL_KNOWN:
        yield low32
    elif address in IPV4_COMPATIBLE:
        yield low32  # also :: and ::1, which become 0.0.0.0 and 0.0.0.1: refused either way
    elif address in NAT64_LOCAL_USE:
        for prefix_length in NAT64_LAYOUTS:
            yield _rfc6052_ipv4(address, prefix_length)
    elif address in SIX_TO_FOUR:
        assert address.sixtofour is not None
        yield address.sixtofour
    elif address in TEREDO:
        assert address.teredo is not None
        server, client = address.teredo
        yield server
        yield client


def _rfc6052_ipv4(address: ipaddress.IPv6Address, prefix_length: int) -> ipaddress.IPv4Address:
    packed = address.packed
    start = prefix_length // 8
    # Skip byte 8 (the u octet) wherever the 4 IPv4 bytes would cross it.
    octets = [index for index in range(start, 16) if index != 8][:4]
    return ipaddress.IPv4Address(bytes(packed[index] for index in octets))


def _public_unicast(address: Address) -> bool:
    # is_global already refuses most of these (and 100.64.0.0/10, shared CGN space, which is
    # neither private nor global); the explicit checks keep the policy readable whatever a
    # Python release's tables say.
    return address.is_global and not (
        address.is_multicast
        or address.is_unspecified
        or address.is_reserved
        or address.is_loopback
        or address.is_link_local
        or address.is_private
    )
