"""The PostgreSQL schema as versioned migrations, applied by :func:`ircd.storage.postgres.migrate`.

Each :class:`Migration` is applied once per database, in its own
transaction, and recorded in ``schema_migrations``. Never edit a released
migration: append a new one with the next version. Tables match the SQLite
ones (:mod:`ircd.storage.sqlite`) column for column; times are unix seconds
(``double precision``) as there.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: ``version`` (1, 2, ...), a ``name``, and its SQL ``statements``."""

    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "accounts", (
        """CREATE TABLE accounts (
            name_cf text PRIMARY KEY,              -- casefolded (rfc1459) account name
            name text NOT NULL,                    -- as first registered
            password_hash text NOT NULL,           -- passlib argon2id hash string
            created_at double precision NOT NULL   -- unix seconds
        )""",
        """CREATE TABLE account_seen (
            name_cf text PRIMARY KEY,              -- casefolded account name
            last_seen double precision NOT NULL    -- unix seconds: when a user of it last left
        )""",
    )),
    Migration(2, "history", (
        """CREATE TABLE history (
            id bigserial PRIMARY KEY,
            target text NOT NULL,                  -- channel casefold, or dm:<a>:<b>
            t double precision NOT NULL,           -- unix seconds
            msgid text NOT NULL,
            source text NOT NULL,                  -- nick!user@host
            account text,                          -- the sender's account, if any
            command text NOT NULL,                 -- PRIVMSG or NOTICE
            to_name text NOT NULL,                 -- the target as addressed
            text text NOT NULL
        )""",
        "CREATE INDEX history_target_t ON history (target, t)",
        "CREATE INDEX history_t ON history (t)",
    )),
    Migration(3, "server_bans", (
        """CREATE TABLE server_bans (
            kind text NOT NULL,                    -- 'K' (nick!user@host mask) or 'D' (IP/CIDR)
            mask_cf text NOT NULL,                 -- the mask, casefolded: the ban's identity
            mask text NOT NULL,
            reason text NOT NULL,
            setter text NOT NULL,                  -- the oper's nick!user@host
            set_at double precision NOT NULL,      -- unix seconds
            expires double precision NOT NULL,     -- unix seconds; 0 = permanent
            PRIMARY KEY (kind, mask_cf)
        )""",
    )),
    Migration(4, "registered_channels", (
        """CREATE TABLE registered_channels (
            name_cf text PRIMARY KEY,              -- casefolded (rfc1459) channel name
            data text NOT NULL                     -- the record, JSON (ircd/chanreg.py)
        )""",
    )),
)
"""Every migration, oldest first; versions are 1..n without gaps."""
