"""The SQLite backends of every store, in the server's one database file.

One module for the four SQLite backends, as :mod:`ircd.storage.postgres`
holds the four PostgreSQL ones: the SQL of a backend reads in one place, and
each table here sits beside its PostgreSQL twin in
:mod:`ircd.storage.migrations` (the same columns). The interfaces they
implement are defined by the domain modules, which never import a driver:

- :class:`SQLiteAccountRows`: :class:`ircd.accounts.AccountRows` (tables
  ``accounts``, ``account_seen``);
- :class:`SQLiteHistoryDisk`: :class:`ircd.history.HistoryDisk` (``history``);
- :class:`SqliteServerBanStore`: :class:`ircd.serverbans.ServerBanStore`
  (``server_bans``);
- :class:`SQLiteChannelStore`: :class:`ircd.chanstore.ChannelStore`
  (``registered_channels``).

Each store keeps its own connection to the one file (``chatserver.sqlite3``
in ``server.data_dir``, :data:`ircd.storage.stores.DB_FILE`), opened by
:func:`open_sqlite` in autocommit mode (``isolation_level=None``:
transactions are explicit ``BEGIN``/``COMMIT``), usable from the worker
threads (each store serialises access with its own lock). WAL lets readers
and one writer proceed together, and a 5 s busy timeout lets the stores'
writers wait for each other (SQLite, "Write-Ahead Logging", "PRAGMA
busy_timeout"). Accounts, server bans and registered channels are written
with ``synchronous=FULL``: a write that returned is on disk even if the
process is killed right after (SQLite, "PRAGMA synchronous"); history, which
is written in batches a second apart, is not. Every method blocks: the core
calls them off the event loop (``Scheduler.run_blocking``), and start-up in
a thread. Errors are :class:`sqlite3.Error` (or :class:`OSError` for the
folder).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from ircd.chanstore import Changes, Record, decode_records, encode_record
from ircd.history import Row
from ircd.serverbans import ServerBan


def open_sqlite(path: Path, schema: str, *, durable: bool = True) -> sqlite3.Connection:
    """Open (creating it and its folder if needed) the database ``path`` and apply ``schema``.

    ``schema`` is SQL text of ``CREATE ... IF NOT EXISTS`` statements.
    ``durable`` sets ``synchronous=FULL``: a write that returned is on disk
    even if the process is killed right after. Raises :class:`sqlite3.Error`
    (or :class:`OSError` for the folder).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    if durable:
        db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=5000")
    db.executescript(schema)
    return db


# -- accounts -------------------------------------------------------------------

ACCOUNTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    name_cf TEXT PRIMARY KEY,          -- casefolded (rfc1459) account name
    name TEXT NOT NULL,                -- as first registered
    password_hash TEXT NOT NULL,       -- passlib argon2id hash string
    created_at REAL NOT NULL           -- unix seconds
);
CREATE TABLE IF NOT EXISTS account_seen (
    name_cf TEXT PRIMARY KEY,          -- casefolded account name
    last_seen REAL NOT NULL            -- unix seconds: when a user of it last left
);
"""


class SQLiteAccountRows:
    """:class:`ircd.accounts.AccountRows` in the server's SQLite file ``path``
    (WAL, ``synchronous=FULL``; created with its directory).

    Safe to call from several threads: one connection behind a lock.
    """

    shared = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = open_sqlite(self.path, ACCOUNTS_SCHEMA)

    def close(self) -> None:
        """Checkpoint the WAL and close the database."""
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._db.close()

    def names(self) -> dict[str, str]:
        with self._lock:
            return dict(self._db.execute("SELECT name_cf, name FROM accounts"))

    def hash_of(self, name_cf: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT password_hash FROM accounts WHERE name_cf = ?", (name_cf,)
            ).fetchone()
        return row[0] if row else None

    def insert(self, name_cf: str, name: str, password_hash: str, created_at: float) -> bool:
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO accounts (name_cf, name, password_hash, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    (name_cf, name, password_hash, created_at),
                )
            except sqlite3.IntegrityError:
                return False
        return True

    def set_hash(self, name_cf: str, password_hash: str) -> None:
        with self._lock:
            self._db.execute("UPDATE accounts SET password_hash = ? WHERE name_cf = ?",
                             (password_hash, name_cf))

    def info(self, name_cf: str) -> tuple[str, float, float | None] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT a.name, a.created_at, s.last_seen FROM accounts a "
                "LEFT JOIN account_seen s ON s.name_cf = a.name_cf WHERE a.name_cf = ?",
                (name_cf,),
            ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def touch(self, name_cf: str, when: float) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO account_seen (name_cf, last_seen) VALUES (?, ?) "
                "ON CONFLICT(name_cf) DO UPDATE SET last_seen = excluded.last_seen",
                (name_cf, when),
            )

    def delete(self, name_cf: str) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM accounts WHERE name_cf = ?", (name_cf,))
                self._db.execute("DELETE FROM account_seen WHERE name_cf = ?", (name_cf,))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")


# -- history --------------------------------------------------------------------

HISTORY_SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY,
    target TEXT NOT NULL,        -- channel casefold, or dm:<a>:<b>
    t REAL NOT NULL,             -- unix seconds
    msgid TEXT NOT NULL,
    source TEXT NOT NULL,        -- nick!user@host
    account TEXT,                -- the sender's account, if any
    command TEXT NOT NULL,       -- PRIVMSG or NOTICE
    to_name TEXT NOT NULL,       -- the target as addressed (#chan or nick)
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_target_t ON history (target, t);
"""


class SQLiteHistoryDisk:
    """:class:`ircd.history.HistoryDisk` in the server's SQLite file ``path`` (WAL, not
    ``synchronous=FULL``: a batch lost to a crash is the last second of messages),
    thread-safe (a lock)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = open_sqlite(self.path, HISTORY_SCHEMA, durable=False)

    def recent(self, cutoff: float, per_target: int) -> list[Row]:
        with self._lock:
            return self._db.execute(
                "SELECT target, t, msgid, source, account, command, to_name, text FROM ("
                " SELECT *, ROW_NUMBER() OVER (PARTITION BY target ORDER BY t DESC) AS rn"
                " FROM history WHERE t >= ?) WHERE rn <= ? ORDER BY t",
                (cutoff, per_target),
            ).fetchall()

    def recent_of(self, target: str, cutoff: float, per_target: int) -> list[Row]:
        with self._lock:
            rows = self._db.execute(
                "SELECT target, t, msgid, source, account, command, to_name, text FROM history"
                " WHERE target = ? AND t >= ? ORDER BY t DESC LIMIT ?",
                (target, cutoff, per_target)).fetchall()
        rows.reverse()
        return rows

    def recent_direct(self, account_cf: str, cutoff: float, per_target: int) -> list[Row]:
        prefix, suffix = f"dm:{account_cf}:", f":{account_cf}"
        with self._lock:
            return self._db.execute(
                "SELECT target, t, msgid, source, account, command, to_name, text FROM ("
                " SELECT *, ROW_NUMBER() OVER (PARTITION BY target ORDER BY t DESC) AS rn"
                " FROM history WHERE substr(target, 1, 3) = 'dm:' AND t >= ?"
                " AND (substr(target, 1, ?) = ? OR substr(target, -?) = ?))"
                " WHERE rn <= ? ORDER BY t",
                (cutoff, len(prefix), prefix, len(suffix), suffix, per_target)).fetchall()

    def append(self, rows: list[Row]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO history (target, t, msgid, source, account, command, to_name,"
                    " text) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def delete_before(self, t: float) -> None:
        with self._lock:
            self._db.execute("DELETE FROM history WHERE t < ?", (t,))

    def delete_direct(self, account_cf: str, until: float) -> None:
        prefix, suffix = f"dm:{account_cf}:", f":{account_cf}"
        with self._lock:
            self._db.execute(
                "DELETE FROM history WHERE substr(target, 1, 3) = 'dm:' AND t <= ?"
                " AND (substr(target, 1, ?) = ? OR substr(target, -?) = ?)",
                (until, len(prefix), prefix, len(suffix), suffix))

    def delete_target(self, target: str, until: float) -> None:
        with self._lock:
            self._db.execute("DELETE FROM history WHERE target = ? AND t <= ?", (target, until))

    def close(self) -> None:
        with self._lock:
            self._db.close()


# -- server bans ----------------------------------------------------------------

SERVER_BANS_SCHEMA = """
CREATE TABLE IF NOT EXISTS server_bans (
    kind TEXT NOT NULL,          -- 'K' (nick!user@host mask) or 'D' (IP or CIDR)
    mask_cf TEXT NOT NULL,       -- the mask, casefolded: the ban's identity
    mask TEXT NOT NULL,
    reason TEXT NOT NULL,
    setter TEXT NOT NULL,        -- the oper's nick!user@host
    set_at REAL NOT NULL,        -- unix seconds
    expires REAL NOT NULL,       -- unix seconds; 0 = permanent
    PRIMARY KEY (kind, mask_cf)
);
"""


class SqliteServerBanStore:
    """:class:`ircd.serverbans.ServerBanStore` (K-lines and D-lines) in the SQLite
    database at ``path`` (WAL, ``synchronous=FULL``: a ban whose ``save`` returned
    survives a crash; created with its directory).

    Safe to call from several threads (one connection behind a lock).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = open_sqlite(self.path, SERVER_BANS_SCHEMA)

    def load(self) -> list[ServerBan]:
        """Every stored ban (expired ones too)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT kind, mask, reason, setter, set_at, expires FROM server_bans"
            ).fetchall()
        return [ServerBan(*row) for row in rows]

    def save(self, ban: ServerBan) -> None:
        """Insert ``ban``, replacing one with the same kind and mask."""
        kind, mask_cf = ban.key
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO server_bans "
                "(kind, mask_cf, mask, reason, setter, set_at, expires) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (kind, mask_cf, ban.mask, ban.reason, ban.setter, ban.set_at, ban.expires),
            )

    def delete(self, kind: str, mask: str) -> None:
        """Remove the ban of ``kind`` on ``mask`` (any case); nothing if there is none."""
        key = ServerBan(kind, mask, "", "", 0.0).key
        with self._lock:
            self._db.execute("DELETE FROM server_bans WHERE kind = ? AND mask_cf = ?", key)

    def close(self) -> None:
        with self._lock:
            self._db.close()


# -- registered channels --------------------------------------------------------

CHANNELS_SCHEMA = """
CREATE TABLE IF NOT EXISTS registered_channels (
    name_cf TEXT PRIMARY KEY,      -- casefolded (rfc1459) channel name
    data TEXT NOT NULL             -- the record, JSON (see ircd/chanreg.py ChannelRegistry.record)
);
"""


class SQLiteChannelStore:
    """:class:`ircd.chanstore.ChannelStore` in the server's SQLite database (``path``;
    WAL, ``synchronous=FULL``; created with its directory).

    Safe to call from several threads (a lock serialises access). A record
    that is not valid JSON is skipped by :meth:`load` rather than stopping
    the server.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = open_sqlite(self.path, CHANNELS_SCHEMA)

    def load(self) -> list[Record]:
        with self._lock:
            rows = self._db.execute("SELECT data FROM registered_channels").fetchall()
        return decode_records(data for (data,) in rows)

    def write(self, changes: Changes) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for name_cf, record in changes:
                    if record is None:
                        self._db.execute("DELETE FROM registered_channels WHERE name_cf = ?",
                                         (name_cf,))
                    else:
                        self._db.execute(
                            "INSERT INTO registered_channels (name_cf, data) VALUES (?, ?) "
                            "ON CONFLICT(name_cf) DO UPDATE SET data = excluded.data",
                            (name_cf, encode_record(record)),
                        )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()
