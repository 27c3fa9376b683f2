"""The cluster's log in process: the state stream as a list, routed messages beside it.

The same two streams as :mod:`ircd.cluster.redis`, without Redis or asyncio,
for tests and ``bench.core``: several :class:`~ircd.cluster.log.Replication`
replicas in one process, each applying at its own pace (:meth:`MemoryLog.step`).

- :attr:`MemoryLog.entries` is the state stream: every node applies every
  entry, in order.
- :attr:`MemoryLog.routed` holds the routed messages (compare and route,
  docs/cluster.md "Routed messages"): :meth:`MemoryPort.route` puts a message
  there, stamped with the state stream's last index, if the sender judged it
  at that position, and appends it to the state stream otherwise. A node
  applies a routed message meant for it right after the state entry it is
  stamped with and before the next one, which is the order
  :mod:`ircd.cluster.redis` keeps with one inbox stream per node.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ircd.cluster.log import ROUTED_BASE, NodeInfo, Replication

if TYPE_CHECKING:
    from ircd.core import Server


@dataclass(slots=True, frozen=True)
class Routed:
    """One routed message: stamped with state index ``stamp``, for node ids ``targets``."""

    stamp: int
    number: int
    data: bytes
    targets: frozenset[int]
    at: float


class MemoryPort:
    """One node's :class:`~ircd.cluster.log.Transport` on a :class:`MemoryLog`.

    ``pos`` is the index of the next state entry it applies, ``rpos`` that of
    the next routed message it looks at; ``repl`` is set once the node exists.
    """

    def __init__(self, log: MemoryLog) -> None:
        self.log = log
        self.available = True
        self.pos = 0
        self.rpos = len(log.routed)
        self.repl: Replication

    def append(self, data: bytes, seq: int, *, retry: bool = False) -> None:
        """Append to the state stream."""
        self.log.entries.append(data)

    def route(self, data: bytes, seq: int, position: str, targets: frozenset[int]) -> None:
        """Route to ``targets`` if ``position`` is still the state stream's last entry,
        else append to the state stream (compare and route)."""
        log = self.log
        last = len(log.entries) - 1
        if position == log.entry_id(last):
            log.routed.append(Routed(last, len(log.routed), data, targets, log.clock()))
        else:
            log.entries.append(data)

    def put_snapshot(self, entry_id: str, data: bytes) -> None:
        """Keep the snapshot for the node whose ``hello`` is ``entry_id``."""
        self.log.snapshots[entry_id] = data

    def drop_inbox(self, node_id: int) -> None:
        """Nothing to delete: in process, routed messages are one shared list."""

    def reset(self, why: str) -> None:
        """No node is declared lost in process."""
        raise AssertionError(f"no node is declared lost here: {why}")


class MemoryLog:
    """The streams as lists; ``clock()`` gives a routed message its time (unix seconds)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.entries: list[bytes] = []
        self.routed: list[Routed] = []
        self.snapshots: dict[str, bytes] = {}
        self.ports: list[MemoryPort] = []   # the nodes that joined, in order

    def join(self, server: Server, node: NodeInfo, port: MemoryPort | None = None) -> MemoryPort:
        """Node ``node`` (its core ``server``) joins the network as a node does on
        Redis: it appends its ``hello``, then founds the network (the first node)
        or, once every node has applied that hello (:meth:`settle`), loads the
        snapshot taken right after it. Returns its port (``port``, or a new
        :class:`MemoryPort`), added to :attr:`ports`."""
        port = MemoryPort(self) if port is None else port
        port.repl = Replication(server, node, port)
        self.entries.append(port.repl.hello_entry())
        hello = len(self.entries) - 1
        if not self.ports:
            port.repl.found()
        else:
            self.settle()
            port.repl.load_snapshot(self.snapshots[self.entry_id(hello)])
        port.pos = hello + 1
        self.ports.append(port)
        return port

    def settle(self) -> None:
        """Every node applies everything, entries appended meanwhile included."""
        while any(self.behind(p) for p in self.ports):
            for port in self.ports:
                self.step(port, 1 << 30)

    @staticmethod
    def entry_id(index: int) -> str:
        """The stream id of state entry ``index`` (``"<ms>-0"``, 1 ms apart)."""
        return f"{1_700_000_000_000 + index}-0"

    def routed_id(self, item: Routed) -> str:
        """The id a routed message is applied under on every node it reaches."""
        return f"{self.entry_id(item.stamp)}.{ROUTED_BASE + item.number}.0"

    def step(self, port: MemoryPort, count: int) -> int:
        """``port``'s node applies up to ``count`` more entries, routed messages for it
        in their places; returns how many it applied."""
        repl = port.repl
        node = repl.node.id
        routed = self.routed
        done = 0
        repl.begin_batch()
        try:
            while done < count:
                while port.rpos < len(routed) and node not in routed[port.rpos].targets:
                    port.rpos += 1
                if port.rpos < len(routed) and routed[port.rpos].stamp < port.pos:
                    item = routed[port.rpos]
                    port.rpos += 1
                    # (a routed batch of one message: index 0, as the Redis edge's inboxes hold)
                    repl.apply_routed(self.entry_id(item.stamp), item.number, item.at,
                                      [b"0", item.data])
                elif port.pos < len(self.entries):
                    index = port.pos
                    port.pos += 1
                    repl.apply(self.entry_id(index), self.entries[index])
                else:
                    break
                done += 1
        finally:
            repl.end_batch()
        return done

    def behind(self, port: MemoryPort) -> bool:
        """True if ``port``'s node has entries left to apply."""
        node = port.repl.node.id
        return port.pos < len(self.entries) or any(
            node in r.targets for r in self.routed[port.rpos:])
