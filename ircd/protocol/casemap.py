"""Casemapping and name validation.

The server advertises ``CASEMAPPING=rfc1459`` (RFC 2812 section 2.2; "Modern
IRC", "Casemapping"): ASCII letters fold to lower case and ``[]\\~`` fold to
``{}|^``, so ``Alice``, ``alice`` and ``ALICE`` are one nick, as are
``a[b]`` and ``a{b}``. Every nick and channel lookup goes through
:func:`casefold` so that names which differ only by case cannot coexist.
"""

from __future__ import annotations

import re
import string

RFC1459 = str.maketrans(string.ascii_uppercase + "[]\\~", string.ascii_lowercase + "{}|^")
"""The rfc1459 casemapping as a ``str.translate`` table (for hot paths)."""

CASEMAPPING = "rfc1459"


def casefold(name: str) -> str:
    """Fold ``name`` with the rfc1459 casemapping; other characters are kept."""
    return name.translate(RFC1459)


# RFC 2812 section 2.3.1: nickname = ( letter / special ) *( letter / digit / special / "-" )
# special = "[" / "]" / "\" / "`" / "_" / "^" / "{" / "|" / "}"
_NICK_RE = re.compile(r"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]*\Z")


def is_valid_nick(nick: str, maxlen: int = 30) -> bool:
    """True if ``nick`` is a valid nickname of at most ``maxlen`` characters.

    RFC 2812 section 2.3.1 grammar (ASCII only): a letter or one of
    ``[]\\`_^{|}`` first, then letters, digits, those specials and ``-``.
    """
    return 0 < len(nick) <= maxlen and _NICK_RE.match(nick) is not None


CHANTYPES = "#"


def is_valid_channel(name: str, maxlen: int = 64) -> bool:
    """True if ``name`` is a valid channel name of at most ``maxlen`` characters.

    RFC 2812 section 1.3: a channel type prefix (``#`` here, see
    ``CHANTYPES``) followed by characters other than space, comma, BEL
    (``\\x07``), NUL, CR and LF. Also ``:`` is refused (RFC 2812 grammar).
    """
    if not (1 < len(name) <= maxlen) or name[0] not in CHANTYPES:
        return False
    return not any(c in " ,\x07\x00\r\n:" for c in name)
