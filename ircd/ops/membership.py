"""Joining a channel, and the replies a joiner gets (topic, NAMES).

Used by JOIN, by autojoin at registration, and by TOPIC and NAMES for their
own replies. RFC 2812 section 3.2.1 and RFC 2811; who may join is decided in
:mod:`ircd.chanaccess`.
"""

from __future__ import annotations

from ircd.chanaccess import is_banned, is_invite_excepted
from ircd.events import Event
from ircd.ops.batches import send_batch
from ircd.protocol import numerics as N
from ircd.protocol.casemap import casefold, is_valid_channel
from ircd.protocol.message import fit_line
from ircd.reply import Reply
from ircd.state import Channel, Client, prefix_of


def join_channel(server, client: Client, name: str, key: str | None, reply: Reply) -> None:
    """Join ``client`` to channel ``name``, creating it if needed (RFC 2812 section 3.2.1).

    Sends JOIN to the members, and to the joiner JOIN, the topic (332/333) and
    NAMES (353/366). Errors: 403 (bad name), 405 (too many channels), 471
    (+l), 473 (+i, unless matching +I), 474 (+b, unless matching +e; an
    ``m:`` mute does not keep anyone out), 475 (+k). An invitation to this
    channel (given by one of its operators while it was ``+i``, see
    :func:`handle_invite`) passes +i, +k and +l once, never +b.
    """
    cfg = server.config.server
    if not is_valid_channel(name, cfg.channellen):
        reply.numeric(N.ERR_NOSUCHCHANNEL, name or "*", "No such channel")
        return
    world = server.world
    cf = casefold(name)
    chan = world.channels.get(cf)
    if chan is not None and client in chan.members:
        return
    if len(client.channels) >= cfg.max_channels:
        reply.numeric(N.ERR_TOOMANYCHANNELS, name, "You have joined too many channels")
        return
    if chan is None:
        chan = Channel(name=name, created=server.clock())
        world.channels[cf] = chan
        modes = "o"
    else:
        invited = client.is_invited(chan)
        if chan.key is not None and key != chan.key and not invited:
            reply.numeric(N.ERR_BADCHANNELKEY, chan.name, "Cannot join channel (+k)")
            return
        if chan.limit is not None and len(chan.members) >= chan.limit and not invited:
            reply.numeric(N.ERR_CHANNELISFULL, chan.name, "Cannot join channel (+l)")
            return
        if "i" in chan.modes and not invited and not is_invite_excepted(chan, client):
            reply.numeric(N.ERR_INVITEONLYCHAN, chan.name, "Cannot join channel (+i)")
            return
        if chan.bans and is_banned(chan, client):
            reply.numeric(N.ERR_BANNEDFROMCHAN, chan.name, "Cannot join channel (+b)")
            return
        modes = ""
    client.forget_invite(cf)
    t = server.clock()
    basic = Event(f":{client.source} JOIN {chan.name}", t, account=client.account)
    extended = Event(f":{client.source} JOIN {chan.name} {client.account or '*'} :{client.realname}",
                     t, account=client.account)
    away = (Event(fit_line(f":{client.source} AWAY :{client.away}"), t, account=client.account)
            if client.away is not None else None)
    for member in chan.members:
        for s in member.sessions:
            caps = s.caps
            event = extended if "extended-join" in caps else basic
            s.write(event.bytes_for(s.tagmask))
            if away is not None and "away-notify" in caps:
                s.write(away.bytes_for(s.tagmask))
    world.join(client, chan, modes)
    session = reply.session
    own = extended if "extended-join" in session.caps else basic
    reply.raw(own.str_for(session.tagmask))
    if chan.topic:
        send_topic(chan, reply)
    send_names(server, client, chan, reply)
    if chan.registration is not None:  # status from ChanServ's access list (ircd/chanreg.py)
        server.chanreg.joined(client, chan, reply)
    replay = server.config.history.autoreplay_lines
    if replay and server.history is not None:
        items = server.history.items(cf)[-replay:]
        if items:
            send_batch(server.ids, reply, chan.name, items)


def send_topic(chan: Channel, reply: Reply) -> None:
    """332 RPL_TOPIC and 333 RPL_TOPICWHOTIME, or 331 RPL_NOTOPIC."""
    if chan.topic:
        reply.numeric(N.RPL_TOPIC, chan.name, chan.topic)
        reply.numeric(N.RPL_TOPICWHOTIME, chan.name, chan.topic_by, str(int(chan.topic_at)))
    else:
        reply.numeric(N.RPL_NOTOPIC, chan.name, "No topic is set")


def send_names(server, client: Client, chan: Channel, reply: Reply, end: bool = True) -> None:
    """353 RPL_NAMREPLY lines (split to fit) then, if ``end``, 366 RPL_ENDOFNAMES.

    Honours the IRCv3 ``multi-prefix`` and ``userhost-in-names`` capabilities.
    """
    multi = "multi-prefix" in reply.session.caps
    full = "userhost-in-names" in reply.session.caps
    symbol = "@" if "s" in chan.modes else "="
    entries = [
        prefix_of(modes, multi) + (m.source if full else m.nick)
        for m, modes in chan.members.items()
    ]
    head = len(server.name) + len(client.nick) + len(chan.name) + 16
    batch: list[str] = []
    size = head
    for entry in entries:
        if batch and size + len(entry) + 1 > 500:
            reply.numeric(N.RPL_NAMREPLY, symbol, chan.name, " ".join(batch))
            batch, size = [], head
        batch.append(entry)
        size += len(entry) + 1
    if batch:
        reply.numeric(N.RPL_NAMREPLY, symbol, chan.name, " ".join(batch))
    if end:
        reply.numeric(N.RPL_ENDOFNAMES, chan.name, "End of /NAMES list")
