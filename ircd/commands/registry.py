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

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ircd.protocol import numerics as N
from ircd.protocol.message import Message
from ircd.reply import Context, Reply, label_reply, take_label

if TYPE_CHECKING:
    from ircd.core import Server
    from ircd.state import Client, Session
    from ircd.worldlog import Apply

__all__ = ["COMMANDS", "CommandSpec", "Context", "command", "dispatch", "label_reply", "take_label"]

log = logging.getLogger("ircd.commands")


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
                label_reply(reply, label, "batch" in session.caps)
    return reply
