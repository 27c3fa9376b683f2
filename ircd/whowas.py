"""The WHOWAS history: who used a nick before (RFC 2812 section 3.6.3), bounded, sans-I/O.

The core records an entry whenever a registered user changes nick (the old
nick) or leaves (quit, disconnect, kill). At most ``length`` entries are
kept over all nicks (``[server] whowas_length``); the oldest goes first.
Lookups are by casefolded nick and return the newest entries first.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ircd.protocol.casemap import casefold


@dataclass(frozen=True, slots=True)
class WhowasEntry:
    """One former user of a nick: identity as it was, and when it ended (unix seconds)."""

    nick: str
    user: str
    host: str
    realname: str
    server: str
    when: float


class WhowasLog:
    """The last ``length`` (int, >= 0; 0 keeps nothing) :class:`WhowasEntry` records."""

    __slots__ = ("_length", "_entries", "_by_nick")

    def __init__(self, length: int = 1000) -> None:
        self._length = max(0, length)
        self._entries: deque[tuple[str, WhowasEntry]] = deque()
        self._by_nick: dict[str, deque[WhowasEntry]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def length(self) -> int:
        return self._length

    def resize(self, length: int) -> None:
        """Change the bound (a configuration reload); drops the oldest entries beyond it."""
        self._length = max(0, length)
        self._trim()

    def record(self, entry: WhowasEntry) -> None:
        """Add ``entry`` as the newest record of ``entry.nick``."""
        if self._length == 0:
            return
        key = casefold(entry.nick)
        self._entries.append((key, entry))
        self._by_nick.setdefault(key, deque()).append(entry)
        self._trim()

    def lookup(self, nick: str, count: int = 0) -> list[WhowasEntry]:
        """Entries for ``nick`` (any case), newest first; at most ``count`` when ``count`` > 0."""
        found = self._by_nick.get(casefold(nick))
        if not found:
            return []
        newest = list(reversed(found))
        return newest[:count] if count > 0 else newest

    def _trim(self) -> None:
        while len(self._entries) > self._length:
            key, _ = self._entries.popleft()
            per_nick = self._by_nick[key]
            per_nick.popleft()  # a nick's oldest entry is also the oldest overall
            if not per_nick:
                del self._by_nick[key]
