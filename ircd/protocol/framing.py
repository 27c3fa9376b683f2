"""Splitting a byte stream into IRC lines.

RFC 1459 section 2.3 ends every message with CR LF; in practice clients also
send a bare LF ("Modern IRC", "Messages"), so both are accepted: the stream is
split on LF and one trailing CR is removed.  Empty lines are ignored, as the
RFC allows.

The decoder never buffers more than ``max_line`` bytes of an unterminated
line (a final CR, which may be half of CR LF, is remembered apart): once that is exceeded the rest of the line is discarded up to the next LF
and a :data:`LineTooLong` marker is emitted in its place, so a peer that never
sends a line ending cannot make the server hold more than one maximum line.
"""

from __future__ import annotations

from typing import Final


class _LineTooLongType:
    """Type of the :data:`LineTooLong` marker (a singleton)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "LineTooLong"


LineTooLong: Final = _LineTooLongType()
"""Emitted by :meth:`LineDecoder.push` in place of a line longer than ``max_line``."""


class LineDecoder:
    """Incremental line splitter: ``push(bytes) -> list[bytes | LineTooLong]``.

    ``max_line`` is in bytes and counts the line without its terminator. For
    IRC it is 8191 - 2 (4096 bytes of tags plus the 512-byte line, per the
    IRCv3 message-tags specification); the finer per-part limits are checked
    by :func:`ircd.protocol.message.parse_line`.
    """

    __slots__ = ("_buf", "_cr", "_discarding", "max_line")

    def __init__(self, max_line: int = 8189) -> None:
        self._buf = b""
        self._cr = False  # the unfinished line ended in CR (kept out of _buf)
        self._discarding = False
        self.max_line = max_line

    @property
    def buffered(self) -> int:
        """Bytes held for an unterminated line (at most ``max_line``)."""
        return len(self._buf)

    def push(self, data: bytes) -> list[bytes | _LineTooLongType]:
        """Feed received bytes; return the complete lines they finish, in order.

        Lines are returned without CR/LF. Empty lines are dropped. A line over
        ``max_line`` bytes is replaced by :data:`LineTooLong` (once per line).
        """
        if self._cr:
            data = self._buf + b"\r" + data
            self._cr = False
        elif self._buf:
            data = self._buf + data
        parts = data.split(b"\n")
        rest = parts.pop()
        max_line = self.max_line
        if parts and not self._discarding and max(map(len, parts)) <= max_line:
            # The common case, done with C-level operations: no line too long.
            if 13 in data:  # CR
                parts = [p[:-1] if p[-1:] == b"\r" else p for p in parts]
            out: list[bytes | _LineTooLongType] = [p for p in parts if p]
            parts = []
        else:
            out = []
        for raw in parts:
            if self._discarding:
                # The tail of an over-long line: its marker was already emitted.
                self._discarding = False
                continue
            if raw[-1:] == b"\r":
                raw = raw[:-1]
            if len(raw) > max_line:
                out.append(LineTooLong)
            elif raw:
                out.append(raw)
        if len(rest) == max_line + 1 and rest[-1:] == b"\r" and not self._discarding:
            # A CR at the end may be the first half of CR LF: it does not count.
            self._cr = True
            rest = rest[:-1]
        elif len(rest) > max_line:
            if not self._discarding:
                out.append(LineTooLong)
                self._discarding = True
            rest = b""
        elif self._discarding:
            rest = b""
        self._buf = rest
        return out
