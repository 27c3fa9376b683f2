"""Storage of registered channels: a small interface and its SQLite implementation.

A registered channel (ChanServ ``REGISTER``, or ``server.registered_channels``)
is kept as one record: a JSON-compatible ``dict`` built by
:meth:`ircd.chanreg.ChannelRegistry.record` (name, topic, modes, key, limit,
bans, founder, access list, settings). The registry hands changed records to
:meth:`ChannelStore.write` in batches, off the event loop, so a backend only
stores and returns dicts: a PostgreSQL one implements the same three methods.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from ircd.storage.sqlite import open_sqlite

SCHEMA = """
CREATE TABLE IF NOT EXISTS registered_channels (
    name_cf TEXT PRIMARY KEY,      -- casefolded (rfc1459) channel name
    data TEXT NOT NULL             -- the record, JSON (see ircd/chanreg.py ChannelRegistry.record)
);
"""

Record = dict[str, Any]
Changes = list[tuple[str, Record | None]]
"""``(casefolded name, record)`` to insert or replace, ``(name, None)`` to delete."""


class ChannelStore(Protocol):
    """Where registered channels live. Every method may block (call it off the loop)."""

    def load(self) -> list[Record]:
        """Every stored record."""

    def write(self, changes: Changes) -> None:
        """Apply ``changes`` atomically: all of them or none."""

    def close(self) -> None:
        """Release the connection."""


def encode_record(record: Record) -> str:
    """The stored text of ``record``: JSON with sorted keys."""
    return json.dumps(record, sort_keys=True)


def decode_records(texts: Iterable[str]) -> list[Record]:
    """The records among stored JSON ``texts``; one that is not valid JSON, not an
    object, or has no string ``name`` is skipped (never stops the server)."""
    out = []
    for data in texts:
        try:
            record = json.loads(data)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("name"), str):
            out.append(record)
    return out


class SQLiteChannelStore:
    """:class:`ChannelStore` in the server's SQLite database (``path``; WAL, ``synchronous=FULL``).

    Safe to call from several threads (a lock serialises access). A record
    that is not valid JSON is skipped by :meth:`load` rather than stopping
    the server.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = open_sqlite(self.path, SCHEMA)

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
