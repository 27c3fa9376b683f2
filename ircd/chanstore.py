"""Storage of registered channels: the small interface its backends implement.

A registered channel (ChanServ ``REGISTER``, or ``server.registered_channels``)
is kept as one record: a JSON-compatible ``dict`` built by
:meth:`ircd.chanreg.ChannelRegistry.record` (name, topic, modes, key, limit,
bans, founder, access list, settings). The registry hands changed records to
:meth:`ChannelStore.write` in batches, off the event loop, so a backend only
stores and returns dicts. The backends are in :mod:`ircd.storage` (SQLite:
:class:`ircd.storage.sqlite.SQLiteChannelStore`; PostgreSQL:
:class:`ircd.storage.postgres.PostgresChannelStore`), both keeping the JSON
text of :func:`encode_record`; nothing here opens a database.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Protocol

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
