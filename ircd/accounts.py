"""Accounts: names with argon2id password hashes, over a storage backend.

:class:`AccountStore` hashes and verifies; :class:`AccountRows` is the
interface of the rows it keeps, implemented in :mod:`ircd.storage`
(SQLite: :class:`ircd.storage.sqlite.SQLiteAccountRows`, durable on return,
``synchronous=FULL``; PostgreSQL:
:class:`ircd.storage.postgres.PostgresAccountRows`), which
:func:`ircd.storage.stores.open_stores` chooses at start. Nothing here opens
a database or imports a driver.

Every method here blocks (hashing takes tens of milliseconds by design, and
the backend touches the disk or the network), so the server calls them off
the event loop through its executor.

Hashing is passlib's argon2 (the ``libpass`` distribution) with type ``ID``
and the parameters from ``[accounts]`` in config.toml; passwords are never
stored or logged in clear.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Callable
from typing import Protocol

from passlib.hash import argon2

from ircd.protocol.casemap import casefold


class LoginResult(enum.Enum):
    """Outcome of :meth:`AccountStore.login_or_register`."""

    LOGGED_IN = "logged-in"      # existing account, right password
    CREATED = "created"          # new account registered with this password
    BAD_PASSWORD = "bad-password"
    NO_ACCOUNT = "no-account"    # no such account, and creating one was not allowed


class AccountRows(Protocol):
    """The SQL side of :class:`AccountStore`: rows in, rows out, no hashing.

    Every method blocks (disk or network) and may raise the backend's
    exception (the caller logs it and answers with an error numeric).
    ``name_cf`` is always the casefolded (rfc1459) account name; times are
    unix seconds. Backends: :class:`ircd.storage.sqlite.SQLiteAccountRows`,
    :class:`ircd.storage.postgres.PostgresAccountRows`. ``shared`` is True
    when other server processes may change the rows (PostgreSQL).
    """

    shared: bool

    def names(self) -> dict[str, str]:
        """Every account: casefolded name -> the name as registered."""

    def hash_of(self, name_cf: str) -> str | None:
        """The stored passlib hash string of ``name_cf``, or None if there is no such account."""

    def insert(self, name_cf: str, name: str, password_hash: str, created_at: float) -> bool:
        """Add an account; False (nothing changed) if ``name_cf`` exists. Atomic."""

    def set_hash(self, name_cf: str, password_hash: str) -> None:
        """Replace the hash of ``name_cf`` (a password change or a rehash); durable on return."""

    def info(self, name_cf: str) -> tuple[str, float, float | None] | None:
        """``(name as registered, created_at, last seen or None)``, or None if no such account."""

    def touch(self, name_cf: str, when: float) -> None:
        """Record that a user of ``name_cf`` was last seen at ``when`` (NickServ INFO)."""

    def delete(self, name_cf: str) -> None:
        """Remove the account and its last-seen time, in one transaction."""

    def close(self) -> None:
        """Release the connection or pool (once, at shutdown)."""


class AccountStore:
    """Accounts: argon2id hashing over an :class:`AccountRows` backend.

    ``rows`` is the backend (:mod:`ircd.storage`: SQLite
    :class:`~ircd.storage.sqlite.SQLiteAccountRows`, PostgreSQL
    :class:`~ircd.storage.postgres.PostgresAccountRows`); the store owns it
    and closes it in :meth:`close`. ``time_cost``/``memory_cost``
    (KiB)/``parallelism`` are argon2id parameters. A path instead of a
    backend raises :class:`TypeError`. ``clock`` gives unix seconds (an
    account's creation time). Safe to call from several threads: the backend serialises or
    pools database access, hashing runs outside it so that several hashes
    proceed in parallel (argon2-cffi releases the GIL). Every method blocks.
    """

    def __init__(self, rows: AccountRows, time_cost: int = 2, memory_cost: int = 19_456,
                 parallelism: int = 1, clock: Callable[[], float] = time.time) -> None:
        if isinstance(rows, (str, os.PathLike)):
            raise TypeError("AccountStore takes a backend, not a path: "
                            "AccountStore(ircd.storage.sqlite.SQLiteAccountRows(path), ...)")
        self.rows: AccountRows = rows
        self.clock = clock  # unix seconds: an account's creation time
        self._hasher = argon2.using(type="ID", time_cost=time_cost, memory_cost=memory_cost,
                                    parallelism=parallelism)

    @property
    def shared(self) -> bool:
        """True if other server processes share these accounts (PostgreSQL)."""
        return self.rows.shared

    def close(self) -> None:
        """Close the backend (SQLite: checkpoint the WAL first)."""
        self.rows.close()

    def names(self) -> dict[str, str]:
        """Every account: casefolded name -> the name as registered (no hashes).

        Kept in memory by the server for synchronous existence checks and to
        show each account with its registered spelling.
        """
        return self.rows.names()

    def exists(self, name: str) -> bool:
        return self.rows.hash_of(casefold(name)) is not None

    def verify(self, name: str, password: str) -> bool:
        """True if ``name`` is an account and ``password`` (str) is its password.

        A hash made with older parameters is upgraded on a successful login.
        """
        name_cf = casefold(name)
        stored = self.rows.hash_of(name_cf)
        if stored is None:
            return False
        try:
            ok = self._hasher.verify(password, stored)
        except ValueError:  # a malformed stored hash: refuse, never crash
            return False
        if ok and self._hasher.needs_update(stored):
            self.rows.set_hash(name_cf, self._hasher.hash(password))
        return ok

    def create(self, name: str, password: str) -> bool:
        """Register ``name`` with ``password``; False if the name is taken.

        The INSERT is atomic: of two racing creations of one name (threads,
        or processes sharing one PostgreSQL) exactly one returns True. On
        True the row is durable.
        """
        hashed = self._hasher.hash(password)
        return self.rows.insert(casefold(name), name, hashed, self.clock())

    def login_or_register(self, name: str, password: str, create: bool = True) -> LoginResult:
        """Log in to ``name``, creating the account first if it does not exist.

        This is the assignment's login: the first login registers the name.
        With ``create`` False (the address used up its registrations,
        :class:`ircd.limits.RegistrationThrottle`) a missing account is
        :attr:`LoginResult.NO_ACCOUNT` and nothing is created.
        """
        if self.rows.hash_of(casefold(name)) is None:
            if not create:
                return LoginResult.NO_ACCOUNT
            if self.create(name, password):
                return LoginResult.CREATED
        return LoginResult.LOGGED_IN if self.verify(name, password) else LoginResult.BAD_PASSWORD

    # -- NickServ (ircd/services/nickserv.py) -----------------------------

    def info(self, name: str) -> tuple[str, float, float | None] | None:
        """``(name as registered, created_at, last_seen or None)`` in unix seconds; None if unknown."""
        return self.rows.info(casefold(name))

    def touch(self, name: str, when: float) -> None:
        """Record that a user of account ``name`` was last seen at ``when`` (unix seconds)."""
        self.rows.touch(casefold(name), when)

    def change_password(self, name: str, old: str, new: str) -> bool:
        """Replace ``name``'s password with ``new`` if ``old`` is right; False otherwise."""
        if not self.verify(name, old):
            return False
        self.rows.set_hash(casefold(name), self._hasher.hash(new))
        return True

    def drop(self, name: str, password: str) -> bool:
        """Delete account ``name`` if ``password`` is right; False otherwise."""
        if not self.verify(name, password):
            return False
        self.rows.delete(casefold(name))
        return True
