"""NS and CS: the alias commands for NickServ and ChanServ (as Ergo and Atheme offer them).

``NS IDENTIFY pw`` is ``PRIVMSG NickServ :IDENTIFY pw``, with the answers
(NOTICEs from the service) in the command's own reply, so labeled-response
labels them. With ``[services] enabled = false`` both are unknown commands
(421). The services themselves are in :mod:`ircd.services`.
"""

from __future__ import annotations

from ircd.commands.registry import Context
from ircd.protocol import numerics as N
from ircd.protocol.message import Message


def _run(ctx: Context, msg: Message, which: str) -> None:
    services = getattr(ctx.server, "services", None)
    if services is None:
        ctx.reply.numeric(N.ERR_UNKNOWNCOMMAND, msg.command, "Unknown command")
        return
    service = services.nickserv if which == "nickserv" else services.chanserv
    service.run(ctx.client, " ".join(msg.params), ctx.reply)


def handle_ns(ctx: Context, msg: Message) -> None:
    """``NS <command> [<args>]``: a command for NickServ."""
    _run(ctx, msg, "nickserv")


def handle_nickserv(ctx: Context, msg: Message) -> None:
    """``NICKSERV <command> [<args>]``: as NS."""
    _run(ctx, msg, "nickserv")


def handle_cs(ctx: Context, msg: Message) -> None:
    """``CS <command> [<args>]``: a command for ChanServ."""
    _run(ctx, msg, "chanserv")


def handle_chanserv(ctx: Context, msg: Message) -> None:
    """``CHANSERV <command> [<args>]``: as CS."""
    _run(ctx, msg, "chanserv")
