"""The benchmark scenarios. Each is bounded in count and in time.

Every scenario function takes a started :class:`~bench.servers.ServerProcess` (or a
:class:`~bench.cluster.ClusterProcess`) and an :class:`Options`, runs its
set-up (connect, register, join), then one measured phase, and returns a :class:`Result`. A scenario stops by itself when
everything expected has arrived, when nothing has arrived for
``Options.stall`` seconds, or at its hard deadline (``Options.timeout``
seconds after it started, set-up included), whichever comes first; it then
reports what it got.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from bench.client import (
    Conn,
    Drain,
    Sink,
    Tally,
    Window,
    close_all,
    connect,
    connect_many,
    send_stream,
)
from bench.procstat import Meter
from bench.servers import Target

CHANNEL = "#bench"


@dataclass
class Options:
    """Knobs shared by the scenarios (counts, seconds, bytes)."""

    timeout: float = 120.0          # hard deadline per scenario, seconds (set-up included)
    stall: float = 10.0             # give up after this many seconds without a delivery
    window: int = 200               # lines in flight per sender in windowed mode
    concurrency: int = 8            # connections registering at once (ngIRCd listens with backlog 10)
    body_bytes: int = 64            # approximate PRIVMSG body length, bytes
    idle_hold: float = 5.0          # seconds the idle connections are held before RSS is read
    storm_seconds: float = 10.0     # the registrations are spread over this many seconds
    storm_window: int = 10          # window of the conversation during the storm
    storm_rate: float = 500.0       # conversation lines per second per direction
    storm_baseline: float = 2.0     # seconds of conversation measured before the storm
    password: str = "bench-password-1"

    def pad(self) -> str:
        """Padding (str) that brings a body ``~sid seq ts`` to about ``body_bytes``."""
        return " " + "x" * max(0, self.body_bytes - 30)


@dataclass
class Result:
    """What one scenario measured against one server.

    ``deliveries`` = messages received (registrations for ``idle``);
    ``expected`` = what should have been received; ``seconds`` = measured wall
    time; ``lost`` = expected - delivered (exact unless ``out_of_order`` > 0);
    ``out_of_order`` = deliveries not above the last sequence number seen from
    that sender by that receiver (reordered or duplicated); ``p50_ms``/``p99_ms``
    = latency percentiles in milliseconds; ``server_cpu``/``gen_cpu`` = CPU
    seconds used by the server / the generator during the measured phase;
    ``rss_kib`` = server VmRSS (KiB) at the end; ``extra`` = scenario-specific
    notes (str -> str); ``error`` = why the scenario could not run or finish.
    Cluster mode: ``server_cpu`` and ``rss_kib`` are sums over the nodes and
    redis-server, and ``cluster`` holds the per-entry costs (see
    :func:`cluster_costs`).
    """

    scenario: str
    server: str
    deliveries: int = 0
    expected: int = 0
    seconds: float = 0.0
    lost: int = 0
    out_of_order: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    server_cpu: float | None = None
    gen_cpu: float = 0.0
    rss_kib: int | None = None
    timed_out: bool = False
    extra: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    cluster: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Deliveries per second."""
        return self.deliveries / self.seconds if self.seconds > 0 else 0.0


def percentile_ms(values: Sequence[int] | Sequence[float], q: float, scale: float = 1e-6,
                  presorted: bool = False) -> float | None:
    """The ``q`` quantile (0..1, nearest rank) of ``values`` times ``scale`` (ns -> ms by default)."""
    if not values:
        return None
    ordered = values if presorted else sorted(values)
    index = min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))
    return ordered[index] * scale


def _latency(result: Result, values: Sequence[int], cross: Sequence[int] = ()) -> None:
    """p50/p99 of every latency; with cross-node ones (cluster), also each kind apart."""
    ordered = sorted([*values, *cross]) if cross else sorted(values)
    result.p50_ms = percentile_ms(ordered, 0.50, presorted=True)
    result.p99_ms = percentile_ms(ordered, 0.99, presorted=True)
    if cross:
        for label, part in (("cross-node", cross), ("same-node", values)):
            if part:
                ordered = sorted(part)
                p50 = percentile_ms(ordered, 0.50, presorted=True) or 0.0
                p99 = percentile_ms(ordered, 0.99, presorted=True) or 0.0
                result.cluster[f"{label} p50 ms"] = p50
                result.cluster[f"{label} p99 ms"] = p99
                result.extra[f"{label} p50/p99 ms"] = f"{p50:.2f}/{p99:.2f}"


def cluster_costs(result: Result, server: Target, meter: Meter,
                  before: dict[str, float] | None, after: dict[str, float] | None,
                  entries: int) -> None:
    """Per-entry costs of a cluster phase into ``result.cluster`` (nothing for one server).

    ``entries`` = log entries appended in the phase: the lines the scenario
    sent (one entry per PRIVMSG, however many members the channel has) or the
    registrations (one ``intro`` each). A node appends its entries in batches,
    one stream entry per batch: ``stream entries`` (``XINFO STREAM``
    entries-added) counts those, and ``entries/stream entry`` is the mean
    batch. Per log entry: each node's CPU µs (``node CPU us/entry``, the
    mean over nodes, and ``n<i> CPU us/entry``), redis-server's CPU µs, the
    bytes Redis received and sent (``INFO stats``), and the stream's memory
    per entry kept and the mean entry payload (``stream_stats``).
    """
    if before is None or after is None:
        return
    c = result.cluster
    c["entries"] = entries
    stream_entries = after["entries"] - before["entries"]
    c["stream entries"] = stream_entries
    if stream_entries > 0:
        c["entries/stream entry"] = entries / stream_entries
    nodes = {name: cpu for name, cpu in meter.parts.items() if name != "redis"}
    if "server" in nodes:
        nodes["n1"] = nodes.pop("server")
    c["nodes"] = float(len(nodes))
    if entries > 0:
        for name, cpu in sorted(nodes.items()):
            c[f"{name} CPU us/entry"] = cpu / entries * 1e6
        if nodes:
            c["node CPU us/entry"] = sum(nodes.values()) / len(nodes) / entries * 1e6
        if "redis" in meter.parts:
            c["redis CPU us/entry"] = meter.parts["redis"] / entries * 1e6
        c["redis in B/entry"] = (after["net_in"] - before["net_in"]) / entries
        c["redis out B/entry"] = (after["net_out"] - before["net_out"]) / entries
        c["redis commands/entry"] = (after["commands"] - before["commands"]) / entries
        if result.deliveries:
            c["deliveries/entry"] = result.deliveries / entries
    if result.deliveries and nodes:
        c["nodes CPU us/delivery"] = sum(nodes.values()) / result.deliveries * 1e6
    if "redis" in meter.parts:
        c["redis CPU s"] = meter.parts["redis"]
    if "postgres_cpu" in before and "postgres_cpu" in after:
        c["postgres CPU s"] = after["postgres_cpu"] - before["postgres_cpu"]
        result.extra["postgres CPU s"] = f"{c['postgres CPU s']:.2f}"
    stream: dict[str, float] = getattr(server, "stream_stats", dict)()
    if stream.get("length") and stream.get("per_stream_entry"):
        c["stream B/entry kept"] = stream["bytes"] / (stream["length"] * stream["per_stream_entry"])
    if "entry_bytes" in stream:
        c["entry payload B"] = stream["entry_bytes"]
    named = {("n1" if k == "server" else k): v for k, v in meter.parts.items()}
    result.extra["CPU s"] = ", ".join(f"{k} {v:.2f}" for k, v in sorted(named.items()))


async def _wait(tally: Tally, deadline: float, stall: float,
                senders: Sequence[asyncio.Task[int]] = ()) -> bool:
    """Wait for ``tally.done``, a stall or the deadline; return True when complete."""
    seen, since = tally.delivered, time.monotonic()
    while not tally.done.done():
        now = time.monotonic()
        if now >= deadline:
            return False
        if tally.delivered != seen:
            seen, since = tally.delivered, now
        elif now - since > stall and (not senders or all(t.done() for t in senders)
                                      or now - since > 2 * stall):
            return False
        await asyncio.wait({tally.done}, timeout=min(0.1, deadline - now))
    return True


async def _cancel(tasks: Sequence[asyncio.Task[int]]) -> list[int]:
    """Cancel the tasks still running; return each one's result (0 if cancelled/failed)."""
    for task in tasks:
        task.cancel()
    out = []
    for task in tasks:
        try:
            out.append(await task)
        except (asyncio.CancelledError, Exception):
            out.append(0)
    return out


def _finish(result: Result, server: Target, meter: Meter) -> None:
    result.server_cpu = meter.server_cpu
    result.gen_cpu = meter.gen_cpu
    mem = server.memory_kib()
    if mem is not None:
        result.rss_kib = mem[0]
        result.extra["server peak RSS MiB"] = f"{mem[1] / 1024:.1f}"
    if not server.alive():
        result.error = (result.error or "") + f"server died: {server.log_tail(300)}"


async def _setup(result: Result, coro: Awaitable[tuple[list[Conn], list[str], list[float]]],
                 want: int, what: str) -> list[Conn] | None:
    conns, errors, _ = await coro
    if len(conns) < want:
        close_all(conns)
        result.error = f"{what}: {want - len(conns)} of {want} failed: " + "; ".join(errors[:3])
        return None
    return conns


async def run_messages(server: Target, opts: Options, name: str, nreceivers: int,
                       nsenders: int, messages: int, windowed: bool, direct: bool) -> Result:
    """Fan-out (``direct=False``) or direct-message (``direct=True``) throughput and latency.

    Fan-out: ``nreceivers`` receivers and ``nsenders`` senders join
    :data:`CHANNEL`; each sender sends ``messages`` PRIVMSGs to the channel,
    so ``nreceivers * nsenders * messages`` deliveries are expected. In
    windowed mode a sender may be at most ``Options.window`` lines ahead of
    the average receiver (:class:`~bench.client.Tally`). Direct: pair ``i``
    is sender ``s<i>`` -> receiver ``r<i>`` (``nreceivers == nsenders``),
    ``nsenders * messages`` deliveries expected.
    """
    result = Result(name, server.spec.kind)
    deadline = time.monotonic() + opts.timeout
    channel = None if direct else CHANNEL
    ports = server.ports
    # Round-robin over the nodes (cluster mode); a DM's sender sits on the node after
    # its receiver's, so with two or more nodes every DM crosses nodes.
    r_node = [i % len(ports) for i in range(nreceivers)]
    s_node = [(k + 1 if direct else k) % len(ports) for k in range(nsenders)]
    try:
        async with asyncio.timeout(opts.timeout):
            receivers = await _setup(result, connect_many(
                [f"r{i}" for i in range(nreceivers)], [ports[n] for n in r_node],
                opts.concurrency, channel=channel), nreceivers, "receivers")
            if receivers is None:
                return result
            senders = await _setup(result, connect_many(
                [f"s{k}" for k in range(nsenders)], [ports[n] for n in s_node],
                opts.concurrency, channel=channel), nsenders, "senders")
            if senders is None:
                close_all(receivers)
                return result
    except TimeoutError:
        result.error, result.timed_out = "set-up did not finish before the deadline", True
        return result
    expected = nreceivers * nsenders * messages if not direct else nsenders * messages
    result.expected = expected
    windows = [Window(opts.window) if windowed else None for _ in range(nsenders)]
    tally = Tally(expected, windows, fan=1 if direct else nreceivers)
    for i, conn in enumerate(receivers):
        cross = [s_node[k] != r_node[i] for k in range(nsenders)]
        conn.set_sink(Sink(tally, nsenders, [i] if direct else range(nsenders), cross))
    for conn in senders:
        conn.set_sink(Drain())
    pad = opts.pad()
    meter = server.meter()
    before = server.counters()
    gc.collect()
    gc.disable()
    try:
        meter.start()
        t0 = time.perf_counter_ns()
        tasks = [asyncio.create_task(send_stream(
            conn, f"r{k}" if direct else CHANNEL, k, messages, windows[k], pad))
            for k, conn in enumerate(senders)]
        complete = await _wait(tally, deadline, opts.stall, tasks)
        sent = await _cancel(tasks)
        meter.stop()
    finally:
        gc.enable()
    after = server.counters()
    result.timed_out = not complete
    result.deliveries = tally.delivered
    result.seconds = max(tally.t_last - t0, 0) / 1e9 if tally.delivered else meter.wall
    result.lost = max(0, expected - tally.delivered)
    result.out_of_order = tally.ooo
    _latency(result, tally.lat, tally.lat_cross)
    cluster_costs(result, server, meter, before, after, sum(sent))
    if sum(sent) < nsenders * messages:
        result.extra["sent"] = f"{sum(sent)}/{nsenders * messages}"
    for what, conns in (("receivers", receivers), ("senders", senders)):
        closed = sum(c.closed for c in conns)
        if closed:
            errs = sorted({c.error.decode(errors="replace") for c in conns if c.error})
            result.extra[f"{what} disconnected"] = f"{closed}" + (f" {errs[:2]}" if errs else "")
    _finish(result, server, meter)
    close_all(receivers)
    close_all(senders)
    return result


async def run_idle(server: Target, opts: Options, name: str, connections: int) -> Result:
    """``connections`` registered, idle users: registration time and server RSS per connection.

    ``deliveries`` = connections registered; ``seconds`` = time to register
    them all (``Options.concurrency`` at a time); p50/p99 = per-connection
    registration latency. RSS is read before connecting and after holding
    them idle for ``Options.idle_hold`` seconds; ``server_cpu`` covers the
    registration phase, and the CPU used while idle is in ``extra``.
    """
    result = Result(name, server.spec.kind, expected=connections)
    before = server.memory_kib()
    meter = server.meter()
    counters0 = server.counters()
    ports = server.ports
    conns: list[Conn] = []
    errors: list[str] = []
    latencies: list[float] = []
    gc.collect()
    gc.disable()
    try:
        meter.start()
        try:
            async with asyncio.timeout(opts.timeout):
                sem = asyncio.Semaphore(max(1, opts.concurrency))

                async def one(i: int) -> None:
                    async with sem:
                        t = time.perf_counter()
                        try:
                            conn = await connect(f"i{i}", ports[i % len(ports)],
                                                 timeout=opts.timeout)
                        except Exception as exc:  # noqa: BLE001 - any failure is counted and reported
                            errors.append(f"{type(exc).__name__}: {exc}")
                            return
                        latencies.append(time.perf_counter() - t)
                        conn.set_sink(Drain())
                        conns.append(conn)

                await asyncio.gather(*(one(i) for i in range(connections)))
        except TimeoutError:
            result.timed_out = True
        meter.stop()
    finally:
        gc.enable()
    counters1 = server.counters()
    result.deliveries = len(conns)
    result.lost = connections - len(conns)
    result.seconds = meter.wall
    cluster_costs(result, server, meter, counters0, counters1, len(conns))
    result.p50_ms = percentile_ms(latencies, 0.50, scale=1e3)
    result.p99_ms = percentile_ms(latencies, 0.99, scale=1e3)
    if latencies:
        result.extra["slowest registration ms"] = f"{max(latencies) * 1e3:.0f}"
    idle = server.meter()
    idle.start()
    await asyncio.sleep(opts.idle_hold)
    idle.stop()
    _finish(result, server, meter)
    if before is not None and result.rss_kib is not None and conns:
        per = (result.rss_kib - before[0]) / len(conns)
        result.extra["RSS/conn KiB"] = f"{per:.1f}"
        result.extra["RSS before MiB"] = f"{before[0] / 1024:.1f}"
    if idle.server_cpu is not None:
        result.extra["idle server CPU %"] = f"{100 * idle.server_cpu / idle.wall:.1f}"
    if errors:
        result.extra["errors"] = f"{len(errors)} e.g. {errors[0][:120]}"
    close_all(conns)
    return result


async def run_storm(server: Target, opts: Options, name: str, accounts: int) -> Result:
    """Registration storm: ``accounts`` new accounts over ``Options.storm_seconds`` seconds.

    Each new connection sends ``PASS``/``NICK``/``USER`` with a new name; they
    start at evenly spaced times (an open-loop arrival rate). Against ngIRCd,
    which has no accounts (and refuses PASS without a server password), they
    send only NICK/USER. Meanwhile one pair of users converses, each direction
    paced at ``Options.storm_rate`` lines/s with at most
    ``Options.storm_window`` lines in flight. ``deliveries``/``seconds``/latency
    describe the conversation during the storm (``expected`` = conversation
    lines sent); the baseline latency before the storm and the registrations'
    own latency are in ``extra``; ``lost`` counts conversation lines that did
    not arrive plus registrations that failed.
    """
    result = Result(name, server.spec.kind)
    deadline = time.monotonic() + opts.timeout
    try:
        async with asyncio.timeout(min(30.0, opts.timeout)):
            a = await connect("conva", server.ports[0])
            b = await connect("convb", server.ports[1 % len(server.ports)])
    except Exception as exc:  # noqa: BLE001 - any failure is counted and reported
        result.error = f"conversation set-up failed: {type(exc).__name__}: {exc}"
        return result
    wa, wb = Window(opts.storm_window), Window(opts.storm_window)
    tally = Tally(1 << 62, [wa, wb])
    cross = [len(server.ports) > 1] * 2  # conva on node 1, convb on node 2 (cluster)
    a.set_sink(Sink(tally, 2, [1], cross))
    b.set_sink(Sink(tally, 2, [0], cross))
    # ngIRCd has no accounts, and refuses PASS when it has no server password.
    password = opts.password if server.spec.kind != "ngircd" else None
    pad = opts.pad()
    bound = 50_000_000  # lines per direction; the deadline stops it long before
    rate = opts.storm_rate or None
    talk = [asyncio.create_task(send_stream(a, "convb", 0, bound, wa, pad, rate)),
            asyncio.create_task(send_stream(b, "conva", 1, bound, wb, pad, rate))]
    await asyncio.sleep(min(opts.storm_baseline, max(0.0, deadline - time.monotonic())))
    base_lat = tally.lat[:] + tally.lat_cross[:]
    base_n, base_cross = len(tally.lat), len(tally.lat_cross)
    base_delivered = tally.delivered

    conns: list[Conn] = []
    errors: list[str] = []
    reg_lat: list[float] = []

    async def register(i: int) -> None:
        t = time.perf_counter()
        try:
            conn = await connect(f"acct{i}", ports[i % len(ports)], password and f"{password}-{i}",
                                 timeout=max(0.1, deadline - time.monotonic()))
        except Exception as exc:  # noqa: BLE001 - any failure is counted and reported
            errors.append(f"{type(exc).__name__}: {exc}")
            return
        reg_lat.append(time.perf_counter() - t)
        conn.set_sink(Drain())
        conns.append(conn)

    ports = server.ports
    meter = server.meter()
    counters0 = server.counters()
    sent0 = wa.sent + wb.sent  # the cost rows count the lines sent from here on
    gc.collect()
    gc.disable()
    regs: list[asyncio.Task[None]] = []
    try:
        meter.start()
        t0 = time.monotonic()
        step = opts.storm_seconds / max(1, accounts)
        for i in range(accounts):
            delay = t0 + i * step - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.monotonic() >= deadline:
                break
            regs.append(asyncio.create_task(register(i)))
        if regs:
            done, pending = await asyncio.wait(regs, timeout=max(0.0, deadline - time.monotonic()))
            for task in pending:
                task.cancel()
            result.timed_out = bool(pending) or len(regs) < accounts
        meter.stop()
        storm_lat = tally.lat[base_n:]
        storm_cross = tally.lat_cross[base_cross:]
        storm_delivered = tally.delivered - base_delivered
        await _cancel(talk)
        # A cancelled sender returns nothing: its window holds how many it wrote.
        sent = wa.sent + wb.sent
        # Let the lines in flight arrive (at most 2 windows' worth), bounded by 2 s.
        t_end = time.monotonic() + 2.0
        while tally.delivered < sent and time.monotonic() < t_end and not (a.closed or b.closed):
            await asyncio.sleep(0.01)
    finally:
        gc.enable()
    counters1 = server.counters()
    conv_lost = max(0, sent - tally.delivered)
    result.expected = storm_delivered + conv_lost
    result.deliveries = storm_delivered
    result.seconds = meter.wall
    result.lost = conv_lost + (accounts - len(conns))
    result.out_of_order = tally.ooo
    _latency(result, storm_lat, storm_cross)
    cluster_costs(result, server, meter, counters0, counters1, sent - sent0 + len(conns))
    result.extra["registered"] = f"{len(conns)}/{accounts} in {meter.wall:.1f} s"
    reg_lat.sort()
    p50, p99 = percentile_ms(reg_lat, 0.5, 1e3, True), percentile_ms(reg_lat, 0.99, 1e3, True)
    if p50 is not None and p99 is not None:
        result.extra["registration p50/p99 ms"] = f"{p50:.0f}/{p99:.0f}"
    bp99 = percentile_ms(base_lat, 0.99)
    if bp99 is not None:
        result.extra["conversation p99 ms before storm"] = f"{bp99:.2f}"
    if conv_lost:
        result.extra["conversation lost"] = str(conv_lost)
    if errors:
        result.extra["registration errors"] = f"{len(errors)} e.g. {errors[0][:120]}"
    _finish(result, server, meter)
    close_all(conns)
    a.close()
    b.close()
    return result


ScenarioFn = Callable[[Target], Awaitable[Result]]


async def run_with_server(server: Target, fn: ScenarioFn, name: str,
                          hard_timeout: float) -> Result:
    """Start ``server``, run ``fn`` on it (cancelled after ``hard_timeout`` s), stop the server."""
    try:
        await server.start()
    except Exception as exc:  # noqa: BLE001 - reported in the table
        server.stop()
        return Result(name, server.spec.kind, error=f"server did not start: {exc}")
    try:
        async with asyncio.timeout(hard_timeout):
            return await fn(server)
    except TimeoutError:
        return Result(name, server.spec.kind, timed_out=True,
                      error=f"hard timeout after {hard_timeout:.0f} s")
    except Exception as exc:  # noqa: BLE001
        return Result(name, server.spec.kind, error=f"{type(exc).__name__}: {exc}")
    finally:
        with contextlib.suppress(Exception):
            await asyncio.sleep(0.1)  # let aborted transports close
        server.stop()
