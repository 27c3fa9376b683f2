"""Glob masks (``*`` and ``?``) over ``nick!user@host``, casefolded.

RFC 2812 section 2.5 wildcards; tested against the ircdocs ``mask-match``
vectors. This is the one wildcard matcher of the server: channel bans and
exceptions (+b, +e, +I), WHO masks, LIST masks, K-lines, oper host masks
and WebSocket origin globs all use it.

Theory of operation. A mask is never turned into a regular expression (a
backtracking regex engine takes exponential time on masks like
``*a*a*a*a*b``), and matching never backtracks further than the current
star. :class:`Glob` takes one of two ways, both linear in the name for a
given mask:

- a mask without ``?`` is the literal pieces between its stars: the first
  must start the name, the last must end it, and each one between is looked
  for once, left to right, from where the previous one ended (the leftmost
  place is always the best one, so nothing is ever retried). Every
  character of the name is compared at most once per mask character: at
  most ``n * m`` character comparisons for a name of ``n`` characters and a
  mask of ``m``, done in C by ``str.startswith``, ``str.endswith`` and
  ``str.find`` (in practice about ``n + m``);
- a mask with ``?`` runs its nondeterministic automaton with one Python
  integer as a bit set (bit ``i`` set when the name read so far can be
  matched by ``mask[:i]``): each character of the name updates the whole set
  with a few bitwise operations, so exactly ``n`` steps (fewer if the set
  empties) of ``O(ceil(m / 64))`` machine words each.

Either way ``O(n * m)`` at the very worst and ``O(m)`` memory, whatever the
mask's shape.
"""

from __future__ import annotations

from ircd.protocol.casemap import casefold


class Glob:
    """A compiled glob: ``*`` matches any run of characters (also none), ``?`` exactly one.

    Every other character matches itself only (``[``, ``]``, ``\\`` are not
    special). ``mask`` (str) is compared as given: casefold both sides first
    when the caller needs IRC casemapping (:func:`compile_mask` does).

    :meth:`match` never backtracks (see the module docstring): for a name of
    ``n`` characters and a mask of ``m``, at most ``n * m`` character
    comparisons in C for a mask without ``?``, and ``n`` steps of
    ``ceil(m / 64)`` word operations for one with ``?``. Compiling costs
    ``O(m)`` (``O(m * ceil(m / 64))`` with ``?``). Never raises.
    """

    __slots__ = ("mask", "_literal", "_prefix", "_suffix", "_middle", "_min_len", "_stars_any",
                 "_chars", "_other", "_stars", "_start", "_accept")

    def __init__(self, mask: str) -> None:
        self.mask = mask
        # Consecutive stars mean the same as one.
        pattern = mask
        while "**" in pattern:
            pattern = pattern.replace("**", "*")
        self._literal: str | None = None
        self._chars: dict[str, int] | None = None
        self._min_len = len(pattern) - pattern.count("*")
        self._stars_any = "*" in pattern
        if "?" not in pattern:
            pieces = pattern.split("*")
            if len(pieces) == 1:
                self._literal = pattern
            self._prefix, self._suffix = pieces[0], pieces[-1]
            self._middle = pieces[1:-1]  # never empty strings: stars are collapsed
            return
        # The literal text before the first and after the last wildcard must
        # start and end the name: a cheap rejection before the automaton.
        cut = min(i for i in (pattern.find("*"), pattern.find("?")) if i >= 0)
        self._prefix = pattern[:cut]
        self._suffix = pattern[max(pattern.rfind("*"), pattern.rfind("?")) + 1:]
        self._middle = []
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
        self._accept = 1 << len(pattern)
        # A star at position i may match nothing: state i also means i + 1.
        # Stars are never adjacent, so one shift reaches the closure.
        self._start = 1 | ((1 & stars) << 1)

    def match(self, name: str) -> bool:
        """True if the whole of ``name`` (str) matches the mask (case-sensitive)."""
        if self._literal is not None:
            return name == self._literal
        if (len(name) < self._min_len or not name.startswith(self._prefix)
                or not name.endswith(self._suffix)
                or (not self._stars_any and len(name) != self._min_len)):
            return False
        chars = self._chars
        if chars is None:
            # Stars only: each piece once, leftmost, in order, between the
            # prefix and the suffix.
            pos, end = len(self._prefix), len(name) - len(self._suffix)
            for piece in self._middle:
                found = name.find(piece, pos, end)
                if found < 0:
                    return False
                pos = found + len(piece)
            return True
        state = self._start
        stars, other = self._stars, self._other
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
    special. Linear in ``name`` for a given mask, never backtracking, at most
    ``O(len(mask) * len(name))`` whatever the mask (:class:`Glob`); never raises.
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
