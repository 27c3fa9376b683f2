"""Connection registration: CAP, PASS, NICK, USER, PING, PONG, QUIT.

RFC 2812 section 3.1 and "Modern IRC" ("Connection Registration"), with
IRCv3 capability negotiation (``CAP``, "Capability Negotiation" 302).
Registration completes when NICK and USER are known and no CAP negotiation is
open; then the account check runs off the event loop (see
:func:`try_register`), and on success the welcome burst is sent
(:func:`ircd.ops.welcome.complete_registration`).

Accounts (the assignment's login): ``PASS <password>`` with ``NICK <name>``
logs in to account ``<name>``, creating it on first use. A registered name
without its password, or with a wrong one, gets 464 ERR_PASSWDMISMATCH and is
disconnected. Creating an account counts in the registration throttle
(``[accounts] registrations_per_ip``): over it, ``400 <nick> PASS :Too many
accounts registered from your address; try again in N seconds`` and the
connection is closed. Without PASS an unregistered name is a guest
(``accounts.allow_guests``). With ``server.password`` set, PASS is the server
password instead (RFC 2812 section 3.1.1), compared in constant time and
throttled like an account password (464 after a growing delay, then a
lockout of the address).
"""

from __future__ import annotations

import hmac
import logging

from ircd.accounts import LoginResult
from ircd.capabilities import tagmask
from ircd.commands.registry import Context, take_label
from ircd.events import Event
from ircd.ops import presence
from ircd.ops.bans import kline_on_nick_change
from ircd.ops.login import registration_throttled_text, unless_gone
from ircd.ops.welcome import complete_registration, refuse_nick
from ircd.protocol import numerics as N
from ircd.protocol.casemap import casefold, is_valid_nick
from ircd.protocol.message import Message, truncate_utf8
from ircd.reply import Reply
from ircd.state import NAMELEN, USERLEN

log = logging.getLogger("ircd.registration")

# -- CAP -------------------------------------------------------------------

def _cap_target(client) -> str:
    return client.nick if client.registered else "*"


def handle_cap(ctx: Context, msg: Message) -> None:
    """IRCv3 capability negotiation: LS, LIST, REQ, END (ircv3.net "capability-negotiation")."""
    client, reply, session = ctx.client, ctx.reply, ctx.session
    sub = msg.params[0].upper()
    target = _cap_target(client)
    if sub == "LS":
        if not client.registered:
            session.cap_negotiating = True
        version = 0
        if len(msg.params) > 1 and msg.params[1].isdigit():
            version = int(msg.params[1])
        session.cap_version = max(session.cap_version, version)
        if session.cap_version >= 302:
            session.caps = session.caps | {"cap-notify"}  # implied by 302 (spec, "cap-notify")
            items = [k if v is None else f"{k}={v}" for k, v in ctx.server.capabilities.items()]
        else:
            items = list(ctx.server.capabilities)
        _send_cap_list(reply, target, "LS", items, multiline=session.cap_version >= 302)
    elif sub == "LIST":
        _send_cap_list(reply, target, "LIST", sorted(session.caps), multiline=session.cap_version >= 302)
    elif sub == "REQ":
        if not client.registered:
            session.cap_negotiating = True
        wanted = msg.params[1].split() if len(msg.params) > 1 else []
        ok = bool(wanted)
        for item in wanted:
            name = item[1:] if item.startswith("-") else item
            if name not in ctx.server.capabilities:
                ok = False
        if ok:
            caps = set(session.caps)
            for item in wanted:
                if item.startswith("-"):
                    caps.discard(item[1:])
                else:
                    caps.add(item)
            session.caps = caps
            session.tagmask = tagmask(caps)
            if client.registered:
                ctx.server.user_changed(client)
        reply.send("CAP", target, "ACK" if ok else "NAK", " ".join(wanted), trailing=True)
    elif sub == "END":
        if session.sasl is not None and session.sasl != "done":
            session.sasl = None  # CAP END during SASL aborts it (IRCv3 SASL 3.1)
            reply.numeric(N.ERR_SASLABORTED, "SASL authentication aborted")
        if not client.registered:
            session.cap_negotiating = False
            try_register(ctx.server, client, reply)
    else:
        reply.numeric("410", sub, "Invalid CAP command")


def _send_cap_list(reply: Reply, target: str, sub: str, items: list[str], multiline: bool) -> None:
    """Send a CAP LS/LIST reply, split over several lines (``* `` marker) when long."""
    chunks: list[list[str]] = [[]]
    size = 0
    for item in items:
        if size + len(item) + 1 > 400 and chunks[-1]:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += len(item) + 1
    if not multiline:
        chunks = [[i for c in chunks for i in c]]
    for i, chunk in enumerate(chunks):
        if i < len(chunks) - 1:
            reply.send("CAP", target, sub, "*", " ".join(chunk), trailing=True)
        else:
            reply.send("CAP", target, sub, " ".join(chunk), trailing=True)


# -- PASS / NICK / USER ----------------------------------------------------

def handle_pass(ctx: Context, msg: Message) -> None:
    """RFC 2812 section 3.1.1; here also the account password (see module docstring)."""
    if ctx.client.registered:
        ctx.reply.numeric(N.ERR_ALREADYREGISTERED, "You may not reregister")
        return
    ctx.session.password = msg.params[0]


def nick_reserved_for_other(ctx: Context, nick_cf: str) -> bool:
    """True if ``nick_cf`` names an account that the client is not logged in to."""
    account = ctx.client.account
    return nick_cf in ctx.server.account_names and (account is None or casefold(account) != nick_cf)


def handle_nick(ctx: Context, msg: Message) -> None:
    """RFC 2812 section 3.1.2: set or change the nickname (431, 432, 433)."""
    client, reply, server = ctx.client, ctx.reply, ctx.server
    if not msg.params or not msg.params[0]:
        reply.numeric(N.ERR_NONICKNAMEGIVEN, "No nickname given")
        return
    nick = msg.params[0]
    if not is_valid_nick(nick, server.config.server.nicklen):
        reply.numeric(N.ERR_ERRONEUSNICKNAME, nick, "Erroneous nickname")
        return
    nick_cf = casefold(nick)
    holder = server.world.users.get(nick_cf)
    if holder is not None and holder is not client:
        reply.numeric(N.ERR_NICKNAMEINUSE, nick, "Nickname is already in use")
        return
    if not client.registered:
        client.set_nick(nick)
        try_register(server, client, reply)
        return
    if nick == client.nick:
        return
    if nick_cf != client.nick_cf and nick_reserved_for_other(ctx, nick_cf):
        reply.numeric(N.ERR_NICKNAMEINUSE, nick, "Nickname is reserved by a registered account")
        return
    if kline_on_nick_change(server, client, nick, ctx.apply):
        return
    event = Event(f":{client.source} NICK :{nick}", server.clock(), account=client.account)
    event.send_to(server.world.peers(client))
    reply.raw(event.str_for(reply.session.tagmask))
    old = client.nick
    server.remember_nick(client)
    server.world.rename_user(client, nick)
    if nick_cf != casefold(old):
        presence.notify_offline(server, old)
        presence.notify_online(server, client)


def _clean_username(raw: str, fallback: str) -> str:
    name = "".join(c for c in raw if c.isascii() and (c.isalnum() or c in "-_.[]{}|^`"))
    return (name or casefold(fallback) or "user")[:USERLEN]


def handle_user(ctx: Context, msg: Message) -> None:
    """RFC 2812 section 3.1.3: ``USER <user> <mode> <unused> :<realname>`` (462 once registered).

    An empty realname gets 461 ERR_NEEDMOREPARAMS, as an empty parameter
    counts as missing ("Modern IRC", USER; Ergo, InspIRCd).
    """
    client = ctx.client
    if client.registered or client.user:
        ctx.reply.numeric(N.ERR_ALREADYREGISTERED, "You may not reregister")
        return
    if not msg.params[3]:
        ctx.reply.numeric(N.ERR_NEEDMOREPARAMS, "USER", "Not enough parameters")
        return
    client.user = _clean_username(msg.params[0], client.nick if client.nick != "*" else "")
    client.realname = truncate_utf8(msg.params[3], NAMELEN)  # bytes, a whole character
    client.update_source()
    try_register(ctx.server, client, ctx.reply)


# -- PING / PONG / QUIT ----------------------------------------------------

def handle_ping(ctx: Context, msg: Message) -> None:
    """RFC 2812 section 3.7.2: answer ``PONG <server> :<token>`` (409 without a token)."""
    if not msg.params or not msg.params[0]:
        ctx.reply.numeric(N.ERR_NOORIGIN, "No origin specified")
        return
    ctx.reply.send("PONG", ctx.server.name, msg.params[0], trailing=True)


def handle_pong(ctx: Context, msg: Message) -> None:
    """RFC 2812 section 3.7.3: any line already counts as activity; nothing more to do."""


def handle_quit(ctx: Context, msg: Message) -> None:
    """RFC 2812 section 3.1.7: leave; others see ``Quit: <reason>``."""
    reason = f"Quit: {msg.params[0]}" if msg.params and msg.params[0] else "Quit"
    client = ctx.client
    ctx.server.quit(client, reason, error=f"Closing Link: {client.host} ({reason})",
                    apply=ctx.apply)


# -- the registration flow -------------------------------------------------

def try_register(server, client, reply: Reply) -> None:
    """Complete registration if NICK and USER are known and CAP negotiation is closed.

    Starts the off-loop account check when one is needed; the rest happens in
    its callback. Answers 464 (and disconnects) for a missing or wrong
    password, 433 (and waits for another NICK) when the nick was taken in the
    meantime.
    """
    session = reply.session
    if client.registered or session.pending or session.cap_negotiating:
        return
    if client.nick == "*" or not client.user:
        return
    cfg = server.config
    if client.nick_cf in server.world.users:
        refuse_nick(client, reply, "Nickname is already in use")
        return
    if cfg.server.password:
        if not _server_password_ok(server, client, reply):
            return
        if client.nick_cf in server.account_names and (
                not client.account or casefold(client.account) != client.nick_cf):
            refuse_nick(client, reply, "Nickname is a registered account: log in with SASL")
            return
        complete_registration(server, client, reply)
        return
    if client.account:  # authenticated with SASL: PASS is not asked for again
        if client.nick_cf in server.account_names and casefold(client.account) != client.nick_cf:
            refuse_nick(client, reply, "Nickname is reserved by a registered account")
            return
        complete_registration(server, client, reply)
        return
    if session.password is None:
        if client.nick_cf in server.account_names:
            _refuse(server, client, reply,
                    f"Password required: {client.nick} is a registered account",
                    "Password required")
        elif cfg.accounts.allow_guests:
            complete_registration(server, client, reply)
        else:
            _refuse(server, client, reply, "Password required: this server has no guests",
                    "Password required")
        return
    wait = server.login_throttle.begin(client.ip, client.nick_cf, server.clock())
    if wait > 0:
        _refuse(server, client, reply,
                f"Too many failed login attempts; try again in {int(wait) + 1} seconds",
                "Login throttled")
        return
    _start_login(server, client, session)   # (the attempt counts as a failure until it succeeds)


SERVER_PASSWORD_KEY = ":server"
"""The login throttle's account key for the server password (no account name has ``:``)."""


def _server_password_ok(server, client, reply: Reply) -> bool:
    """Check ``PASS`` against ``[server] password`` (RFC 2812 section 3.1.1).

    True if it is right. Otherwise the client is refused with 464 and
    disconnected, and False is returned: at once when PASS is missing ("Password
    required") or its address is locked out ("Too many failed login attempts;
    try again in N seconds"), otherwise after the login throttle's delay for a
    wrong one (:class:`ircd.limits.LoginThrottle`, under the key
    :data:`SERVER_PASSWORD_KEY`, like an account's password). The comparison
    is of UTF-8 bytes in constant time (:func:`hmac.compare_digest`).
    """
    throttle = server.login_throttle
    wait = throttle.locked_for(client.ip, SERVER_PASSWORD_KEY, server.clock())
    if wait > 0:
        _refuse(server, client, reply,
                f"Too many failed login attempts; try again in {int(wait) + 1} seconds",
                "Login throttled")
        return False
    session = reply.session
    if session.password is None:
        _refuse(server, client, reply, "Password required", "No server password")
        return False
    given = session.password.encode("utf-8", "surrogateescape")
    if hmac.compare_digest(given, server.config.server.password.encode("utf-8")):
        throttle.success(client.ip, SERVER_PASSWORD_KEY)
        return True
    delay = throttle.failure(client.ip, SERVER_PASSWORD_KEY, server.clock())
    log.info("wrong server password from %s", client.ip)
    session.pending = True  # nothing more from this connection until the answer

    def answer() -> None:
        session.pending = False
        if not client.quitting:
            _refuse(server, client, Reply(server.name, client, session), "Password incorrect",
                    "Bad server password")

    server.scheduler.call_later(delay, answer)
    return False


def _refuse(server, client, reply: Reply, text: str, error: str) -> None:
    reply.numeric(N.ERR_PASSWDMISMATCH, text)
    reply.session.write(reply.to_bytes())
    reply.lines.clear()
    log.info("refused %s from %s: %s", client.nick, client.ip, error)
    server.quit(client, error, error=f"Closing Link: {client.host} ({error})")


def _start_login(server, client, session) -> None:
    """Log in to (or register) the account ``client.nick`` with its session's ``password``, off the loop.

    A name that is not an account yet counts one creation in the
    registration throttle first (:class:`ircd.limits.RegistrationThrottle`);
    over it, nothing is created and the client gets 400 (see
    :func:`_finish_login`).
    """
    nick, password = client.nick, session.password
    regs = server.registration_throttle
    reserved = (client.nick_cf not in server.account_names
                and regs.reserve(client.ip, server.clock()) == 0)
    session.pending = True
    started = server.clock()

    def done(result: LoginResult | None, error: BaseException | None) -> None:
        session.pending = False
        if reserved and result is not LoginResult.CREATED:
            regs.refund(client.ip, server.clock())
        if not client.quitting:
            _finish_login(server, client, session, nick, result, error,
                          server.clock() - started)
        if not client.quitting:
            session.resume()

    server.scheduler.run_blocking(
        unless_gone(client, lambda: server.accounts.login_or_register(nick, password, create=reserved)),
        done)


def _finish_login(server, client, session, nick: str, result: LoginResult | None,
                  error: BaseException | None, seconds: float) -> None:
    reply = Reply(server.name, client, session)
    throttle = server.login_throttle
    if error is not None or result is None or result is LoginResult.NO_ACCOUNT:
        throttle.abandon(client.ip, casefold(nick))   # no password was checked
    if error is not None or result is None:
        log.error("account check for %s failed: %r", nick, error)
        reply.numeric(N.ERR_UNKNOWNERROR, "PASS", "Account database unavailable, try again later")
        session.write(reply.to_bytes())
        server.quit(client, "Account database error", error="Account database error")
        return
    if result is LoginResult.NO_ACCOUNT:
        wait = server.registration_throttle.wait(client.ip, server.clock())
        log.info("account %s not registered from %s: registration throttle", nick, client.ip)
        reply.numeric(N.ERR_UNKNOWNERROR, "PASS", registration_throttled_text(wait))
        session.write(reply.to_bytes())
        server.quit(client, "Registration throttled",
                    error=f"Closing Link: {client.host} (Registration throttled)")
        return
    if result is LoginResult.BAD_PASSWORD:
        delay = throttle.failure(client.ip, casefold(nick), server.clock(), begun=True)
        session.pending = True  # nothing more from this connection until the answer
        log.info("wrong password for %s from %s", nick, client.ip)

        def answer() -> None:
            session.pending = False
            if not client.quitting:
                _refuse(server, client, reply, "Password incorrect", "Bad password")

        server.scheduler.call_later(delay, answer)
        return
    throttle.success(client.ip, casefold(nick), begun=True)
    if casefold(nick) != client.nick_cf:
        # The client changed NICK while the check ran: check the new nick instead.
        try_register(server, client, reply)
        session.write(reply.to_bytes())
        return
    created = result is LoginResult.CREATED
    # The account as registered (a racing client may have created it a moment ago).
    client.account = server.account_names.setdefault(casefold(nick), nick)
    if created:
        server.account_name_changed(nick, True)
        log.info("account %s registered from %s (%.0f ms)", nick, client.ip, seconds * 1000)
    complete_registration(server, client, reply, created=created)
    take_label(session, reply, server.ids)
    session.write(reply.to_bytes())
