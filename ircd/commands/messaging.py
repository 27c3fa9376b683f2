"""PRIVMSG and NOTICE: the messages people send each other.

RFC 2812 sections 3.3.1 and 3.3.2, "Modern IRC". A message to a channel is
serialised once and written to every other member; a message to a nick goes
to that user, or gets 401 ERR_NOSUCHNICK ("the user is not online"). NOTICE
never gets an error reply (RFC 2812 section 3.3.2). ``@#chan`` and ``+#chan``
(ISUPPORT STATUSMSG) reach only operators, or voiced users and operators.
"""

from __future__ import annotations

from ircd.commands.registry import Context, command
from ircd.protocol import numerics as N
from ircd.protocol.casemap import casefold
from ircd.protocol.message import Message


def _relay(ctx: Context, msg: Message, verb: str) -> None:
    client, reply, server = ctx.client, ctx.reply, ctx.server
    notice = verb == "NOTICE"
    params = msg.params
    if not params or not params[0]:
        if not notice:
            reply.numeric(N.ERR_NORECIPIENT, f"No recipient given ({verb})")
        return
    if len(params) < 2 or not params[1]:
        if not notice:
            reply.numeric(N.ERR_NOTEXTTOSEND, "No text to send")
        return
    text = params[1]
    targets = params[0].split(",")
    maxtargets = server.config.server.maxtargets
    if len(targets) > maxtargets:
        if not notice:
            for extra in targets[maxtargets:]:
                reply.numeric(N.ERR_TOOMANYTARGETS, extra, "Too many recipients")
        targets = targets[:maxtargets]
    world = server.world
    for target in targets:
        status = ""
        name = target
        while name[:1] in ("@", "+") and len(name) > 1:
            status += name[0]
            name = name[1:]
        if name[:1] == "#":
            chan = world.channels.get(casefold(name))
            if chan is None:
                if not notice:
                    reply.numeric(N.ERR_NOSUCHCHANNEL, name, "No such channel")
                continue
            members = chan.members
            my_modes = members.get(client)
            if my_modes is None:
                if "n" in chan.modes:
                    if not notice:
                        reply.numeric(N.ERR_CANNOTSENDTOCHAN, chan.name, "Cannot send to channel")
                    continue
                my_modes = ""
            if not my_modes and ("m" in chan.modes or (chan.bans and _banned(chan, client))):
                if not notice:
                    reply.numeric(N.ERR_CANNOTSENDTOCHAN, chan.name, "Cannot send to channel")
                continue
            data = f":{client.source} {verb} {status}{chan.name} :{text}\r\n".encode()
            if status:
                need = "o" if "@" in status else "ov"
                for member, modes in members.items():
                    if member is not client and any(m in modes for m in need):
                        member.write(data)
            else:
                for member in members:
                    if member is not client:
                        member.write(data)
        else:
            user = world.users.get(casefold(name))
            if user is None:
                if not notice:
                    reply.numeric(N.ERR_NOSUCHNICK, name, "No such nick/channel")
                continue
            user.write(f":{client.source} {verb} {user.nick} :{text}\r\n".encode())
            if user.away is not None and not notice:
                reply.numeric(N.RPL_AWAY, user.nick, user.away)


def _banned(chan, client) -> bool:
    from ircd.commands.channels import is_banned

    return is_banned(chan, client)


@command("PRIVMSG", updates_idle=True)
def handle_privmsg(ctx: Context, msg: Message) -> None:
    """``PRIVMSG <target>{,<target>} :<text>`` (401, 403, 404, 407, 411, 412, 301)."""
    _relay(ctx, msg, "PRIVMSG")


@command("NOTICE", updates_idle=True)
def handle_notice(ctx: Context, msg: Message) -> None:
    """``NOTICE <target>{,<target>} :<text>``: like PRIVMSG, but never answered with an error."""
    _relay(ctx, msg, "NOTICE")
