"""Cluster mode of the benchmark: N of our nodes over one redis-server (``--cluster-nodes N``).

A :class:`ClusterProcess` looks to the scenarios like one
:class:`~bench.servers.ServerProcess`: ``ports`` lists the nodes' ports (the
scenarios spread their clients round-robin over them), ``meter()`` measures
the CPU of every node *and* of redis-server, ``counters()`` reads Redis's
counters (stream entries added, network bytes), and ``memory_kib()`` sums
the nodes' and Redis's memory. Every scenario gets a fresh Redis, a fresh
PostgreSQL database (on one PostgreSQL per benchmark run, see
:class:`~bench.engines.PostgresProcess`) and fresh nodes; node ``n1`` founds
the network and the others join it one after the other (each opens its
port only once it has joined, so waiting for the port waits for the join).

The nodes and redis-server are pinned together to the CPU the single server
uses (``--no-pin`` lifts it), so a cluster row and a single-node row of one
run have the same CPU budget; PostgreSQL is not pinned and its CPU is
reported apart (``postgres CPU s``) — in these scenarios it only stores
channel history, which the single server writes to SQLite.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import resource
from dataclasses import replace
from typing import Any

from bench.engines import PostgresProcess, RedisProcess, Resp, RespError, children_cpu_seconds
from bench.procstat import Meter, memory_kib
from bench.servers import SERVER_CPU, ServerError, ServerProcess, ServerSpec
from ircd.cluster.log import unpack

STREAM = "chatserver:log"
"""The cluster's log stream (ircd/cluster/redis.py)."""
ROUTED = "chatserver:routed"
"""The number of routed batches so far (each one script call, like a stream entry)."""
INBOXES = "chatserver:inbox:*"
"""The nodes' inbox streams of routed messages (docs/cluster.md "Routed messages")."""

_POSTGRES: list[PostgresProcess] = []


def shared_postgres() -> PostgresProcess:
    """The benchmark run's PostgreSQL, started on first use (stopped by :func:`stop_postgres`)."""
    if not _POSTGRES:
        _POSTGRES.append(PostgresProcess().start())
    return _POSTGRES[0]


def stop_postgres() -> None:
    """Stop the run's PostgreSQL if it was started (also at exit)."""
    while _POSTGRES:
        _POSTGRES.pop().stop()


_RUNNING: set[ClusterProcess] = set()
"""Clusters started and not yet stopped (stopped at exit, like the single servers)."""


def _stop_everything() -> None:
    for cluster in list(_RUNNING):
        cluster.stop(grace=2.0)
    stop_postgres()


atexit.register(_stop_everything)


def _pin_child(pin: bool) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if pin:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {SERVER_CPU})
    os.setsid()


class ClusterProcess:
    """``n`` nodes of our server over one fresh redis-server (and a fresh PostgreSQL database).

    ``spec`` is the nodes' :class:`~bench.servers.ServerSpec` (kind ``"ours"``);
    the rows it produces are labelled ``spec.kind`` = ``"cluster-<n>"``.
    """

    def __init__(self, spec: ServerSpec, n: int) -> None:
        if n < 1:
            raise ValueError("a cluster needs at least one node")
        self.n = n
        self.node_spec = replace(spec, kind="ours")
        self.spec = replace(spec, kind=f"cluster-{n}")
        self.redis: RedisProcess | None = None
        self.nodes: list[ServerProcess] = []
        self.pg_url = ""
        self.stream_sample: dict[str, float] = {}

    # -- the ServerProcess interface -------------------------------------------

    @property
    def port(self) -> int:
        """Node 1's port."""
        return self.nodes[0].port

    @property
    def ports(self) -> list[int]:
        """Every node's port, node 1 first."""
        return [node.port for node in self.nodes]

    @property
    def pid(self) -> int:
        """Node 1's process id."""
        return self.nodes[0].pid

    async def start(self, timeout: float = 30.0) -> None:
        """Start Redis, create a database, start the nodes one after the other."""
        pin = self.node_spec.pin
        _RUNNING.add(self)
        try:
            self.redis = RedisProcess(preexec=lambda: _pin_child(pin)).start()
            self.pg_url = shared_postgres().new_database()
        except Exception as exc:
            self.stop()
            raise ServerError(f"cluster engines: {exc}") from None
        for i in range(1, self.n + 1):
            args = ("--cluster", self.redis.url, "--database", self.pg_url,
                    "--node-name", f"n{i}", "--server-name", f"n{i}.bench.chatserver.local")
            node = ServerProcess(replace(self.node_spec, args=args,
                                         label=f"{self.node_spec.label}-n{i}"))
            self.nodes.append(node)
            try:
                await node.start(timeout)
            except Exception:
                self.stop()
                raise

    def meter(self) -> Meter:
        """CPU of node 1 (``server``), the other nodes (``n2``...) and ``redis``."""
        others = {f"n{i}": node.pid for i, node in enumerate(self.nodes[1:], start=2)}
        if self.redis is not None and self.redis.proc is not None:
            others["redis"] = self.redis.pid
        return Meter(self.pid, others)

    def counters(self) -> dict[str, float] | None:
        """Redis's counters now: ``entries`` added to the log stream (ever) plus routed
        batches (each sent with one script call, to the inboxes of the nodes it
        concerns), ``net_in`` / ``net_out`` bytes, ``commands`` processed,
        ``postgres_cpu`` seconds."""
        if self.redis is None:
            return None
        r = self.redis.client()
        try:
            stats = r.info("stats")
            out = {"net_in": float(stats["total_net_input_bytes"]),
                   "net_out": float(stats["total_net_output_bytes"]),
                   "commands": float(stats["total_commands_processed"]),
                   "entries": float(_xinfo(r).get("entries-added", 0))
                   + float(r.command("GET", ROUTED) or 0)}
        except (OSError, RespError, KeyError, ValueError):
            return None
        finally:
            r.close()
        if _POSTGRES:
            out["postgres_cpu"] = children_cpu_seconds(_POSTGRES[0].pid)
        return out

    def stream_stats(self) -> dict[str, float]:
        """The log stream's size now: ``length`` (XLEN, stream entries), ``bytes``
        (MEMORY USAGE, all samples), and from the last 1,000 stream entries of
        the log and of each inbox ``entry_bytes`` (mean payload per log entry
        or routed message) and ``per_stream_entry`` (mean log entries or
        messages per stream entry: a field ``b`` is a batch)."""
        if self.redis is None:
            return {}
        r = self.redis.client()
        try:
            length = float(r.command("XLEN", STREAM))
            used = r.command("MEMORY", "USAGE", STREAM, "SAMPLES", "0")
            recent = r.command("XREVRANGE", STREAM, "+", "-", "COUNT", "1000") or []
            inboxes = r.command("KEYS", INBOXES) or []
            routed = [e for key in inboxes
                      for e in r.command("XREVRANGE", key, "+", "-", "COUNT", "1000") or []]
        except (OSError, RespError):
            return {}
        finally:
            r.close()
        payload = entries = 0
        for _id, fields in recent:
            for name, value in zip(fields[::2], fields[1::2], strict=False):
                if name == b"o":  # the stream entry's offset, not a log entry
                    continue
                payload += len(value)
                entries += sum(1 for _ in unpack(value)) if name == b"b" else 1
        for _id, fields in routed:   # b: index, message, index, message...
            for name, value in zip(fields[::2], fields[1::2], strict=False):
                if name == b"b":
                    messages = list(unpack(value))[1::2]
                    payload += sum(len(m) for m in messages)
                    entries += len(messages)
        recent = recent + routed
        out = {"length": length, "bytes": float(used or 0)}
        if entries:
            out["entry_bytes"] = payload / entries
            out["per_stream_entry"] = entries / len(recent)
        return out

    def alive(self) -> bool:
        """True while every node and redis-server run."""
        return (bool(self.nodes) and all(node.alive() for node in self.nodes)
                and self.redis is not None and self.redis.alive())

    def memory_kib(self) -> tuple[int, int] | None:
        """``(VmRSS, VmHWM)`` in KiB summed over the nodes and redis-server."""
        pids = [node.pid for node in self.nodes if node.alive()]
        if self.redis is not None and self.redis.alive():
            pids.append(self.redis.pid)
        mems = [m for m in (memory_kib(pid) for pid in pids) if m is not None]
        if not mems:
            return None
        return sum(m[0] for m in mems), sum(m[1] for m in mems)

    def node_memory_kib(self) -> list[int]:
        """Each node's VmRSS in KiB (0 for a node that is gone)."""
        return [(node.memory_kib() or (0, 0))[0] for node in self.nodes]

    def log_tail(self, limit: int = 800) -> str:
        """The log tails of the nodes that died (or of every node), and of Redis if it died."""
        dead = [n for n in self.nodes if not n.alive()] or self.nodes
        parts = [f"n{self.nodes.index(n) + 1}: {n.log_tail(limit // max(1, len(dead)))}"
                 for n in dead]
        if self.redis is not None and not self.redis.alive():
            with contextlib.suppress(OSError):
                parts.append("redis: " + self.redis.log_path.read_text(errors="replace")[-200:])
        return " | ".join(parts)

    def stop(self, grace: float = 5.0) -> int | None:
        """Stop the nodes (they leave the network), then Redis; the database stays until
        the run's PostgreSQL stops."""
        code = None
        _RUNNING.discard(self)
        for node in reversed(self.nodes):
            c = node.stop(grace)
            code = code if code not in (None, 0) else c
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        return code


def _xinfo(r: Resp) -> dict[str, Any]:
    try:
        reply = r.command("XINFO", "STREAM", STREAM)
    except RespError:  # no such key: nothing appended yet
        return {}
    return {reply[i].decode(): reply[i + 1] for i in range(0, len(reply) - 1, 2)}
