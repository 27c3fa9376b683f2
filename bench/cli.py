"""``python -m bench``: run the scenarios against our server and/or ngIRCd, print tables.

Exit codes: 0 when every scenario ran (lost messages are reported, not
fatal, unless ``--strict``); 1 when a scenario errored (server did not start,
set-up failed, server died) or, with ``--strict``, lost anything or timed out;
2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from bench.cluster import ClusterProcess, stop_postgres
from bench.report import cluster_table, comparison_table, details_table
from bench.scenarios import (
    Options,
    Result,
    run_idle,
    run_messages,
    run_storm,
    run_with_server,
)
from bench.servers import (
    ServerProcess,
    ServerSpec,
    Target,
    can_pin,
    pin_generator,
    raise_nofile,
    stop_all,
)

ALL_SCENARIOS = ("fanout", "dm", "idle", "storm")
ALL_MODES = ("pipe", "window")


@dataclass(frozen=True)
class Size:
    """Default counts of one ``--size``: fan-out shapes (receivers, senders, messages each)."""

    shapes: tuple[tuple[int, int, int], ...]
    pairs: int
    dm_messages: int
    connections: int
    accounts: int
    storm_seconds: float
    timeout: float
    idle_hold: float
    storm_baseline: float


SIZES = {
    "full": Size(shapes=((100, 5, 10_000), (500, 2, 2_000)), pairs=50, dm_messages=10_000,
                 connections=10_000, accounts=1_000, storm_seconds=10.0, timeout=120.0,
                 idle_hold=5.0, storm_baseline=2.0),
    "smoke": Size(shapes=((10, 2, 200),), pairs=5, dm_messages=200, connections=200,
                  accounts=20, storm_seconds=1.0, timeout=30.0, idle_hold=0.5,
                  storm_baseline=0.5),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (see ``python -m bench --help``)."""
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="IRC load generator: fan-out, direct messages, idle connections and a "
                    "registration storm against our server and/or ngIRCd on 127.0.0.1.")
    p.add_argument("--scenarios", default=",".join(ALL_SCENARIOS),
                   help="comma-separated subset of fanout,dm,idle,storm (default: all)")
    p.add_argument("--size", choices=sorted(SIZES), default="full",
                   help="default counts: full (minutes) or smoke (seconds, for CI)")
    p.add_argument("--server", "--against", dest="server",
                   choices=["ours", "ngircd", "both", "cluster"], default=None,
                   help="which server(s) to start and measure (default both; 'cluster' = only "
                        "the cluster rows)")
    p.add_argument("--cluster-nodes", default=None, metavar="N[,N...]",
                   help="also run every scenario on N of our nodes over one redis-server "
                        "(cluster mode; a list such as 1,2,3 gives a row per size; "
                        "default 2 with --server cluster)")
    p.add_argument("--modes", default=",".join(ALL_MODES),
                   help="sending modes for fanout and dm: pipe (as fast as possible), "
                        "window (at most --window lines in flight per sender)")
    p.add_argument("--receivers", type=int, help="fan-out: receivers (replaces the default shapes)")
    p.add_argument("--senders", type=int, help="fan-out: senders")
    p.add_argument("--messages", type=int, help="fan-out and dm: messages per sender")
    p.add_argument("--pairs", type=int, help="dm: sender/receiver pairs")
    p.add_argument("--connections", type=int, help="idle: connections")
    p.add_argument("--accounts", type=int, help="storm: new accounts registered")
    p.add_argument("--storm-seconds", type=float, help="storm: spread the accounts over this long")
    p.add_argument("--storm-window", type=int, default=10,
                   help="storm: conversation window per direction (default 10)")
    p.add_argument("--storm-rate", type=float, default=500.0,
                   help="storm: conversation lines per second per direction, 0 = unpaced "
                        "(default 500)")
    p.add_argument("--window", type=int, default=200, help="window size in lines (default 200)")
    p.add_argument("--timeout", type=float, help="hard deadline per scenario in seconds")
    p.add_argument("--stall", type=float, default=10.0,
                   help="end a scenario after this many seconds without deliveries (default 10)")
    p.add_argument("--concurrency", type=int, default=8,
                   help="connections registering at once (default 8; more overflows ngIRCd's listen backlog of 10)")
    p.add_argument("--body-bytes", type=int, default=64, help="PRIVMSG body length (default 64)")
    p.add_argument("--idle-hold", type=float, help="idle: seconds to hold before reading RSS")
    p.add_argument("--ours-extra", metavar="FILE",
                   help="TOML merged over our server's generated config.toml (key by key)")
    p.add_argument("--ngircd-extra", metavar="FILE",
                   help="text appended to ngIRCd's generated ngircd.conf")
    p.add_argument("--ours-autojoin", action="store_true",
                   help="keep our server's auto-join of #general (disabled by default)")
    p.add_argument("--no-pin", action="store_true",
                   help="do not pin the server and the generator to different CPUs")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--keep-logs", metavar="DIR",
                   help="copy each server's stdout/stderr log into DIR")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when anything was lost, out of order or timed out")
    return p


def _messages(srv: Target, o: Options, *, n: str, r: int, k: int, m: int, w: bool,
              direct: bool) -> Awaitable[Result]:
    return run_messages(srv, o, n, r, k, m, w, direct=direct)


def _idle(srv: Target, o: Options, *, n: str, c: int) -> Awaitable[Result]:
    return run_idle(srv, o, n, c)


def _storm(srv: Target, o: Options, *, n: str, a: int) -> Awaitable[Result]:
    return run_storm(srv, o, n, a)


def _with_opts(srv: Target, *, fn: Callable[[Target, Options], Awaitable[Result]],
               opts: Options) -> Awaitable[Result]:
    return fn(srv, opts)


def plan(args: argparse.Namespace) -> list[tuple[str, Callable[[Target, Options],
                                                                Awaitable[Result]]]]:
    """The list of ``(scenario name, coroutine function(server, options))`` to run."""
    size = SIZES[args.size]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for s in scenarios:
        if s not in ALL_SCENARIOS:
            raise SystemExit(f"python -m bench: unknown scenario {s!r} "
                             f"(choose from {','.join(ALL_SCENARIOS)})")
    for m in modes:
        if m not in ALL_MODES:
            raise SystemExit(f"python -m bench: unknown mode {m!r} (pipe or window)")
    shapes = list(size.shapes)
    if args.receivers or args.senders or args.messages:
        r0, s0, m0 = shapes[0]
        shapes = [(args.receivers or r0, args.senders or s0, args.messages or m0)]
    out: list[tuple[str, Callable[[Target, Options], Awaitable[Result]]]] = []

    def add(name: str, fn: Callable[[Target, Options], Awaitable[Result]]) -> None:
        out.append((name, fn))

    for s in scenarios:
        if s == "fanout":
            for r, k, m in shapes:
                for mode in modes:
                    name = f"fanout {r}x{k}x{m} {mode}"
                    add(name, partial(_messages, n=name, r=r, k=k, m=m, w=mode == "window",
                                      direct=False))
        elif s == "dm":
            pairs = args.pairs or size.pairs
            m = args.messages or size.dm_messages
            for mode in modes:
                name = f"dm {pairs}x{m} {mode}"
                add(name, partial(_messages, n=name, r=pairs, k=pairs, m=m, w=mode == "window",
                                  direct=True))
        elif s == "idle":
            c = args.connections or size.connections
            name = f"idle {c}"
            add(name, partial(_idle, n=name, c=c))
        elif s == "storm":
            a = args.accounts or size.accounts
            name = f"storm {a}"
            add(name, partial(_storm, n=name, a=a))
    return out


def options(args: argparse.Namespace) -> Options:
    """:class:`Options` from the parsed arguments and the ``--size`` defaults."""
    size = SIZES[args.size]
    return Options(
        timeout=args.timeout or size.timeout, stall=args.stall, window=args.window,
        concurrency=args.concurrency, body_bytes=args.body_bytes,
        idle_hold=args.idle_hold if args.idle_hold is not None else size.idle_hold,
        storm_seconds=args.storm_seconds or size.storm_seconds,
        storm_window=args.storm_window, storm_rate=args.storm_rate, storm_baseline=size.storm_baseline)


def _read(path: str | None) -> str:
    return "\n" + Path(path).read_text() if path else ""


def server_kinds(args: argparse.Namespace) -> list[str]:
    """The row labels to run, in order: ``ours``, ``ngircd``, ``cluster-<N>``."""
    sizes = cluster_sizes(args.cluster_nodes)
    clusters = [f"cluster-{n}" for n in sizes or [2]]
    if args.server == "cluster":
        return clusters
    kinds = ["ours", "ngircd"] if args.server in (None, "both") else [args.server]
    return kinds + (clusters if sizes else [])


def cluster_sizes(text: str | None) -> list[int]:
    """``--cluster-nodes`` as a list of node counts (raises ``ValueError`` when bad)."""
    if not text:
        return []
    sizes = [int(part) for part in text.split(",") if part.strip()]
    if not sizes or any(not 1 <= n <= 8 for n in sizes):
        raise ValueError(text)
    return sizes


def _target(kind: str, spec: ServerSpec) -> Target:
    if kind.startswith("cluster-"):
        return ClusterProcess(spec, int(kind.split("-", 1)[1]))
    return ServerProcess(spec)


async def run(args: argparse.Namespace) -> list[Result]:
    """Run every planned scenario against every chosen server; return the results."""
    servers = server_kinds(args)
    opts = options(args)
    extras = {"ours": _read(args.ours_extra), "ngircd": _read(args.ngircd_extra)}
    pin = can_pin() and not args.no_pin
    results: list[Result] = []
    try:
        for name, fn in plan(args):
            for kind in servers:
                results.append(await _run_one(args, name, fn, kind, opts, extras, pin))
    finally:
        stop_postgres()
    return results


async def _run_one(args: argparse.Namespace, name: str,
                   fn: Callable[[Target, Options], Awaitable[Result]], kind: str, opts: Options,
                   extras: dict[str, str], pin: bool) -> Result:
    """One scenario against one server kind (a fresh server, or a fresh cluster)."""
    base = "ngircd" if kind == "ngircd" else "ours"
    spec = ServerSpec(kind, extra=extras[base], autojoin=args.ours_autojoin, pin=pin,
                      keep_logs=Path(args.keep_logs) if args.keep_logs else None,
                      label=name)
    t = time.monotonic()
    print(f"bench: {name} against {kind} ...", file=sys.stderr, flush=True)
    result = await run_with_server(
        _target(kind, spec), partial(_with_opts, fn=fn, opts=opts), name,
        hard_timeout=opts.timeout + 60.0)
    status = result.error or ("timed out" if result.timed_out else "ok")
    print(f"bench:   {result.deliveries:,}/{result.expected:,} in {result.seconds:.2f} s "
          f"({result.rate:,.0f}/s), lost {result.lost:,}, p99 "
          f"{result.p99_ms if result.p99_ms is not None else float('nan'):.2f} ms, "
          f"server CPU {result.server_cpu or 0:.2f} s, gen CPU {result.gen_cpu:.2f} s"
          f" [{time.monotonic() - t:.1f} s wall, {status}]", file=sys.stderr, flush=True)
    return result


async def run_cancellable(args: argparse.Namespace) -> list[Result]:
    """:func:`run`, cancelled by SIGTERM or SIGHUP (e.g. from ``timeout``).

    Cancellation unwinds through each scenario's ``finally``, which stops its
    server: the servers run in sessions of their own, so nothing else would.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, task.cancel)
    try:
        return await run(args)
    finally:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cluster_sizes(args.cluster_nodes)
    except ValueError:
        parser.error(f"--cluster-nodes: node counts from 1 to 8, e.g. 2 or 1,2,3 "
                     f"(got {args.cluster_nodes!r})")
    plan(args)  # validate before starting anything
    nofile = raise_nofile()
    need = (args.connections or SIZES[args.size].connections) + 200
    if "idle" in args.scenarios and nofile < need:
        print(f"bench: warning: open-file limit {nofile} < {need}; idle will see errors",
              file=sys.stderr)
    cpus = pin_generator() if not args.no_pin else None
    factory = _loop_factory()
    print(f"bench: loop={'uvloop' if factory else 'asyncio'} generator CPUs={cpus or 'any'} "
          f"server CPU={'0' if cpus else 'any'} nofile={nofile}", file=sys.stderr)
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            results = runner.run(run_cancellable(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        stop_all()
        print("bench: interrupted; servers stopped", file=sys.stderr)
        return 130
    servers = server_kinds(args)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n## Results ({args.size}, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"load average at the end {load}, {os.cpu_count()} CPUs, "
          f"{'server on CPU 0, generator on the others' if cpus else 'not pinned'})\n")
    print(details_table(results))
    print("\n## Comparison\n")
    print(comparison_table(results, servers))
    if any(r.cluster for r in results):
        print("\n## Cluster costs per log entry\n")
        print(cluster_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2))
    failed = any(r.error for r in results)
    if args.strict:
        failed = failed or any(r.lost or r.out_of_order or r.timed_out for r in results)
    return 1 if failed else 0
