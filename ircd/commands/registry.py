"""The command table and the one dispatcher (in the manner of Ergo's ``irc/commands.go``).

Each command is declared once with :func:`command`, giving its handler, the
minimum number of parameters and whether it may be used before registration.
:func:`dispatch` applies the checks every command shares and answers them with
the standard numerics, so handlers contain only their own logic:

- unknown command: 421 ERR_UNKNOWNCOMMAND (451 before registration);
- not registered yet: 451 ERR_NOTREGISTERED (RFC 2812 section 5.2);
- too few parameters: 461 ERR_NEEDMOREPARAMS;
- an exception inside a handler: logged, answered with 400 ERR_UNKNOWNERROR,
  never fatal to the server or to other connections.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ircd.events import new_msgid
from ircd.protocol import numerics as N
from ircd.protocol.message import Message, escape_tag_value
from ircd.reply import Reply

if TYPE_CHECKING:
    from ircd.core import Server
    from ircd.state import Client
    from ircd.worldlog import Apply

log = logging.getLogger("ircd.commands")


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


Handler = Callable[[Context, Message], None]


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One row of the command table."""

    name: str
    handler: Handler
    min_params: int = 0
    pre_registration: bool = False
    updates_idle: bool = False   # counts as activity for WHOIS idle time (PRIVMSG, NOTICE...)


COMMANDS: dict[str, CommandSpec] = {}


def command(name: str, *, min_params: int = 0, pre_registration: bool = False,
            updates_idle: bool = False) -> Callable[[Handler], Handler]:
    """Decorator adding a handler to :data:`COMMANDS` under ``name`` (upper case)."""

    def register(handler: Handler) -> Handler:
        COMMANDS[name] = CommandSpec(name, handler, min_params, pre_registration, updates_idle)
        return handler

    return register


def dispatch(server: Server, client: Client, msg: Message,
             apply: Apply | None = None) -> Reply:
    """Run one command for ``client``; return the reply lines for it (not yet sent).

    ``apply``: the log entry it comes from (a cluster node applying its log),
    handed to the handler as ``ctx.apply``; None when it runs at once."""
    reply = ctx = Context(server, client, apply)
    spec = COMMANDS.get(msg.command)
    if spec is None:
        if client.registered:
            reply.numeric(N.ERR_UNKNOWNCOMMAND, msg.command, "Unknown command")
        else:
            reply.numeric(N.ERR_NOTREGISTERED, "You have not registered")
    elif not (client.registered or spec.pre_registration):
        reply.numeric(N.ERR_NOTREGISTERED, "You have not registered")
    elif len(msg.params) < spec.min_params:
        reply.numeric(N.ERR_NEEDMOREPARAMS, msg.command, "Not enough parameters")
    else:
        if spec.updates_idle:
            client.last_active = client.last_seen  # set when this line arrived
        try:
            spec.handler(ctx, msg)
        except Exception:
            log.exception("handler for %s failed (client %s)", msg.command, client.nick)
            reply.numeric(N.ERR_UNKNOWNERROR, msg.command, "Internal server error")
    if msg.tags and "labeled-response" in client.caps:
        label = msg.tags.get("label")
        if label:
            if client.pending:
                # Answered later, off the loop (a password check): label that answer.
                client.pending_label = label
            else:
                label_reply(reply, label, "batch" in client.caps)
    return reply


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
