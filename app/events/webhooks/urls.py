"""Webhook URLs: checked in full when they are given, parsed again before each delivery, and
resolved to an address the SSRF policy allows."""

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from app.errors import InvalidInput
from app.events.webhooks.addresses import address_allowed

MAX_URL = 2048
MAX_HOSTNAME = 253
DNS_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
BRACKETED = re.compile(r"\[[0-9a-fA-F:.]+\](:[0-9]+)?")
DEFAULT_PORTS = {"http": 80, "https": 443}


class WebhookRefused(Exception):
    """The URL may not be called: it is malformed, does not resolve, or resolves to an address
    the policy refuses. Recorded as a failed attempt, never raised out of the dispatcher."""


@dataclass(frozen=True)
class WebhookTarget:
    scheme: str
    host: str  # a DNS name (ASCII) or an IP address, without brackets
    port: int
    path_and_query: str
    host_header: str


def validate_webhook_url(url: str, field: str) -> str:
    """`url` if it is an absolute http(s) URL with a valid host and port and no credentials;
    otherwise InvalidInput on `field`."""
    try:
        parse_webhook_url(url)
    except WebhookRefused as error:
        raise InvalidInput(str(error), field) from None
    return url


def parse_webhook_url(url: str) -> WebhookTarget:
    """Where a delivery to `url` goes; WebhookRefused says what is wrong with it."""
    if len(url) > MAX_URL:
        raise WebhookRefused(f"Must be at most {MAX_URL} characters.")
    if any(ord(character) <= 0x20 or ord(character) == 0x7F for character in url):
        raise WebhookRefused("Must not contain spaces or control characters.")
    if not url.isascii():
        try:
            url.encode()
        except UnicodeEncodeError:
            raise WebhookRefused("Must be valid Unicode text (no lone surrogates).") from None
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError for a non-number or a port beyond 65535
    except ValueError as error:
        raise WebhookRefused(f"Not a valid URL: {error}.") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.netloc:
        raise WebhookRefused("Must be an absolute http or https URL.")
    if parts.username is not None or parts.password is not None:
        raise WebhookRefused("Credentials in the URL are not allowed.")
    if port == 0:
        raise WebhookRefused("The port must be between 1 and 65535.")
    host = _checked_host(parts)
    path_and_query = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # The Host header names the host as the URL did, in ASCII (IDNs in their xn-- form).
    host_header = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    return WebhookTarget(
        scheme=parts.scheme,
        host=host,
        port=port or DEFAULT_PORTS[parts.scheme],
        path_and_query=path_and_query,
        host_header=host_header,
    )


def _checked_host(parts: SplitResult) -> str:
    hostname = parts.hostname  # lower-cased, brackets removed
    if not hostname:
        raise WebhookRefused("The URL has no host.")
    if parts.netloc.startswith("["):
        try:
            address = ipaddress.IPv6Address(hostname)
        except ValueError:
            address = None
        # A zone id (%eth0) names an interface of ours; text after "]" is no port.
        if address is None or address.scope_id or not BRACKETED.fullmatch(parts.netloc):
            raise WebhookRefused("The host is not a valid IPv6 address.")
        return str(address)
    try:
        ascii_host = hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise WebhookRefused("The host is not a valid domain name.") from None
    labels = ascii_host.removesuffix(".").split(".")
    if len(ascii_host) > MAX_HOSTNAME or not all(DNS_LABEL.fullmatch(x) for x in labels):
        raise WebhookRefused("The host is not a valid domain name or IP address.")
    if labels[-1].isdigit():
        # A numeric last label is an IPv4 address, in full dotted-quad form or not at all
        # (resolvers also accept "2130706433" or "127.1", which hides what is called).
        try:
            return str(ipaddress.IPv4Address(ascii_host))
        except ValueError:
            raise WebhookRefused("The host is not a valid IPv4 address.") from None
    return ascii_host


async def resolve_allowed(host: str, port: int, allow_private: bool) -> str:
    """The address to connect to: every A/AAAA record is checked, not just the first."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise WebhookRefused(f"cannot resolve {host}: {error}") from error
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise WebhookRefused(f"{host} has no addresses")
    if not allow_private:
        refused = [str(a) for a in addresses if not address_allowed(a)]
        if refused:
            raise WebhookRefused(f"{host} resolves to non-public address {refused[0]}")
    return str(addresses[0])
