"""Opening the server's SQLite database file, the same way for every store.

Each store (accounts, history, server bans, registered channels) keeps its
own connection to the one file in ``server.data_dir``, in autocommit mode
(``isolation_level=None``: transactions are explicit ``BEGIN``/``COMMIT``),
usable from the worker threads (each store serialises access with its own
lock). WAL lets readers and one writer proceed together, and a 5 s busy
timeout lets the stores' writers wait for each other (SQLite, "Write-Ahead
Logging", "PRAGMA busy_timeout").
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


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
