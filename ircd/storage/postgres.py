"""The PostgreSQL backends of every store, the connection pool, and the migration runner.

Driver: psycopg 3, its synchronous API, with psycopg-pool's
:class:`~psycopg_pool.ConnectionPool`. The core already runs every store call
in its worker threads (``Scheduler.run_blocking``, :class:`ircd.net.ExecutorScheduler`),
the same threads that hash passwords, so a blocking driver fits without a
second concurrency model; the event loop never touches a connection.

- :class:`Database`: opens (and checks) the database at start, applies the
  migrations, then serves pooled connections. A broken connection (the
  server restarted, the network dropped) is detected when it is handed out
  (``check_connection``) and replaced; the operation that was in flight
  raises, and its caller answers with an error numeric.
- :func:`migrate`: applies :data:`ircd.storage.migrations.MIGRATIONS`.
- :class:`PostgresAccountRows` (:class:`ircd.accounts.AccountRows`),
  :class:`PostgresHistoryDisk` (:class:`ircd.history.HistoryDisk`),
  :class:`PostgresServerBanStore` (:class:`ircd.serverbans.ServerBanStore`),
  :class:`PostgresChannelStore` (:class:`ircd.chanstore.ChannelStore`).

Every store method blocks and raises :class:`psycopg.Error` (or
:class:`psycopg_pool.PoolTimeout` when no connection can be had within
:data:`POOL_TIMEOUT` seconds).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from ircd.chanstore import Changes, Record, decode_records, encode_record
from ircd.history import Row
from ircd.serverbans import ServerBan
from ircd.storage import redact_text, redact_url
from ircd.storage.migrations import MIGRATIONS, Migration

log = logging.getLogger("ircd.storage")

MIGRATION_LOCK = 0x63686174_73727672
"""The ``pg_advisory_xact_lock`` key that serialises migrations ("chatsrvr")."""

CONNECT_TIMEOUT = 5
"""Seconds libpq waits for a new connection (``connect_timeout``)."""

POOL_TIMEOUT = 5.0
"""Seconds an operation waits for a pooled connection before it fails."""


class DatabaseUnavailable(Exception):
    """The database cannot be used at start; ``str(err)`` is one line naming the (redacted) URL."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def migrate(conn: psycopg.Connection[Any],
            migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply the migrations not yet in ``schema_migrations``; return their versions.

    Each runs in its own transaction holding ``pg_advisory_xact_lock``
    (:data:`MIGRATION_LOCK`), which also guards the check of what is applied,
    so servers starting at once apply each migration exactly once (the others
    wait, then see it recorded). ``conn`` must be in autocommit mode.
    Raises :class:`psycopg.Error` (the failing migration is rolled back).
    """
    applied: list[int] = []
    for migration in migrations:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY,"
                " name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())")
            done = conn.execute("SELECT 1 FROM schema_migrations WHERE version = %s",
                                (migration.version,)).fetchone()
            if done:
                continue
            for statement in migration.statements:
                conn.execute(statement)  # our own constant SQL (ircd/storage/migrations.py)
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                         (migration.version, migration.name))
            applied.append(migration.version)
    return applied


class Database:
    """A pool of connections to the PostgreSQL at ``url`` (``postgresql://USER[:PW]@HOST:PORT/DBNAME``).

    ``max_size`` bounds the connections (one per worker thread is enough).
    Construct with :meth:`open`. Thread-safe.
    """

    def __init__(self, url: str, pool: ConnectionPool) -> None:
        self.url = url
        self.pool = pool

    @classmethod
    def open(cls, url: str, max_size: int = 4, run_migrations: bool = True) -> Database:
        """Connect once (to report a clear error), migrate, then open the pool.

        Blocks up to about :data:`CONNECT_TIMEOUT` seconds. Raises
        :class:`DatabaseUnavailable` when the server cannot be reached, refuses
        the login, lacks the database, or a migration fails.
        """
        shown = redact_url(url)
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                                 application_name="chatserver") as conn:
                if run_migrations:
                    applied = migrate(conn)
                    if applied:
                        log.info("database %s: applied migrations %s", shown, applied)
        except psycopg.Error as exc:
            raise DatabaseUnavailable(
                f"cannot use the database {shown}: {redact_text(_first_line(exc), url)}") from exc
        pool: ConnectionPool = ConnectionPool(
            url, min_size=1, max_size=max(1, max_size), open=False, timeout=POOL_TIMEOUT,
            check=ConnectionPool.check_connection, name="chatserver",
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT,
                    "application_name": "chatserver"},
        )
        try:
            pool.open(wait=True, timeout=CONNECT_TIMEOUT * 2)
        except Exception as exc:
            pool.close()
            raise DatabaseUnavailable(
                f"cannot use the database {shown}: {redact_text(_first_line(exc), url)}") from exc
        return cls(url, pool)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled autocommit connection for the ``with`` block."""
        with self.pool.connection() as conn:
            yield conn

    def close(self) -> None:
        """Close every connection (waits for the ones in use)."""
        self.pool.close()


class PostgresAccountRows:
    """:class:`ircd.accounts.AccountRows` in PostgreSQL (``accounts``, ``account_seen``).

    ``insert`` is ``INSERT ... ON CONFLICT DO NOTHING``: of any number of
    racing creations of one name, on any number of servers, exactly one wins.
    """

    shared = True

    def __init__(self, db: Database) -> None:
        self.db = db

    def names(self) -> dict[str, str]:
        with self.db.connection() as conn:
            return dict(conn.execute("SELECT name_cf, name FROM accounts").fetchall())

    def hash_of(self, name_cf: str) -> str | None:
        with self.db.connection() as conn:
            row = conn.execute("SELECT password_hash FROM accounts WHERE name_cf = %s",
                               (name_cf,)).fetchone()
        return row[0] if row else None

    def insert(self, name_cf: str, name: str, password_hash: str, created_at: float) -> bool:
        with self.db.connection() as conn:
            row = conn.execute(
                "INSERT INTO accounts (name_cf, name, password_hash, created_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (name_cf) DO NOTHING RETURNING 1",
                (name_cf, name, password_hash, created_at)).fetchone()
        return row is not None

    def set_hash(self, name_cf: str, password_hash: str) -> None:
        with self.db.connection() as conn:
            conn.execute("UPDATE accounts SET password_hash = %s WHERE name_cf = %s",
                         (password_hash, name_cf))

    def info(self, name_cf: str) -> tuple[str, float, float | None] | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT a.name, a.created_at, s.last_seen FROM accounts a"
                " LEFT JOIN account_seen s ON s.name_cf = a.name_cf WHERE a.name_cf = %s",
                (name_cf,)).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def touch(self, name_cf: str, when: float) -> None:
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO account_seen (name_cf, last_seen) VALUES (%s, %s)"
                " ON CONFLICT (name_cf) DO UPDATE SET last_seen = excluded.last_seen",
                (name_cf, when))

    def delete(self, name_cf: str) -> None:
        with self.db.connection() as conn, conn.transaction():
            conn.execute("DELETE FROM accounts WHERE name_cf = %s", (name_cf,))
            conn.execute("DELETE FROM account_seen WHERE name_cf = %s", (name_cf,))

    def close(self) -> None:
        """Nothing: the pool is closed by :meth:`Database.close`."""


class PostgresHistoryDisk:
    """:class:`ircd.history.HistoryDisk` in PostgreSQL (table ``history``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def recent(self, cutoff: float, per_target: int) -> list[Row]:
        with self.db.connection() as conn:
            return conn.execute(
                "SELECT target, t, msgid, source, account, command, to_name, text FROM ("
                " SELECT *, row_number() OVER (PARTITION BY target ORDER BY t DESC, id DESC)"
                " AS rn FROM history WHERE t >= %s) AS recent WHERE rn <= %s ORDER BY t, id",
                (cutoff, per_target)).fetchall()

    def append(self, rows: list[Row]) -> None:
        with self.db.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO history (target, t, msgid, source, account, command, to_name, text)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", rows)

    def delete_before(self, t: float) -> None:
        with self.db.connection() as conn:
            conn.execute("DELETE FROM history WHERE t < %s", (t,))

    def close(self) -> None:
        """Nothing: the pool is closed by :meth:`Database.close`."""


class PostgresServerBanStore:
    """:class:`ircd.serverbans.ServerBanStore` in PostgreSQL (table ``server_bans``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def load(self) -> list[ServerBan]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT kind, mask, reason, setter, set_at, expires FROM server_bans").fetchall()
        return [ServerBan(*row) for row in rows]

    def save(self, ban: ServerBan) -> None:
        kind, mask_cf = ban.key
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO server_bans (kind, mask_cf, mask, reason, setter, set_at, expires)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (kind, mask_cf) DO UPDATE SET"
                " mask = excluded.mask, reason = excluded.reason, setter = excluded.setter,"
                " set_at = excluded.set_at, expires = excluded.expires",
                (kind, mask_cf, ban.mask, ban.reason, ban.setter, ban.set_at, ban.expires))

    def delete(self, kind: str, mask: str) -> None:
        key = ServerBan(kind, mask, "", "", 0.0).key
        with self.db.connection() as conn:
            conn.execute("DELETE FROM server_bans WHERE kind = %s AND mask_cf = %s", key)

    def close(self) -> None:
        """Nothing: the pool is closed by :meth:`Database.close`."""


class PostgresChannelStore:
    """:class:`ircd.chanstore.ChannelStore` in PostgreSQL (table ``registered_channels``).

    Records are stored as the same JSON text as in SQLite
    (:func:`ircd.chanstore.encode_record`); a malformed one is skipped on load.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def load(self) -> list[Record]:
        with self.db.connection() as conn:
            rows = conn.execute("SELECT data FROM registered_channels").fetchall()
        return decode_records(data for (data,) in rows)

    def write(self, changes: Changes) -> None:
        with self.db.connection() as conn, conn.transaction():
            for name_cf, record in changes:
                if record is None:
                    conn.execute("DELETE FROM registered_channels WHERE name_cf = %s", (name_cf,))
                else:
                    conn.execute(
                        "INSERT INTO registered_channels (name_cf, data) VALUES (%s, %s)"
                        " ON CONFLICT (name_cf) DO UPDATE SET data = excluded.data",
                        (name_cf, encode_record(record)))

    def close(self) -> None:
        """Nothing: the pool is closed by :meth:`Database.close`."""
