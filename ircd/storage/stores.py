"""Choosing the storage backend and opening the four stores at start: :func:`open_stores`.

``[database] url`` empty (the default) opens the SQLite file
:data:`DB_FILE` in ``server.data_dir`` (:mod:`ircd.storage.sqlite`; the
PostgreSQL driver is never imported); a ``postgresql://`` URL opens
:class:`ircd.storage.postgres.Database` (connect, migrate, pool) and the
PostgreSQL backends on it. Either way the domain objects the core uses are
built over the backends here: :class:`ircd.accounts.AccountStore`,
:class:`ircd.history.HistoryStore` (unless ``[history] enabled`` is false),
a :class:`ircd.serverbans.ServerBanStore` and a
:class:`ircd.chanstore.ChannelStore`, bundled in :class:`Stores` with what
they held at start. ``ircd/cli.py`` only calls :func:`open_stores` (in a
thread) and :meth:`Stores.close`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ircd.accounts import AccountStore
from ircd.chanstore import ChannelStore, Record
from ircd.history import HistoryStore
from ircd.serverbans import ServerBan, ServerBanStore
from ircd.storage import redact_text, redact_url, sqlite

if TYPE_CHECKING:
    from ircd.config import Config
    from ircd.storage.postgres import Database

log = logging.getLogger("ircd")  # (the logger start-up has always logged these lines on)

DB_FILE = "chatserver.sqlite3"
"""The SQLite database file in ``server.data_dir``: one file for all four stores."""


class StartupError(Exception):
    """A store cannot be opened at start; ``str(err)`` is the one-line message (exit code 1)."""


@dataclass
class Stores:
    """The four stores the core uses, from one backend, and what they held at start.

    ``bans`` are the stored server bans (expired ones too), ``channel_records``
    the registered channels' records, ``account_names`` casefolded account
    name -> the name as registered. ``database`` is the PostgreSQL pool (None
    for SQLite); :meth:`close` closes every store, then the pool.
    """

    accounts: AccountStore
    history: HistoryStore | None
    ban_store: ServerBanStore
    channel_store: ChannelStore
    bans: list[ServerBan] = field(default_factory=list)
    channel_records: list[Record] = field(default_factory=list)
    account_names: dict[str, str] = field(default_factory=dict)
    database: Database | None = None

    def close(self) -> None:
        """Close every store (SQLite: the accounts' last, checkpointing the WAL), then the
        pool. Blocks; raises what a backend raises on close."""
        for store in (self.channel_store, self.history, self.ban_store, self.accounts):
            if store is not None:
                store.close()
        if self.database is not None:
            self.database.close()


def open_stores(config: Config, data_dir: Path) -> Stores:
    """Open the stores (SQLite in ``data_dir``, or the PostgreSQL of ``[database] url``),
    prune and load the history, read the bans and registered channels.

    Blocks (run it in a thread). Raises :class:`StartupError` with a one-line
    message naming the database (its password redacted).
    """
    if config.database.url:
        return _open_postgres(config)
    return _open_sqlite(config, data_dir)


def _open_postgres(config: Config) -> Stores:
    a, h = config.accounts, config.history
    now = time.time()
    from ircd.storage import postgres  # imported only when used: SQLite start-up stays as fast

    try:
        db = postgres.Database.open(config.database.url, max_size=a.hash_workers + 2,
                                    timeout=config.database.timeout)
    except postgres.DatabaseUnavailable as exc:
        raise StartupError(str(exc)) from None
    try:
        accounts = AccountStore(postgres.PostgresAccountRows(db), a.argon2_time_cost,
                                a.argon2_memory_cost, a.argon2_parallelism)
        history = (HistoryStore(postgres.PostgresHistoryDisk(db), h.max_per_target,
                                h.retention_days, max_targets=h.max_targets)
                   if h.enabled else None)
        stores = Stores(accounts, history, postgres.PostgresServerBanStore(db),
                        postgres.PostgresChannelStore(db), database=db)
        _load(stores, now)
    except Exception as exc:
        db.close()
        why = str(exc).splitlines()[0] if str(exc) else repr(exc)
        raise StartupError(f"cannot read the database {redact_url(config.database.url)}: "
                           f"{redact_text(why, config.database.url)}") from None
    log.info("database: PostgreSQL %s", redact_url(config.database.url))
    return stores


def _open_sqlite(config: Config, data_dir: Path) -> Stores:
    a, h = config.accounts, config.history
    now = time.time()
    path = data_dir / DB_FILE
    try:
        accounts = AccountStore(sqlite.SQLiteAccountRows(path), a.argon2_time_cost,
                                a.argon2_memory_cost, a.argon2_parallelism)
    except Exception as exc:
        raise StartupError(f"cannot open database in {data_dir}: {exc}") from None
    try:
        history = (HistoryStore(sqlite.SQLiteHistoryDisk(path), h.max_per_target,
                                h.retention_days, max_targets=h.max_targets)
                   if h.enabled else None)
    except Exception as exc:
        accounts.close()
        raise StartupError(f"cannot read the history in {data_dir}: {exc}") from None
    try:
        ban_store = sqlite.SqliteServerBanStore(path)
    except Exception as exc:
        accounts.close()
        if history is not None:
            history.close()
        raise StartupError(f"cannot read the server bans in {data_dir}: {exc}") from None
    stores = Stores(accounts, history, ban_store, sqlite.SQLiteChannelStore(path))
    try:
        _load(stores, now)
    except Exception as exc:
        stores.close()
        raise StartupError(f"cannot read the database in {data_dir}: {exc}") from None
    return stores


def _load(stores: Stores, now: float) -> None:
    if stores.history is not None:
        stores.history.prune_disk(now)
        log.info("history: %d messages loaded", stores.history.load(now))
    stores.account_names = stores.accounts.names()
    stores.bans = stores.ban_store.load()
    stores.channel_records = stores.channel_store.load()
