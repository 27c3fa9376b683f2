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
  raises, and its caller answers with an error numeric. Every operation is
  bounded in time, also against a server that stopped answering.
- :func:`migrate`: applies :data:`ircd.storage.migrations.MIGRATIONS`.
- :class:`PostgresAccountRows` (:class:`ircd.accounts.AccountRows`),
  :class:`PostgresHistoryDisk` (:class:`ircd.history.HistoryDisk`),
  :class:`PostgresServerBanStore` (:class:`ircd.serverbans.ServerBanStore`),
  :class:`PostgresChannelStore` (:class:`ircd.chanstore.ChannelStore`).

Every store method blocks at most ``[database] timeout`` seconds (plus
:data:`WATCHDOG_GRACE`; :class:`Database`) and raises :class:`psycopg.Error`
(:class:`DatabaseTimeout` when the server did not answer in time) or
:class:`psycopg_pool.PoolTimeout` when no connection could be had in time.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from ircd.chanstore import Changes, Record, decode_records, encode_record
from ircd.history import Row
from ircd.serverbans import ServerBan
from ircd.storage import redact_text, redact_url
from ircd.storage.migrations import MIGRATIONS, Migration

log = logging.getLogger("ircd.storage")

MIGRATION_LOCK = 0x63686174_73727672
"""The ``pg_advisory_xact_lock`` key that serialises migrations ("chatsrvr")."""

TIMEOUT = 5.0
"""Default of ``[database] timeout``: seconds one database operation may take in all
(getting a pooled connection, checking it, its statements), and ``connect_timeout``."""

WATCHDOG_GRACE = 0.5
"""Seconds past the timeout before the watchdog cuts a connection the server left
unanswered (the server's own ``statement_timeout`` fires first when it is alive)."""

WATCHDOG_INTERVAL = 0.1
"""Seconds between the watchdog's looks at the operations in progress."""

KEEPALIVES_IDLE = 10
"""Seconds of silence on a connection before TCP keepalive probes start (libpq ``keepalives_idle``)."""

KEEPALIVES_INTERVAL = 5
"""Seconds between unanswered keepalive probes (libpq ``keepalives_interval``)."""

KEEPALIVES_COUNT = 3
"""Unanswered probes before the kernel drops the connection (libpq ``keepalives_count``)."""


class DatabaseUnavailable(Exception):
    """The database cannot be used at start; ``str(err)`` is one line naming the (redacted) URL."""


class DatabaseTimeout(psycopg.OperationalError):
    """An operation got no answer within ``[database] timeout`` seconds; its connection was cut."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def connection_options(url: str, timeout: float) -> dict[str, Any]:
    """The libpq parameters every connection gets (keyword arguments of :func:`psycopg.connect`).

    ``timeout`` (seconds) bounds connecting (``connect_timeout``, whole
    seconds, at least 2 as libpq requires), each statement on the server
    (``statement_timeout``, in ``options``, added to any ``options`` of
    ``url``), and data the kernel could not deliver (``tcp_user_timeout``,
    ms); TCP keepalives find a dead peer of an idle connection in
    ``KEEPALIVES_IDLE + KEEPALIVES_INTERVAL * KEEPALIVES_COUNT`` seconds.
    (libpq, "Parameter Key Words"; PostgreSQL, "statement_timeout".)
    A stopped server (SIGSTOP) still has its kernel acknowledge our packets,
    so none of these end a wait for it: :class:`Database`'s watchdog does.
    """
    ms = max(1, int(timeout * 1000))
    options = conninfo_to_dict(url).get("options")
    bound = f"-c statement_timeout={ms}"
    return {
        "autocommit": True,
        "application_name": "chatserver",
        "connect_timeout": max(2, math.ceil(timeout)),
        "keepalives": 1,
        "keepalives_idle": KEEPALIVES_IDLE,
        "keepalives_interval": KEEPALIVES_INTERVAL,
        "keepalives_count": KEEPALIVES_COUNT,
        "tcp_user_timeout": ms,
        "options": f"{options} {bound}" if options else bound,
    }


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
    Every operation (a ``with`` block of :meth:`connection`: getting a
    connection from the pool, the pool's check of it, the statements) ends
    within ``timeout`` seconds plus :data:`WATCHDOG_GRACE`: the pool waits
    at most ``timeout`` for a connection, the server cancels a statement
    after ``timeout`` (``statement_timeout``), and a watchdog thread cuts
    (``shutdown(2)``) the socket of an operation still waiting past its
    deadline, which then raises :class:`DatabaseTimeout` and is replaced
    by the pool. That is what ends a wait on a server that stopped
    answering (SIGSTOP, a dead network path) without breaking the TCP
    connection. Construct with :meth:`open`. Thread-safe.
    """

    def __init__(self, url: str, max_size: int = 4, timeout: float = TIMEOUT) -> None:
        self.url = url
        self.timeout = timeout
        self.options = connection_options(url, timeout)
        self.pool: ConnectionPool = ConnectionPool(
            url, min_size=1, max_size=max(1, max_size), open=False, timeout=timeout,
            check=self._check, name="chatserver", kwargs=self.options,
        )
        # Operations in progress: token -> (deadline on the monotonic clock, socket fd).
        self._watched: dict[int, tuple[float, int]] = {}
        self._cut: set[int] = set()  # tokens whose connection the watchdog cut
        self._tokens = itertools.count()
        self._lock = threading.Lock()
        self._local = threading.local()  # the deadline of this thread's operation
        self._closed = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="ircd-db-watchdog",
                                          daemon=True)
        self._watchdog.start()

    @classmethod
    def open(cls, url: str, max_size: int = 4, run_migrations: bool = True,
             timeout: float = TIMEOUT) -> Database:
        """Connect once (to report a clear error), migrate, then open the pool.

        Blocks up to about ``2 * timeout`` seconds plus the migrations (each
        statement bounded by ``timeout``). Raises :class:`DatabaseUnavailable`
        when the server cannot be reached or does not answer, refuses the
        login, lacks the database, or a migration fails.
        """
        shown = redact_url(url)
        try:
            db = cls(url, max_size, timeout)   # (a URL psycopg cannot parse raises here)
        except Exception as exc:
            raise DatabaseUnavailable(
                f"cannot use the database {shown}: {redact_text(_first_line(exc), url)}") from exc
        try:
            try:
                with psycopg.connect(url, **db.options) as conn, db._watching(conn):
                    if run_migrations:
                        applied = migrate(conn)
                        if applied:
                            log.info("database %s: applied migrations %s", shown, applied)
                db.pool.open(wait=True, timeout=timeout * 2)
            except Exception:
                db.close()
                raise
        except Exception as exc:
            raise DatabaseUnavailable(
                f"cannot use the database {shown}: {redact_text(_first_line(exc), url)}") from exc
        return db

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled autocommit connection for the ``with`` block, which must end within
        ``timeout`` seconds (see the class); raises :class:`psycopg_pool.PoolTimeout`,
        :class:`DatabaseTimeout` or another :class:`psycopg.Error`."""
        self._local.deadline = time.monotonic() + self.timeout + WATCHDOG_GRACE
        try:
            with self.pool.connection(timeout=self.timeout) as conn, self._watching(conn):
                yield conn
        finally:
            self._local.deadline = None

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        """The pool's check of a connection it hands out, bounded like the operation."""
        with self._watching(conn):
            ConnectionPool.check_connection(conn)

    @contextmanager
    def _watching(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        """Have the watchdog cut ``conn`` if the ``with`` block outlives this thread's
        operation deadline (or ``timeout`` plus the grace from now, outside one)."""
        deadline = getattr(self._local, "deadline", None)
        if deadline is None:
            deadline = time.monotonic() + self.timeout + WATCHDOG_GRACE
        token = next(self._tokens)
        with self._lock:
            self._watched[token] = (deadline, conn.fileno())
        try:
            yield
        except psycopg.Error as exc:
            with self._lock:
                cut = token in self._cut
            if cut:
                raise DatabaseTimeout(
                    f"no answer from the database within {self.timeout:g} s") from exc
            raise
        finally:
            with self._lock:  # (after this, the fd may be closed and reused: never cut it)
                del self._watched[token]
                self._cut.discard(token)

    def _watch(self) -> None:
        """The watchdog thread: cut the sockets of operations past their deadline."""
        while not self._closed.wait(WATCHDOG_INTERVAL):
            now = time.monotonic()
            with self._lock:
                for token, (deadline, fd) in self._watched.items():
                    if now >= deadline and token not in self._cut:
                        self._cut.add(token)
                        log.warning("database: no answer within %g s, cutting the connection",
                                    self.timeout)
                        with contextlib.suppress(OSError):
                            sock = socket.socket(fileno=os.dup(fd))
                            try:
                                sock.shutdown(socket.SHUT_RDWR)
                            finally:
                                sock.close()

    def close(self) -> None:
        """Close every connection (waits up to ``timeout`` for the ones in use), stop the watchdog."""
        try:
            self.pool.close(timeout=self.timeout)
        finally:
            self._closed.set()


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

    def recent_of(self, target: str, cutoff: float, per_target: int) -> list[Row]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT target, t, msgid, source, account, command, to_name, text FROM history"
                " WHERE target = %s AND t >= %s ORDER BY t DESC, id DESC LIMIT %s",
                (target, cutoff, per_target)).fetchall()
        rows.reverse()
        return rows

    def recent_direct(self, account_cf: str, cutoff: float, per_target: int) -> list[Row]:
        prefix, suffix = f"dm:{account_cf}:", f":{account_cf}"
        with self.db.connection() as conn:
            return conn.execute(
                "SELECT target, t, msgid, source, account, command, to_name, text FROM ("
                " SELECT *, row_number() OVER (PARTITION BY target ORDER BY t DESC, id DESC)"
                " AS rn FROM history WHERE left(target, 3) = 'dm:' AND t >= %s"
                " AND (left(target, %s) = %s OR right(target, %s) = %s)) AS recent"
                " WHERE rn <= %s ORDER BY t, id",
                (cutoff, len(prefix), prefix, len(suffix), suffix, per_target)).fetchall()

    def append(self, rows: list[Row]) -> None:
        with self.db.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO history (target, t, msgid, source, account, command, to_name, text)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", rows)

    def delete_before(self, t: float) -> None:
        with self.db.connection() as conn:
            conn.execute("DELETE FROM history WHERE t < %s", (t,))

    def delete_direct(self, account_cf: str, until: float) -> None:
        prefix, suffix = f"dm:{account_cf}:", f":{account_cf}"
        with self.db.connection() as conn:
            conn.execute(
                "DELETE FROM history WHERE left(target, 3) = 'dm:' AND t <= %s"
                " AND (left(target, %s) = %s OR right(target, %s) = %s)",
                (until, len(prefix), prefix, len(suffix), suffix))

    def delete_target(self, target: str, until: float) -> None:
        with self.db.connection() as conn:
            conn.execute("DELETE FROM history WHERE target = %s AND t <= %s", (target, until))

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
