"""PRIVMSG, NOTICE and TAGMSG: the messages people send each other.

RFC 2812 sections 3.3.1 and 3.3.2, "Modern IRC"; IRCv3 message-tags
(client-only ``+tags``, ``TAGMSG``, ``msgid``), server-time, account-tag and
echo-message. A message to a channel is one :class:`~ircd.events.Event`,
serialised once per distinct tag set and written to every other member; a
message to a nick goes to that user, or gets 401 ERR_NOSUCHNICK ("the user is
not online"). NOTICE never gets an error reply (RFC 2812 section 3.3.2).
``@#chan`` and ``+#chan`` (ISUPPORT STATUSMSG) reach only operators, or voiced
users and operators. PRIVMSG and NOTICE to channels and between accounts are
recorded in the history (CHATHISTORY). A member who is banned or muted
(``+b m:<mask>``, see :mod:`ircd.chanaccess`) and not voiced gets 404. A
``+B`` user's messages carry the ``bot`` tag (IRCv3 bot-mode).
"""

from __future__ import annotations

from collections.abc import Iterable

from ircd.capabilities import TAG_MESSAGE_TAGS
from ircd.chanaccess import is_banned, is_muted
from ircd.commands.registry import Context
from ircd.events import Event
from ircd.protocol import numerics as N
from ircd.protocol.casemap import RFC1459
from ircd.protocol.message import MAX_LINE_BODY, Message
from ircd.state import Client


def _relay(ctx: Context, msg: Message, verb: str) -> None:
    client, reply, server, session = ctx.client, ctx.reply, ctx.server, ctx.session
    quiet = verb != "PRIVMSG"  # NOTICE never answers with errors; TAGMSG answers below
    tagmsg = verb == "TAGMSG"
    params = msg.params
    if not params or not params[0]:
        if not quiet or tagmsg:
            reply.numeric(N.ERR_NORECIPIENT, f"No recipient given ({verb})")
        return
    if tagmsg:
        text = None
    elif len(params) < 2 or not params[1]:
        if not quiet:
            reply.numeric(N.ERR_NOTEXTTOSEND, "No text to send")
        return
    else:
        text = params[1]
    errors = not quiet or tagmsg
    client_tags = {k: v for k, v in msg.tags.items() if k[:1] == "+"} if msg.tags else None
    if "B" in client.modes:
        # IRCv3 bot-mode: the "bot" tag (no value) on a bot's messages, for message-tags clients.
        client_tags = {**(client_tags or {}), "bot": ""}
    targets: list[str] | tuple[str, ...]
    if "," in params[0]:
        # Each target once (Solanum, InspIRCd): "bob,BOB,bob" delivers one message.
        targets = list({t.translate(RFC1459) if t else f"\0{i}": t
                        for i, t in enumerate(params[0].split(","))}.values())
        maxtargets = server.config.server.maxtargets
        if len(targets) > maxtargets:
            if errors:
                for extra in targets[maxtargets:]:
                    reply.numeric(N.ERR_TOOMANYTARGETS, extra, "Too many recipients")
            targets = targets[:maxtargets]
    else:
        targets = (params[0],)
    world = server.world
    now = server.clock()
    apply = ctx.apply   # the log entry it comes from (a cluster), or None: it runs at once
    msgids = server.ids.msgid if apply is None else apply.new_msgid
    here = apply is None or apply.here   # the node that took the line counts it
    echo = "echo-message" in session.caps
    for target in targets:
        if not target:   # an empty item of the list ("bob,,carol", "bob,"): no recipient
            if errors:
                reply.numeric(N.ERR_NORECIPIENT, f"No recipient given ({verb})")
            continue
        status = ""
        name = target
        if name[0] in "@+":
            while name[:1] in ("@", "+") and len(name) > 1:
                status += name[0]
                name = name[1:]
        if name[:1] == "#":
            chan = world.channels.get(name.translate(RFC1459))
            if chan is None:
                if errors:
                    reply.numeric(N.ERR_NOSUCHCHANNEL, name, "No such channel")
                continue
            members = chan.members
            my_modes = members.get(client)
            if my_modes is None:
                if "n" in chan.modes:
                    if errors:
                        reply.numeric(N.ERR_CANNOTSENDTOCHAN, chan.name, "Cannot send to channel")
                    continue
                my_modes = ""
            if not my_modes and ("m" in chan.modes or (chan.bans and (
                    is_banned(chan, client) or is_muted(chan, client)))):
                if errors:
                    reply.numeric(N.ERR_CANNOTSENDTOCHAN, chan.name, "Cannot send to channel")
                continue
            line = (f":{client.source} {verb} {status}{chan.name} :{text}" if text is not None
                    else f":{client.source} TAGMSG {status}{chan.name}")
            event = Event(line, now, msgids, client.account, client_tags)
            recipients: Iterable[Client]
            if status:
                need = "o" if "@" in status else "ov"
                recipients = [m for m, modes in members.items() if any(x in modes for x in need)]
            else:
                recipients = members
            if tagmsg:
                event.send_with_cap(recipients, "message-tags", exclude=client)
            elif status:
                event.send_to(recipients, exclude=client)
            else:
                # (the sender's own session, if it is one of the channel's targets)
                event.send_to_sessions(chan.local_sessions(),
                                       session if session.user is client else client.session)
            server.stats.messages_relayed += here
            if echo:
                reply.raw(event.str_for(session.tagmask))
            if text is not None and not status and server.history is not None:
                server.history.record_channel(chan, client, verb, text, event)
        else:
            # A status prefix (STATUSMSG) only means something before a channel.
            user = None if status else world.users.get(name.translate(RFC1459))
            if user is None:
                if errors:
                    reply.numeric(N.ERR_NOSUCHNICK, target, "No such nick/channel")
                continue
            line = (f":{client.source} {verb} {user.nick} :{text}" if text is not None
                    else f":{client.source} TAGMSG {user.nick}")
            event = Event(line, now, msgids, client.account, client_tags)
            # To yourself with echo-message: the delivery and then the echo, two lines
            # (Ergo, InspIRCd); only the echo, part of the reply, carries a label.
            for s in user.sessions:
                mask = s.tagmask
                if not tagmsg or mask & TAG_MESSAGE_TAGS:
                    s.write(event.bytes_for(mask) if mask else event.plain)
            server.stats.messages_relayed += here
            if echo:
                reply.raw(event.str_for(session.tagmask))
            if text is not None and server.history is not None:
                server.history.record_direct(client, user, verb, text, event)
            if user.away is not None and verb == "PRIVMSG":
                reply.numeric(N.RPL_AWAY, user.nick, user.away)


def relay_direct_fast(server, session, raw: bytes) -> bool:
    """Relay a plain direct message straight from its bytes; False: use the general path.

    ``raw`` is a line ``session`` received (bytes, no CR LF). Handles exactly
    ``PRIVMSG <nick> :<text>`` from a registered client without echo-message,
    with valid UTF-8 and no CR or NUL, to an online user who has no tag
    capabilities on its one session and is not away, when the message is not recorded in the
    history (not both users logged in): the case that costs one parse and
    dispatch per delivery, so it is worth a path of its own. It writes the
    same bytes as :func:`_relay` would (``tests/test_fast_path.py`` checks
    this) and returns True; for anything else it does nothing and returns
    False.
    """
    client = session.user
    if not client.registered or len(raw) > MAX_LINE_BODY or 13 in raw or 0 in raw:  # CR, NUL
        return False
    sep = raw.find(b" :", 8)
    if sep < 0 or sep == len(raw) - 2:
        return False
    target = raw[8:sep]
    if not target or target[0] in _NOT_A_NICK or 44 in target or 32 in target:  # comma, space
        return False
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return False
    folded = _FOLDED.get(target)
    if folded is None:
        if len(_FOLDED) > 4096:
            _FOLDED.clear()
        folded = _FOLDED[target] = target.decode().translate(RFC1459)
    user = server.world.users.get(folded)
    if user is None:
        return False
    to = user.session  # (None: no session here, or several: the general path)
    if to is None or to.tagmask or user.away is not None or "echo-message" in session.caps:
        return False
    if client.account and user.account and server.history is not None:
        return False
    client.last_active = session.last_seen
    server.stats.messages_relayed += 1  # a local user's line: cluster mode never comes here
    to.write(b"".join((b":", client.source.encode(), b" PRIVMSG ", user.nick.encode(),
                       raw[sep:], b"\r\n")))
    return True


_NOT_A_NICK = frozenset(b"#@+:")
_FOLDED: dict[bytes, str] = {}  # raw target -> casefolded nick (a small, bounded cache)


def handle_privmsg(ctx: Context, msg: Message) -> None:
    """``PRIVMSG <target>{,<target>} :<text>`` (401, 403, 404, 407, 411, 412, 301)."""
    _relay(ctx, msg, "PRIVMSG")


def handle_notice(ctx: Context, msg: Message) -> None:
    """``NOTICE <target>{,<target>} :<text>``: like PRIVMSG, but never answered with an error."""
    _relay(ctx, msg, "NOTICE")


def handle_tagmsg(ctx: Context, msg: Message) -> None:
    """``@+tag TAGMSG <target>``: tags only, to recipients with message-tags (IRCv3 message-tags)."""
    _relay(ctx, msg, "TAGMSG")
