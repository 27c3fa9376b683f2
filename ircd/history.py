"""Message history for CHATHISTORY (IRCv3 draft/chathistory) and join replay.

Recent messages are kept in memory, per target, so that CHATHISTORY is
answered synchronously, and persisted through a :class:`HistoryDisk` backend
in batches written off the event loop (the core hands
:meth:`HistoryStore.take_pending` to a worker every second), so that history
never slows delivery. The backends are in :mod:`ircd.storage` (SQLite
:class:`ircd.storage.sqlite.SQLiteHistoryDisk`, the default; PostgreSQL
:class:`ircd.storage.postgres.PostgresHistoryDisk`); nothing here opens a
database or imports a driver. On start the last ``max_per_target`` messages
of every target younger than ``retention_days`` are loaded back: history
survives restarts.

Targets: a channel's key is its casefolded name; a direct message between
two accounts is kept under ``"dm:<a>:<b>"`` (the two casefolded account
names, sorted), and only when both users are logged in to accounts.
"""

from __future__ import annotations

import bisect
import heapq
import os
import threading
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from ircd.protocol.casemap import casefold


@dataclass(frozen=True, slots=True)
class Item:
    """One stored message. ``t`` is unix seconds; ``to_name`` the target as addressed."""

    target: str
    t: float
    msgid: str
    source: str
    account: str | None
    command: str
    to_name: str
    text: str

    @property
    def sender_nick(self) -> str:
        return self.source.split("!", 1)[0]


def dm_key(a: str, b: str) -> str:
    """The history key of the conversation between accounts ``a`` and ``b``."""
    x, y = sorted((casefold(a), casefold(b)))
    return f"dm:{x}:{y}"


def dm_accounts(key: str) -> tuple[str, str] | None:
    """The two casefolded account names of a direct-message key (:func:`dm_key`), or
    None for a channel's key. (Account names are nicks: they never hold ``:``.)"""
    if not key.startswith("dm:"):
        return None
    parts = key[3:].split(":")
    return (parts[0], parts[1]) if len(parts) == 2 else None


FORGET_KEEP = 86400.0
"""Seconds a dropped account's name is remembered by :meth:`HistoryStore.forget_account`
(so that a write of messages queued before the drop cannot store them again)."""


Row = tuple[str, float, str, str, str | None, str, str, str]
"""One message as stored: the fields of :class:`Item` in order."""


def log_position(msgid: str) -> tuple[int, ...]:
    """Where in the cluster's log the message with ``msgid`` was made: its
    stream id and counters as ints (``"1733130000000.4.0.1"`` gives
    ``(1733130000000, 4, 0, 1)``); ``()`` for a single node's ids.

    In a cluster every origin node writes its own rows, so the database's row
    order is not the log's; sorting by time and then by this gives every node
    that loads the history the order the others applied (ircd.cluster.log).
    """
    parts = msgid.split(".")
    if len(parts) < 3 or not all(p.isdigit() for p in parts):
        return ()
    return tuple(map(int, parts))


class HistoryDisk(Protocol):
    """The persistent side of :class:`HistoryStore`. Every method blocks and may raise.

    Backends: :class:`ircd.storage.sqlite.SQLiteHistoryDisk`,
    :class:`ircd.storage.postgres.PostgresHistoryDisk`.
    """

    def recent(self, cutoff: float, per_target: int) -> list[Row]:
        """The newest ``per_target`` messages of each target with ``t >= cutoff``
        (unix seconds), oldest first."""

    def recent_of(self, target: str, cutoff: float, per_target: int) -> list[Row]:
        """The newest ``per_target`` messages of ``target`` alone with ``t >= cutoff``
        (unix seconds), oldest first (an index read: a cluster node beginning to
        follow a channel)."""

    def recent_direct(self, account_cf: str, cutoff: float, per_target: int) -> list[Row]:
        """As :meth:`recent`, for the direct-message targets naming account
        ``account_cf`` (casefolded) only (a cluster node whose user logs in)."""

    def append(self, rows: list[Row]) -> None:
        """Store ``rows`` in one transaction."""

    def delete_before(self, t: float) -> None:
        """Delete messages older than ``t`` (unix seconds)."""

    def delete_direct(self, account_cf: str, until: float) -> None:
        """Delete the direct messages to and from account ``account_cf`` (casefolded)
        sent at or before ``until`` (unix seconds): every ``dm:`` target naming it."""

    def delete_target(self, target: str, until: float) -> None:
        """Delete the messages of ``target`` whose ``t <= until`` (unix seconds)."""

    def close(self) -> None: ...


Erasure = tuple[str, float]
"""A target's history to delete from the database: ``(target, until)``, every
message of ``target`` with ``t <= until`` (unix seconds)."""


class HistoryStore:
    """Per-target recent history in memory, persisted to the backend ``disk``.

    ``max_per_target`` bounds each target's messages; ``max_targets`` the
    targets held in memory (the one whose last message is oldest is dropped
    from memory first; the database keeps it, and it is loaded again at the
    next start if it is among the ``max_targets`` most recent);
    ``retention_days`` drops older messages (0 keeps them forever). ``disk``
    is the :class:`HistoryDisk` (SQLite:
    :class:`ircd.storage.sqlite.SQLiteHistoryDisk`; PostgreSQL:
    :class:`ircd.storage.postgres.PostgresHistoryDisk`), owned and closed by
    :meth:`close`; a path instead raises :class:`TypeError`. :meth:`load`,
    :meth:`write` and :meth:`prune_disk` block (call them off the loop); the
    rest do not.

    :meth:`forget` deletes a target's history (a channel that no longer
    exists): at once from memory and from the messages not yet written, and
    from the database with the next :meth:`write`. Writes run in worker
    threads, possibly two at once, so a batch taken before the forget and
    still being written skips that target's old messages (``erased``), and a
    failed batch put back with :meth:`requeue` is filtered the same way.
    """

    def __init__(self, disk: HistoryDisk, max_per_target: int = 1000,
                 retention_days: float = 30.0, *, max_targets: int = 10000) -> None:
        if isinstance(disk, (str, os.PathLike)):
            raise TypeError("HistoryStore takes a backend, not a path: "
                            "HistoryStore(ircd.storage.sqlite.SQLiteHistoryDisk(path), ...)")
        self.disk: HistoryDisk = disk
        self.max_per_target = max_per_target
        self.max_targets = max_targets
        self.retention_days = retention_days
        # target -> its messages, the target with the most recent message last
        self.targets: dict[str, deque[Item]] = {}
        # Index for CHATHISTORY TARGETS: casefolded account -> the "dm:" keys
        # of its conversations, so a query never scans every target.
        # Grows with self.targets (a target is never forgotten in memory).
        self.dm_keys: dict[str, set[str]] = {}
        self.by_msgid: dict[str, Item] = {}
        self.pending: list[Item] = []
        self.forgotten: dict[str, float] = {}  # dropped account (casefolded) -> when
        # Forgotten targets not yet deleted from the database: target -> until.
        self.erasing: dict[str, float] = {}
        self.evicted = False              # a target was ever dropped from memory (max_targets)
        self.unloaded: list[str] = []     # targets the last merge() dropped (channel_targets)
        # target -> until: messages of it with t <= until must never be written
        # (kept while a batch taken before the forget may still be written).
        self.erased: dict[str, float] = {}
        self._batches = 0                 # batches taken and not yet finished
        self._write_lock = threading.Lock()

    # -- blocking (worker thread) ------------------------------------------

    def load(self, now: float) -> int:
        """Load the recent history from disk; returns the number of messages loaded."""
        cutoff = now - self.retention_days * 86400 if self.retention_days > 0 else 0.0
        return self.merge(self.disk.recent(cutoff, self.max_per_target))

    def recent_rows(self, since: float) -> list[Row]:
        """The stored messages from ``since`` (unix seconds) on, at most ``max_per_target``
        per target: for :meth:`merge` (blocks: call it off the loop)."""
        return self.disk.recent(since, self.max_per_target)

    def recent_rows_of(self, target: str, since: float) -> list[Row]:
        """The stored messages of ``target`` (a history key) from ``since`` (unix
        seconds) on, at most ``max_per_target``: for :meth:`merge` (blocks)."""
        return self.disk.recent_of(target, since, self.max_per_target)

    def recent_direct_rows(self, account_cf: str, since: float) -> list[Row]:
        """The stored direct messages of account ``account_cf`` (casefolded) from
        ``since`` on, at most ``max_per_target`` per conversation: for
        :meth:`merge` (blocks)."""
        return self.disk.recent_direct(account_cf, since, self.max_per_target)

    def write(self, items: list[Item], erase: list[Erasure] | None = None) -> None:
        """Delete the ``erase`` targets' old messages, then append ``items`` (except
        those of a target forgotten since they were taken, and direct messages of
        an account dropped after they were sent, :meth:`forget_account`) to the
        database.

        Blocks; one write at a time (a lock). Raises what the disk raises.
        """
        with self._write_lock:
            for target, until in erase or ():
                self.disk.delete_target(target, until)
            rows = [(i.target, i.t, i.msgid, i.source, i.account, i.command, i.to_name, i.text)
                    for i in items
                    if not self._is_erased(i) and not self._forgotten_item(i)]
            if rows:
                self.disk.append(rows)

    def _is_erased(self, item: Item) -> bool:
        """True for a message of a target forgotten after it was sent (read from a worker
        thread too: single dict look-ups only)."""
        until = self.erased.get(item.target)
        return until is not None and item.t <= until and item.msgid not in self.by_msgid

    def prune_disk(self, now: float) -> None:
        """Delete messages older than the retention from the database."""
        if self.retention_days > 0:
            self.disk.delete_before(now - self.retention_days * 86400)

    def close(self) -> None:
        self.disk.close()

    # -- on the loop -----------------------------------------------------------

    def _index(self, key: str) -> None:
        if key.startswith("dm:"):
            _, x, y = key.split(":", 2)
            self.dm_keys.setdefault(x, set()).add(key)
            self.dm_keys.setdefault(y, set()).add(key)

    def _unindex(self, key: str) -> None:
        """Forget ``key`` in the conversations index (call it wherever a target
        leaves :attr:`targets`)."""
        if key.startswith("dm:"):
            _, x, y = key.split(":", 2)
            for account in (x, y):
                keys = self.dm_keys.get(account)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self.dm_keys[account]

    def _remember(self, item: Item) -> None:
        q = self.targets.pop(item.target, None)   # re-inserted last: the most recent
        if q is None:
            q = deque()
            self._index(item.target)
        self.targets[item.target] = q
        q.append(item)
        self.by_msgid[item.msgid] = item
        while len(q) > self.max_per_target:
            old = q.popleft()
            self.by_msgid.pop(old.msgid, None)
        self._evict()

    def _evict(self) -> list[str]:
        """Drop the least recent targets from memory while there are over ``max_targets``;
        returns their names."""
        dropped = []
        while len(self.targets) > self.max_targets:
            self.evicted = True
            target, q = next(iter(self.targets.items()))
            del self.targets[target]
            self._unindex(target)
            dropped.append(target)
            for old in q:
                self.by_msgid.pop(old.msgid, None)
        return dropped

    def forget(self, target: str, now: float) -> None:
        """Delete the history of ``target`` (e.g. a channel that is gone) up to ``now``
        (unix seconds): from memory and the unwritten messages at once, from the
        database with the next :meth:`write` (:meth:`take_erasures`)."""
        q = self.targets.pop(target, None)
        self._unindex(target)
        for old in q or ():
            self.by_msgid.pop(old.msgid, None)
        unwritten = any(i.target == target for i in self.pending)
        if unwritten:
            self.pending = [i for i in self.pending if i.target != target]
        if q is None and not unwritten and not self.evicted:
            return  # it never had history (a target's messages are in memory until evicted)
        self.erased[target] = max(now, self.erased.get(target, now))
        self.erasing[target] = max(now, self.erasing.get(target, now))

    def take_erasures(self) -> list[Erasure]:
        """The deletions :meth:`forget` queued, for the next :meth:`write`."""
        erase, self.erasing = list(self.erasing.items()), {}
        return erase

    def requeue(self, items: list[Item], erase: list[Erasure]) -> None:
        """Put back a batch whose write failed, to be tried with the next one (messages
        of a target forgotten meanwhile are left out)."""
        self.pending[:0] = [i for i in items
                            if not self._is_erased(i) and not self._forgotten_item(i)]
        for target, until in erase:
            self.erasing[target] = max(until, self.erasing.get(target, until))

    def batch_done(self) -> None:
        """A batch from :meth:`take_pending` was written, or failed and was put back."""
        self._batches -= 1

    def channel_targets(self) -> list[str]:
        """The channel targets (not ``dm:`` conversations) in memory, and those that
        :meth:`load` read but did not keep (over ``max_targets``); called once at start."""
        unloaded, self.unloaded = self.unloaded, []
        return [t for t in [*self.targets, *unloaded] if not t.startswith("dm:")]

    def merge(self, rows: list[Row]) -> int:
        """Add the stored ``rows`` whose msgid is not held yet; returns how many were kept.

        Each target they touch is put back in (time, log position) order (a
        stable sort: rows of one time keep the database's order) and cut to
        ``max_per_target``. :meth:`load` is a merge into an empty history; a
        cluster node that joined merges again a few seconds after its start
        (docs/cluster.md "History"): messages sent just before it joined were
        neither in what :meth:`load` read nor in the entries it applied, but
        their senders' nodes have written them since.
        """
        new: dict[str, list[Item]] = {}
        seen: set[str] = set()
        for row in rows:
            until = self.erased.get(row[0])
            if until is not None and row[1] <= until:
                continue  # read before its target was forgotten
            if row[2] not in self.by_msgid and row[2] not in seen:
                seen.add(row[2])
                new.setdefault(row[0], []).append(Item(*row))
        added = 0
        for target, mine in new.items():
            items = sorted([*self.targets.get(target, ()), *mine],
                           key=lambda i: (i.t, log_position(i.msgid)))
            for old in items[:-self.max_per_target]:
                self.by_msgid.pop(old.msgid, None)
            kept = items[-self.max_per_target:]
            self.targets[target] = deque(kept)
            self._index(target)
            self.by_msgid.update((item.msgid, item) for item in kept)
            added += sum(item.msgid in seen for item in kept)
        if new:
            # the most recent targets last, as _remember keeps them; then the bound
            order = sorted(self.targets.items(), key=lambda kv: kv[1][-1].t if kv[1] else 0.0)
            self.targets = dict(order)
            self.unloaded = self._evict()
            added = sum(1 for msgid in seen if msgid in self.by_msgid)
        return added

    def _forgotten_item(self, item: Item) -> bool:
        names = dm_accounts(item.target)
        if names is None:
            return False
        return any(item.t <= self.forgotten.get(name, float("-inf")) for name in names)

    def forget_account(self, account: str, now: float) -> None:
        """Account ``account`` was dropped at ``now`` (unix seconds): forget its
        direct messages in memory and in the queue for the next write.

        A later account of the same name starts with no history (its keys
        are the same). The caller deletes the stored ones off the loop with
        ``disk.delete_direct(casefold(account), now)``; messages queued before
        the drop and written after it are left out by :meth:`write`.
        """
        cf = casefold(account)
        self.forgotten = {k: t for k, t in self.forgotten.items() if now - t < FORGET_KEEP}
        self.forgotten[cf] = now
        for key in [k for k in self.targets if cf in (dm_accounts(k) or ())]:
            self._unindex(key)
            for item in self.targets.pop(key):
                self.by_msgid.pop(item.msgid, None)
        self.pending = [i for i in self.pending if not self._forgotten_item(i)]

    def add(self, item: Item) -> None:
        """Remember ``item`` and queue it for the next background write."""
        self._remember(item)
        self.pending.append(item)

    def take_pending(self) -> list[Item]:
        """The messages recorded since the last call, for :meth:`write`; the caller
        calls :meth:`batch_done` when that write finished (or :meth:`requeue`d)."""
        if self._batches <= 0:
            self._batches = 0
            self.erased.clear()   # no batch from before any forget is still out
        self._batches += 1
        items, self.pending = self.pending, []
        return items

    def record_channel(self, chan, sender, command: str, text: str, event) -> None:
        self.add(Item(casefold(chan.name), event.t, event.msgid, sender.source, sender.account,
                      command, chan.name, text))

    def record_direct(self, sender, target, command: str, text: str, event) -> None:
        if sender.account and target.account:
            self.add(Item(dm_key(sender.account, target.account), event.t, event.msgid,
                          sender.source, sender.account, command, target.nick, text))

    # -- queries (CHATHISTORY) ---------------------------------------------------

    def items(self, key: str) -> list[Item]:
        return list(self.targets.get(key, ()))

    @staticmethod
    def bounds(items: list[Item], ref: tuple[str, float | str]) -> tuple[int, int] | None:
        """Where a selector falls in ``items`` (oldest first): ``(end_before, start_after)``.

        ``("msgid", id)`` names one message at index i: ``(i, i + 1)``.
        ``("timestamp", t)`` (unix seconds) compares in whole milliseconds, the
        precision of server-time: messages of that millisecond lie between the
        two indices. None if the msgid is not in ``items``.
        """
        kind, value = ref
        if kind == "msgid":
            for i, item in enumerate(items):
                if item.msgid == value:
                    return i, i + 1
            return None
        ms = round(float(value) * 1000)
        keys = [round(x.t * 1000) for x in items]
        return bisect.bisect_left(keys, ms), bisect.bisect_right(keys, ms)

    def conversations(self, account: str) -> dict[str, str]:
        """The direct-message keys of ``account`` (any case), each mapped to the
        other account's casefolded name: ``{"dm:alice:bob": "bob"}`` for
        ``alice``. Cost: the number of that account's conversations."""
        mine = casefold(account)
        out = {}
        gone = []
        for key in self.dm_keys.get(mine, ()):
            if key not in self.targets:  # dropped from memory without _unindex
                gone.append(key)
                continue
            _, x, y = key.split(":", 2)
            out[key] = y if x == mine else x
        for key in gone:
            self._unindex(key)
        return out

    def latest_between(self, key: str, lo_ms: int, hi_ms: int) -> float | None:
        """The time (unix seconds) of the latest message of ``key`` strictly between
        ``lo_ms`` and ``hi_ms`` (whole milliseconds), or None.

        A binary search over the target's messages (held in time order):
        ``O(log n)`` probes for ``n`` messages, each ``O(n / 64)`` at worst
        (a deque's indexing), so ``O(1)`` for a target with no message after
        ``lo_ms``.
        """
        q = self.targets.get(key)
        if not q or round(q[-1].t * 1000) <= lo_ms:
            return None
        i = bisect.bisect_left(q, hi_ms, key=lambda x: round(x.t * 1000))
        if i == 0:
            return None
        t = q[i - 1].t
        return t if round(t * 1000) > lo_ms else None

    def targets_between(self, keys: list[str], start: float, end: float,
                        limit: int) -> list[tuple[str, float]]:
        """``(key, latest t)`` for each key with a message strictly between the two
        times (unix seconds, compared in whole milliseconds), ordered by that
        latest time, oldest first, at most ``limit`` (the ``limit`` whose latest
        message is oldest).

        IRCv3 draft/chathistory ``TARGETS``. Cost: one :meth:`latest_between`
        per key plus ``O(k log limit)`` for the ``k`` keys found; never a scan
        of other targets or of a target's messages.
        """
        lo, hi = sorted((round(start * 1000), round(end * 1000)))
        found = []
        for key in keys:
            t = self.latest_between(key, lo, hi)
            if t is not None:
                found.append((key, t))
        return heapq.nsmallest(limit, found, key=lambda kv: kv[1])
