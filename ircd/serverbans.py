"""Server bans (K-lines and D-lines) as plain objects with an injected clock.

A K-line bans a ``nick!user@host`` glob mask (``user@host`` means any nick,
as Hybrid and InspIRCd take it); it is checked when a connection registers
and against the users already online. A D-line bans an IP address or a CIDR
network; it is checked as soon as a connection is accepted, before
registration. A ban is permanent or expires at a given time.

Nothing here reads the time or touches a disk: every method that depends on
time takes ``now`` (unix seconds), and storage is behind the small
:class:`ServerBanStore` interface, implemented in :mod:`ircd.storage`
(SQLite: :class:`ircd.storage.sqlite.SqliteServerBanStore`; PostgreSQL:
:class:`ircd.storage.postgres.PostgresServerBanStore`). The core keeps the
:class:`BanList` in memory, so checks are synchronous, and hands each change
to the store off the event loop.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Protocol

from ircd.protocol.casemap import casefold
from ircd.protocol.masks import mask_match

KLINE = "K"
DLINE = "D"

_DURATION = re.compile(r"(\d+)([smhdw]?)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "": 60}
MAX_DURATION = 10 * 365 * 86400
"""The longest timed ban accepted (seconds); longer is refused as a duration."""


def parse_duration(text: str) -> int | None:
    """Seconds for a ban duration like ``30m``, ``1h``, ``2d``, ``1w``, ``1d12h`` or ``90s``.

    A bare number is minutes (as Hybrid's KLINE takes it). Returns None when
    ``text`` is not a duration (so the caller treats it as the mask), or is
    zero or longer than :data:`MAX_DURATION`.
    """
    if not text:
        return None
    pos, total = 0, 0
    for match in _DURATION.finditer(text.lower()):
        if match.start() != pos:
            return None
        pos = match.end()
        total += int(match.group(1)) * _UNITS[match.group(2)]
    if pos != len(text) or total <= 0 or total > MAX_DURATION:
        return None
    return total


def format_duration(seconds: float) -> str:
    """``3600`` -> ``"1h"``, ``90`` -> ``"1m30s"``; 0 -> ``"permanent"``."""
    seconds = int(seconds)
    if seconds <= 0:
        return "permanent"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(out)


class BadMask(ValueError):
    """A K-line mask without ``user@host``, or a D-line that is no address or network."""


def normalize_kline_mask(mask: str) -> str:
    """``user@host`` -> ``*!user@host``; ``nick!user@host`` kept. Raises :class:`BadMask`.

    Refused: no ``@``, an empty part, a space or comma, more than one ``!``/``@``.
    """
    if " " in mask or "," in mask or mask.count("@") != 1 or mask.count("!") > 1:
        raise BadMask(mask)
    if "!" not in mask:
        mask = "*!" + mask
    nick, rest = mask.split("!", 1)
    user, host = rest.split("@", 1)
    if not (nick and user and host):
        raise BadMask(mask)
    return mask


def normalize_dline_mask(mask: str) -> str:
    """An IP address or network in canonical form (``10.0.0.0/8``, ``2001:db8::/32``).

    A single address is kept without a prefix length. Raises :class:`BadMask`.
    """
    try:
        if "/" in mask:
            return str(ipaddress.ip_network(mask, strict=False))
        return str(ipaddress.ip_address(mask))
    except ValueError:
        raise BadMask(mask) from None


@dataclass(frozen=True, slots=True)
class ServerBan:
    """One K-line or D-line.

    ``kind`` is :data:`KLINE` or :data:`DLINE`; ``mask`` is normalized
    (:func:`normalize_kline_mask`, :func:`normalize_dline_mask`); ``setter``
    the oper's ``nick!user@host``; ``set_at`` and ``expires`` unix seconds
    (``expires`` 0: permanent).
    """

    kind: str
    mask: str
    reason: str
    setter: str
    set_at: float
    expires: float = 0.0

    @property
    def key(self) -> tuple[str, str]:
        """Identity of the ban: (kind, casefolded mask)."""
        return self.kind, casefold(self.mask)

    def expired(self, now: float) -> bool:
        return bool(self.expires) and self.expires <= now

    def remaining(self, now: float) -> float:
        """Seconds until expiry (0 for a permanent ban)."""
        return max(1.0, self.expires - now) if self.expires else 0.0


class ServerBanStore(Protocol):
    """Where server bans are kept across restarts. Every method may block (disk, network).

    ``load`` returns every ban stored (expired ones included; the caller
    drops them); ``save`` inserts or replaces the ban with the same
    :attr:`ServerBan.key`; ``delete`` removes the ban with that key, if any.
    Errors are raised as exceptions (the caller logs them).
    """

    def load(self) -> list[ServerBan]:
        """Every stored ban, expired ones included."""

    def save(self, ban: ServerBan) -> None:
        """Insert ``ban``, or replace the one with the same :attr:`ServerBan.key`."""

    def delete(self, kind: str, mask: str) -> None:
        """Remove the ban of ``kind`` (:data:`KLINE` or :data:`DLINE`) on ``mask``, if any."""

    def close(self) -> None:
        """Release the connection (called once, at shutdown)."""


class BanList:
    """The bans in force, by kind, in memory.

    Checks (:meth:`kline_for`, :meth:`dline_for`) skip expired bans;
    :meth:`expire` removes them and returns them (for the store).
    """

    def __init__(self) -> None:
        self._bans: dict[tuple[str, str], ServerBan] = {}
        self._dnets: dict[tuple[str, str], ipaddress.IPv4Network | ipaddress.IPv6Network] = {}

    def __len__(self) -> int:
        return len(self._bans)

    def add(self, ban: ServerBan) -> ServerBan | None:
        """Add or replace ``ban``; return the ban it replaced (same kind and mask), if any."""
        old = self._bans.get(ban.key)
        self._bans[ban.key] = ban
        if ban.kind == DLINE:
            self._dnets[ban.key] = ipaddress.ip_network(ban.mask, strict=False)
        return old

    def remove(self, kind: str, mask: str) -> ServerBan | None:
        """Remove the ban of ``kind`` on ``mask`` (given as the user typed it); return it or None."""
        for key in {(kind, casefold(mask)), (kind, casefold(_try_normalize(kind, mask)))}:
            ban = self._bans.pop(key, None)
            if ban is not None:
                self._dnets.pop(key, None)
                return ban
        return None

    def all(self) -> list[ServerBan]:
        """Every ban held, expired or not, in the order added (a cluster snapshot)."""
        return list(self._bans.values())

    def listing(self, kind: str, now: float) -> list[ServerBan]:
        """The bans of ``kind`` in force at ``now``, oldest first."""
        return sorted((b for b in self._bans.values() if b.kind == kind and not b.expired(now)),
                      key=lambda b: b.set_at)

    def kline_for(self, sources: tuple[str, ...], now: float) -> ServerBan | None:
        """The first K-line matching any of ``sources`` (``nick!user@host`` strings), or None."""
        for ban in self._bans.values():
            if (ban.kind == KLINE and not ban.expired(now)
                    and any(mask_match(ban.mask, s) for s in sources)):
                return ban
        return None

    def dline_for(self, ip: str, now: float) -> ServerBan | None:
        """The first D-line whose address or network contains ``ip``, or None."""
        if not self._dnets:
            return None
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        for key, net in self._dnets.items():
            ban = self._bans[key]
            if addr.version == net.version and addr in net and not ban.expired(now):
                return ban
        return None

    def expire(self, now: float) -> list[ServerBan]:
        """Remove and return the bans expired at ``now``."""
        gone = [ban for ban in self._bans.values() if ban.expired(now)]
        for ban in gone:
            del self._bans[ban.key]
            self._dnets.pop(ban.key, None)
        return gone


def _try_normalize(kind: str, mask: str) -> str:
    try:
        return normalize_kline_mask(mask) if kind == KLINE else normalize_dline_mask(mask)
    except BadMask:
        return mask
