"""AUTHENTICATE: SASL PLAIN login (IRCv3 "SASL Authentication" 3.1/3.2).

``AUTHENTICATE PLAIN`` is answered with ``AUTHENTICATE +``; the client then
sends ``base64(authzid NUL authcid NUL password)`` in chunks of 400 bytes (a
chunk of exactly 400 bytes means more follow; ``+`` alone is an empty chunk).
The password is checked against the same account store as ``PASS`` login,
off the event loop, and counts toward the same login throttling (a wrong
password's 904 comes after the same delay as PASS's 464). As with ``PASS``,
the first login registers the name: PLAIN for a valid nick that is not an
account creates the account with that password (a ``NOTICE``, then 900 and
903; within ``[accounts] registrations_per_ip``, else 904 saying how long
to wait).

Replies: 900 RPL_LOGGEDIN and 903 RPL_SASLSUCCESS; 904 ERR_SASLFAIL (wrong
password, unknown account, malformed payload; after ``400 <nick> AUTHENTICATE
:Account database unavailable, try again later`` when the check failed); 905 ERR_SASLTOOLONG (a chunk
over 400 bytes, or more than 8 KiB in all); 906 ERR_SASLABORTED
(``AUTHENTICATE *``); 907 ERR_SASLALREADY (already logged in); 908
RPL_SASLMECHS with 904 for an unknown mechanism. Logging in after
registration is allowed and is announced to channel peers with
``account-notify`` (``ACCOUNT <name>``).
"""

from __future__ import annotations

import base64
import binascii
import logging

from ircd.commands.registry import Context
from ircd.ops.login import log_in, login_or_create, registration_throttled_text
from ircd.protocol import numerics as N
from ircd.protocol.casemap import casefold
from ircd.protocol.message import Message
from ircd.reply import Reply

log = logging.getLogger("ircd.sasl")

MECHANISMS = ("PLAIN",)
CHUNK = 400
MAX_PAYLOAD = 8192


class SaslExchange:
    """One SASL exchange in progress: the mechanism and the base64 chunks so far."""

    __slots__ = ("mechanism", "buffer")

    def __init__(self, mechanism: str) -> None:
        self.mechanism = mechanism
        self.buffer = ""


def _fail(ctx: Context, code: str = N.ERR_SASLFAIL, text: str = "SASL authentication failed") -> None:
    ctx.session.sasl = None
    ctx.reply.numeric(code, text)


def handle_authenticate(ctx: Context, msg: Message) -> None:
    """One step of a SASL exchange (see the module docstring)."""
    client, reply, session = ctx.client, ctx.reply, ctx.session
    arg = msg.params[0]
    if arg == "*":
        if isinstance(session.sasl, SaslExchange):
            _fail(ctx, N.ERR_SASLABORTED, "SASL authentication aborted")
        else:
            _fail(ctx)
        return
    if client.account:
        reply.numeric(N.ERR_SASLALREADY, "You have already authenticated using SASL")
        return
    exchange = session.sasl if isinstance(session.sasl, SaslExchange) else None
    if exchange is None:
        mechanism = arg.upper()
        if mechanism not in MECHANISMS:
            reply.numeric(N.RPL_SASLMECHS, ",".join(MECHANISMS), "are available SASL mechanisms")
            _fail(ctx)
            return
        session.sasl = SaslExchange(mechanism)
        reply.send("AUTHENTICATE", "+")
        return
    if len(arg) > CHUNK:
        _fail(ctx, N.ERR_SASLTOOLONG, "SASL message too long")
        return
    if arg != "+":
        exchange.buffer += arg
    if len(exchange.buffer) > MAX_PAYLOAD:
        _fail(ctx, N.ERR_SASLTOOLONG, "SASL message too long")
        return
    if len(arg) == CHUNK:
        return  # more chunks follow
    _plain(ctx, exchange.buffer)


def _plain(ctx: Context, payload: str) -> None:
    server, client, session = ctx.server, ctx.client, ctx.session
    try:
        fields = base64.b64decode(payload, validate=True).decode("utf-8").split("\0")
    except (binascii.Error, UnicodeDecodeError, ValueError):   # ValueError: non-ASCII text
        _fail(ctx)
        return
    if len(fields) != 3 or not fields[1] or not fields[2]:
        _fail(ctx)
        return
    authzid, authcid, password = fields
    if authzid and casefold(authzid) != casefold(authcid):
        _fail(ctx)  # acting as another account is not supported
        return
    session.sasl = None

    def finish(outcome: str, reply: Reply) -> None:
        if outcome == "throttled":
            wait = server.registration_throttle.wait(client.ip, server.clock())
            reply.numeric(N.ERR_SASLFAIL, registration_throttled_text(wait))
            return
        if outcome == "error":
            reply.numeric(N.ERR_UNKNOWNERROR, "AUTHENTICATE",
                          "Account database unavailable, try again later")
            reply.numeric(N.ERR_SASLFAIL, "SASL authentication failed")
            return
        if outcome not in ("logged-in", "created"):
            log.info("SASL failure for %s from %s", authcid, client.ip)
            reply.numeric(N.ERR_SASLFAIL, "SASL authentication failed")
            return
        if client.account is not None:  # (a login finished meanwhile)
            reply.numeric(N.ERR_SASLALREADY, "You have already authenticated using SASL")
            return
        if outcome == "created":
            reply.send("NOTICE", client.nick, f"Registered new account {authcid}", trailing=True)
        log_in(server, client, authcid, reply)
        reply.session.sasl = "done"
        reply.numeric(N.RPL_SASLSUCCESS, "SASL authentication successful")

    wait = login_or_create(server, client, authcid, password, ctx.reply, finish)
    if wait > 0:
        _fail(ctx, N.ERR_SASLFAIL,
              f"Too many failed login attempts; try again in {int(wait) + 1} seconds")
