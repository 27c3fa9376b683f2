"""NickServ: accounts by message, in the manner of Ergo's NickServ.

``/msg NickServ <command>`` or ``NS <command>``:

- ``REGISTER <password>``: a guest registers its current nick as an account
  and is logged in to it (900, account-notify); at most ``[accounts]
  registrations_per_ip`` new accounts per address per ``registrations_window``
  seconds (a NOTICE says how long to wait);
- ``IDENTIFY <password>`` or ``IDENTIFY <account> <password>``: log in after
  connecting; the login throttle of PASS and SASL applies (a locked-out
  address is told how long to wait);
- ``PASSWORD <old> <new>``: change the password of the account you are logged in to;
- ``INFO [nick]``: when the account was registered and last seen;
- ``DROP <password>``: delete the account you are logged in to; you are logged out (901);
  its direct-message history (both sides), last-seen time, channel access
  entries and founder status are deleted too, so that a later account of
  the same name inherits nothing;
- ``HELP``.

Passwords are checked and hashed off the event loop (:mod:`ircd.ops.login`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ircd.ops.login import (
    acceptable_password,
    answer_later,
    check_password,
    create_account,
    log_in,
    log_out,
    registration_throttled_text,
    run_account_change,
)
from ircd.protocol.casemap import casefold
from ircd.reply import Reply
from ircd.services.base import Service
from ircd.state import Client

log = logging.getLogger("ircd.nickserv")


def _logged(_result: Any, error: BaseException | None) -> None:
    if error is not None:
        log.error("deleting the direct messages of a dropped account failed: %r", error)


def when(t: float) -> str:
    """Unix seconds as ``2026-01-01 12:00:00 UTC``."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


class NickServ(Service):
    """The NickServ pseudo-user (see the module docstring)."""

    nick = "NickServ"
    realname = "Account services"
    commands = {"REGISTER": "register", "IDENTIFY": "identify", "LOGIN": "identify",
                "PASSWORD": "password", "INFO": "info", "DROP": "drop", "HELP": "help"}
    help_lines = (
        "NickServ manages accounts. Commands (/msg NickServ <command>, or /ns <command>):",
        "REGISTER <password>: register your current nick as an account and log in to it",
        "IDENTIFY [<account>] <password>: log in to an account (your nick's by default)",
        "PASSWORD <old> <new>: change your account's password",
        "INFO [<nick>]: when an account was registered and last seen",
        "DROP <password>: delete your account (you are logged out)",
        "HELP: this list",
    )

    def register(self, client: Client, args: list[str], reply: Reply) -> None:
        """REGISTER <password>."""
        core = self.core
        if len(args) != 1:
            self.notice(reply, "Syntax: REGISTER <password>")
            return
        if client.account is not None:
            self.notice(reply, f"You are already logged in as {client.account}.")
            return
        nick = client.nick
        if client.nick_cf in core.account_names:
            self.notice(reply, f"{nick} is already registered. Log in with IDENTIFY <password>.")
            return
        if not acceptable_password(args[0]):
            self.notice(reply, "That password is not acceptable: 1 to 300 bytes, no spaces.")
            return

        def finish(outcome: str, out: Reply) -> None:
            if outcome == "created" and casefold(nick) == client.nick_cf:
                log_in(core, client, nick, out)
                self.notice(out, f"Account {nick} registered; you are now logged in.")
            elif outcome == "created":
                self.notice(out, f"Account {nick} registered; log in with IDENTIFY {nick} <password>.")
            elif outcome == "throttled":
                wait = core.registration_throttle.wait(client.ip, core.clock())
                self.notice(out, registration_throttled_text(wait) + ".")
            elif outcome == "exists":
                self.notice(out, f"{nick} is already registered.")
            else:
                self.notice(out, "The account database is unavailable; try again later.")

        create_account(core, client, nick, args[0], reply, finish)

    def identify(self, client: Client, args: list[str], reply: Reply) -> None:
        """IDENTIFY [<account>] <password>."""
        core = self.core
        if len(args) not in (1, 2):
            self.notice(reply, "Syntax: IDENTIFY [<account>] <password>")
            return
        if client.account is not None:
            self.notice(reply, f"You are already logged in as {client.account}.")
            return
        account = args[0] if len(args) == 2 else client.nick
        password = args[-1]
        def finish(ok: bool, out: Reply) -> None:
            if ok and client.account is None:
                log_in(core, client, account, out)
                self.notice(out, f"You are now logged in as {client.account}.")
            elif ok:
                self.notice(out, f"You are already logged in as {client.account}.")
            else:
                self.notice(out, "Invalid account credentials.")

        wait = check_password(core, client, account, password, reply, finish)
        if wait > 0:
            self.notice(reply, f"Too many failed login attempts; try again in {int(wait) + 1} seconds.")

    def password(self, client: Client, args: list[str], reply: Reply) -> None:
        """PASSWORD <old> <new>."""
        if len(args) != 2:
            self.notice(reply, "Syntax: PASSWORD <old password> <new password>")
            return
        account = client.account
        if account is None:
            self.notice(reply, "You are not logged in.")
            return
        if not acceptable_password(args[1]):
            self.notice(reply, "That password is not acceptable: 1 to 300 bytes, no spaces.")
            return
        self._with_password(client, account, reply,
                            lambda: self.core.accounts.change_password(account, args[0], args[1]),
                            lambda out: self.notice(out, f"Password of {account} changed."))

    def drop(self, client: Client, args: list[str], reply: Reply) -> None:
        """DROP <password>."""
        if len(args) != 1:
            self.notice(reply, "Syntax: DROP <password>")
            return
        account = client.account
        if account is None:
            self.notice(reply, "You are not logged in.")
            return
        core = self.core

        history = core.history
        now = core.clock()

        def drop_account() -> bool:
            """Off the loop: delete the account, then its stored direct messages."""
            if not core.accounts.drop(account, args[0]):
                return False
            if history is not None:
                history.disk.delete_direct(casefold(account), now)
            return True

        def dropped(out: Reply) -> None:
            core.account_names.pop(casefold(account), None)
            core.account_name_changed(account, False)
            core.chanreg.forget_founder(account)
            if history is not None:
                # A later account of this name must not read these conversations: forget
                # them in memory, and once more on disk (messages of the last moments).
                now = core.clock()
                history.forget_account(account, now)
                core.scheduler.run_blocking(
                    lambda: history.disk.delete_direct(casefold(account), now), _logged)
            for user in list(core.world.users.values()):
                if user.account is not None and casefold(user.account) == casefold(account):
                    if user is client:
                        log_out(core, user, out)
                    else:
                        other = Reply(core.name, user)
                        log_out(core, user, other)
                        user.write(other.to_bytes())
            self.notice(out, f"Account {account} dropped.")

        self._with_password(client, account, reply, drop_account, dropped)

    def _with_password(self, client: Client, account: str, reply: Reply, fn, done) -> None:
        """Run ``fn`` (a store call that checks ``password`` itself) under the login throttle."""
        core = self.core
        throttle = core.login_throttle
        account_cf = casefold(account)
        wait = throttle.begin(client.ip, account_cf, core.clock())
        if wait > 0:
            self.notice(reply, f"Too many failed attempts; try again in {int(wait) + 1} seconds.")
            return

        def finish(ok: Any, error: BaseException | None, out: Reply) -> None:
            if error is not None:
                throttle.abandon(client.ip, account_cf)
                self.notice(out, "The account database is unavailable; try again later.")
            elif not ok:
                delay = throttle.failure(client.ip, account_cf, core.clock(), begun=True)
                answer_later(core, client, delay,
                             lambda later: self.notice(later, "Invalid password."))
            else:
                throttle.success(client.ip, account_cf, begun=True)
                done(out)

        run_account_change(core, client, fn, finish)

    def info(self, client: Client, args: list[str], reply: Reply) -> None:
        """INFO [<nick>]: an online user's account, or the account of that name."""
        core = self.core
        name = args[0] if args else client.nick
        user = core.world.find_user(name)
        account = user.account if user is not None and user.account else name
        if casefold(account) not in core.account_names:
            self.notice(reply, f"{name} is not a registered account.")
            return
        online = any(u.account is not None and casefold(u.account) == casefold(account)
                     for u in core.world.users.values())

        def finish(result: Any, error: BaseException | None, out: Reply) -> None:
            if error is not None or result is None:
                self.notice(out, f"{name} is not a registered account."
                            if error is None else "The account database is unavailable.")
                return
            registered_name, created, seen = result
            self.notice(out, f"Account: {registered_name}")
            self.notice(out, f"Registered: {when(created)}")
            if online:
                self.notice(out, "Last seen: online now")
            else:
                self.notice(out, f"Last seen: {when(seen)}" if seen is not None else "Last seen: never")

        run_account_change(core, client, lambda: core.accounts.info(account), finish)
