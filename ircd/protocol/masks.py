"""Glob masks (``*`` and ``?``) over ``nick!user@host``, casefolded.

RFC 2812 section 2.5 wildcards; tested against the ircdocs ``mask-match``
vectors. Used for channel bans (+b) and WHO masks.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ircd.protocol.casemap import casefold


@lru_cache(maxsize=1024)
def _compile(mask: str) -> re.Pattern[str]:
    out = []
    for ch in casefold(mask):
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def mask_match(mask: str, name: str) -> bool:
    """True if ``name`` matches the glob ``mask`` (case-insensitive, rfc1459)."""
    return _compile(mask).match(casefold(name)) is not None


def normalize_ban_mask(mask: str) -> str:
    """Complete a partial ban mask: ``nick`` -> ``nick!*@*``, ``u@h`` -> ``*!u@h``."""
    if "!" not in mask and "@" not in mask:
        return mask + "!*@*"
    if "!" not in mask:
        return "*!" + mask
    if "@" not in mask:
        return mask + "@*"
    return mask
