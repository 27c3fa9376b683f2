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

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING

from ircd.events import new_msgid
from ircd.protocol.message import escape_tag_value, fit_line, format_line

if TYPE_CHECKING:
    from ircd.core import Server
    from ircd.state import Client
    from ircd.worldlog import Apply


def _middle(param: str) -> str:
    """A parameter safe in a middle position: an empty one, or one that starts with
    ``:`` or holds a space (echoed back from bad input), is shown as ``*``."""
    if param and param[0] != ":" and " " not in param:
        return param
    return "*"


class Reply:
    """Lines (``str`` without CR LF) for the client that issued one command.

    ``server_name`` is the source of numerics; ``nick`` the target nick
    (``"*"`` before registration) and is read when each numeric is built.
    """

    __slots__ = ("server_name", "client", "lines")

    def __init__(self, server_name: str, client) -> None:
        self.server_name = server_name
        self.client = client
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
    """What a handler works with: ``server``, the issuing ``client``, ``reply``
    and ``apply``.

    The context is itself the command's :class:`Reply` (``ctx.reply is
    ctx``): one object per command on the hot path instead of two.
    ``apply`` is the log entry being applied (:class:`ircd.worldlog.Apply`:
    its time, origin node and message ids), or None when the command runs at
    once (a single node, or a command that only reads); :attr:`now`,
    :attr:`here` and :attr:`new_msgid` read it.
    """

    __slots__ = ("server", "apply")

    def __init__(self, server: Server, client: Client, apply: Apply | None = None) -> None:
        self.server_name = server.name
        self.client = client
        self.lines = []
        self.server = server
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
        return new_msgid if apply is None else apply.new_msgid


def take_label(client: Client, reply: Reply) -> None:
    """Label a reply that completes a command answered asynchronously (see :func:`dispatch`)."""
    label = client.pending_label
    if label is not None:
        client.pending_label = None
        label_reply(reply, label, "batch" in client.caps)


_labels = itertools.count(1)


def _with_tag(line: str, tag: str) -> str:
    return f"@{tag};{line[1:]}" if line.startswith("@") else f"@{tag} {line}"


def label_reply(reply: Reply, label: str, batch: bool) -> None:
    """Mark a command's reply with its ``label`` (IRCv3 labeled-response).

    No lines: one ``ACK``. One line: the line carries the label. Several: a
    ``BATCH +id labeled-response`` carrying the label around them (every line
    tagged ``batch=id``), when the client has ``batch``; otherwise only the
    first line is labeled.
    """
    tag = "label=" + escape_tag_value(label)
    lines = reply.lines
    if not lines:
        lines.append(f"@{tag} :{reply.server_name} ACK")
    elif len(lines) == 1 or not batch:
        lines[0] = _with_tag(lines[0], tag)
    else:
        ref = f"L{next(_labels)}"
        # Lines already in a nested batch (e.g. chathistory) keep their own batch tag.
        inner = [line if line.startswith("@") and "batch=" in line.split(" ", 1)[0]
                 else _with_tag(line, f"batch={ref}") for line in lines]
        reply.lines = [f"@{tag} :{reply.server_name} BATCH +{ref} labeled-response", *inner,
                       f":{reply.server_name} BATCH -{ref}"]
