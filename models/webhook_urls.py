"""Which webhook URLs may be called: http(s) only, and never a private address.

A receiver's name is resolved and every address it has is checked, at registration and
again before each delivery, which then connects to the address that was checked (a name
that resolved to a public address once cannot be pointed at an internal one later).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from models.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
MAX_URL = 2048
ALLOW_SETTING = "AIVBATCH_WEBHOOK_ALLOW_PRIVATE"


class RefusedUrl(InvalidInput):
    """The URL is not one the service will call; the message says why."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL: its host and port, and the addresses it resolved to."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: list[IPAddress]


def resolve(host: str, port: int) -> list[str]:
    """The addresses a host name resolves to (an address resolves to itself)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def why_not_public(address: IPAddress) -> str | None:
    """Why an address is no place for a webhook, or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind in ("loopback", "link_local", "private", "multicast", "unspecified", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if address.is_global else "non-public"


def check_url(url: str, *, allow_private: bool, resolver: Resolver = resolve) -> Target:
    """The URL's target, or RefusedUrl naming what is wrong with it."""
    if len(url) > MAX_URL:
        raise RefusedUrl(f"url: longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError as exc:  # an unclosed "[", say
        raise RefusedUrl(f"url: not a URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise RefusedUrl("url: only http:// and https:// URLs are accepted")
    if not host or any(c.isspace() or ord(c) < 32 for c in host):
        raise RefusedUrl("url: names no usable host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise RefusedUrl("url: the port is not a number from 0 to 65535") from None
    try:
        found = resolver(host, port)
    except (OSError, ValueError) as exc:  # ValueError: UnicodeError, a NUL in the name
        raise RefusedUrl(f"url: {host} does not resolve ({exc})") from None
    addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
    if not addresses:
        raise RefusedUrl(f"url: {host} does not resolve")
    if not allow_private:
        for address in addresses:
            kind = why_not_public(address)
            if kind is not None:
                raise RefusedUrl(
                    f"url: {host} is a {kind} address ({address}); webhooks go to public"
                    f" addresses only, unless {ALLOW_SETTING}=true"
                )
    return Target(url.strip(), parts.scheme, host, port, addresses)
