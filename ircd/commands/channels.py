"""Channel commands: JOIN, PART, TOPIC, NAMES, LIST, KICK, INVITE, and channel MODE.

RFC 2812 section 3.2 (channel operations) and RFC 2811 (channel modes);
"Modern IRC" for the numerics. The first member of a new channel becomes its
operator; new channels are ``+nt``. Who may join and speak (bans, ``+e``,
``+I``, the ``m:`` mute) is decided in :mod:`ircd.chanaccess`; LIST filters
are parsed in :mod:`ircd.listfilter`. Joining itself (also autojoin at
registration), the topic and NAMES replies are :mod:`ircd.ops.membership`;
the oper override of KICK and MODE is :mod:`ircd.ops.privileges`.
"""

from __future__ import annotations

from ircd.chanaccess import LIST_MODES, MAX_LIST_ENTRIES, list_for, normalize_list_mask
from ircd.commands.registry import Context
from ircd.events import Event
from ircd.listfilter import parse_list_filter
from ircd.ops.membership import join_channel, send_names, send_topic
from ircd.ops.privileges import deoper, log_override, oper_override
from ircd.protocol import numerics as N
from ircd.protocol.casemap import casefold
from ircd.protocol.message import Message, fit_line, truncate_utf8
from ircd.reply import Reply
from ircd.state import Channel, Client

# -- JOIN ------------------------------------------------------------------

def broadcast(server, chan: Channel, client: Client, line: str, reply: Reply) -> None:
    """Send ``line`` from ``client`` to every member of ``chan``, the client through ``reply``."""
    event = Event(fit_line(line), server.clock(), account=client.account)  # 512 bytes at most
    event.send_to(chan.members, exclude=client)
    reply.raw(event.str_for(reply.session.tagmask))


def handle_join(ctx: Context, msg: Message) -> None:
    """``JOIN <chan>{,<chan>} [<key>{,<key>}]``; ``JOIN 0`` leaves every channel."""
    names = msg.params[0]
    if names == "0":
        for chan in list(ctx.client.channels.values()):
            part_channel(ctx.server, ctx.client, chan, "Left all channels", ctx.reply)
        return
    if not names:
        ctx.reply.numeric(N.ERR_NEEDMOREPARAMS, "JOIN", "Not enough parameters")
        return
    keys = msg.params[1].split(",") if len(msg.params) > 1 else []
    for i, name in enumerate(names.split(",")):
        join_channel(ctx.server, ctx.client, name, keys[i] if i < len(keys) else None, ctx.reply)


# -- PART ------------------------------------------------------------------

def part_channel(server, client: Client, chan: Channel, reason: str | None, reply: Reply) -> None:
    """Remove ``client`` from ``chan`` and tell every member (the client through ``reply``)."""
    line = f":{client.source} PART {chan.name}" + (f" :{reason}" if reason else "")
    broadcast(server, chan, client, line, reply)
    if server.world.part(client, chan):
        server.channel_gone(chan)


def handle_part(ctx: Context, msg: Message) -> None:
    """``PART <chan>{,<chan>} [:<reason>]`` (RFC 2812 section 3.2.2; 403, 442)."""
    reason = msg.params[1] if len(msg.params) > 1 else None
    for name in msg.params[0].split(","):
        chan = joined_channel(ctx, name)
        if chan is not None:
            part_channel(ctx.server, ctx.client, chan, reason, ctx.reply)


# -- TOPIC -----------------------------------------------------------------

def handle_topic(ctx: Context, msg: Message) -> None:
    """``TOPIC <chan> [:<topic>]`` (RFC 2812 section 3.2.4; 403, 442, 482 under +t)."""
    client, reply = ctx.client, ctx.reply
    chan = ctx.server.world.find_channel(msg.params[0])
    if chan is None or hidden_from(chan, client):
        reply.numeric(N.ERR_NOSUCHCHANNEL, msg.params[0], "No such channel")
        return
    member = client in chan.members
    if len(msg.params) == 1:
        send_topic(chan, reply)
        return
    if not member:
        reply.numeric(N.ERR_NOTONCHANNEL, chan.name, "You're not on that channel")
        return
    if "t" in chan.modes and not chan.is_op(client):
        reply.numeric(N.ERR_CHANOPRIVSNEEDED, chan.name, "You're not channel operator")
        return
    if chan.registration is not None and ctx.server.chanreg.topic_locked(chan, client):
        reply.numeric(N.ERR_CHANOPRIVSNEEDED, chan.name, "The topic is locked (ChanServ TOPICLOCK)")
        return
    chan.topic = truncate_utf8(msg.params[1], ctx.server.config.server.topiclen)  # bytes
    chan.topic_by = client.source
    chan.topic_at = ctx.server.clock()
    broadcast(ctx.server, chan, client, f":{client.source} TOPIC {chan.name} :{chan.topic}", reply)


# -- NAMES / LIST ----------------------------------------------------------

def _limit_targets(ctx: Context, targets: list[str]) -> list[str]:
    """The first ``maxtargets`` of ``targets`` (ISUPPORT TARGMAX); 407 for each one beyond."""
    maxtargets = ctx.server.config.server.maxtargets
    for extra in targets[maxtargets:]:
        ctx.reply.numeric(N.ERR_TOOMANYTARGETS, extra or "*", "Too many targets")
    return targets[:maxtargets]


def handle_names(ctx: Context, msg: Message) -> None:
    """``NAMES [<chan>{,<chan>}]`` (RFC 2812 section 3.2.5); secret channels only to members.

    The 353 lines of each channel asked for, in order (none for one that
    does not exist or is someone else's secret), then one 366 naming the
    channels asked for (``366 <nick> #a,#b``, without those beyond
    TARGMAX): RFC 2812 section 5.1's "reply
    pair", as Hybrid and Solanum answer and as irctest's
    ``testNamesMultipleChannels`` expects; for one channel this is the usual
    353s + 366. At most TARGMAX NAMES channels, 407 for the rest.
    """
    if not msg.params or not msg.params[0]:
        ctx.reply.numeric(N.RPL_ENDOFNAMES, "*", "End of /NAMES list")
        return
    names = _limit_targets(ctx, msg.params[0].split(","))
    for name in names:
        chan = ctx.server.world.find_channel(name)
        if chan is not None and ("s" not in chan.modes or ctx.client in chan.members):
            send_names(ctx.server, ctx.client, chan, ctx.reply, end=False)
    ctx.reply.numeric(N.RPL_ENDOFNAMES, ",".join(names) or "*", "End of /NAMES list")


def handle_list(ctx: Context, msg: Message) -> None:
    """``LIST [<item>{,<item>}]``: 321, one 322 per channel, 323 (RFC 2812 section 3.2.6).

    Items (ELIST=CMNTU): ``#chan``, ``*mask*``, ``!*mask*``, ``>n``/``<n``
    users, ``C>n``/``C<n`` minutes since creation, ``T>n``/``T<n`` minutes
    since the topic was set; see :mod:`ircd.listfilter`. Secret channels
    only to members.
    """
    server, client, reply = ctx.server, ctx.client, ctx.reply
    world = server.world
    reply.numeric(N.RPL_LISTSTART, "Channel", "Users  Name")
    query = parse_list_filter(msg.params[0] if msg.params else "")
    if query.names and not query.masks:
        channels = [world.channels[n] for n in dict.fromkeys(query.names) if n in world.channels]
    else:
        channels = list(world.channels.values())
    now = server.clock()
    for chan in channels:
        if "s" in chan.modes and client not in chan.members:
            continue
        if query.matches(chan, now):
            modes, _ = chan.mode_string(show_key=False)
            reply.numeric(N.RPL_LIST, chan.name, str(len(chan.members)),
                          f"[{modes}] {chan.topic}" if chan.topic else f"[{modes}]")
    reply.numeric(N.RPL_LISTEND, "End of /LIST")


# -- KICK / INVITE ---------------------------------------------------------

def hidden_from(chan: Channel, client) -> bool:
    """True if ``chan`` is secret (``+s``) and ``client`` is neither a member nor a
    server operator: then every command answers as if it did not exist (403), so
    MODE, TOPIC, PART, KICK and INVITE do not tell outsiders it exists, its modes or
    its ban list (as Ergo and InspIRCd)."""
    return "s" in chan.modes and client not in chan.members and client.oper is None


def joined_channel(ctx: Context, name: str) -> Channel | None:
    """The channel ``name`` if the client is on it; otherwise answer 403 (also for a
    secret channel it is not on) or 442 and return None."""
    chan = ctx.server.world.find_channel(name)
    if chan is None or hidden_from(chan, ctx.client):
        ctx.reply.numeric(N.ERR_NOSUCHCHANNEL, name or "*", "No such channel")
    elif ctx.client not in chan.members:
        ctx.reply.numeric(N.ERR_NOTONCHANNEL, chan.name, "You're not on that channel")
    else:
        return chan
    return None


def handle_kick(ctx: Context, msg: Message) -> None:
    """``KICK <chan> <nick>{,<nick>} [:<reason>]`` (RFC 2812 section 3.2.8; 403 442 482 441).

    Each nick is kicked in turn (a KICK line to every member), up to TARGMAX
    KICK nicks (407 for the rest); a nick that is not there gets 401 or 441
    and the others are still kicked.
    """
    server, client, reply = ctx.server, ctx.client, ctx.reply
    chan = server.world.find_channel(msg.params[0])
    # A server operator may kick where they are not channel operator (logged).
    override = chan is not None and oper_override(client, chan)
    if not override:
        chan = joined_channel(ctx, msg.params[0])
        if chan is None:
            return
        if not chan.is_op(client):
            reply.numeric(N.ERR_CHANOPRIVSNEEDED, chan.name, "You're not channel operator")
            return
    assert chan is not None
    reason = msg.params[2] if len(msg.params) > 2 and msg.params[2] else client.nick
    reason = truncate_utf8(reason, server.config.server.kicklen)  # bytes
    for nick in _limit_targets(ctx, msg.params[1].split(",")):
        if not override and client not in chan.members:  # kicked themselves on the way
            reply.numeric(N.ERR_NOTONCHANNEL, chan.name, "You're not on that channel")
            break
        target = server.world.find_user(nick)
        if target is None:
            reply.numeric(N.ERR_NOSUCHNICK, nick, "No such nick/channel")
            continue
        if target not in chan.members:
            reply.numeric(N.ERR_USERNOTINCHANNEL, target.nick, chan.name,
                          "They aren't on that channel")
            continue
        if override:
            log_override(ctx, chan, f"KICK {target.nick} :{reason}")
        # (an oper kicking from outside the channel gets the KICK line too)
        broadcast(server, chan, client, f":{client.source} KICK {chan.name} {target.nick} :{reason}",
                  reply)
        if server.world.part(target, chan):
            server.channel_gone(chan)


def handle_invite(ctx: Context, msg: Message) -> None:
    """``INVITE <nick> <chan>`` (RFC 2812 section 3.2.7; 401 403 442 443 482, 341).

    Any member may invite to a channel without ``+i``: the target is told,
    nothing is recorded (as Ergo), so it gives no way past +k, +l or +b. On a
    ``+i`` channel only its operators may invite (482 otherwise, as RFC 2812
    and Ergo; InspIRCd asks for half-op), and the invitation is recorded on
    the target (:meth:`ircd.state.Client.invite`: at most
    :data:`ircd.state.MAX_INVITES`, oldest dropped, valid for this channel
    only, used up by the next JOIN). It then passes +i, +k and +l once,
    never a ban (:func:`join_channel`).
    """
    server, client, reply = ctx.server, ctx.client, ctx.reply
    target = server.world.find_user(msg.params[0])
    if target is None:
        reply.numeric(N.ERR_NOSUCHNICK, msg.params[0], "No such nick/channel")
        return
    chan = joined_channel(ctx, msg.params[1])
    if chan is None:
        return
    if target in chan.members:
        reply.numeric(N.ERR_USERONCHANNEL, target.nick, chan.name, "is already on channel")
        return
    if "i" in chan.modes:
        if not chan.is_op(client):
            reply.numeric(N.ERR_CHANOPRIVSNEEDED, chan.name, "You're not channel operator")
            return
        target.invite(chan)
    reply.numeric(N.RPL_INVITING, target.nick, chan.name)
    event = Event(f":{client.source} INVITE {target.nick} {chan.name}", server.clock(),
                  account=client.account)
    event.send_to((target,))
    # invite-notify: the other members who asked for it see the invitation too.
    event.send_with_cap(chan.members, "invite-notify", exclude=client)
    if target.away is not None:
        reply.numeric(N.RPL_AWAY, target.nick, target.away)


# -- MODE ------------------------------------------------------------------

FLAG_MODES = "imnst"
MAX_MODE_PARAMS = 4


def handle_mode(ctx: Context, msg: Message) -> None:
    """``MODE <nick|chan> [<modestring> [<args>...]]`` (RFC 2812 3.1.5, RFC 2811 section 4).

    User modes: ``i`` (invisible), ``w`` (wallops), ``B`` (bot, IRCv3
    bot-mode). Channel modes: ``o v`` (prefixes), ``b e I`` (lists, see
    :mod:`ircd.chanaccess`), ``k l`` (key, limit), ``i m n s t``.
    """
    target = msg.params[0]
    if target[:1] == "#":
        _channel_mode(ctx, msg)
    else:
        _user_mode(ctx, msg)


def _user_mode(ctx: Context, msg: Message) -> None:
    client, reply = ctx.client, ctx.reply
    target = ctx.server.world.find_user(msg.params[0])
    if target is None:
        reply.numeric(N.ERR_NOSUCHNICK, msg.params[0], "No such nick/channel")
        return
    if target is not client:
        reply.numeric(N.ERR_USERSDONTMATCH, "Can't change mode for other users")
        return
    if len(msg.params) < 2:
        reply.numeric(N.RPL_UMODEIS, "+" + "".join(sorted(client.modes)))
        return
    adding = True
    added, removed, unknown = [], [], False
    for ch in msg.params[1]:
        if ch in "+-":
            adding = ch == "+"
        elif ch in "Biw":  # B: bot (IRCv3 bot-mode, ISUPPORT BOT=B)
            if adding and ch not in client.modes:
                client.set_mode(ch, True)
                added.append(ch)
            elif not adding and ch in client.modes:
                client.set_mode(ch, False)
                removed.append(ch)
        elif ch == "o":
            # +o only through OPER: ignored here, as ircds do; -o drops oper status.
            if not adding and client.oper is not None:
                deoper(client)
                removed.append(ch)
        else:
            unknown = True
    if unknown:
        reply.numeric(N.ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag")
    change = ("+" + "".join(added) if added else "") + ("-" + "".join(removed) if removed else "")
    if change:
        reply.raw(f":{client.source} MODE {client.nick} :{change}")


def _channel_mode(ctx: Context, msg: Message) -> None:
    server, client, reply = ctx.server, ctx.client, ctx.reply
    chan = server.world.find_channel(msg.params[0])
    if chan is None or hidden_from(chan, client):
        reply.numeric(N.ERR_NOSUCHCHANNEL, msg.params[0], "No such channel")
        return
    if len(msg.params) < 2:
        modes, params = chan.mode_string(show_key=client in chan.members)
        reply.numeric(N.RPL_CHANNELMODEIS, chan.name, modes, *params)
        reply.numeric(N.RPL_CREATIONTIME, chan.name, str(int(chan.created)))
        return
    modestring, args = msg.params[1], list(msg.params[2:])
    # A bare list query ("MODE #c b", sent by irssi on join; also e and I) needs no privileges.
    if len(modestring.lstrip("+")) == 1 and modestring.lstrip("+") in LIST_MODES and not args:
        send_list(chan, modestring.lstrip("+"), reply)
        return
    override = oper_override(client, chan)  # a server operator acts as channel operator
    is_op = chan.is_op(client) or override
    adding = True
    applied: list[tuple[str, str, str | None]] = []  # (sign, letter, arg)
    param_count = 0
    denied = False
    for ch in modestring:
        if ch in "+-":
            adding = ch == "+"
            continue
        takes_arg = ch in "ov" or ch in LIST_MODES or ch == "k" or (ch == "l" and adding)
        arg = None
        if takes_arg:
            if not args:
                if ch in LIST_MODES:
                    send_list(chan, ch, reply)
                elif ch != "k" or adding:
                    reply.numeric(N.ERR_NEEDMOREPARAMS, "MODE", "Not enough parameters")
                    continue
            else:
                arg = args.pop(0)
            param_count += 1
            if param_count > MAX_MODE_PARAMS:
                break
            if arg is None and ch in LIST_MODES:
                continue
        if ch not in "ovkl" + LIST_MODES + FLAG_MODES:
            reply.numeric(N.ERR_UNKNOWNMODE, ch, "is unknown mode char to me")
            continue
        if not is_op:
            denied = True
            continue
        result = _apply_channel_mode(ctx, chan, adding, ch, arg)
        if result is not None:
            applied.append(("+" if adding else "-", ch, result if result != "" else None))
    if denied:
        reply.numeric(N.ERR_CHANOPRIVSNEEDED, chan.name, "You're not channel operator")
    if not applied:
        return
    out, out_args, sign = "", [], ""
    for s, letter, arg in applied:
        if s != sign:
            out += s
            sign = s
        out += letter
        if arg is not None:
            out_args.append(arg)
    if override:
        log_override(ctx, chan, " ".join(["MODE", out, *out_args]))
    line = " ".join([f":{client.source} MODE {chan.name} {out}", *out_args])
    broadcast(server, chan, client, line, reply)


def _apply_channel_mode(ctx: Context, chan: Channel, adding: bool, ch: str,
                        arg: str | None) -> str | None:
    """Apply one mode change; return the argument to show ("" for none) or None if no change."""
    reply, server = ctx.reply, ctx.server
    if ch in FLAG_MODES:
        if adding == (ch in chan.modes):
            return None
        (chan.modes.add if adding else chan.modes.discard)(ch)
        return ""
    if ch in "ov":
        assert arg is not None
        target = server.world.find_user(arg)
        if target is None:
            reply.numeric(N.ERR_NOSUCHNICK, arg, "No such nick/channel")
            return None
        if target not in chan.members:
            reply.numeric(N.ERR_USERNOTINCHANNEL, target.nick, chan.name,
                          "They aren't on that channel")
            return None
        current = chan.members[target]
        if adding == (ch in current):
            return None
        if adding:
            chan.members[target] = "".join(m for m in "ov" if m in current or m == ch)
        else:
            chan.members[target] = current.replace(ch, "")
        return target.nick
    if ch == "k":
        if adding:
            assert arg is not None
            if not arg or " " in arg or "," in arg:
                reply.numeric(N.ERR_INVALIDKEY, chan.name, "Key is not well-formed")
                return None
            chan.key = arg[:32]
            return chan.key
        if chan.key is None:
            return None
        chan.key = None
        return "*"
    if ch == "l":
        if adding:
            assert arg is not None
            # ASCII digits only ("²" is a digit to str.isdigit, not to int), and a
            # limit that fits in 32 bits, as clients and other servers expect.
            if (not (arg.isascii() and arg.isdigit()) or len(arg) > 10
                    or not 0 < int(arg) < 2**31):
                reply.numeric(N.ERR_INVALIDMODEPARAM, chan.name, "l", arg, "Invalid limit")
                return None
            chan.limit = int(arg)
            return str(chan.limit)
        if chan.limit is None:
            return None
        chan.limit = None
        return ""
    if ch in LIST_MODES:
        assert arg is not None
        try:
            mask = normalize_list_mask(arg)
        except ValueError as exc:
            reply.numeric(N.ERR_INVALIDMODEPARAM, chan.name, ch, arg or "*", f"Invalid mask: {exc}")
            return None
        entries = list_for(chan, ch)
        existing = [e for e in entries if casefold(e[0]) == casefold(mask)]
        if adding:
            if existing:
                return None
            if len(entries) >= MAX_LIST_ENTRIES:
                reply.numeric(N.ERR_BANLISTFULL, chan.name, ch, "Channel list is full")
                return None
            entries.append((mask, ctx.client.source, server.clock()))
        else:
            if not existing:
                return None
            entries.remove(existing[0])
        return mask
    return None


_LIST_REPLIES = {
    "b": (N.RPL_BANLIST, N.RPL_ENDOFBANLIST, "End of channel ban list"),
    "e": (N.RPL_EXCEPTLIST, N.RPL_ENDOFEXCEPTLIST, "End of channel exception list"),
    "I": (N.RPL_INVITELIST, N.RPL_ENDOFINVITELIST, "End of channel invite list"),
}


def send_list(chan: Channel, letter: str, reply: Reply) -> None:
    """A list mode's entries and its end: 367/368 (+b), 348/349 (+e), 346/347 (+I).

    Each entry line is ``<chan> <mask> <setter> <set-at unix seconds>``
    ("Modern IRC" RPL_BANLIST, RPL_EXCEPTLIST, RPL_INVITELIST).
    """
    item, end, text = _LIST_REPLIES[letter]
    for mask, setter, at in list_for(chan, letter):
        reply.numeric(item, chan.name, mask, setter, str(int(at)))
    reply.numeric(end, chan.name, text)
