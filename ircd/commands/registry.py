"""The shape of a command-table row, and the one dispatcher (in the manner of Ergo's
``irc/commands.go``).

Every command is declared once, as a :class:`CommandSpec` row in
:mod:`ircd.commands.table`, which fills :data:`COMMANDS`. :func:`dispatch`
applies the checks every command shares and answers them with the standard
numerics, in this order, so handlers contain only their own logic:

- unknown command: 421 ERR_UNKNOWNCOMMAND (451 before registration);
- not registered yet: 451 ERR_NOTREGISTERED (RFC 2812 section 5.2);
- too few parameters: 461 ERR_NEEDMOREPARAMS;
- an oper command from a non-oper: 481 ERR_NOPRIVILEGES
  (:func:`ircd.ops.privileges.require`; RFC 2812 section 5.2);
- an exception inside a handler: logged, answered with 400 ERR_UNKNOWNERROR,
  never fatal to the server or to other connections.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ircd.ops.privileges import require
from ircd.protocol import numerics as N
from ircd.protocol.message import Message
from ircd.reply import Context, Reply, label_reply, take_label

if TYPE_CHECKING:
    from ircd.core import Server
    from ircd.state import Client, Session
    from ircd.worldlog import Apply

__all__ = ["ADMIN", "COMMANDS", "OPER", "CommandSpec", "Context", "Effect", "dispatch",
           "label_reply", "take_label"]

log = logging.getLogger("ircd.commands")


Handler = Callable[[Context, Message], None]


class Effect(enum.Enum):
    """What a command does to the world, which decides where it runs in a cluster."""

    WORLD = "world"
    """Changes the shared world (nicks, channels, modes, bans, away...): in a cluster
    it goes through the log and every node runs it, in log order."""

    LOCAL = "local"
    """Runs on the client's node only: it reads the world, or changes only the
    connection (CAP, MONITOR) or this node (REHASH, DIE). What such a command
    changes in the shared world (a login, an account, oper status) its code
    submits as log entries of its own (``user``, ``acct``)."""

    ROUTED = "routed"
    """A message to users (PRIVMSG, NOTICE, TAGMSG): it changes nothing but the
    recipients' screens and history."""


OPER = "oper"
"""``CommandSpec.privilege`` of commands for any server operator."""

ADMIN = "admin"
"""``CommandSpec.privilege`` of commands for opers of class ``admin`` only."""


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One row of the command table (:mod:`ircd.commands.table`)."""

    name: str
    """The command, upper case."""
    handler: Handler
    """``handler(ctx, msg)``: the command's own logic, after :func:`dispatch`'s checks."""
    min_params: int = 0
    """Fewer parameters are answered 461 ERR_NEEDMOREPARAMS."""
    pre_registration: bool = False
    """Usable before registration completes (otherwise 451 ERR_NOTREGISTERED)."""
    privilege: str | None = None
    """:data:`OPER` or :data:`ADMIN`: who else gets 481 ERR_NOPRIVILEGES; None: anyone."""
    updates_idle: bool = False
    """Counts as activity for WHOIS idle time (317)."""
    effect: Effect = Effect.LOCAL
    """World-changing, local, or a routed message (:class:`Effect`)."""


COMMANDS: dict[str, CommandSpec] = {}
"""Every command by name: filled from :data:`ircd.commands.table.TABLE` when the
:mod:`ircd.commands` package is imported."""


def dispatch(server: Server, client: Client, msg: Message,
             session: Session | None = None, apply: Apply | None = None) -> Reply:
    """Run one command of user ``client``, received by its ``session`` (None: no
    connection of ours, see :class:`Context`); return the reply lines for it (not
    yet sent).

    ``apply``: the log entry it comes from (a cluster node applying its log),
    handed to the handler as ``ctx.apply``; None when it runs at once."""
    reply = ctx = Context(server, client, session, apply)
    session = ctx.session
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
    elif spec.privilege is not None and not require(ctx, admin=spec.privilege == ADMIN):
        pass  # 481 ERR_NOPRIVILEGES
    else:
        if spec.updates_idle:
            client.last_active = session.last_seen or ctx.now  # when this line arrived (here)
        try:
            spec.handler(ctx, msg)
        except Exception:
            log.exception("handler for %s failed (client %s)", msg.command, client.nick)
            reply.numeric(N.ERR_UNKNOWNERROR, msg.command, "Internal server error")
    if msg.tags and "labeled-response" in session.caps:
        label = msg.tags.get("label")
        if label:
            if session.pending:
                # Answered later, off the loop (a password check): label that answer.
                session.pending_label = label
            else:
                label_reply(reply, label, "batch" in session.caps, server.ids)
    return reply
