"""The per-command response buffer, the handler's context, labeled-response.

A handler never writes to its own client directly: it adds lines to a
:class:`Reply` (its :class:`Context` is one), and the dispatcher sends them as
one write when the handler returns. That is what lets :func:`label_reply`
wrap a command's whole answer (IRCv3 labeled-response: one labeled line, an
``ACK``, or a ``labeled-response`` batch), as Ergo's ``ResponseBuffer`` does;
:func:`take_label` does the same for an answer given later, off the loop.
Lines written to *other* clients go straight to them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ircd.protocol.message import escape_tag_value, fit_line, format_line
from ircd.state import NO_SESSION, Session

if TYPE_CHECKING:
    from ircd.core import Server
    from ircd.events import Ids
    from ircd.state import Client
    from ircd.worldlog import Apply


def _middle(param: str) -> str:
    """A parameter safe in a middle position: an empty one, or one that starts with
    ``:`` or holds a space (echoed back from bad input), is shown as ``*``."""
    if param and param[0] != ":" and " " not in param:
        return param
    return "*"


class Reply:
    """Lines (``str`` without CR LF) for the session that sent one command.

    ``server_name`` is the source of numerics; ``client`` the issuing user,
    whose nick (``"*"`` before registration) is read when each numeric is
    built; ``session`` the :class:`~ircd.state.Session` the lines are for,
    whose capabilities decide their tags (default: the user's first session,
    or a :class:`~ircd.state.NoSession` when it has none here).
    """

    __slots__ = ("server_name", "client", "session", "lines")

    def __init__(self, server_name: str, client, session: Session | None = None) -> None:
        self.server_name = server_name
        self.client = client
        if session is None:
            session = getattr(client, "session", None) or NO_SESSION
        self.session = session
        self.lines: list[str] = []

    def numeric(self, code: str, *params: str) -> None:
        """Add ``:<server> <code> <nick> <params...> :<last>``.

        The last parameter is always sent as a trailing parameter, as servers
        do for human-readable text (RFC 2812 section 2.3.1). A line over 510
        bytes loses the end of that text (:func:`~ircd.protocol.message.fit_line`).
        """
        *middle, last = (self.client.nick, *params)
        self.lines.append(fit_line(format_line(code, [*map(_middle, middle), last],
                                               source=self.server_name, trailing=True)))

    def send(self, command: str, *params: str, source: str | None = None,
             trailing: bool = False) -> None:
        """Add a non-numeric line; ``source`` defaults to the server name; cut to
        510 bytes like :meth:`numeric`."""
        if params:
            *middle, last = params
            params = (*map(_middle, middle), last)
        self.lines.append(fit_line(
            format_line(command, params, source=source or self.server_name, trailing=trailing)
        ))

    def raw(self, line: str) -> None:
        """Add a ready-made line (without CR LF)."""
        self.lines.append(line)

    def numerics(self) -> list[str]:
        """The numeric codes added so far, in order (used by front ends that translate)."""
        out = []
        for line in self.lines:
            parts = line.split(" ", 2)
            if len(parts) > 1 and parts[1].isdigit():
                out.append(parts[1])
        return out

    def to_bytes(self) -> bytes:
        """Every line, CR LF terminated, UTF-8 encoded, as one buffer."""
        return ("\r\n".join(self.lines) + "\r\n").encode("utf-8") if self.lines else b""


class Context(Reply):
    """What a handler works with: ``server``, the issuing user ``client``, the
    ``session`` (connection) the line came from, ``reply`` and ``apply``.

    A handler acts on the user (identity, channels, modes); what is per
    connection (capabilities, the label, the SASL exchange, CAP state) it
    reads from ``session``, and its reply goes to that session only. For a
    command with no connection of ours behind it (a remote user's, applied
    from a cluster's log) ``session`` is the shared :data:`~ircd.state.NO_SESSION`.
    The context is itself the command's :class:`Reply` (``ctx.reply is
    ctx``): one object per command on the hot path instead of two.
    ``apply`` is the log entry being applied (:class:`ircd.worldlog.Apply`:
    its time, origin node and message ids), or None when the command runs at
    once (a single node, or a command that only reads); :attr:`now`,
    :attr:`here` and :attr:`new_msgid` read it.
    """

    __slots__ = ("server", "apply")

    def __init__(self, server: Server, client: Client, session: Session | None = None,
                 apply: Apply | None = None) -> None:
        self.server_name = server.name
        self.client = client
        self.lines = []
        self.server = server
        self.session = session if session is not None else NO_SESSION
        self.apply = apply

    @property
    def reply(self) -> Reply:
        return self

    @property
    def now(self) -> float:
        """The command's time (unix seconds): the entry's when one is applied."""
        apply = self.apply
        return self.server.clock() if apply is None else apply.now

    @property
    def here(self) -> bool:
        """True if the command came from a user of this node (always, run at once)."""
        apply = self.apply
        return apply is None or apply.here

    @property
    def new_msgid(self) -> Callable[[], str]:
        """What makes the command's message ids (for :class:`ircd.events.Event`)."""
        apply = self.apply
        return self.server.ids.msgid if apply is None else apply.new_msgid


def take_label(session: Session | None, reply: Reply, ids: Ids) -> None:
    """Label a reply that completes a command ``session`` sent, answered
    asynchronously (see :func:`ircd.commands.registry.dispatch`); ``ids`` is the
    server's (``server.ids``), for a batch reference tag."""
    if session is None:
        return
    label = session.pending_label
    if label is not None:
        session.pending_label = None
        label_reply(reply, label, "batch" in session.caps, ids)


def _with_tag(line: str, tag: str) -> str:
    return f"@{tag};{line[1:]}" if line.startswith("@") else f"@{tag} {line}"


def label_reply(reply: Reply, label: str, batch: bool, ids: Ids) -> None:
    """Mark a command's reply with its ``label`` (IRCv3 labeled-response).

    No lines: one ``ACK``. One line: the line carries the label. Several: a
    ``BATCH +id labeled-response`` carrying the label around them (every line
    tagged ``batch=id``), when the client has ``batch``; otherwise only the
    first line is labeled. ``ids`` makes the batch's reference tag (``server.ids``).
    """
    tag = "label=" + escape_tag_value(label)
    lines = reply.lines
    if not lines:
        lines.append(f"@{tag} :{reply.server_name} ACK")
    elif len(lines) == 1 or not batch:
        lines[0] = _with_tag(lines[0], tag)
    else:
        ref = ids.batch("L")
        # Lines already in a nested batch (e.g. chathistory) keep their own batch tag.
        inner = [line if line.startswith("@") and "batch=" in line.split(" ", 1)[0]
                 else _with_tag(line, f"batch={ref}") for line in lines]
        reply.lines = [f"@{tag} :{reply.server_name} BATCH +{ref} labeled-response", *inner,
                       f":{reply.server_name} BATCH -{ref}"]
