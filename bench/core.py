"""CPU cost of the sans-I/O core alone: ``python -m bench.core``.

No sockets and no event loop: one :class:`ircd.core.Server` with in-memory
users whose one session's ``write`` appends to a list, driven through
:meth:`~ircd.core.Server.handle_line` exactly as the asyncio edge drives it.
It measures the two hot paths, a channel PRIVMSG fanned out to every member
and a direct PRIVMSG (the byte-level fast path), in CPU microseconds
(``time.process_time``), and prints the best of ``--repeat`` runs: the
minimum is the run least disturbed by whatever else the machine does, so two
versions of the server can be compared on a busy machine
(``PYTHONPATH=<other checkout> python -m bench.core``).

``--cluster`` adds the replication path (:mod:`ircd.cluster.log`) without
Redis: three cores with their :class:`~ircd.cluster.log.Replication`, the
log in memory (:mod:`ircd.cluster.memory`, routed messages included). A
direct PRIVMSG from a user on node A to a user on node B costs A's submit
(parse, judge, encode the entry), A's apply (the sender's reply) and B's
apply (the delivery); node C, with no recipient, applies nothing for a
routed message; a channel PRIVMSG the same with ``--members`` members split
over A and B. What ``python -m bench --cluster-nodes``
measures per entry beyond these is the edge: redis-py, asyncio, the sockets.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _server(tmp: Path, cluster: bool = False):
    from ircd.accounts import AccountStore
    from ircd.config import Config
    from ircd.core import ImmediateScheduler, Server
    from ircd.storage.sqlite import SQLiteAccountRows
    from ircd.worldlog import EntryClock

    config = (Config().with_overrides("simple", echobot=False)
              .with_overrides("services", enabled=False))
    tmp.mkdir(parents=True, exist_ok=True)
    store = AccountStore(SQLiteAccountRows(tmp / "db"), time_cost=1, memory_cost=1024)
    clock = EntryClock(time.time) if cluster else time.time
    return Server(config, store, ImmediateScheduler(), clock=clock), store


def _user(server, nick: str, sink: list[bytes]):
    from ircd.state import CallbackSession

    client = server.new_client(CallbackSession(sink.append), "127.0.0.1")
    server.handle_line(client.session, f"NICK {nick}".encode())
    server.handle_line(client.session, f"USER {nick} 0 * :{nick}".encode())
    return client


def fanout(members: int, messages: int) -> float:
    """CPU µs per delivery of a channel PRIVMSG to ``members`` members."""
    with tempfile.TemporaryDirectory() as tmp:
        server, store = _server(Path(tmp))
        sink: list[bytes] = []
        users = [_user(server, f"u{i}", sink) for i in range(members)]
        for u in users:
            server.handle_line(u.session, b"JOIN #bench")
        sender = users[0].session
        line = b"PRIVMSG #bench :" + b"x" * 64
        sink.clear()
        start = time.process_time()
        for _ in range(messages):
            server.handle_line(sender, line)
            sink.clear()
        spent = time.process_time() - start
        store.close()
    return spent / (messages * (members - 1)) * 1e6


def direct(messages: int) -> float:
    """CPU µs per direct PRIVMSG between two users."""
    with tempfile.TemporaryDirectory() as tmp:
        server, store = _server(Path(tmp))
        sink: list[bytes] = []
        a = _user(server, "alice", sink)
        _user(server, "bob", sink)
        line = b"PRIVMSG bob :" + b"x" * 64
        sink.clear()
        session = a.session
        start = time.process_time()
        for _ in range(messages):
            server.handle_line(session, line)
            sink.clear()
        spent = time.process_time() - start
        store.close()
    return spent / messages * 1e6


def cluster(members: int, messages: int) -> tuple[float, float, float]:
    """CPU µs per entry of a clustered PRIVMSG (``members`` = 0: direct, else to a channel
    of that many members, alternately on nodes a and b), on the in-process log
    (:mod:`ircd.cluster.memory`): ``(origin node a: submit and apply, node b with
    recipients: apply, node c with none: apply)``. The origin's submit and apply
    interleave (at most 32 lines in flight, as the edge allows 64), so they are
    measured together."""
    from ircd.cluster.log import NodeInfo
    from ircd.cluster.memory import MemoryLog

    with tempfile.TemporaryDirectory() as tmp:
        log = MemoryLog(time.time)
        servers, stores = [], []
        for i, name in enumerate("abc"):
            server, store = _server(Path(tmp) / name, cluster=True)
            log.join(server, NodeInfo(1 << 30 | (i + 1), name, f"{name}.bench"))
            servers.append(server)
            stores.append(store)
        ports = log.ports
        a, b, _c = servers
        pa, pb, pc = ports
        ra = pa.repl

        def pump_all() -> None:
            for p in ports:
                log.step(p, 1 << 30)

        sink: list[bytes] = []
        n = max(2, members)
        users = [_user(a if i % 2 == 0 else b, f"u{i}", sink) for i in range(n)]
        for _ in range(2):
            pump_all()
        sender = users[0]
        if members:
            for u in users:
                (a if u.node == ra.node.id else b).handle_line(u.session, b"JOIN #bench")
                pump_all()
            line = b"PRIVMSG #bench :" + b"x" * 64
        else:
            line = f"PRIVMSG {users[1].nick} :".encode() + b"x" * 64
        assert sender.registered and users[1].registered
        sink.clear()
        first = len(log.entries) + len(log.routed)
        session = sender.session
        t0 = time.process_time()
        for _ in range(messages):
            a.handle_line(session, line)
            if session.in_flight >= 32:   # stay below MAX_IN_FLIGHT, as the edge would
                log.step(pa, 1 << 30)
        log.step(pa, 1 << 30)
        t1 = time.process_time()
        log.step(pb, 1 << 30)
        t2 = time.process_time()
        log.step(pc, 1 << 30)
        t3 = time.process_time()
        entries = len(log.entries) + len(log.routed) - first
        assert entries == messages, (entries, messages)
        got = sum(chunk.count(b" PRIVMSG ") for chunk in sink)
        expected = messages * (max(1, members - 1) if members else 1)
        assert got >= expected, (got, expected)
        for store in stores:
            store.close()
    return ((t1 - t0) / messages * 1e6, (t2 - t1) / messages * 1e6,
            (t3 - t2) / messages * 1e6)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.core", description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=7, help="runs per measurement (best is shown)")
    p.add_argument("--members", type=int, default=200)
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--cluster", action="store_true",
                   help="also the clustered paths (two replicas, the log in memory)")
    args = p.parse_args(argv)
    import ircd

    rows = [
        (f"channel PRIVMSG to {args.members} members", "µs per delivery",
         min(fanout(args.members, args.messages) for _ in range(args.repeat))),
        ("direct PRIVMSG", "µs per message",
         min(direct(args.messages * 20) for _ in range(args.repeat))),
    ]
    if args.cluster:
        for label, members, count in (("direct PRIVMSG", 0, args.messages * 10),
                                      (f"channel PRIVMSG to {args.members} members", args.members,
                                       args.messages)):
            runs = [cluster(members, count) for _ in range(args.repeat)]
            rows.append((f"cluster {label}: origin node (submit + apply)", "µs per entry",
                         min(r[0] for r in runs)))
            rows.append((f"cluster {label}: node with recipients (apply)", "µs per entry",
                         min(r[1] for r in runs)))
            rows.append((f"cluster {label}: node without recipients (apply)", "µs per entry",
                         min(r[2] for r in runs)))
    print(f"core: {Path(ircd.__file__).parent} (best of {args.repeat})\n")
    print("| path | unit | CPU |")
    print("| --- | --- | ---: |")
    for name, unit, value in rows:
        print(f"| {name} | {unit} | {value:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
