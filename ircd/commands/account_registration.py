"""REGISTER and VERIFY: IRCv3 ``draft/account-registration``
(https://ircv3.net/specs/extensions/account-registration).

``REGISTER <account> {<email> | *} <password>``, or the older two-parameter
form ``REGISTER {<email> | *} <password>``, registers the current nick as
an account (``<account>`` is ``*`` or the nick: the capability has no
``custom-account-name`` key) and logs the client in to it at once, as if by
SASL: ``900`` RPL_LOGGEDIN, then ``REGISTER SUCCESS <account> :...``. There
is no e-mail verification: an address is accepted and not stored, and
``VERIFY`` never has anything to verify. The capability has no
``before-connect`` key: REGISTER before the welcome gets
``COMPLETE_CONNECTION_REQUIRED`` (connecting with ``PASS`` registers an
account there already).

Standard replies (``FAIL REGISTER <code> ...``): ``COMPLETE_CONNECTION_REQUIRED``,
``ALREADY_AUTHENTICATED``, ``ACCOUNT_NAME_MUST_BE_NICK``, ``ACCOUNT_EXISTS``,
``UNACCEPTABLE_PASSWORD`` (empty, over 300 bytes, spaces or control
characters), ``TEMPORARILY_UNAVAILABLE`` (database error, or the address
registered ``[accounts] registrations_per_ip`` accounts within
``registrations_window`` seconds: the text says how long to wait);
``FAIL VERIFY ALREADY_AUTHENTICATED|COMPLETE_CONNECTION_REQUIRED|INVALID_CODE``.
"""

from __future__ import annotations

from ircd.commands.registry import Context
from ircd.ops.login import (
    acceptable_password,
    create_account,
    log_in,
    registration_throttled_text,
)
from ircd.protocol.casemap import casefold
from ircd.protocol.message import Message
from ircd.reply import Reply


def _fail(reply: Reply, command_name: str, code: str, *params: str) -> None:
    reply.send("FAIL", command_name, code, *params, trailing=True)


def handle_register(ctx: Context, msg: Message) -> None:
    """``REGISTER [<account>] <email|*> <password>`` (see the module docstring)."""
    server, client, reply = ctx.server, ctx.client, ctx.reply
    if len(msg.params) >= 3:
        account, password = msg.params[0], msg.params[2]
    else:
        account, password = "*", msg.params[1]
    shown = client.nick if account == "*" else account
    if not client.registered:
        _fail(reply, "REGISTER", "COMPLETE_CONNECTION_REQUIRED",
              "Complete the connection first; then REGISTER")
        return
    if client.account is not None:
        _fail(reply, "REGISTER", "ALREADY_AUTHENTICATED", client.account,
              f"You are already logged in as {client.account}")
        return
    if account != "*" and casefold(account) != client.nick_cf:
        _fail(reply, "REGISTER", "ACCOUNT_NAME_MUST_BE_NICK", shown,
              f"The account name must be your nick, {client.nick}")
        return
    nick = client.nick
    if client.nick_cf in server.account_names:
        _fail(reply, "REGISTER", "ACCOUNT_EXISTS", nick, f"{nick} is already registered")
        return
    if not acceptable_password(password):
        _fail(reply, "REGISTER", "UNACCEPTABLE_PASSWORD", nick,
              "A password is 1 to 300 bytes without spaces")
        return

    def finish(outcome: str, out: Reply) -> None:
        if outcome == "exists":
            _fail(out, "REGISTER", "ACCOUNT_EXISTS", nick, f"{nick} is already registered")
        elif outcome == "throttled":
            wait = server.registration_throttle.wait(client.ip, server.clock())
            _fail(out, "REGISTER", "TEMPORARILY_UNAVAILABLE", nick,
                  registration_throttled_text(wait))
        elif outcome == "error":
            _fail(out, "REGISTER", "TEMPORARILY_UNAVAILABLE", nick,
                  "The account database is unavailable; try again later")
        elif client.account is None and casefold(nick) == client.nick_cf:
            log_in(server, client, nick, out)
            out.send("REGISTER", "SUCCESS", nick, f"Account {nick} registered", trailing=True)
        else:  # the nick changed (or a login happened) while the account was created
            out.send("REGISTER", "SUCCESS", nick,
                     f"Account {nick} registered; log in to use it", trailing=True)

    create_account(server, client, nick, password, reply, finish)


def handle_verify(ctx: Context, msg: Message) -> None:
    """``VERIFY <account> <code>``: registration never needs verification here."""
    client, reply = ctx.client, ctx.reply
    if not client.registered:
        _fail(reply, "VERIFY", "COMPLETE_CONNECTION_REQUIRED", "Complete the connection first")
    elif client.account is not None:
        _fail(reply, "VERIFY", "ALREADY_AUTHENTICATED", client.account,
              f"You are already logged in as {client.account}")
    else:
        _fail(reply, "VERIFY", "INVALID_CODE", msg.params[0],
              "No registration is waiting for verification")
