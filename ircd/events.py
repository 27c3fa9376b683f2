"""Relayed messages: one event, serialised once per distinct set of tags.

When a user's message goes to N clients, each client may want different
IRCv3 tags (server-time's ``time``, message-tags' ``msgid`` and client-only
tags, account-tag's ``account``). An :class:`Event` holds the line without
tags and builds each variant the first time a client needs it, so a fan-out
costs at most eight serialisations (one per combination), usually one.
"""

from __future__ import annotations

import itertools
import os
import time as _time
from collections.abc import Callable

from ircd.capabilities import TAG_ACCOUNT, TAG_MESSAGE_TAGS, TAG_SERVER_TIME
from ircd.protocol.message import escape_tag_value

_BOOT = os.urandom(4).hex()
_COUNTER = itertools.count(1)


def new_msgid() -> str:
    """A server-unique message id (IRCv3 message-ids): process prefix + counter.

    A node of a cluster makes the ids of an entry it applies with
    :meth:`ircd.worldlog.Apply.new_msgid` instead (from the entry id, the same
    on every node); the handler passes that factory to :class:`Event`.
    """
    return f"{_BOOT}{next(_COUNTER):x}"


def format_time(t: float) -> str:
    """ISO 8601 UTC with milliseconds, as IRCv3 server-time requires: ``2026-01-01T12:00:00.000Z``."""
    secs, ms = divmod(int(round(t * 1000)), 1000)
    return _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(secs)) + f".{ms:03d}Z"


def parse_time(text: str) -> float | None:
    """Parse a server-time timestamp (with or without milliseconds); None if invalid."""
    import calendar

    text = text.strip()
    if not text.endswith("Z"):
        return None
    main, _, frac = text[:-1].partition(".")
    try:
        base = calendar.timegm(_time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    if frac:
        if not frac.isdigit():
            return None
        return base + int(frac[:6].ljust(6, "0")) / 1e6
    return float(base)


class Event:
    """A line from a user (or the server) to be relayed to many clients.

    ``line`` is the line without tags and without CR LF. ``t`` is unix
    seconds; ``msgid`` is set for PRIVMSG/NOTICE/TAGMSG: a string, or a
    function making one (called once, when a recipient first needs it:
    :func:`new_msgid`, or an :class:`~ircd.worldlog.Apply`'s); ``account`` is the
    sender's account; ``client_tags`` are the sender's ``+`` tags (raw values).
    """

    __slots__ = ("line", "t", "_msgid", "account", "client_tags", "plain", "_variants")

    def __init__(self, line: str, t: float, msgid: str | Callable[[], str] | None = None,
                 account: str | None = None, client_tags: dict[str, str] | None = None) -> None:
        self.line = line
        self.t = t
        self._msgid = msgid  # a function: make the id when first needed
        self.account = account
        self.client_tags = client_tags
        self.plain = (line + "\r\n").encode("utf-8")
        self._variants: dict[int, bytes] | None = None

    @property
    def msgid(self) -> str | None:
        """The message id (IRCv3 message-ids), made on first use when the event has one."""
        msgid = self._msgid
        if msgid is None or msgid.__class__ is str:
            return msgid  # type: ignore[return-value]
        msgid = self._msgid = msgid()  # type: ignore[operator]
        return msgid

    def tags_for(self, mask: int, extra: dict[str, str] | None = None) -> str:
        """The tag section (``@...`` without the space) for ``mask``, or ``""``."""
        parts = []
        if mask & TAG_SERVER_TIME:
            parts.append("time=" + format_time(self.t))
        if mask & TAG_MESSAGE_TAGS:
            if self.msgid:
                parts.append("msgid=" + self.msgid)
            if self.client_tags:
                for k, v in self.client_tags.items():
                    parts.append(f"{k}={escape_tag_value(v)}" if v else k)
        if mask & TAG_ACCOUNT and self.account:
            parts.append("account=" + escape_tag_value(self.account))
        if extra:
            for k, v in extra.items():
                parts.append(f"{k}={escape_tag_value(v)}" if v else k)
        return "@" + ";".join(parts) if parts else ""

    def bytes_for(self, mask: int) -> bytes:
        """The serialised line (CR LF terminated) for a client whose tag bits are ``mask``."""
        if not mask:
            return self.plain
        variants = self._variants
        if variants is None:
            variants = self._variants = {}
        data = variants.get(mask)
        if data is None:
            tags = self.tags_for(mask)
            data = ((tags + " " if tags else "") + self.line + "\r\n").encode("utf-8")
            variants[mask] = data
        return data

    def str_for(self, mask: int, extra: dict[str, str] | None = None) -> str:
        """The line as ``str`` without CR LF (for a :class:`~ircd.reply.Reply`)."""
        tags = self.tags_for(mask, extra)
        return (tags + " " if tags else "") + self.line

    def send_to(self, clients, exclude=None) -> None:
        """Write the event to each client (except ``exclude``), in the variant it needs."""
        plain = self.plain
        for c in clients:
            if c is not exclude:
                m = c.tagmask
                c.write(plain if not m else self.bytes_for(m))
