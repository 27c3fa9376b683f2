"""User and server queries and user state: WHO (and WHOX), WHOIS, WHOWAS, ISON, USERHOST,
AWAY, SETNAME, LUSERS, MOTD, VERSION, TIME, INFO, ADMIN, LINKS, STATS, HELP.

RFC 2812 sections 3.4 (server queries), 3.6 (user based queries), 4.1 (AWAY),
4.8 and 4.9 (USERHOST, ISON); "Modern IRC" for the numerics.
"""

from __future__ import annotations

import time

from ircd.commands.registry import COMMANDS, Context
from ircd.events import Event
from ircd.ops import presence
from ircd.ops.bans import stats_bans
from ircd.ops.welcome import send_isupport, send_lusers, send_motd
from ircd.protocol import numerics as N
from ircd.protocol.casemap import casefold
from ircd.protocol.masks import compile_mask
from ircd.protocol.message import Message, fit_line, truncate_utf8
from ircd.state import NAMELEN, Channel, Client, prefix_of


def _shares_channel(a: Client, b: Client) -> bool:
    return any(cf in b.channels for cf in a.channels)


WHOX_ORDER = "tcuihsnfdlaor"


def _who_line(ctx: Context, user: Client, chan: Channel | None,
              whox: tuple[str, str] | None = None) -> None:
    """One 352 RPL_WHOREPLY, or with WHOX (``whox=(fields, token)``) one 354 RPL_WHOSPCRPL."""
    server = ctx.server
    flags = "G" if user.away is not None else "H"
    if "B" in user.modes:
        flags += "B"  # IRCv3 bot-mode: the BOT mode letter as a WHO flag
    if user.oper is not None:
        flags += "*"  # a server operator (RFC 2812 section 3.6.1)
    if chan is not None:
        flags += prefix_of(chan.members.get(user, ""), "multi-prefix" in ctx.session.caps)
    if whox is None:
        ctx.reply.numeric(N.RPL_WHOREPLY, chan.name if chan else "*", user.user, user.host,
                          user.server or server.name, user.nick, flags,
                          f"{0 if server.is_local(user) or user.is_pseudo else 1} {user.realname}")
        return
    fields, token = whox
    values = {
        "t": token or "0",
        "c": chan.name if chan else "*",
        "u": user.user,
        "i": user.ip if user is ctx.client or ctx.client.oper is not None else "255.255.255.255",
        "h": user.host,
        "s": user.server or server.name,
        "n": user.nick,
        "f": flags,
        "d": "0",
        "l": str(max(0, int(server.clock() - user.last_active))),
        "a": user.account or "0",
        "o": "n/a",
        "r": user.realname,
    }
    out = [values[f] for f in WHOX_ORDER if f in fields]
    if "r" in fields:
        ctx.reply.numeric(N.RPL_WHOSPCRPL, *out)
    else:
        # No free-text field: the last value is sent as is (it has no spaces).
        ctx.reply.lines.append(f":{server.name} {N.RPL_WHOSPCRPL} {ctx.client.nick} " + " ".join(out))


def handle_who(ctx: Context, msg: Message) -> None:
    """``WHO [<mask> [%<fields>[,<token>]]]``: 352 (or WHOX 354) per match, then 315.

    RFC 2812 section 3.6.1 and the WHOX extension (ISUPPORT ``WHOX``).
    ``<mask>`` is a channel, a nick, or a glob over nicks, hosts and real
    names. Invisible (+i) users are listed only to people who share a channel.
    """
    world, client = ctx.server.world, ctx.client
    mask = msg.params[0] if msg.params and msg.params[0] else "*"
    whox = None
    if len(msg.params) > 1 and msg.params[1].startswith("%"):
        fields, _, token = msg.params[1][1:].partition(",")
        whox = (fields, token[:3] if token.isdigit() else "")
    if mask[:1] == "#":
        chan = world.find_channel(mask)
        if chan is not None and ("s" not in chan.modes or client in chan.members):
            for member in chan.members:
                _who_line(ctx, member, chan, whox)
    else:
        exact = world.find_user(mask)
        if exact is not None:
            _who_line(ctx, exact, None, whox)
        else:
            everyone = mask in ("*", "0")
            glob = compile_mask(mask)  # linear-time matching, see ircd.protocol.masks
            for user in world.users.values():
                if "i" in user.modes and user is not client and not _shares_channel(client, user):
                    continue
                if everyone or any(glob.match(casefold(f)) for f in (user.nick, user.host,
                                                                     user.realname, user.source)):
                    _who_line(ctx, user, None, whox)
    ctx.reply.numeric(N.RPL_ENDOFWHO, mask, "End of WHO list")


def handle_whois(ctx: Context, msg: Message) -> None:
    """``WHOIS [<server>] <nick>``: 311 319 312 313 335 301 330 317 318, or 401 (RFC 2812 section 3.6.2).

    312 carries ``[server] description``; 335 RPL_WHOISBOT marks a ``+B``
    user (IRCv3 bot-mode).
    """
    server, client, reply = ctx.server, ctx.client, ctx.reply
    nick = msg.params[-1].split(",")[0]
    user = server.world.find_user(nick)
    if user is None:
        reply.numeric(N.ERR_NOSUCHNICK, nick, "No such nick/channel")
        reply.numeric(N.RPL_ENDOFWHOIS, nick, "End of /WHOIS list")
        return
    reply.numeric(N.RPL_WHOISUSER, user.nick, user.user, user.host, "*", user.realname)
    multi = "multi-prefix" in reply.session.caps
    chans = [
        prefix_of(chan.members[user], multi) + chan.name
        for chan in user.channels.values()
        if "s" not in chan.modes or client in chan.members
    ]
    if chans:
        reply.numeric(N.RPL_WHOISCHANNELS, user.nick, " ".join(chans))
    reply.numeric(N.RPL_WHOISSERVER, user.nick, user.server or server.name,
                  server.node_info(user))
    if "B" in user.modes:
        reply.numeric(N.RPL_WHOISBOT, user.nick, f"is a bot on {server.config.server.network}")
    if user.oper is not None:
        reply.numeric(N.RPL_WHOISOPERATOR, user.nick,
                      "is a server administrator" if user.oper[1] == "admin"
                      else "is an IRC operator")
    if user.away is not None:
        reply.numeric(N.RPL_AWAY, user.nick, user.away)
    if user.account:
        reply.numeric(N.RPL_WHOISACCOUNT, user.nick, user.account, "is logged in as")
    if user is client or client.oper is not None:
        # The real address: for the user itself and for operators (the host may be a cloak).
        reply.numeric(N.RPL_WHOISHOST, user.nick, f"is connecting from *@{user.ip} {user.ip}")
    idle = max(0, int(server.clock() - user.last_active))
    reply.numeric(N.RPL_WHOISIDLE, user.nick, str(idle), str(int(user.signon)),
                  "seconds idle, signon time")
    reply.numeric(N.RPL_ENDOFWHOIS, user.nick, "End of /WHOIS list")


def handle_whowas(ctx: Context, msg: Message) -> None:
    """``WHOWAS <nick>{,<nick>} [<count> [<server>]]``: who had a nick (RFC 2812 section 3.6.3).

    Per nick, newest first: 314 RPL_WHOWASUSER and 312 RPL_WHOISSERVER (the
    server and the time the nick was given up) for each of the last
    ``count`` entries (all when ``count`` is missing, 0 or negative), or 406
    ERR_WASNOSUCHNICK when there is none; then 369 RPL_ENDOFWHOWAS. No nick:
    431 ERR_NONICKNAMEGIVEN.
    """
    reply = ctx.reply
    if not msg.params or not msg.params[0]:
        reply.numeric(N.ERR_NONICKNAMEGIVEN, "No nickname given")
        return
    count = 0
    if len(msg.params) > 1:
        text = msg.params[1]
        digits = text[1:] if text[:1] in "+-" else text
        if digits.isascii() and digits.isdigit() and len(digits) <= 9:
            count = int(text)
    for nick in _limit_whowas(ctx, msg.params[0].split(",")):
        entries = ctx.server.whowas.lookup(nick, count)
        if not entries:
            reply.numeric(N.ERR_WASNOSUCHNICK, nick or "*", "There was no such nickname")
        for entry in entries:
            reply.numeric(N.RPL_WHOWASUSER, entry.nick, entry.user, entry.host, "*", entry.realname)
            when = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(entry.when))
            reply.numeric(N.RPL_WHOISSERVER, entry.nick, entry.server, when)
        reply.numeric(N.RPL_ENDOFWHOWAS, nick or "*", "End of WHOWAS")


def _limit_whowas(ctx: Context, nicks: list[str]) -> list[str]:
    maxtargets = ctx.server.config.server.maxtargets
    for extra in nicks[maxtargets:]:
        ctx.reply.numeric(N.ERR_TOOMANYTARGETS, extra or "*", "Too many targets")
    return nicks[:maxtargets]


def handle_ison(ctx: Context, msg: Message) -> None:
    """``ISON <nick> ...``: 303 with the nicks that are online (RFC 2812 section 4.9)."""
    world = ctx.server.world
    online = []
    for param in msg.params:
        for nick in param.split():
            user = world.find_user(nick)
            if user is not None:
                online.append(user.nick)
    ctx.reply.numeric(N.RPL_ISON, " ".join(online))


def handle_userhost(ctx: Context, msg: Message) -> None:
    """``USERHOST <nick>{ <nick>}`` (up to 5): 302 ``nick=+user@host`` (RFC 2812 section 4.8)."""
    world = ctx.server.world
    out = []
    for nick in msg.params[:5]:
        user = world.find_user(nick)
        if user is not None:
            away = "-" if user.away is not None else "+"
            out.append(f"{user.nick}={away}{user.user}@{user.host}")
    ctx.reply.numeric(N.RPL_USERHOST, " ".join(out))


def handle_away(ctx: Context, msg: Message) -> None:
    """``AWAY [:<message>]``: 306 RPL_NOWAWAY, or 305 RPL_UNAWAY without a message.

    Channel peers with ``away-notify`` (IRCv3) are sent ``AWAY [:<message>]``.
    """
    client, server = ctx.client, ctx.server
    if msg.params and msg.params[0]:
        client.away = truncate_utf8(msg.params[0], server.config.server.awaylen)  # bytes
        ctx.reply.numeric(N.RPL_NOWAWAY, "You have been marked as being away")
        line = f":{client.source} AWAY :{client.away}"
    else:
        if client.away is None:
            ctx.reply.numeric(N.RPL_UNAWAY, "You are no longer marked as being away")
            return
        client.away = None
        ctx.reply.numeric(N.RPL_UNAWAY, "You are no longer marked as being away")
        line = f":{client.source} AWAY"
    event = Event(fit_line(line), server.clock(), account=client.account)  # 512 bytes at most
    event.write_to(presence.interested(server, client, "away-notify"))


REALNAME_MAX = NAMELEN
"""Longest realname SETNAME accepts, in bytes of UTF-8 (ISUPPORT NAMELEN)."""


def handle_setname(ctx: Context, msg: Message) -> None:
    """``SETNAME :<realname>`` (IRCv3 setname): peers with ``setname`` see the change.

    Too long (over NAMELEN bytes of UTF-8) or empty: ``FAIL SETNAME INVALID_REALNAME``
    (standard replies).
    """
    client, server = ctx.client, ctx.server
    name = msg.params[0]
    if not name or len(name.encode()) > REALNAME_MAX:
        ctx.reply.send("FAIL", "SETNAME", "INVALID_REALNAME", "Realname is not valid",
                       trailing=True)
        return
    client.realname = name
    event = Event(f":{client.source} SETNAME :{name}", server.clock(), account=client.account)
    event.write_to(presence.interested(server, client, "setname"))
    if "setname" in ctx.session.caps:
        ctx.reply.raw(event.str_for(ctx.session.tagmask))


def handle_lusers(ctx: Context, msg: Message) -> None:
    """RFC 2812 section 3.4.2."""
    send_lusers(ctx.server, ctx.reply)


def handle_motd(ctx: Context, msg: Message) -> None:
    """RFC 2812 section 3.4.1."""
    send_motd(ctx.server, ctx.reply)


def handle_version(ctx: Context, msg: Message) -> None:
    """351 RPL_VERSION and the ISUPPORT lines (RFC 2812 section 3.4.3)."""
    server = ctx.server
    ctx.reply.numeric(N.RPL_VERSION, server.version, server.name, "chatserver IRC daemon")
    send_isupport(server, ctx.reply)


def handle_time(ctx: Context, msg: Message) -> None:
    """391 RPL_TIME (RFC 2812 section 3.4.6)."""
    now = ctx.server.clock()
    text = time.strftime("%A %B %d %Y -- %H:%M:%S +00:00", time.gmtime(now))
    ctx.reply.numeric(N.RPL_TIME, ctx.server.name, str(int(now)), "0", text)




def handle_info(ctx: Context, msg: Message) -> None:
    """``INFO``: 371 RPL_INFO lines (the first: ``<server>: <description>``), 374 (RFC 2812 3.4.10)."""
    server = ctx.server
    for line in (f"{server.name}: {server.config.server.description}",
                 f"{server.version}: an IRC server in Python (asyncio).",
                 "Speaks RFC 1459/2812, Modern IRC, IRCv3, and the SEND/SEND-OK chat dialect.",
                 "Protocol reference: docs/protocol.md"):
        ctx.reply.numeric(N.RPL_INFO, line)
    ctx.reply.numeric(N.RPL_ENDOFINFO, "End of INFO list")


def handle_admin(ctx: Context, msg: Message) -> None:
    """``ADMIN``: 256-259 (RFC 2812 section 3.4.9)."""
    server = ctx.server
    ctx.reply.numeric(N.RPL_ADMINME, server.name, "Administrative info")
    ctx.reply.numeric(N.RPL_ADMINLOC1, f"{server.config.server.network} network")
    ctx.reply.numeric(N.RPL_ADMINLOC2, "chatserver")
    ctx.reply.numeric(N.RPL_ADMINEMAIL, "The administrator has set no contact address")


def handle_links(ctx: Context, msg: Message) -> None:
    """``LINKS``: 364 for this server (hop count 0, ``[server] description``) and, in a
    cluster, for every other node (hop count 1); then 365 (RFC 2812 section 3.4.5)."""
    server = ctx.server
    ctx.reply.numeric(N.RPL_LINKS, server.name, server.name,
                      f"0 {server.config.server.description}")
    if server.log.sequenced:
        for node in sorted(server.log.nodes.values(), key=lambda n: n.server):
            if node.id != server.node_id:
                ctx.reply.numeric(N.RPL_LINKS, node.server, server.name, f"1 {node.info}")
    ctx.reply.numeric(N.RPL_ENDOFLINKS, "*", "End of /LINKS list")


def handle_stats(ctx: Context, msg: Message) -> None:
    """``STATS [<query>]``: ``u`` gives the uptime (242); ``k``/``d`` (opers) list the K-lines
    (216) and D-lines (225); others only 219 (RFC 2812 section 3.4.4)."""
    server = ctx.server
    query = msg.params[0][:1] if msg.params and msg.params[0] else "*"
    if query == "u":
        up = int(server.clock() - server.created)
        days, rest = divmod(up, 86400)
        text = f"Server Up {days} days {rest // 3600}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
        ctx.reply.numeric(N.RPL_STATSUPTIME, text)
    elif query in ("k", "K", "d", "D"):
        stats_bans(ctx, query.lower())
    ctx.reply.numeric(N.RPL_ENDOFSTATS, query, "End of /STATS report")


def handle_help(ctx: Context, msg: Message) -> None:
    """``HELP [<command>]``: the list of commands, or the first paragraph of one's documentation.

    704 RPL_HELPSTART, 705 RPL_HELPTXT, 706 RPL_ENDOFHELP; 524
    ERR_HELPNOTFOUND for an unknown subject ("Modern IRC", HELP). ``HELPOP``
    is the same command, under the name InspIRCd and UnrealIRCd give it.
    """
    reply = ctx.reply
    subject = msg.params[0].upper() if msg.params and msg.params[0] else ""
    if not subject:
        names = sorted(COMMANDS)
        reply.numeric(N.RPL_HELPSTART, "*", "Commands (HELP <command> for details):")
        for i in range(0, len(names), 8):
            reply.numeric(N.RPL_HELPTXT, "*", " ".join(names[i : i + 8]))
        reply.numeric(N.RPL_ENDOFHELP, "*", "End of /HELP")
        return
    spec = COMMANDS.get(subject)
    if spec is None:
        reply.numeric(N.ERR_HELPNOTFOUND, subject, "No help available on this topic")
        return
    doc = (spec.handler.__doc__ or subject).strip().split("\n\n")[0]
    lines = [" ".join(doc.replace("``", "").split())]
    reply.numeric(N.RPL_HELPSTART, subject, f"** {subject} **")
    for line in lines:
        while line:
            reply.numeric(N.RPL_HELPTXT, subject, line[:300])
            line = line[300:]
    reply.numeric(N.RPL_ENDOFHELP, subject, "End of /HELP")
