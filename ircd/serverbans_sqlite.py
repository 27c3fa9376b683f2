"""The SQLite :class:`~ircd.serverbans.ServerBanStore`: K-lines and D-lines in the data directory.

One table in the server's database file, opened in WAL mode with
``synchronous=FULL`` (as :mod:`ircd.accounts`), so that a ban whose ``save``
returned survives a crash. Every method blocks: the core calls them off the
event loop (``Scheduler.run_blocking``), and :meth:`load` once at start-up.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ircd.serverbans import ServerBan
from ircd.storage.sqlite import open_sqlite

SCHEMA = """
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
    """Server bans in the SQLite database at ``path`` (created with its directory).

    Safe to call from several threads (one connection behind a lock).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = open_sqlite(self.path, SCHEMA)

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
