"""MONITOR: presence notifications (IRCv3 "Monitor", ircv3.net/specs/extensions/monitor).

``MONITOR + nick{,nick}`` adds nicks to the client's list and answers at once
with 730 RPL_MONONLINE / 731 RPL_MONOFFLINE; afterwards the client is told
whenever one of them comes online (registers, or a user takes the nick) or
goes offline (quits, disconnects, or changes nick). ``-`` removes, ``C``
clears, ``L`` lists (732/733), ``S`` shows the status of every entry. The
list holds at most ISUPPORT ``MONITOR=`` entries (734 ERR_MONLISTFULL).

This is the assignment's presence feature: who is online at login, then
updates as users log in and out.
"""

from __future__ import annotations

from ircd.commands.registry import Context, command
from ircd.protocol import numerics as N
from ircd.protocol.casemap import casefold, is_valid_nick
from ircd.protocol.message import Message, fit_line
from ircd.state import Client

MONITOR_LIMIT = 100


def _send(server, watchers, code: str, text: str) -> None:
    for w in watchers:
        w.write((fit_line(f":{server.name} {code} {w.nick} :{text}") + "\r\n").encode())


def notify_online(server, client: Client) -> None:
    """Tell the watchers of ``client.nick`` that it is online (730)."""
    watchers = server.world.monitors.get(client.nick_cf)
    if watchers:
        _send(server, list(watchers), N.RPL_MONONLINE, client.source)


def notify_offline(server, nick: str) -> None:
    """Tell the watchers of ``nick`` that it went offline (731)."""
    watchers = server.world.monitors.get(casefold(nick))
    if watchers:
        _send(server, list(watchers), N.RPL_MONOFFLINE, nick)


def interested(server, client: Client, cap: str) -> list[Client]:
    """Who is told of a change to ``client`` that capability ``cap`` announces.

    Channel peers that enabled ``cap``, and (IRCv3 extended-monitor) the
    clients that MONITOR ``client`` and enabled both ``extended-monitor`` and
    ``cap``; each once, never ``client`` itself.
    """
    out = [p for p in server.world.peers(client) if cap in p.caps]
    watchers = server.world.monitors.get(client.nick_cf)
    if watchers:
        seen = set(out)
        seen.add(client)
        out += [w for w in watchers
                if w not in seen and cap in w.caps and "extended-monitor" in w.caps]
    return out


def _unwatch(world, client: Client, cf: str) -> None:
    """Stop ``client`` watching the casefolded nick ``cf`` (the world's side only)."""
    watchers = world.monitors.get(cf)
    if watchers is not None:
        watchers.discard(client)
        if not watchers:
            del world.monitors[cf]


def forget(server, client: Client) -> None:
    """Drop ``client``'s whole MONITOR list (on quit, or MONITOR C)."""
    for cf in client.monitoring:
        _unwatch(server.world, client, cf)
    client.monitoring.clear()


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


@command("MONITOR", min_params=1)
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
                if client.monitoring.pop(cf, None) is not None:
                    _unwatch(world, client, cf)
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
                client.monitoring[cf] = nick
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
