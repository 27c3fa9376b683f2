"""IRC messages: parsing a line into a :class:`Message`, and formatting one back.

Grammar: RFC 1459 section 2.3.1 and RFC 2812 section 2.3.1, with the IRCv3
message-tags extension (``@key=value;key2 :source COMMAND params :trailing``)
and the "Modern IRC" leniencies: tokens may be separated by several spaces,
and only the last parameter may contain spaces or be empty, introduced by
``:``.  Tested against the ircdocs parser-tests vectors (msg-split, msg-join).

Size limits (Modern IRC "Message format", IRCv3 message-tags "Size limit"):
the part after the tags is at most 512 bytes including CR LF (so 510 here,
where lines come without their terminator), and the tag section, counting the
leading ``@`` and the separating space, at most 4096 bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_LINE_BODY = 510
"""Bytes allowed for source, command and parameters (512 minus CR LF)."""

MAX_TAGS = 4096
"""Bytes allowed for the tag section, ``@`` and trailing space included."""


def truncate_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` (str) whose UTF-8 encoding is at most
    ``max_bytes`` bytes; never splits a character (a 4-byte emoji is kept
    whole or dropped whole). ``max_bytes`` <= 0 gives ``""``.

    The lengths the server advertises in ISUPPORT (``TOPICLEN``, ``AWAYLEN``,
    ``KICKLEN``, ``NAMELEN``) count bytes, as the 512-byte line limit does
    (Modern IRC "Message format"). Linear in ``len(text)``; never raises for
    text decoded from UTF-8.
    """
    if len(text) <= max_bytes // 4:  # every character is at most 4 bytes
        return text
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text
    # The cut may fall inside a character only at its end: drop that part.
    return data[:max(0, max_bytes)].decode("utf-8", "ignore")


def fit_line(line: str, limit: int = MAX_LINE_BODY) -> str:
    """``line`` (str, without tags and CR LF) cut to at most ``limit`` bytes of UTF-8.

    Replies, ERROR, and the relayed TOPIC, KICK, PART, QUIT, MODE, AWAY,
    KILL and WALLOPS lines go through this: with CR LF they are at most 512
    bytes, whatever the lengths of the sender's nick, user and host (PRIVMSG
    and NOTICE are relayed whole). A line over the limit loses the end of its
    last parameter, at a character boundary. Returns ``line`` itself when it
    fits.
    """
    if len(line) <= limit // 4:
        return line
    return truncate_utf8(line, limit)


class MessageParseError(ValueError):
    """A line that cannot be parsed as an IRC message.

    ``reason`` is a short machine-readable word: ``"empty"`` (no command),
    ``"too-long"`` (the body exceeds 510 bytes), ``"tags-too-long"`` (the
    tag section exceeds 4096 bytes). This is the one error :func:`parse_line`
    raises.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


_TAG_UNESCAPE = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_TAG_ESCAPE = str.maketrans({";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"})


def unescape_tag_value(value: str) -> str:
    """Undo IRCv3 tag-value escaping (message-tags spec, "Escaping values").

    A backslash before a character that needs no escaping is dropped; a
    trailing lone backslash is dropped.
    """
    if "\\" not in value:
        return value
    out: list[str] = []
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if ch == "\\":
            i += 1
            if i < n:
                nxt = value[i]
                out.append(_TAG_UNESCAPE.get(nxt, nxt))
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def escape_tag_value(value: str) -> str:
    """Escape a tag value for the wire (IRCv3 message-tags, "Escaping values")."""
    return value.translate(_TAG_ESCAPE)


_TAG_KEY = re.compile(r"\+?(?:[A-Za-z0-9.-]+/)?[A-Za-z0-9-]+\Z")


def parse_tags(raw: str) -> dict[str, str]:
    """Parse the tag section (without the leading ``@``) into ``{key: value}``.

    Tags without a value, or with an empty one, map to ``""``. When a key is
    repeated the last occurrence wins (message-tags spec). A key that does
    not match the spec's grammar (``[+][vendor/]name``, letters, digits and
    ``-``) is dropped, and NUL is removed from values, so nothing that could
    break a line is ever relayed.
    """
    tags: dict[str, str] = {}
    for item in raw.split(";"):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if key and _TAG_KEY.match(key):
            value = unescape_tag_value(value) if sep else ""
            tags[key] = value.replace("\0", "") if "\0" in value else value
    return tags


def format_tags(tags: dict[str, str]) -> str:
    """Serialise tags as ``@k=v;k2`` (without the trailing space)."""
    parts = []
    for key, value in tags.items():
        parts.append(f"{key}={escape_tag_value(value)}" if value else key)
    return "@" + ";".join(parts)


@dataclass(slots=True)
class Message:
    """One IRC message.

    - ``command``: the verb as sent (``parse_line`` upper-cases it), or a
      three-digit numeric.
    - ``params``: the parameters as ``str``; the last one may contain spaces.
    - ``source``: the prefix without its leading ``:`` (``nick!user@host`` or
      a server name), or ``None``.
    - ``tags``: IRCv3 message tags, unescaped; empty when none were sent.
    """

    command: str
    params: list[str] = field(default_factory=list)
    source: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def to_line(self) -> str:
        """Serialise without the CR LF terminator (see :func:`format_line`)."""
        return format_line(self.command, self.params, source=self.source, tags=self.tags or None)

    def to_bytes(self) -> bytes:
        """Serialise as UTF-8 with the CR LF terminator."""
        return (self.to_line() + "\r\n").encode("utf-8")


def is_valid_utf8(raw: bytes) -> bool:
    """True if ``raw`` (bytes) is well-formed UTF-8 (RFC 3629), as IRCv3 utf8-only requires.

    ASCII is checked first, at C speed; only other lines are decoded.
    """
    if raw.isascii():
        return True
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def parse_line(line: bytes | str, *, check_length: bool = True,
               errors: str = "replace") -> Message:
    """Parse one line (without CR LF) into a :class:`Message`.

    ``bytes`` input is decoded as UTF-8; invalid sequences become U+FFFD, or,
    with ``errors="surrogateescape"``, lone surrogates U+DC80..U+DCFF that
    show which parameter held them (the server refuses such lines instead of
    relaying them, see :mod:`ircd.commands.utf8only`; tags are always decoded
    with U+FFFD). CR and NUL
    inside the line are removed (RFC 2812 section 2.3.1 forbids them; a
    relayed lone CR would let a sender forge lines in other clients). With
    ``check_length`` the 510-byte body and 4096-byte tag limits are enforced,
    counted in bytes as received. Parameters are separated by ASCII spaces
    only (one or more).

    Raises :class:`MessageParseError` for an empty line, a line of only tags
    and/or source, or a line over the limits. The command is upper-cased.
    """
    if type(line) is bytes:
        raw = line
    else:
        raw = line.encode("utf-8", "surrogatepass")  # type: ignore[union-attr]
        errors = "surrogatepass"
    tags: dict[str, str] = {}
    if raw[:1] == b"@":
        end = raw.find(b" ")
        if end < 0:
            raise MessageParseError("empty", "tags without a command")
        if check_length and end + 1 > MAX_TAGS:
            raise MessageParseError("tags-too-long")
        tags = parse_tags(raw[1:end].decode("utf-8", "replace"))
        raw = raw[end + 1 :].lstrip(b" ")
    if check_length and len(raw) > MAX_LINE_BODY:
        raise MessageParseError("too-long")
    body = raw.decode("utf-8", errors)
    if "\r" in body or "\0" in body:
        body = body.replace("\r", "").replace("\0", "")
    source = None
    if body[:1] == ":":
        end = body.find(" ")
        if end < 0:
            raise MessageParseError("empty", "source without a command")
        source = body[1:end]
        body = body[end + 1 :].lstrip(" ")
    head, sep, trailing = body.partition(" :")
    params = head.split(" ")
    if "" in params:
        params = [p for p in params if p]
        if not params:
            raise MessageParseError("empty", "no command")
    command = params.pop(0).upper()
    if sep:
        params.append(trailing)
    return Message(command, params, source, tags)


def format_line(
    command: str,
    params: list[str] | tuple[str, ...] = (),
    *,
    source: str | None = None,
    tags: dict[str, str] | None = None,
    trailing: bool = False,
) -> str:
    """Build one line (without CR LF) from its parts.

    The last parameter gets a ``:`` when it must (it is empty, contains a
    space, or starts with ``:``) or when ``trailing`` is true, which servers
    use for human-readable text. Raises ``ValueError`` when a middle parameter
    is empty, contains a space or starts with ``:``, or when any parameter
    contains CR, LF or NUL (they would split or corrupt the line).
    """
    out = []
    if tags:
        out.append(format_tags(tags))
    if source:
        out.append(":" + source)
    out.append(command)
    if params:
        *middle, last = params
        for p in middle:
            if not p or " " in p or p[0] == ":" or "\r" in p or "\n" in p or "\0" in p:
                raise ValueError(f"invalid middle parameter {p!r}")
        out.extend(middle)
        if "\r" in last or "\n" in last or "\0" in last:
            raise ValueError(f"invalid last parameter {last!r}")
        if trailing or not last or " " in last or last[0] == ":":
            out.append(":" + last)
        else:
            out.append(last)
    return " ".join(out)


@dataclass(slots=True)
class Parsed:
    """A received line, parsed once (:func:`parse_received`): what decides where it
    runs and what runs are this one object.

    ``msg`` is None for a line that is not run (``too_long``: it gets 417
    ERR_INPUTTOOLONG; otherwise an empty or prefix-only line, ignored). ``valid``
    is False for a line that was not UTF-8: ``msg`` then comes from a
    ``surrogateescape`` decode and gets the UTF8ONLY refusal, never run.
    """

    msg: Message | None
    valid: bool = True
    too_long: bool = False


def parse_received(line: bytes) -> Parsed:
    """Parse one received line (bytes, no CR LF): limits checked, CR and NUL
    removed, command upper-cased (RFC 1459 section 2.3.1, IRCv3 message-tags); a
    line that is not UTF-8 is parsed with ``surrogateescape`` and marked invalid
    (IRCv3 utf8-only). The one parse of a received line: a single node runs it
    (:meth:`ircd.core.Server.handle_line`), a cluster node also decides from it
    what enters the log (:mod:`ircd.cluster.log`). Never raises."""
    valid = is_valid_utf8(line)
    try:
        msg = parse_line(line) if valid else parse_line(line, errors="surrogateescape")
    except MessageParseError as exc:
        return Parsed(None, valid, exc.reason in ("too-long", "tags-too-long"))
    return Parsed(msg, valid)
