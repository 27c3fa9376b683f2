"""Glob masks (``*`` and ``?``) over ``nick!user@host``, casefolded.

RFC 2812 section 2.5 wildcards; tested against the ircdocs ``mask-match``
vectors. This is the one wildcard matcher of the server: channel bans and
exceptions (+b, +e, +I), WHO masks, LIST masks, K-lines, oper host masks
and WebSocket origin globs all use it.

Theory of operation. A mask is never turned into a regular expression (a
backtracking regex engine takes exponential time on masks like
``*a*a*a*a*b``). Instead :class:`Glob` simulates the mask's
nondeterministic automaton with one Python integer as a bit set: bit ``i``
is set when ``name[:k]`` can be matched by ``mask[:i]``. Each character of
the name updates the whole set with a few bitwise operations, so matching a
name of ``n`` characters against a mask of ``m`` characters takes exactly
``n`` steps (fewer if the set empties), each ``O(ceil(m / 64))`` machine
words: ``O(n * ceil(m / 64))`` time, ``O(m)`` memory, whatever the mask's
shape. Compiling a mask takes ``O(m * ceil(m / 64))``.
"""

from __future__ import annotations

from ircd.protocol.casemap import casefold


class Glob:
    """A compiled glob: ``*`` matches any run of characters (also none), ``?`` exactly one.

    Every other character matches itself only (``[``, ``]``, ``\\`` are not
    special). ``mask`` (str) is compared as given: casefold both sides first
    when the caller needs IRC casemapping (:func:`compile_mask` does).

    :meth:`match` runs in ``O(len(name) * ceil(len(mask) / 64))`` word
    operations (a bit-parallel simulation of the mask's automaton, see the
    module docstring); it never backtracks. Never raises.
    """

    __slots__ = ("mask", "_accept", "_chars", "_other", "_stars", "_start",
                 "_literal", "_prefix", "_suffix", "_min_len")

    def __init__(self, mask: str) -> None:
        # Consecutive stars mean the same as one; collapsing them lets one
        # shift compute the epsilon closure of a star (below).
        collapsed: list[str] = []
        for ch in mask:
            if ch != "*" or not collapsed or collapsed[-1] != "*":
                collapsed.append(ch)
        self.mask = mask
        pattern = "".join(collapsed)
        m = len(pattern)
        self._literal: str | None = pattern if "*" not in pattern and "?" not in pattern else None
        # Cheap rejections: the literal text before the first and after the
        # last wildcard must start and end the name.
        cut = min((i for i in (pattern.find("*"), pattern.find("?")) if i >= 0), default=m)
        self._prefix = pattern[:cut]
        last = max(pattern.rfind("*"), pattern.rfind("?"))
        self._suffix = pattern[last + 1:] if last >= 0 else ""
        self._min_len = m - pattern.count("*")
        stars = 0
        other = 0  # the '?' positions: they match any character
        chars: dict[str, int] = {}
        for i, ch in enumerate(pattern):
            if ch == "*":
                stars |= 1 << i
            elif ch == "?":
                other |= 1 << i
            else:
                chars[ch] = chars.get(ch, 0) | 1 << i
        self._stars = stars
        self._other = other
        self._chars = {ch: bits | other for ch, bits in chars.items()}
        self._accept = 1 << m
        self._start = self._closure(1)

    def _closure(self, state: int) -> int:
        # A star at position i may match nothing: state i also means i + 1.
        # Stars are never adjacent, so one step reaches the closure.
        return state | ((state & self._stars) << 1)

    def match(self, name: str) -> bool:
        """True if the whole of ``name`` (str) matches the mask (case-sensitive)."""
        if self._literal is not None:
            return name == self._literal
        if (len(name) < self._min_len or not name.startswith(self._prefix)
                or not name.endswith(self._suffix)):
            return False
        state = self._start
        stars, other, chars = self._stars, self._other, self._chars
        for ch in name:
            # A character advances past a matching position (a literal equal
            # to it, or '?'), or is eaten by a star that stays where it is.
            state = ((state & chars.get(ch, other)) << 1) | (state & stars)
            if not state:
                return False
            state |= (state & stars) << 1
        return bool(state & self._accept)


def compile_mask(mask: str) -> Glob:
    """Compile an IRC mask (str) for :meth:`Glob.match` on casefolded names.

    The mask is casefolded with the rfc1459 casemapping; pass
    ``casefold(name)`` to the result's :meth:`Glob.match`, or use
    :func:`mask_match`. Compile once when one mask is matched against many
    names (WHO, LIST). Cost: see :class:`Glob`.
    """
    return Glob(casefold(mask))


def mask_match(mask: str, name: str) -> bool:
    """True if ``name`` matches the glob ``mask`` (both str; case-insensitive, rfc1459).

    RFC 2812 section 2.5 wildcards, ``*`` and ``?``; no other character is
    special. Time ``O((len(mask) + len(name)) * ceil(len(mask) / 64))``
    word operations whatever the mask (no backtracking); never raises.
    """
    return Glob(casefold(mask)).match(casefold(name))


def normalize_ban_mask(mask: str) -> str:
    """Complete a partial ban mask: ``nick`` -> ``nick!*@*``, ``u@h`` -> ``*!u@h``."""
    if "!" not in mask and "@" not in mask:
        return mask + "!*@*"
    if "!" not in mask:
        return "*!" + mask
    if "@" not in mask:
        return mask + "@*"
    return mask
