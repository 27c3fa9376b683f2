"""Operator privileges: who is an oper, the 481 refusal, the channel override.

Opers are configured in ``[[opers]]`` (:class:`ircd.config.OperBlock`) and
become one with ``OPER`` (:mod:`ircd.commands.oper`). Class ``oper`` may
override channel operator checks for KICK and channel MODE (each override is
logged); class ``admin`` may also REHASH and DIE.
"""

from __future__ import annotations

import logging

from ircd.protocol import numerics as N
from ircd.reply import Context
from ircd.state import Channel, Client

log = logging.getLogger("ircd.oper")


NO_PRIVILEGES = "Permission Denied- You're not an IRC operator"


def is_oper(client: Client) -> bool:
    """True if ``client`` is a server operator (user mode +o)."""
    return client.oper is not None


def require(ctx: Context, admin: bool = False) -> bool:
    """True if ``ctx.client`` is an oper (of class ``admin`` if ``admin``); otherwise
    answer 481 ERR_NOPRIVILEGES (RFC 2812 section 5.2) and return False.

    The dispatcher calls it for every command the table marks ``OPER`` or
    ``ADMIN``; a command open to all with an oper-only part (STATS k/d) calls it
    itself.
    """
    oper = ctx.client.oper
    if oper is None:
        ctx.reply.numeric(N.ERR_NOPRIVILEGES, NO_PRIVILEGES)
        return False
    if admin and oper[1] != "admin":
        ctx.reply.numeric(N.ERR_NOPRIVILEGES, "Permission Denied- You need the admin oper class")
        return False
    return True


def oper_override(client: Client, chan: Channel) -> bool:
    """True if ``client`` is an oper who may act on ``chan`` without being its operator.

    Used by KICK and channel MODE, as ircds' override; the caller logs
    through :func:`log_override` once the action was applied.
    """
    return client.oper is not None and not chan.is_op(client)


def log_override(ctx: Context, chan: Channel, what: str) -> None:
    """Log an oper override (``what``: the command line's gist, e.g. ``KICK bob``)."""
    client = ctx.client
    assert client.oper is not None
    log.warning("oper override: %s (oper %s) on %s: %s", client.source, client.oper[0],
                chan.name, what)


def deoper(client: Client) -> None:
    """Drop operator status (``MODE <nick> -o``)."""
    client.oper = None
    client.set_mode("o", False)
