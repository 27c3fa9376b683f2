"""Host cloaking: the host other users see instead of a client's address (sans-I/O).

WHOIS (311), WHO (352), the ``nick!user@host`` source of every relayed line
and WHOWAS would otherwise show every user's IP address to everyone. With
``[server] cloak_hosts`` (on by default, as in Ergo) a client's ``host`` is
a keyed hash of its network instead: ``<16 base32 characters>.<suffix>``,
e.g. ``k3v9x2m4q8r7t6wa.irc``. The same address always gets the same cloak
(so ``+b *!*@<cloak>`` and K-lines keep working across reconnects), the
addresses of one IPv6 /64 (``[limits] ipv6_prefix``) share one, and without
the key a cloak reveals nothing about the address (HMAC-SHA-256, RFC 2104).

Operators, and the user itself, still see the real address (WHOIS 378,
WHOX ``%i``); server bans match the real address as well as the cloak.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
from pathlib import Path

CLOAK_KEY_FILE = "cloak.key"
"""The file in the data directory that keeps a generated cloak key across restarts."""

CLOAK_KEY_BYTES = 32


def cloak_host(ip: str, key: bytes, suffix: str = "irc", ipv6_prefix: int = 64) -> str:
    """The cloaked host (str) for address ``ip`` (str), keyed by ``key`` (bytes).

    IPv4 addresses are cloaked whole; IPv6 addresses by their ``ipv6_prefix``-bit
    network (1..128), so the addresses a single customer gets share one cloak.
    Something that is not an IP address (a Unix socket, "unknown") is cloaked
    as a string. The result is 16 lower-case base32 characters, a dot and
    ``suffix``: a valid hostname that contains no part of the address.
    """
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        material = b"s:" + ip.encode("utf-8", "surrogateescape")
    else:
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if isinstance(addr, ipaddress.IPv6Address):
            net = ipaddress.IPv6Network((addr, ipv6_prefix), strict=False)
            material = b"6:" + net.network_address.packed + bytes([ipv6_prefix])
        else:
            material = b"4:" + addr.packed
    digest = hmac.new(key, material, hashlib.sha256).digest()
    return base64.b32encode(digest[:10]).decode("ascii").lower() + "." + suffix


def load_or_create_key(data_dir: str | Path, configured: str = "") -> bytes:
    """The cloak key (bytes): ``configured`` (``[server] cloak_secret``) when set,
    else the key kept in ``<data_dir>/cloak.key``, made (32 random bytes, mode
    0600) on first use. Raises ``OSError`` if the file cannot be read or written.

    Nodes of a cluster must share ``cloak_secret`` for one address to look the
    same on every node.
    """
    if configured:
        return configured.encode("utf-8")
    path = Path(data_dir) / CLOAK_KEY_FILE
    try:
        key = path.read_bytes()
        if len(key) >= 16:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(CLOAK_KEY_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(key)
    tmp.chmod(0o600)
    tmp.replace(path)
    return key
