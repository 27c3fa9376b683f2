"""IRC lines as the client reads and writes them: framing, parsing, CTCP, case folding.

Pure functions and one small stateful decoder; no sockets, no threads, no
clock. :mod:`nativeclient.state` builds on them, :mod:`nativeclient.session`
feeds them the bytes it reads.

* :class:`LineDecoder` -- bytes in, complete lines out. Lines end in LF or
  CR LF; a line that is not UTF-8 is decoded as latin-1 instead of failing;
  empty lines are dropped.
* :func:`parse_line` -- one line into a :class:`Line` (IRCv3 message tags,
  source, command, parameters; RFC 1459 section 2.3.1 grammar, "Message
  Tags" spec for the tags), or None when the line has no command.
* :func:`encode_line` -- one outgoing line into bytes with CR LF, refusing
  what the server would misread (a line feed inside, more than 512 bytes:
  RFC 1459 section 2.3).
* :func:`ctcp_split` -- a PRIVMSG/NOTICE text into plain pieces and CTCP
  requests (``\\x01ACTION waves\\x01``), as the CTCP spec describes.
* :func:`fold` -- RFC 1459 case folding of nicks and channel names.

The grammar is deliberately lenient, like that of the ``irc`` package the
client was first built on, whose parse it reproduces (tests/test_nativeclient_state.py
checks this line by line): tags and source are optional, parameters are
separated by runs of spaces, and the first `` :`` starts the trailing
parameter. Two deliberate differences: a lone backslash at the end of a tag
value is dropped (as the ircdocs parser-tests vectors require), and text
after a CTCP request is kept instead of dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_LINE_BYTES = 512
"""The longest line the client sends, CR LF included (RFC 1459 section 2.3)."""

_FOLD = str.maketrans("[]\\^", "{}|~")
_LINE = re.compile(r"^(@(?P<tags>[^ ]*) )?(:(?P<source>[^ ]+) +)?(?P<command>[^ ]+)( *(?P<params> .+))?")
_TAG_ESCAPE = re.compile(r"\\(.?)")
_TAG_UNESCAPE = {":": ";", "s": " ", "n": "\n", "r": "\r", "\\": "\\"}
_LOW_QUOTE = re.compile("\x10(.)")
_LOW_UNQUOTE = {"0": "\x00", "n": "\n", "r": "\r", "\x10": "\x10"}
_LINE_END = re.compile(rb"\r?\n")


def fold(name: str) -> str:
    """Case-fold a nick or room name the IRC way (RFC 1459: ``[]\\^`` ~ ``{}|~``)."""
    return name.lower().translate(_FOLD)


def nick_of(source: str | None) -> str:
    """The nick of a source ``nick!user@host`` (the whole source when it has no ``!``)."""
    return (source or "").partition("!")[0]


def is_user_source(source: str | None) -> bool:
    """True when the source names a user (``nick!user@host``) rather than a server."""
    return "!" in (source or "")


@dataclass(frozen=True)
class Line:
    """One parsed IRC line.

    ``tags``: IRCv3 message tags, values unescaped (a tag without a value maps
    to ``""``); ``source``: the prefix without ``:`` (None when absent);
    ``command``: as sent (a word or three digits), upper-cased; ``params``:
    the parameters, the trailing one included without its ``:``.
    """

    command: str
    params: tuple[str, ...] = ()
    source: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


def parse_line(text: str) -> Line | None:
    """Parse one line (without CR LF); None when it has no command (e.g. it starts with a space)."""
    m = _LINE.match(text)
    if m is None:
        return None
    tags: dict[str, str] = {}
    if m.group("tags"):
        for item in m.group("tags").split(";"):
            key, _, value = item.partition("=")
            tags[key] = unescape_tag_value(value)
    params: list[str] = []
    raw = m.group("params")
    if raw:
        middle, colon, trailing = raw.partition(" :")
        params = middle.split()
        if colon:
            params.append(trailing)
    return Line(m.group("command").upper(), tuple(params), m.group("source"), tags)


def unescape_tag_value(value: str) -> str:
    """Undo IRCv3 tag-value escaping (``\\:`` ``;``, ``\\s`` space, ``\\\\``, ``\\r``, ``\\n``).

    Any other escaped character stands for itself; a lone backslash at the
    end is dropped ("Message Tags" spec, "Escaping values").
    """
    return _TAG_ESCAPE.sub(lambda c: _TAG_UNESCAPE.get(c.group(1), c.group(1)), value)


def encode_line(text: str) -> bytes:
    """``text`` as UTF-8 with CR LF appended.

    Raises ``ValueError`` when ``text`` contains a line feed, a carriage
    return or a NUL (each could end or cut the line on some server: RFC 2812
    section 2.3.1), or when the result is longer than :data:`MAX_LINE_BYTES`.
    """
    if "\n" in text or "\r" in text or "\0" in text:
        raise ValueError("CR, LF and NUL are not allowed in a line")
    data = text.encode() + b"\r\n"
    if len(data) > MAX_LINE_BYTES:
        raise ValueError("Messages limited to 512 bytes including CR/LF")
    return data


class LineDecoder:
    """Bytes in, complete lines out (``irctokens``' ``StatefulDecoder`` in spirit).

    :meth:`push` takes any chunk of received bytes and returns the lines it
    completed, without their LF or CR LF, decoded as UTF-8 or, when a line
    is not valid UTF-8, as latin-1 (which never fails). Empty lines are
    dropped; an unfinished line waits for the next chunk.
    """

    def __init__(self) -> None:
        self._buffer = b""

    def push(self, data: bytes) -> list[str]:
        """Add ``data``; return the lines it completed (possibly none)."""
        parts = _LINE_END.split(self._buffer + data)
        self._buffer = parts.pop()
        return [decode_line(raw) for raw in parts if raw]

    @property
    def pending(self) -> int:
        """Bytes of the unfinished line kept for the next :meth:`push`."""
        return len(self._buffer)


def decode_line(raw: bytes) -> str:
    """One received line as text: UTF-8, or latin-1 when it is not valid UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def ctcp_split(text: str) -> list[str | tuple[str, ...]]:
    """Split a PRIVMSG/NOTICE text into plain pieces (str) and CTCP requests (tuples).

    A CTCP request is ``(tag,)`` or ``(tag, data)``: ``"\\x01ACTION waves\\x01"``
    gives ``[("ACTION", "waves")]``; a text without ``\\x01`` is returned as
    the one piece ``[text]``; text around requests is kept in order
    (``"a\\x01PING 1\\x01b"`` gives ``["a", ("PING", "1"), "b"]``); a lone
    ``\\x01`` at the end stays part of the text. Low-level quoting
    (``\\x10``) is undone first (CTCP spec, "Low level quoting").
    """
    text = _LOW_QUOTE.sub(lambda m: _LOW_UNQUOTE.get(m.group(1), m.group(1)), text)
    if "\x01" not in text:
        return [text]
    chunks = text.split("\x01")
    out: list[str | tuple[str, ...]] = []
    i = 0
    while i < len(chunks) - 1:
        if chunks[i]:
            out.append(chunks[i])
        if i < len(chunks) - 2:
            out.append(tuple(chunks[i + 1].split(" ", 1)))
        i += 2
    if len(chunks) % 2 == 0:
        out.append("\x01" + chunks[-1])
    elif len(chunks) > 1 and chunks[-1]:
        out.append(chunks[-1])  # text after the last CTCP request (the irc package dropped it)
    return out
