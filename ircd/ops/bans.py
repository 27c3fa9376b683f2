"""Server bans in force: disconnecting who a K-line or D-line matches, the K-line
check at registration and on a nick change, and the STATS k/d listing.

Setting and removing bans is KLINE/DLINE/UNKLINE/UNDLINE
(:mod:`ircd.commands.oper`); matching and expiry live in
:mod:`ircd.serverbans`, storage behind ``Server.ban_store``.
"""

from __future__ import annotations

import logging

from ircd.ops.privileges import require
from ircd.protocol import numerics as N
from ircd.protocol.masks import mask_match
from ircd.reply import Context, Reply
from ircd.serverbans import DLINE, KLINE, ServerBan
from ircd.state import Client
from ircd.worldlog import Apply

log = logging.getLogger("ircd.oper")


def _sources(client: Client) -> tuple[str, ...]:
    return (client.source, f"{client.nick}!{client.user}@{client.ip}")


def apply_ban(server, ban: ServerBan, apply: Apply | None = None) -> list[str]:
    """Disconnect the connections ``ban`` matches (not opers, not services); return their nicks.

    ``apply``: the log entry that set the ban (a cluster), passed to :meth:`Server.quit`."""
    now = server.clock()
    hit = []
    for client in list(server.world.clients.values()):
        if client.is_pseudo or client.oper is not None or client.quitting:
            continue
        if ban.kind == KLINE:
            if not client.registered or not any(mask_match(ban.mask, s) for s in _sources(client)):
                continue
        elif server.serverbans.dline_for(client.ip, now) is not ban:
            continue
        hit.append(client.nick)
        disconnect_banned(server, client, ban, apply)
    return hit


def ban_message(ban: ServerBan) -> str:
    """What a banned user is told: ``You are banned from this server: <reason>``."""
    return f"You are banned from this server: {ban.reason}"


def disconnect_banned(server, client: Client, ban: ServerBan,
                      apply: Apply | None = None) -> None:
    """465 ERR_YOUREBANNEDCREEP (K-lines), then ``ERROR`` and close; others see the QUIT.

    ``apply``: the log entry this happens in (a cluster), passed to :meth:`Server.quit`."""
    if ban.kind == KLINE:
        server.send_numeric(client, N.ERR_YOUREBANNEDCREEP, ban_message(ban))
    quit_reason = f"{ban.kind}-Lined ({ban.reason})"
    log.info("%s-line on %s disconnects %s from %s", ban.kind, ban.mask, client.nick, client.ip)
    server.quit(client, quit_reason, error=f"Closing Link: {client.host} ({quit_reason})",
                apply=apply)


def refused_by_kline(server, client: Client, reply: Reply, apply: Apply | None = None) -> bool:
    """At registration: if a K-line matches ``client``, answer 465 and ERROR, close; return True.

    ``reply`` holds lines not yet sent; they go out first. ``apply``: the log
    entry of the registration (a cluster's ``intro``).
    """
    if client.is_pseudo or not len(server.serverbans):
        return False
    ban = server.serverbans.kline_for(_sources(client), server.clock())
    if ban is None:
        return False
    reply.session.write(reply.to_bytes())
    reply.lines.clear()
    disconnect_banned(server, client, ban, apply)
    return True


def kline_on_nick_change(server, client: Client, new_nick: str,
                         apply: Apply | None = None) -> bool:
    """Before ``client`` (registered) becomes ``new_nick``: if a K-line matches the new
    ``nick!user@host``, disconnect it as :func:`apply_ban` would and return True.

    A ``nick!user@host`` K-line holds for a nick taken after registering too.
    Opers and pseudo-users are exempt, as from every server ban. ``apply``: the
    log entry of the NICK (a cluster).
    """
    if client.is_pseudo or client.oper is not None or not len(server.serverbans):
        return False
    sources = (f"{new_nick}!{client.user}@{client.host}", f"{new_nick}!{client.user}@{client.ip}")
    ban = server.serverbans.kline_for(sources, server.clock())
    if ban is None:
        return False
    disconnect_banned(server, client, ban, apply)
    return True


def stats_bans(ctx: Context, query: str) -> None:
    """STATS ``k`` (216 RPL_STATSKLINE) or ``d`` (225 RPL_STATSDLINE); opers only (481).

    One line per ban: ``<K|D> <mask> <set at> <seconds left, 0 = permanent>
    <setter> :<reason>``.
    """
    if not require(ctx):
        return
    server = ctx.server
    now = server.clock()
    kind = KLINE if query == "k" else DLINE
    code = N.RPL_STATSKLINE if kind == KLINE else N.RPL_STATSDLINE
    for ban in server.serverbans.listing(kind, now):
        ctx.reply.numeric(code, kind, ban.mask, str(int(ban.set_at)),
                          str(int(ban.remaining(now))), ban.setter, ban.reason)
