"""Logging in to and out of an account on an open connection: the steps SASL,
NickServ and ``REGISTER`` share.

- :func:`check_password`: the login throttle (:class:`ircd.limits.LoginThrottle`,
  the same one PASS uses), then the argon2 check off the event loop.
- :func:`create_account`: a new account, hashed off the event loop, within
  the registration throttle (:class:`ircd.limits.RegistrationThrottle`).
- :func:`login_or_create`: SASL's login, which registers an unknown name as
  PASS does (the first login registers), within both throttles.
- :func:`log_in` / :func:`log_out`: set or clear ``client.account``, send
  900 RPL_LOGGEDIN / 901 RPL_LOGGEDOUT and, once the client is registered,
  ``ACCOUNT <name>`` / ``ACCOUNT *`` to peers with ``account-notify``
  (IRCv3 account-notify; SASL 3.1 for the numerics).

The callbacks run on the event loop with a fresh :class:`~ircd.reply.Reply`
for the client; what they add is sent (labeled if the command was) when they
return.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ircd.accounts import LoginResult
from ircd.events import Event
from ircd.ops import presence
from ircd.protocol import numerics as N
from ircd.protocol.casemap import casefold, is_valid_nick
from ircd.reply import Reply, take_label
from ircd.state import NO_SESSION, Session

log = logging.getLogger("ircd.login")

MAX_PASSWORD = 300
"""Longest password in bytes for REGISTER and NickServ (account-registration's advice)."""

Finish = Callable[[bool, Reply], None]


def acceptable_password(password: str) -> bool:
    """True if ``password`` (str) is 1..300 UTF-8 bytes without spaces or control characters."""
    data = password.encode("utf-8")
    return 0 < len(data) <= MAX_PASSWORD and not any(c.isspace() or ord(c) < 32 for c in password)


def registration_throttled_text(wait: float) -> str:
    """The refusal of an account creation over ``[accounts] registrations_per_ip``
    (``wait`` seconds until the address may create one again)."""
    return (f"Too many accounts registered from your address; try again in "
            f"{int(wait) + 1} seconds")


def answer_later(server, client, delay: float, finish: Callable[[Reply], None],
                 session: Session | None = None) -> None:
    """Answer ``client``'s ``session`` (default: its first) after ``delay`` seconds
    (a wrong password's throttle delay), its later lines waiting; ``finish`` fills
    a fresh reply then."""
    session = _session(client, session)
    session.pending = True

    def answer() -> None:
        session.pending = False
        if client.quitting:
            return
        reply = Reply(server.name, client, session)
        finish(reply)
        take_label(session, reply, server.ids)
        if reply.lines:
            session.write(reply.to_bytes())
        session.resume()

    server.scheduler.call_later(delay, answer)


class ClientGone(Exception):
    """A job for a client that disconnected (e.g. its registration timed out) before a
    worker thread took the job: it was skipped."""


def unless_gone(client, fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` for a worker thread, skipped (raising :class:`ClientGone`) if ``client``
    has quit by the time a worker takes it, so a backlog of doomed logins drains at once."""

    def job() -> Any:
        if client.quitting:
            raise ClientGone(client.nick)
        return fn()

    return job


def _session(client, session: Session | None) -> Session:
    """``session``, else ``client``'s first session, else a :class:`NoSession`."""
    if session is None:
        session = client.session
    return session if session is not None else NO_SESSION


def _run(server, client, fn: Callable[[], Any],
         finish: Callable[[Any, BaseException | None, Reply], None],
         session: Session | None = None) -> None:
    """Run ``fn`` off the loop with the input of ``client``'s ``session`` (default:
    its first) paused; then ``finish`` with a fresh reply for that session."""
    session = _session(client, session)
    session.pending = True

    def done(result: Any, error: BaseException | None) -> None:
        session.pending = False
        if not client.quitting:
            reply = Reply(server.name, client, session)
            finish(result, error, reply)
            if reply.lines or not session.pending:  # (else a delayed answer takes the label)
                take_label(session, reply, server.ids)
            if reply.lines:
                session.write(reply.to_bytes())
        if not client.quitting:
            session.resume()

    server.scheduler.run_blocking(unless_gone(client, fn), done)


def check_password(server, client, name: str, password: str, reply: Reply,
                   finish: Finish, unavailable: Callable[[Reply], None] | None = None) -> float:
    """Check ``password`` for account ``name`` on behalf of ``client``.

    Returns the seconds the client's address is still locked out for that
    account (> 0: nothing was checked and ``finish`` is not called).
    Otherwise ``finish(ok, reply)`` is called later with a fresh reply: after
    the password check off the loop, and for a failure (an unknown account or
    a wrong password alike) only after the login throttle's delay (0.5 s per
    recent failure, ``limits.login_delay_max`` at most), the client's later
    lines waiting. Failures and successes are recorded in
    ``server.login_throttle``. If the
    check itself failed (the database did not answer, the work queue was
    full), nothing is recorded and ``unavailable(reply)`` is called instead
    of ``finish`` (when given; otherwise ``finish(False, reply)``).
    """
    throttle = server.login_throttle
    account_cf = casefold(name)
    wait = throttle.begin(client.ip, account_cf, server.clock())
    if wait > 0:
        return wait
    if account_cf not in server.account_names and not server.accounts.shared:
        # (A shared database, PostgreSQL, may hold accounts another server created
        # since this one's cache was filled: ask it.)
        delay = throttle.failure(client.ip, account_cf, server.clock(), begun=True)
        answer_later(server, client, delay, lambda later: finish(False, later),
                     reply.session)
        return 0.0

    def checked(ok: Any, error: BaseException | None, out: Reply) -> None:
        if error is not None:
            throttle.abandon(client.ip, account_cf)
            log.error("password check for %s failed: %r", name, error)
            if unavailable is not None:
                unavailable(out)
            else:
                finish(False, out)
            return
        good = bool(ok)
        if good:
            throttle.success(client.ip, account_cf, begun=True)
            server.account_names.setdefault(account_cf, name)
            finish(True, out)
            return
        delay = throttle.failure(client.ip, account_cf, server.clock(), begun=True)
        log.info("login failure for %s from %s", name, client.ip)
        answer_later(server, client, delay, lambda later: finish(False, later),
                     reply.session)

    _run(server, client, lambda: server.accounts.verify(name, password), checked, reply.session)
    return 0.0


def run_account_change(server, client, fn: Callable[[], Any],
                       finish: Callable[[Any, BaseException | None, Reply], None]) -> None:
    """Run a blocking account-store call ``fn`` for ``client`` (PASSWORD, DROP, INFO...),
    then ``finish(result, error, reply)`` on the loop."""
    _run(server, client, fn, finish)


def create_account(server, client, name: str, password: str, reply: Reply,
                   finish: Callable[[str, Reply], None]) -> None:
    """Register account ``name`` with ``password`` off the loop.

    ``finish(outcome, reply)``: ``"created"`` (the name is then in
    ``server.account_names``), ``"exists"`` (someone registered it first),
    ``"error"`` (the database failed; logged), or, at once with ``reply``,
    ``"throttled"``: the client's address created ``[accounts]
    registrations_per_ip`` accounts within ``registrations_window`` seconds
    (``server.registration_throttle.wait`` says how long it must wait).
    """
    regs = server.registration_throttle
    if regs.reserve(client.ip, server.clock()) > 0:
        log.info("account %s not registered from %s: registration throttle", name, client.ip)
        finish("throttled", reply)
        return

    def created(ok: Any, error: BaseException | None, reply: Reply) -> None:
        if error is not None or not ok:
            regs.refund(client.ip, server.clock())
        if error is not None:
            log.error("creating account %s failed: %r", name, error)
            finish("error", reply)
        elif not ok:
            finish("exists", reply)
        else:
            server.account_names[casefold(name)] = name
            server.account_name_changed(name, True)
            log.info("account %s registered from %s", name, client.ip)
            finish("created", reply)

    _run(server, client, lambda: server.accounts.create(name, password), created,
         reply.session)


def login_or_create(server, client, name: str, password: str, reply: Reply,
                    finish: Callable[[str, Reply], None]) -> float:
    """Log ``client`` in to account ``name``, registering it first if it does not exist.

    SASL PLAIN's login: the first login registers the name, as ``PASS`` does
    (:meth:`ircd.accounts.AccountStore.login_or_register`). Returns the
    seconds the address is still locked out for ``name`` (> 0: nothing was
    done, ``finish`` is not called). Otherwise ``finish(outcome, reply)``,
    later, with a fresh reply: ``"logged-in"``, ``"created"`` (the name is
    then in ``server.account_names``), ``"bad-password"`` (after the login
    throttle's delay), ``"throttled"`` (a new account, over the
    registration throttle; possibly at once with ``reply``), ``"invalid"``
    (at once: ``name`` is not a valid nick, so it cannot be an account) or
    ``"error"`` (the database failed; logged).
    """
    throttle, regs = server.login_throttle, server.registration_throttle
    account_cf = casefold(name)
    known = account_cf in server.account_names
    if not known and not is_valid_nick(name, server.config.server.nicklen):
        finish("invalid", reply)
        return 0.0
    wait = throttle.begin(client.ip, account_cf, server.clock())
    if wait > 0:
        return wait
    reserved = not known and regs.reserve(client.ip, server.clock()) == 0
    if not known and not reserved and not server.accounts.shared:
        throttle.abandon(client.ip, account_cf)
        log.info("account %s not registered from %s: registration throttle", name, client.ip)
        finish("throttled", reply)
        return 0.0

    def checked(result: Any, error: BaseException | None, out: Reply) -> None:
        if reserved and result is not LoginResult.CREATED:
            regs.refund(client.ip, server.clock())
        if error is not None or result is None:
            throttle.abandon(client.ip, account_cf)
            log.error("login of %s failed: %r", name, error)
            finish("error", out)
        elif result is LoginResult.CREATED:
            throttle.success(client.ip, account_cf, begun=True)
            server.account_names[account_cf] = name
            server.account_name_changed(name, True)
            log.info("account %s registered from %s", name, client.ip)
            finish("created", out)
        elif result is LoginResult.LOGGED_IN:
            throttle.success(client.ip, account_cf, begun=True)
            server.account_names.setdefault(account_cf, name)
            finish("logged-in", out)
        elif result is LoginResult.NO_ACCOUNT:
            throttle.abandon(client.ip, account_cf)
            finish("throttled", out)
        else:
            delay = throttle.failure(client.ip, account_cf, server.clock(), begun=True)
            log.info("login failure for %s from %s", name, client.ip)
            answer_later(server, client, delay, lambda later: finish("bad-password", later),
                         reply.session)

    _run(server, client,
         lambda: server.accounts.login_or_register(name, password, create=reserved), checked,
         reply.session)
    return 0.0


def log_in(server, client, account_name: str, reply: Reply) -> None:
    """Log ``client`` in to ``account_name``: 900 RPL_LOGGEDIN, and ACCOUNT to
    account-notify peers when the client is registered."""
    client.account = server.account_names.get(casefold(account_name), account_name)
    source = client.source if client.registered else f"{client.nick}!{client.user or '*'}@{client.host}"
    reply.numeric(N.RPL_LOGGEDIN, source, client.account, f"You are now logged in as {client.account}")
    log.info("login %s as %s from %s", client.nick, client.account, client.ip)
    if client.registered:
        event = Event(f":{client.source} ACCOUNT {client.account}", server.clock())
        event.write_to(presence.interested(server, client, "account-notify"))
        server.user_changed(client)


def log_out(server, client, reply: Reply) -> None:
    """Log ``client`` out: 901 RPL_LOGGEDOUT and ``ACCOUNT *`` to account-notify peers."""
    if client.account is None:
        return
    log.info("logout %s from account %s", client.nick, client.account)
    client.account = None
    reply.session.sasl = None
    reply.numeric(N.RPL_LOGGEDOUT, client.source, "You are now logged out")
    event = Event(f":{client.source} ACCOUNT *", server.clock())
    event.write_to(presence.interested(server, client, "account-notify"))
    server.user_changed(client)
