"""Who may join and speak in a channel: bans, ban and invite exceptions, mutes (sans-I/O).

The three list modes (RFC 2811 sections 4.3.1-4.3.3, "Modern IRC" channel
modes; ISUPPORT ``CHANMODES=beI,...``, ``EXCEPTS=e``, ``INVEX=I``):

- ``+b <mask>``: a matching user may not join (474) and, unless voiced or an
  operator, may not speak (404).
- ``+e <mask>``: ban exception; a matching user is exempt from every ``+b``
  entry, mutes included.
- ``+I <mask>``: invite exception; a matching user may join a ``+i`` channel
  without an INVITE.

One extended ban ("extban", ISUPPORT ``EXTBAN=,m``: no prefix character, as
InspIRCd and Ergo spell it): ``+b m:<mask>`` mutes a matching user (they may
still join, but get 404 when they speak unless voiced or an operator);
``+e m:<mask>`` exempts a matching user from mutes only.

Masks are ``nick!user@host`` globs (:func:`ircd.protocol.masks.mask_match`),
completed by :func:`normalize_list_mask`. Every list entry is a
``(mask, setter, set_at)`` tuple, ``set_at`` in unix seconds.
"""

from __future__ import annotations

from ircd.protocol.casemap import casefold
from ircd.protocol.masks import Glob, compile_mask, normalize_ban_mask
from ircd.state import Channel, Client

LIST_MODES = "beI"
"""The list modes, in ISUPPORT CHANMODES type A order."""

EXTBAN_PREFIX = ""
EXTBAN_TYPES = "m"
"""ISUPPORT ``EXTBAN=<prefix>,<types>``: extbans are written ``<type>:<mask>``."""

MAX_LIST_ENTRIES = 100
"""Entries per list mode and channel (ISUPPORT ``MAXLIST``)."""

MUTE = "m"

Entry = tuple[str, str, float]


def extban_type(mask: str) -> str | None:
    """The extban letter of ``mask`` (``"m"`` for ``m:*!*@host``), or None for a plain mask."""
    if len(mask) >= 2 and mask[1] == ":" and mask[0].isascii() and mask[0].isalpha():
        return mask[0]
    return None


def normalize_list_mask(mask: str) -> str:
    """Complete a ``+b``/``+e``/``+I`` parameter: ``bob`` -> ``bob!*@*``, ``m:bob`` -> ``m:bob!*@*``.

    Raises ValueError for an empty mask, an unknown extban type (only ``m``
    is known) or an extban with nothing after the ``:``.
    """
    if not mask:
        raise ValueError("empty mask")
    kind = extban_type(mask)
    if kind is None:
        return normalize_ban_mask(mask)
    if kind not in EXTBAN_TYPES:
        raise ValueError(f"unknown extban type {kind!r}")
    rest = mask[2:]
    if not rest:
        raise ValueError("empty extban mask")
    return f"{kind}:{normalize_ban_mask(rest)}"


def _glob(chan: Channel, mask: str) -> Glob:
    """``mask`` compiled, from ``chan.globs`` (compiled once while it is listed; the
    cache is emptied when it holds more than the lists can, so it stays bounded)."""
    glob = chan.globs.get(mask)
    if glob is None:
        if len(chan.globs) >= 3 * MAX_LIST_ENTRIES:
            chan.globs.clear()
        glob = chan.globs[mask] = compile_mask(mask)
    return glob


def _any_plain(chan: Channel, entries: list[Entry], client: Client) -> bool:
    # One linear-time glob match per entry (ircd.protocol.masks), source folded once.
    source = casefold(client.source)
    return any(extban_type(mask) is None and _glob(chan, mask).match(source)
               for mask, _, _ in entries)


def _any_extban(chan: Channel, entries: list[Entry], kind: str, client: Client) -> bool:
    source = casefold(client.source)
    return any(extban_type(mask) == kind and _glob(chan, mask[2:]).match(source)
               for mask, _, _ in entries)


def is_exempt(chan: Channel, client: Client) -> bool:
    """True if a plain ``+e`` mask of ``chan`` matches ``client``'s ``nick!user@host``."""
    return bool(chan.excepts) and _any_plain(chan, chan.excepts, client)


def is_banned(chan: Channel, client: Client) -> bool:
    """True if a plain ``+b`` mask matches ``client`` and no ``+e`` mask does."""
    return bool(chan.bans) and _any_plain(chan, chan.bans, client) and not is_exempt(chan, client)


def is_muted(chan: Channel, client: Client) -> bool:
    """True if a ``+b m:<mask>`` matches ``client`` and neither a plain ``+e`` nor a ``+e m:`` does.

    Whether voice or operator status lifts the mute is the caller's rule
    (it does for PRIVMSG, as in InspIRCd and Ergo).
    """
    if not chan.bans or not _any_extban(chan, chan.bans, MUTE, client):
        return False
    return not (is_exempt(chan, client) or _any_extban(chan, chan.excepts, MUTE, client))


def is_invite_excepted(chan: Channel, client: Client) -> bool:
    """True if a ``+I`` mask of ``chan`` matches ``client`` (it may pass ``+i``)."""
    return bool(chan.invex) and _any_plain(chan, chan.invex, client)


def list_for(chan: Channel, letter: str) -> list[Entry]:
    """The entries of list mode ``letter`` (``b``, ``e`` or ``I``) of ``chan``; KeyError otherwise."""
    return {"b": chan.bans, "e": chan.excepts, "I": chan.invex}[letter]
