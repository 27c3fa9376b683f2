"""Presence: who is told when a user comes online, goes offline or changes
(IRCv3 "Monitor" notifications, ircv3.net/specs/extensions/monitor, and the
peers an IRCv3 ``*-notify`` capability announces a change to).

The MONITOR command itself (adding and listing entries) is
:mod:`ircd.commands.monitor`. Callers: the welcome step and the services
(online), NICK and the core's quit (offline, forget), logins, AWAY, SETNAME
and the cluster's ``user`` entries (:func:`interested`).
"""

from __future__ import annotations

from ircd.protocol import numerics as N
from ircd.protocol.casemap import casefold
from ircd.protocol.message import fit_line
from ircd.state import EMPTY_MAP, Client, Session

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


def interested(server, client: Client, cap: str) -> list[Session]:
    """The sessions told of a change to ``client`` that capability ``cap`` announces.

    Those of channel peers that enabled ``cap``, and (IRCv3 extended-monitor)
    those of the users that MONITOR ``client`` that enabled both
    ``extended-monitor`` and ``cap``; each once, never ``client``'s own.
    """
    peers = list(server.world.peers(client))
    out = [s for p in peers for s in p.sessions if cap in s.caps]
    watchers = server.world.monitors.get(client.nick_cf)
    if watchers:
        seen = set(peers)
        seen.add(client)
        out += [s for w in watchers if w not in seen for s in w.sessions
                if cap in s.caps and "extended-monitor" in s.caps]
    return out


def unwatch(world, client: Client, cf: str) -> None:
    """Stop ``client`` watching the casefolded nick ``cf`` (the world's side only)."""
    watchers = world.monitors.get(cf)
    if watchers is not None:
        watchers.discard(client)
        if not watchers:
            del world.monitors[cf]


def forget(server, client: Client) -> None:
    """Drop ``client``'s whole MONITOR list (on quit, or MONITOR C)."""
    for cf in client.monitoring:
        unwatch(server.world, client, cf)
    client.monitoring = EMPTY_MAP
