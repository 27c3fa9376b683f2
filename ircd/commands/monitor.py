"""MONITOR: presence notifications (IRCv3 "Monitor", ircv3.net/specs/extensions/monitor).

``MONITOR + nick{,nick}`` adds nicks to the client's list and answers at once
with 730 RPL_MONONLINE / 731 RPL_MONOFFLINE; afterwards the client is told
whenever one of them comes online (registers, or a user takes the nick) or
goes offline (quits, disconnects, or changes nick). ``-`` removes, ``C``
clears, ``L`` lists (732/733), ``S`` shows the status of every entry. The
list holds at most ISUPPORT ``MONITOR=`` entries (734 ERR_MONLISTFULL).
The notifications themselves are sent from :mod:`ircd.ops.presence`, which
registration, NICK, QUIT and the core call.

This is the assignment's presence feature: who is online at login, then
updates as users log in and out.
"""

from __future__ import annotations

from ircd.commands.registry import Context
from ircd.ops.presence import MONITOR_LIMIT, forget, unwatch
from ircd.protocol import numerics as N
from ircd.protocol.casemap import casefold, is_valid_nick
from ircd.protocol.message import Message


def _send_status(world, reply, entries: list[tuple[str, str]]) -> None:
    """730 for the online ones among ``(casefolded, given)`` nicks, 731 for the others."""
    online, offline = [], []
    for cf, given in entries:
        user = world.users.get(cf)
        if user is not None:
            online.append(user.source)
        else:
            offline.append(given)
    for chunk in _chunks(online):
        reply.numeric(N.RPL_MONONLINE, chunk)
    for chunk in _chunks(offline):
        reply.numeric(N.RPL_MONOFFLINE, chunk)


def _chunks(items: list[str], size: int = 400) -> list[str]:
    out, cur = [], ""
    for item in items:
        if cur and len(cur) + len(item) + 1 > size:
            out.append(cur)
            cur = ""
        cur = f"{cur},{item}" if cur else item
    if cur:
        out.append(cur)
    return out


def handle_monitor(ctx: Context, msg: Message) -> None:
    """``MONITOR {+|-} <nick>{,<nick>}``, ``MONITOR C``, ``MONITOR L``, ``MONITOR S``."""
    server, client, reply = ctx.server, ctx.client, ctx.reply
    world = server.world
    sub = msg.params[0]
    if sub in ("+", "-"):
        if len(msg.params) < 2:
            reply.numeric(N.ERR_NEEDMOREPARAMS, "MONITOR", "Not enough parameters")
            return
        nicks = [n for n in msg.params[1].split(",") if n]
        if sub == "-":
            for nick in nicks:
                cf = casefold(nick)
                if cf in client.monitoring:
                    del client.monitoring[cf]  # type: ignore[attr-defined]  # (a dict once filled)
                    unwatch(world, client, cf)
            return
        added = []
        for i, nick in enumerate(nicks):
            if not is_valid_nick(nick, server.config.server.nicklen):
                continue
            cf = casefold(nick)
            if cf not in client.monitoring:
                if len(client.monitoring) >= MONITOR_LIMIT:
                    reply.numeric(N.ERR_MONLISTFULL, str(MONITOR_LIMIT), ",".join(nicks[i:]),
                                  "Monitor list is full.")
                    break
                monitoring = client.monitoring
                if not isinstance(monitoring, dict):
                    monitoring = client.monitoring = {}
                monitoring[cf] = nick
                world.monitors.setdefault(cf, set()).add(client)
            added.append((cf, nick))
        _send_status(world, reply, added)
    elif sub.upper() == "C":
        forget(server, client)
    elif sub.upper() == "L":
        names = []
        for cf, given in sorted(client.monitoring.items()):
            user = world.users.get(cf)
            names.append(user.nick if user else given)
        for chunk in _chunks(names):
            reply.numeric(N.RPL_MONLIST, chunk)
        reply.numeric(N.RPL_ENDOFMONLIST, "End of MONITOR list")
    elif sub.upper() == "S":
        _send_status(world, reply, sorted(client.monitoring.items()))
    else:
        reply.numeric(N.ERR_UNKNOWNCOMMAND, "MONITOR", "Unknown MONITOR subcommand")
