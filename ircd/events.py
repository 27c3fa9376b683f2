"""Relayed messages: one event, serialised once per distinct set of tags.

When a user's message goes to N sessions, each may want different
IRCv3 tags (server-time's ``time``, message-tags' ``msgid`` and client-only
tags, account-tag's ``account``). An :class:`Event` holds the line without
tags and builds each variant the first time a session needs it, so a fan-out
costs at most eight serialisations (one per combination), usually one.
"""

from __future__ import annotations

import itertools
import os
import time as _time
from collections.abc import Callable

from ircd.capabilities import TAG_ACCOUNT, TAG_MESSAGE_TAGS, TAG_SERVER_TIME
from ircd.protocol.message import escape_tag_value


class Ids:
    """The identifiers one server makes: message ids and batch reference tags.

    :meth:`msgid` gives IRCv3 message-ids unique to this server's run: a random
    prefix (``boot``, 8 hex digits unless given) and a hexadecimal counter. A
    node of a cluster makes the ids of an entry it applies with
    :meth:`ircd.worldlog.Apply.new_msgid` instead (from the entry id, the same
    on every node); the handler passes that factory to :class:`Event`.
    :meth:`batch` gives IRCv3 batch reference tags (``h1``, ``L2``...: ASCII
    letters and digits, unique to this server's run, so never the same as a
    batch still open on any connection). Owned by :class:`ircd.core.Server`
    (``server.ids``), never shared between servers.
    """

    __slots__ = ("boot", "_msgids", "_batches")

    def __init__(self, boot: str | None = None) -> None:
        self.boot = os.urandom(4).hex() if boot is None else boot
        self._msgids = itertools.count(1)
        self._batches = itertools.count(1)

    def msgid(self) -> str:
        """A new message id (``str``), e.g. ``"9f3c0a1b2a"``."""
        return f"{self.boot}{next(self._msgids):x}"

    def batch(self, prefix: str = "h") -> str:
        """A new batch reference tag: ``prefix`` (ASCII letters) and a number."""
        return f"{prefix}{next(self._batches)}"


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
    :meth:`Ids.msgid`, or an :class:`~ircd.worldlog.Apply`'s); ``account`` is the
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

    def send_to(self, users, exclude=None) -> None:
        """Write the event to each local session of each user in ``users`` (except
        user ``exclude``), in the variant each session needs; a user with no
        session here (on another node) costs one empty loop."""
        plain = self.plain
        for u in users:
            if u is not exclude:
                s = u.session  # the one session (the usual case), else None
                if s is not None:
                    m = s.tagmask
                    s.write(plain if not m else self.bytes_for(m))
                elif u.sessions:  # several
                    for s in u.sessions:
                        m = s.tagmask
                        s.write(plain if not m else self.bytes_for(m))

    def send_to_sessions(self, sessions, exclude=None) -> None:
        """Write the event to each of ``sessions`` except ``exclude`` (a channel's
        :meth:`~ircd.state.Channel.local_sessions`: the channel message hot path)."""
        plain = self.plain
        for s in sessions:
            if s is not exclude:
                m = s.tagmask
                s.write(plain if not m else self.bytes_for(m))

    def send_with_cap(self, users, cap: str, exclude=None) -> None:
        """:meth:`send_to`, only to the sessions that enabled IRCv3 capability ``cap``."""
        for u in users:
            if u is not exclude:
                for s in u.sessions:
                    if cap in s.caps:
                        s.write(self.bytes_for(s.tagmask))

    def write_to(self, sessions) -> None:
        """Write the event to each of ``sessions`` (:class:`~ircd.state.Session`)."""
        for s in sessions:
            s.write(self.bytes_for(s.tagmask))
