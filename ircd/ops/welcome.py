"""Becoming a user: the nick-table entry and the welcome burst.

:func:`complete_registration` is the step that makes a registered
connection a user (IRC registration, the SEND dialect, echobot and the
cluster's ``intro`` entry end here; NickServ and ChanServ join the nick
table in :mod:`ircd.services.base`); the burst pieces (ISUPPORT, LUSERS, MOTD) are
also what the ``VERSION``, ``LUSERS`` and ``MOTD`` queries answer with.
RFC 2812 sections 3.1 and 5.1; "Modern IRC" ("Connection Registration").
"""

from __future__ import annotations

import logging
import time

from ircd.ops import presence
from ircd.ops.bans import refused_by_kline
from ircd.ops.membership import join_channel
from ircd.protocol import numerics as N
from ircd.reply import Reply
from ircd.worldlog import Apply

log = logging.getLogger("ircd.registration")


USER_MODES = "Biow"


def complete_registration(server, client, reply: Reply, created: bool = False,
                          autojoin: list[str] | None = None, apply: Apply | None = None) -> None:
    """Make ``client`` a user: the nick table, the welcome burst, autojoin.

    Sends 001-005, LUSERS (251-255, 265, 266), the MOTD (375/372/376 or 422);
    then, for an account login, a NOTICE for a new account and 900
    RPL_LOGGEDIN; then joins the ``server.autojoin`` channels (or ``autojoin``).

    In a cluster this is the nick claim: outside the log (``apply`` None) it
    only appends the ``intro`` entry (:meth:`ircd.worldlog.WorldLog.introduce`),
    and every node runs the rest when it applies that entry (``apply``: the
    entry, :class:`ircd.worldlog.Apply`).
    """
    world = server.world
    if autojoin is None:
        autojoin = list(server.config.server.autojoin)
    if server.log.sequenced and apply is None and not client.is_pseudo:
        if client.nick_cf in world.users:
            client.account = None
            refuse_nick(client, reply, "Nickname is already in use")
            return
        server.log.introduce(client, created, autojoin)
        return
    local = server.is_local(client)
    if client.nick_cf in world.users:
        client.account = None
        refuse_nick(client, reply, "Nickname is already in use")
        return
    if refused_by_kline(server, client, reply, apply):  # 465 and ERROR (ircd/ops/bans.py)
        return
    client.registered = True
    client.update_source()
    world.add_user(client)
    reply.session.password = None  # not kept in memory once used
    log.info("registered %s (%s) from %s%s", client.nick, client.kind, client.ip,
             f" as account {client.account}" if client.account else " as guest")
    if local:
        send_welcome(server, client, reply)
    presence.notify_online(server, client)
    if client.account and reply.session.sasl != "done":
        if created:
            reply.send("NOTICE", client.nick, f"Registered new account {client.account}",
                       trailing=True)
        reply.numeric(N.RPL_LOGGEDIN, client.source, client.account,
                      f"You are now logged in as {client.account}")
    for name in autojoin:
        join_channel(server, client, name, None, reply)


def refuse_nick(client, reply: Reply, text: str) -> None:
    """Answer 433 ERR_NICKNAMEINUSE for the nick ``client`` asked for.

    An unregistered client has no nick again afterwards, so the 433 names it
    ``*`` and the next ``NICK`` starts over ("Modern IRC", NICK; RFC 2812
    section 3.1.2).
    """
    nick = client.nick
    if not client.registered:
        client.set_nick("*")
    reply.numeric(N.ERR_NICKNAMEINUSE, nick, text)


def send_welcome(server, client, reply: Reply) -> None:
    """001-005, LUSERS and MOTD (RFC 2812 section 5.1; "Modern IRC" registration burst)."""
    cfg = server.config.server
    reply.numeric(N.RPL_WELCOME, f"Welcome to the {cfg.network} IRC Network {client.source}")
    reply.numeric(N.RPL_YOURHOST, f"Your host is {server.name}, running version {server.version}")
    created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(server.created))
    reply.numeric(N.RPL_CREATED, f"This server was created {created}")
    reply.lines.append(f":{server.name} {N.RPL_MYINFO} {client.nick} {server.name} "
                       f"{server.version} {USER_MODES} beIiklmnostv beIklov")
    send_isupport(server, reply)
    send_lusers(server, reply)
    send_motd(server, reply)


def send_isupport(server, reply: Reply) -> None:
    """005 RPL_ISUPPORT, at most 13 tokens a line ("Modern IRC", RPL_ISUPPORT)."""
    tokens = [k if v == "" else f"{k}={v}" for k, v in sorted(server.isupport.items())]
    for i in range(0, len(tokens), 13):
        reply.numeric(N.RPL_ISUPPORT, *tokens[i : i + 13], "are supported by this server")


def send_lusers(server, reply: Reply) -> None:
    """251-255, 265, 266 (RFC 2812 section 3.4.2).

    Users are the clients behind a connection: pseudo-users (echobot,
    NickServ, ChanServ) are not counted, as Ergo does not count its services
    (and as irctest's LUSERS tests expect); connections that have not
    registered yet are "unknown" (253).
    """
    world = server.world
    users = len(world.users) - world.pseudo_users
    invisible = sum(1 for u in world.users.values() if "i" in u.modes and not u.is_pseudo)
    unknown = sum(1 for c in world.clients.values() if not c.registered)
    servers = len(server.log.nodes) if server.log.sequenced else 1
    local = sum(1 for u in world.users.values() if server.is_local(u) and not u.is_pseudo)
    reply.numeric(N.RPL_LUSERCLIENT, f"There are {users - invisible} users and {invisible} "
                                     f"invisible on {servers} servers")
    opers = sum(1 for u in world.users.values() if u.oper is not None)
    reply.numeric(N.RPL_LUSEROP, str(opers), "operator(s) online")
    reply.numeric(N.RPL_LUSERUNKNOWN, str(max(unknown, 0)), "unknown connection(s)")
    reply.numeric(N.RPL_LUSERCHANNELS, str(len(world.channels)), "channels formed")
    reply.numeric(N.RPL_LUSERME, f"I have {local} clients and {servers - 1} servers")
    reply.numeric(N.RPL_LOCALUSERS, str(local), str(world.max_users),
                  f"Current local users {local}, max {world.max_users}")
    reply.numeric(N.RPL_GLOBALUSERS, str(users), str(world.max_users),
                  f"Current global users {users}, max {world.max_users}")


def send_motd(server, reply: Reply) -> None:
    """375/372/376, or 422 when the MOTD is empty (RFC 2812 section 3.4.1)."""
    motd = server.config.server.motd
    if not motd.strip():
        reply.numeric(N.ERR_NOMOTD, "MOTD File is missing")
        return
    reply.numeric(N.RPL_MOTDSTART, f"- {server.name} Message of the day - ")
    for line in motd.splitlines():
        reply.numeric(N.RPL_MOTD, f"- {line}")
    reply.numeric(N.RPL_ENDOFMOTD, "End of /MOTD command.")
