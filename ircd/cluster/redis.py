"""The cluster's asyncio edge: one Redis stream as the network's log (docs/cluster.md).

Keys, all under ``chatserver:`` in the ``[cluster] url``'s database:

- ``log``: the stream. Each stream entry has the field ``b``, a batch of
  log entries (the bytes of :mod:`ircd.cluster.log`, see :func:`pack`), or
  ``e``, one log entry (a node's ``hello`` and ``lost``), and the field
  ``o``, its offset. Appended by :data:`APPEND_SCRIPT` (INCR and XADD
  ``MAXLEN ~`` :data:`STREAM_MAXLEN` in one step), or by :data:`WRITE_SCRIPT`
  for a write batch with routed messages, read by every node with XREAD
  BLOCK, in stream order.
- ``offset``: the last offset given; offsets count the stream entries 1, 2,
  3, ... without holes, so a node that reads offset 9 after 5 knows that the
  stream was trimmed past entries it had not read yet (it fell too far
  behind): its replica missed changes, and it rejoins as a new node.
- ``last``: the id of the state stream's last entry (set by the same scripts).
- ``inbox:<id>``: node ``<id>``'s inbox, the routed messages for it (compare
  and route, :data:`WRITE_SCRIPT`): each stream entry has ``b`` (a batch:
  :func:`pack` of index, entry, index, entry...), ``p`` (the state entry it
  is stamped with), ``n`` (the routed batch's number, from ``routed``) and
  ``t`` (Redis's time, ms). A node reads its inbox and the state stream in
  one XREAD and applies an inbox entry stamped ``p`` right after state entry
  ``p`` (read by :meth:`RedisLog._read_loop`, merged by
  :meth:`RedisLog._apply_merged`). A clean exit deletes the node's own inbox;
  the node that declares a node lost deletes that node's
  (:meth:`RedisLog.drop_inbox`).
- ``routed``: the number of the last routed batch.
- ``inbox_offsets``: a hash, inbox key -> the last offset given in that inbox
  (each inbox entry has it as ``o``, like the stream's).
- ``node:<id>``: a node's liveness key, expiring after ``node_timeout``
  seconds, refreshed every :data:`HEARTBEAT` seconds.
- ``nodes``: a hash ``<id>`` -> ``synced`` or ``joining``, to find a node
  that can send a joining node its snapshot.
- ``snapshot:<entry id>``: a snapshot of the world right after that entry
  (a joining node's ``hello``), kept :data:`SNAPSHOT_TTL` seconds.
- ``epoch``: a random token. When it is gone or different, Redis lost its
  data (restarted without persistence): the nodes carry on from their
  replicas, re-create their keys and, for ``node_timeout``, declare no node lost.

redis-py's asyncio client talks to Redis; every command has a
:data:`COMMAND_TIMEOUT`. While Redis does not answer, the log is
*unavailable*: submits are refused at once; after ``node_timeout`` the node
disconnects its users and, once Redis answers again, rejoins as a new node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ircd.cluster.log import NodeInfo, Replication, pack, unpack
from ircd.storage import redact_text, redact_url
from ircd.worldlog import Apply

if TYPE_CHECKING:
    from ircd.core import Server

log = logging.getLogger("ircd.cluster")

PREFIX = "chatserver:"
STREAM_MAXLEN = 200_000
"""Entries the stream keeps (approximately): what a slow or joining node may still read."""
COMMAND_TIMEOUT = 2.0
"""Seconds any Redis command may take before the log counts as unavailable."""
HEARTBEAT = 1.0
"""Seconds between liveness refreshes and checks of the other nodes' keys."""
SNAPSHOT_TTL = 60
"""Seconds a snapshot stays in Redis for the node it was made for."""
SNAPSHOT_WAIT = 5.0
"""Seconds a joining node waits for its snapshot before it says hello again."""
FOUNDER_LOCK = 3
"""Seconds the right to found the network is held (long enough to mark itself synced)."""
READ_BLOCK_MS = 1000
READ_COUNT = 2000
HISTORY_CATCH_UP = 3.0
"""Seconds after joining before a node reads from the database the messages it did not
apply (sent just before it joined); each node writes its users' messages within ~1 s."""
HISTORY_MARGIN = 10.0
"""Seconds before the start (or the outage) from which that catch-up reads."""

APPEND_SCRIPT = """
local offset = redis.call('INCR', KEYS[2])
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', ARGV[2], ARGV[3], 'o', offset)
redis.call('SET', KEYS[3], id)
return {id, offset}
"""
"""Append one stream entry with the next offset, atomically (Lua; KEYS: log, offset,
last; ARGV: maxlen, field, value). Returns ``[entry id, offset]``. The approach of
Centrifugo's Redis engine, whose publish script gives each stream entry an offset."""

WRITE_SCRIPT = """
local routed = 0
local state = ARGV[4]
if ARGV[3] ~= '' then
  if (redis.call('GET', KEYS[3]) or '0-0') == ARGV[2] then
    routed = redis.call('INCR', KEYS[4])
    local t = redis.call('TIME')
    local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    for i = 6, #KEYS do
      local o = redis.call('HINCRBY', KEYS[5], KEYS[i], 1)
      redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[1], '*', 'b', ARGV[i], 'p', ARGV[2],
                 'n', routed, 't', ms, 'o', o)
    end
  else
    state = ARGV[3] .. state
  end
end
if state == '' then
  return {routed, false, false}
end
local offset = redis.call('INCR', KEYS[2])
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'b', state, 'o', offset)
redis.call('SET', KEYS[3], id)
return {routed, id, offset}
"""
"""One write batch, atomically (Lua): compare and route, then append.

KEYS: log, offset, last, routed, inbox_offsets, then one inbox per target node; ARGV:
maxlen, P (the state position the routed messages were judged at), the
routed messages as one :func:`pack` (for the fall-back), the state entries
as one :func:`pack`, an unused slot, then for each inbox its messages (pack
of index, entry...). Each inbox entry gets the next offset of its inbox
(``inbox_offsets``), so a node sees a trimmed gap as it does in the stream. If the state stream's last entry is still P, the routed messages
go to the inboxes only, stamped P, and the batch's number (``routed``) is
returned first; otherwise (0) they go to the state stream, ahead of the
state entries. Returns ``[routed number or 0, state entry id or false,
offset or false]``. One script runs at a time, so every inbox sees routed
batches in one global order, and no state entry can come between the check
and the routing."""


_FRAMED_INDEX = [pack((b"%d" % i,)) for i in range(READ_COUNT * 2)]
"""The indexes 0, 1, ... of a routed batch as :func:`pack` frames (``b"1\\n0"``...)."""


class ClusterError(Exception):
    """The cluster's Redis cannot be used at start (one line for the operator)."""


class RedisLog:
    """The :class:`~ircd.cluster.log.Transport` over Redis, and the node's tasks.

    ``server`` is the core; its pseudo-users must exist already (they are
    every node's own). :meth:`start` joins the network (raises
    :class:`ClusterError` if Redis cannot be reached); :meth:`close` leaves it.
    """

    def __init__(self, server: Server, url: str, node_name: str, node_timeout: float) -> None:
        self.server = server
        self.url = url
        self.node_timeout = node_timeout
        # (typed Any: redis-py's stubs give every reply as bytes | str | int ...)
        self.redis: Any = aioredis.from_url(url, socket_timeout=COMMAND_TIMEOUT,
                                       socket_connect_timeout=COMMAND_TIMEOUT)
        # XREAD BLOCK holds its connection: its own client, with a longer timeout.
        self.reader_redis: Any = aioredis.from_url(url, socket_timeout=COMMAND_TIMEOUT + READ_BLOCK_MS / 1000,
                                              socket_connect_timeout=COMMAND_TIMEOUT)
        node = NodeInfo(self._new_id(), node_name, server.name, server.config.server.description)
        self.replication = Replication(server, node, self)
        self.available = False
        self.epoch = ""
        self.last_id = "0-0"
        self.last_offset = 0                  # offset of last_id's entry (0: not known)
        self._append_script = self.redis.register_script(APPEND_SCRIPT)
        # (entry, seq, retry, route: (state position, target nodes) or None)
        self._queue: list[tuple[bytes, int, bool, tuple[str, frozenset[int]] | None]] = []
        self.inbox_id = "0-0"                 # the last inbox entry read
        self.inbox_offset = 0                 # its offset (0: none read yet)
        self.routed_batches = 0               # write batches routed (metrics, bench)
        self._write_script = self.redis.register_script(WRITE_SCRIPT)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()   # running; see _spawn
        self._down_since: float | None = None
        self._grace_until = 0.0
        self._reported: set[int] = set()
        self._rejoin: str | None = None       # why this node must rejoin (then a new node id)
        self._generation = 0                  # bumped on each (re)join: stale reads are dropped
        self._history_since: float | None = time.time() - HISTORY_MARGIN  # history not applied since
        self._closing = False

    @staticmethod
    def _new_id() -> int:
        return secrets.randbits(30) | (1 << 30)

    def _key(self, name: str) -> str:
        return PREFIX + name

    # -- start and stop -----------------------------------------------------------

    async def start(self) -> None:
        """Connect, join the network (founding it or loading a snapshot), start the tasks."""
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            raise ClusterError(f"cannot reach the cluster's Redis at {redact_url(self.url)}: "
                               f"{redact_text(str(exc), self.url)}") from None
        try:
            await self._join()
        except (RedisError, OSError) as exc:
            raise ClusterError(f"joining the cluster at {redact_url(self.url)} failed: "
                               f"{redact_text(str(exc), self.url)}") from None
        for coro in (self._read_loop(), self._write_loop(), self._heartbeat_loop()):
            self._spawn(coro)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task of this node (cancelled by :meth:`close`; forgotten when done)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Leave the network: send what is queued (the users' quits), then say this node
        is gone, so the others need not wait for its key to expire."""
        self._closing = True
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while (self._queue or self._sending) and time.monotonic() < deadline and self.available:
            self._wake.set()
            await asyncio.sleep(0.02)
        for task in list(self._tasks):
            task.cancel()
        node = self.replication.node
        try:
            await self._append("e", self.replication.lost_entry(node.id))
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.delete(self._key(f"node:{node.id}"))
                pipe.delete(self._key(f"inbox:{node.id}"))
                pipe.hdel(self._key("inbox_offsets"), self._key(f"inbox:{node.id}"))
                pipe.hdel(self._key("nodes"), str(node.id))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("leaving the cluster: %r", exc)
        for client in (self.redis, self.reader_redis):
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    async def _join(self) -> None:
        """Say hello; load the world from the smallest synced node's snapshot, or found it."""
        repl = self.replication
        r = self.redis
        while True:
            await self._check_epoch()
            node = repl.node
            await self._refresh(synced=False)
            hello_id, hello_offset = await self._append("e", repl.hello_entry())
            peers = await self._synced_peers()
            # Founding is decided once per epoch (SET NX): two nodes starting together on
            # an empty Redis must not both found, each ignoring the other's entries.
            if not peers:
                if await r.set(self._key(f"founder:{self.epoch}"), node.id, nx=True,
                               ex=FOUNDER_LOCK):
                    repl.found()
                    log.info("node %s (id %x) founded the network", node.name, node.id)
                    break
                await asyncio.sleep(0.3)  # another node is founding it: say hello again
                continue
            data = await self._wait_snapshot(hello_id)
            if data is not None:
                repl.load_snapshot(data)
                log.info("node %s (id %x) joined %d other node(s): %d users, "
                         "%d channels", node.name, node.id, len(repl.nodes) - 1,
                         len(repl.by_id), len(self.server.world.channels))
                break
            log.warning("no snapshot from %s within %.0f s; saying hello again",
                        ", ".join(f"{p:x}" for p in peers), SNAPSHOT_WAIT)
        self.last_id, self.last_offset = hello_id, hello_offset
        self.inbox_id = "0-0"   # a new node id: a new, empty inbox
        self.inbox_offset = 0
        repl.position = hello_id   # the replica is the world right after its hello
        self._spawn(self._catch_up_history())
        self._generation += 1
        self.available = True
        self._down_since = None
        self._grace_until = time.monotonic() + self.node_timeout
        await self._refresh(synced=True)

    async def _catch_up_history(self) -> None:
        """Merge into the in-memory history the messages this node did not apply: those
        sent between the start (or the outage) and its join, which their senders'
        nodes have written to the database meanwhile (docs/cluster.md "History")."""
        history = self.server.history
        since = self._history_since
        if history is None or since is None:
            return
        await asyncio.sleep(HISTORY_CATCH_UP)
        try:
            rows = await asyncio.to_thread(history.recent_rows, since)
        except Exception as exc:  # noqa: BLE001 - e.g. PostgreSQL restarting: say so, go on
            log.warning("history catch-up failed: %r", exc)
            return
        self._history_since = None
        added = history.merge(rows)
        if added:
            log.info("history: %d messages sent while this node was joining merged", added)

    async def _synced_peers(self) -> list[int]:
        """Ids of the other nodes that hold the world and whose liveness key exists."""
        me = self.replication.node.id
        table = await self.redis.hgetall(self._key("nodes"))
        ids = [int(k) for k, v in table.items() if v == b"synced" and int(k) != me]
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.exists(self._key(f"node:{i}"))
            alive = await pipe.execute()
        dead = [str(i) for i, up in zip(ids, alive, strict=True) if not up]
        if dead:  # nodes that ended without leaving (a node sets its key before its field)
            await self.redis.hdel(self._key("nodes"), *dead)
        return [i for i, up in zip(ids, alive, strict=True) if up]

    async def _wait_snapshot(self, hello_id: str) -> bytes | None:
        deadline = time.monotonic() + SNAPSHOT_WAIT
        key = self._key(f"snapshot:{hello_id}")
        while time.monotonic() < deadline:
            data = await self.redis.get(key)
            if data is not None:
                return bytes(data)
            await asyncio.sleep(0.05)
        return None

    async def _append(self, field: str, value: bytes) -> tuple[str, int]:
        """Append one stream entry ``{field: value, "o": offset}``; return its id and offset.

        Raises :class:`redis.exceptions.RedisError` or :class:`OSError` if Redis fails.
        """
        entry_id, offset = await self._append_script(
            keys=[self._key("log"), self._key("offset"), self._key("last")],
            args=[STREAM_MAXLEN, field, value])
        return entry_id.decode(), int(offset)

    async def _check_epoch(self) -> bool:
        """Read the epoch; set one if there is none. True if it changed since last seen."""
        r = self.redis
        await r.set(self._key("epoch"), secrets.token_hex(8), nx=True)
        epoch = (await r.get(self._key("epoch")) or b"").decode()
        changed = bool(self.epoch) and epoch != self.epoch
        self.epoch = epoch
        return changed

    async def _refresh(self, synced: bool = True) -> None:
        node = self.replication.node
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self._key(f"node:{node.id}"), node.name, ex=max(1, round(self.node_timeout)))
            pipe.hset(self._key("nodes"), str(node.id), "synced" if synced else "joining")
            await pipe.execute()

    # -- the Transport -------------------------------------------------------------

    _sending = False

    def append(self, data: bytes, seq: int, *, retry: bool = False) -> None:
        """Queue one entry; the writer task appends the queue as one stream entry (a batch)."""
        self._queue.append((data, seq, retry, None))
        self._wake.set()

    def route(self, data: bytes, seq: int, position: str, targets: frozenset[int]) -> None:
        """Queue one message judged at ``position`` for the nodes ``targets``: the
        writer task routes it (:data:`WRITE_SCRIPT`) or appends it."""
        self._queue.append((data, seq, False, (position, targets)))
        self._wake.set()

    def put_snapshot(self, entry_id: str, data: bytes) -> None:
        """Store the snapshot for the node whose hello is ``entry_id`` (in the background)."""
        async def put() -> None:
            try:
                await self.redis.set(self._key(f"snapshot:{entry_id}"), data, ex=SNAPSHOT_TTL)
                log.info("sent a snapshot (%d bytes) at %s", len(data), entry_id)
            except (RedisError, OSError) as exc:
                log.warning("storing a snapshot failed: %r", exc)
        self._spawn(put())

    def drop_inbox(self, node_id: int) -> None:
        """Delete a lost node's inbox and its offset (in the background): a node that
        crashed never deletes its own (:meth:`close` does, on a clean exit)."""
        async def drop() -> None:
            inbox = self._key(f"inbox:{node_id}")
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.delete(inbox)
                    pipe.hdel(self._key("inbox_offsets"), inbox)
                    await pipe.execute()
            except (RedisError, OSError) as exc:
                log.warning("deleting the inbox of lost node %x failed: %r", node_id, exc)
        self._spawn(drop())

    def reset(self, why: str) -> None:
        """Drop this node's users and the replica; rejoin as a new node (heartbeat task)."""
        if self._rejoin is None:
            self._rejoin = why
            since = time.time() - HISTORY_MARGIN
            self._history_since = min(self._history_since or since, since)
            self._drop_everything("Cluster unavailable")

    def _drop_everything(self, error: str) -> None:
        """Disconnect every local user and forget the network (before a rejoin)."""
        server = self.server
        repl = self.replication
        self.available = False
        self._generation += 1
        for seq in list(repl.waiting):
            repl.failed(seq)
        # Nothing queued under the old node id may reach the log: the users were told
        # it failed, and the others remove that node's users when its key expires.
        self._queue = []
        for client in repl.local_users():
            client.quitting = True
            client.close(error)
        # The users leave this replica as if an entry of this node said so (nothing
        # they trigger is published: the others drop them when this node is lost).
        repl.clock.current = Apply(time.time(), repl.node.id, True, f"{repl.node.id:x}.drop")
        try:
            for client in list(repl.by_id.values()):
                repl.by_id.pop(client.id, None)
                client.quitting = True
                server._leave_world(client, "Cluster unavailable")
        finally:
            repl.clock.current = None
        repl.nodes.clear()
        repl.synced = False

    # -- tasks -----------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._queue:
                continue
            batch, self._queue = self._queue, []
            if not self.available:
                self._give_up(batch)
                continue
            self._sending = True
            try:
                # One script per batch: redis-py spends tens of µs of CPU per command,
                # even pipelined, and a batch is appended whole or not at all.
                await self._write(batch)
            except (RedisError, OSError) as exc:
                self._went_down(exc)
                self._give_up(batch)
            finally:
                self._sending = False

    async def _write(self, batch: list[tuple[bytes, int, bool,
                                            tuple[str, frozenset[int]] | None]]) -> None:
        """Send one write batch with :data:`WRITE_SCRIPT`: its routed messages to
        their nodes' inboxes if they were all judged at the state stream's last
        entry, else (and its other entries always) to the state stream, in the
        order queued."""
        routed = [item for item in batch if item[3] is not None]
        state = [item[0] for item in batch if item[3] is None]
        positions = {item[3][0] for item in routed if item[3] is not None}
        if len(positions) > 1:  # judged at different positions: some judgement is stale
            routed, state = [], [item[0] for item in batch]
        if not routed:
            if state:
                await self._append("b", pack(state))
            return
        position = positions.pop()
        # Each message is framed (pack's "<length>\n<entry>") once, and its frame is
        # joined into the fall-back and into each target node's inbox value.
        framed = [b"%d\n%s" % (len(item[0]), item[0]) for item in routed]
        per_node: dict[int, list[bytes]] = {}
        for i, item in enumerate(routed):
            index = _FRAMED_INDEX[i] if i < len(_FRAMED_INDEX) else pack((b"%d" % i,))
            frame = framed[i]
            for node in item[3][1]:  # type: ignore[index]
                parts = per_node.get(node)
                if parts is None:
                    parts = per_node[node] = []
                parts.append(index)
                parts.append(frame)
        nodes = sorted(per_node)
        number, _id, _offset = await self._write_script(
            keys=[self._key("log"), self._key("offset"), self._key("last"),
                  self._key("routed"), self._key("inbox_offsets"),
                  *(self._key(f"inbox:{n}") for n in nodes)],
            args=[STREAM_MAXLEN, position, b"".join(framed), pack(state), "",
                  *(b"".join(per_node[n]) for n in nodes)])
        self.routed_batches += bool(number)

    def _give_up(self, batch: list[tuple[bytes, int, bool,
                                         tuple[str, frozenset[int]] | None]]) -> None:
        """Entries that could not be appended: refuse them, or keep them (``retry``)."""
        keep = [item for item in batch if item[2]]
        self._queue[:0] = keep
        for _data, seq, retry, _route in batch:
            if not retry:
                self.replication.failed(seq)

    def _went_down(self, exc: BaseException) -> None:
        if self.available:
            log.error("Redis unavailable (%r); refusing changes until it is back", exc)
        self.available = False
        if self._down_since is None:
            self._down_since = time.monotonic()

    async def _read_loop(self) -> None:
        """Read the state stream and this node's inbox and apply them, merged.

        Both are read by one XREAD: one snapshot, in which every inbox entry
        stamped P is present if state entry P+1 is (the routing script checks,
        atomically, that P is the last state entry). An inbox entry stamped P
        is applied right after state entry P; a state entry is applied only
        once every inbox entry stamped before it is known to be read (the
        inbox part of the reply was not cut by COUNT). What is left is read
        again. An XREAD BLOCK that had to wait may be answered with the one
        stream that woke it: a reply with state entries and no inbox part is
        therefore read again without BLOCK (a snapshot) before it is applied;
        one with inbox entries only is applied as it is (they are stamped at
        state entries this node has, or wait).
        """
        r = self.reader_redis
        key = self._key("log")
        key_b = key.encode()
        repl = self.replication
        while True:
            generation = self._generation
            if not repl.synced:
                await asyncio.sleep(0.1)
                continue
            inbox = self._key(f"inbox:{repl.node.id}")
            streams = {key: self.last_id, inbox: self.inbox_id}
            try:
                result = await r.xread(streams, count=READ_COUNT, block=READ_BLOCK_MS)
                if not result:
                    continue
                if len(result) == 1 and result[0][0] == key_b:
                    result = await r.xread(streams, count=READ_COUNT)   # a snapshot
            except (RedisError, OSError) as exc:
                self._went_down(exc)
                await asyncio.sleep(0.5)
                continue
            if generation != self._generation:
                continue  # this node rejoined meanwhile: read from its new position
            state: list[Any] = []
            routed: list[Any] = []
            for stream, entries in result:
                (state if stream == key_b else routed).extend(entries)
            repl.begin_batch()
            try:
                self._apply_merged(state, routed, len(routed) < READ_COUNT, generation)
            finally:
                repl.end_batch()   # the senders resume once per read batch

    def _apply_merged(self, state: list[Any], routed: list[Any], inbox_complete: bool,
                      generation: int) -> None:
        """Apply ``state`` entries and ``routed`` inbox entries (XREAD replies, in
        stream order) in log order, as far as that order is known (see
        :meth:`_read_loop`); ``last_id`` and ``inbox_id`` follow what was applied."""
        repl = self.replication
        ri = 0
        for raw_id, fields in state:
            ri = self._apply_routed_upto(routed, ri, generation)
            if ri < 0:
                return
            if ri == len(routed) and not inbox_complete:
                return  # more inbox entries may be stamped before this state entry
            entry_id = raw_id.decode()
            if self._gap(int(fields.get(b"o", 0))):
                return
            self.last_id = entry_id
            packed = fields.get(b"b")
            if packed is not None:
                for i, data in enumerate(unpack(packed)):
                    repl.apply(f"{entry_id}.{i}", data)
                    if generation != self._generation:
                        return
            elif (data := fields.get(b"e")) is not None:
                repl.apply(entry_id, data)
            if generation != self._generation:
                return
        self._apply_routed_upto(routed, ri, generation)

    def _apply_routed_upto(self, routed: list[Any], ri: int, generation: int) -> int:
        """Apply ``routed[ri:]`` while stamped at or before the last state entry
        applied; the index of the first one left, or -1 if this node reset meanwhile."""
        position = _stream_pos(self.last_id)
        while ri < len(routed) and _stream_pos(routed[ri][1][b"p"].decode()) <= position:
            self._apply_routed(*routed[ri])
            ri += 1
            if generation != self._generation:
                return -1
        return ri

    def _apply_routed(self, raw_id: bytes, fields: dict[bytes, bytes]) -> None:
        """Apply one inbox entry: its messages, under ids every target node shares.

        Its offset must follow the last one read, as in the stream (:meth:`_gap`):
        a jump means the inbox was trimmed past entries this node had not read,
        and it rejoins as a new node (its users lost messages)."""
        offset = int(fields.get(b"o", 0))
        last, self.inbox_offset = self.inbox_offset, offset or self.inbox_offset
        if last and offset > last + 1:
            log.error("missed %d inbox entries (trimmed before this node read them): "
                      "rejoining", offset - last - 1)
            self.reset("inbox entries missed")
            return
        self.inbox_id = raw_id.decode()
        self.replication.apply_routed(fields[b"p"].decode(), int(fields[b"n"]),
                                      int(fields[b"t"]) / 1000, list(unpack(fields[b"b"])))

    def _gap(self, offset: int) -> bool:
        """Check the offset of the next stream entry read; True if entries were missed.

        Offsets follow each other; a jump means that the stream was trimmed
        (``MAXLEN``, or an operator's XTRIM) past entries this node had not read:
        its replica missed changes, so it drops its users and rejoins from a
        snapshot (:meth:`reset`). An offset that goes back means Redis lost its
        data and counts again from 1 (the epoch check handles that).
        """
        last, self.last_offset = self.last_offset, offset or self.last_offset
        if last and offset > last + 1:
            log.error("missed %d stream entries (trimmed before this node read them): "
                      "rejoining", offset - last - 1)
            self.reset("stream entries missed")
            return True
        return False

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                await self._beat()
            except (RedisError, OSError) as exc:
                self._went_down(exc)
            self._check_outage()

    def _check_outage(self) -> None:
        """After ``node_timeout`` without Redis, the others count this node as lost:
        disconnect its users now (they can reconnect to a node that works)."""
        since = self._down_since
        if since is not None and self._rejoin is None and \
                time.monotonic() - since > self.node_timeout:
            log.error("Redis unavailable for %.0f s: disconnecting this node's users",
                      time.monotonic() - since)
            self.reset("Redis unavailable for longer than node_timeout")

    async def _beat(self) -> None:
        if self._rejoin is not None:
            why = self._rejoin
            await self.redis.ping()
            repl = self.replication
            repl.node = NodeInfo(self._new_id(), repl.node.name, repl.node.server, repl.node.info)
            self.server.node_id = repl.node.id
            log.warning("rejoining as node id %x (%s)", repl.node.id, why)
            self._reported.clear()
            await self._join()
            self._rejoin = None
            return
        changed = await self._check_epoch()
        await self._refresh()
        now = time.monotonic()
        if changed:
            log.warning("Redis lost its data (epoch changed); carrying on from the "
                        "replica, no node is declared lost for %.0f s", self.node_timeout)
            self._grace_until = now + self.node_timeout
            # Entries appended but not read back went with the old stream: refuse them
            # (their senders get 400), or they would wait forever.
            for seq in list(self.replication.waiting):
                self.replication.failed(seq)
        if not self.available:
            log.warning("Redis is back")
            self.available = True
            self._grace_until = max(self._grace_until, now + self.node_timeout)
            self._wake.set()  # the quits kept while it was away
        self._down_since = None
        if now < self._grace_until:
            return
        repl = self.replication
        others = [n for n in repl.nodes if n != repl.node.id and n not in self._reported]
        if not others:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for n in others:
                pipe.exists(self._key(f"node:{n}"))
            alive = await pipe.execute()
        for n, up in zip(others, alive, strict=True):
            if not up:
                log.warning("node %x's liveness key expired: declaring it lost", n)
                self._reported.add(n)
                self.append(repl.lost_entry(n), 0, retry=True)


def _stream_pos(entry_id: str) -> tuple[int, int]:
    """A stream id ``"<ms>-<n>"`` as a comparable pair."""
    ms, _, n = entry_id.partition("-")
    return int(ms), int(n or 0)


def default_node_name(port: int) -> str:
    """``<hostname>:<port>``, the default ``[cluster] node_name``."""
    return f"{socket.gethostname()}:{port}"
