"""The benchmark's IRC client side: one raw ``asyncio.Protocol`` per connection.

Parsing is deliberately minimal so that the generator is not the bottleneck:

- While connecting and joining (:class:`Conn` without a sink), received bytes
  are split into lines and only the command/numeric token is looked at, to
  complete :meth:`Conn.expect` futures (e.g. ``376``/``422`` = registered,
  ``366`` = joined) and to answer ``PING``.
- While measuring, each connection hands its bytes to a sink. A
  :class:`Sink` runs one compiled regular expression over every received chunk
  (up to its last newline) to pull ``(sender id, sequence, send time)`` out of
  the benchmark's PRIVMSG bodies, so there is no per-line Python work other
  than three ``int()`` calls and a comparison. A :class:`Drain` only answers
  ``PING``.

Message bodies look like ``~<sender id> <sequence> <perf_counter_ns> <padding>``.
The generator and the receivers are one process, so the receive time minus the
embedded send time (both ``time.perf_counter_ns()``) is the delivery latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
from array import array
from collections.abc import Iterable, Sequence

from bench.servers import HOST

BODY_RE = re.compile(rb" PRIVMSG [^ ]+ :~(\d+) (\d+) (\d+)")
"""Matches a benchmark PRIVMSG; groups: sender id, sequence number, send time (ns)."""

REGISTERED = frozenset({b"376", b"422"})
"""End of MOTD / no MOTD: the last numeric of the registration burst."""

REGISTRATION_FAILED = frozenset({b"ERROR", b"431", b"432", b"433", b"436", b"437", b"461",
                                 b"464", b"465"})
JOINED = frozenset({b"366"})
JOIN_FAILED = frozenset({b"ERROR", b"403", b"405", b"471", b"473", b"474", b"475", b"476",
                         b"477"})

BATCH_LINES = 100
"""Largest number of PRIVMSG lines a sender writes with one ``transport.write``."""


class IRCError(Exception):
    """The server answered with an error (``str()`` is the offending line) or hung up."""


class Tally:
    """Delivery counters shared by the receivers of one measured phase.

    ``expected`` deliveries in total (use a huge number for open-ended phases);
    ``delivered`` so far; ``ooo`` = deliveries whose sequence number was not
    above the last one seen from that sender by that receiver (out of order or
    duplicate); ``lat`` = one latency per delivery in nanoseconds (``lat_cross``
    holds those of deliveries whose sender is on another cluster node than the
    receiver, and ``lat`` the others); ``t_last`` =
    ``perf_counter_ns()`` of the latest delivery; ``done`` resolves when
    ``delivered >= expected``; ``disconnects`` counts receivers that lost their
    connection while measuring.

    Windowed sending: ``windows[k]`` is sender ``k``'s :class:`Window` (or
    ``None``); ``fan`` is the number of receivers of each sender.
    ``progress[k]`` sums every receiver's progress on sender ``k``, and the
    sender's acknowledged count is ``progress[k] // fan``: the *average*
    receiver's position, so the deliveries outstanding per sender (in the
    server, the kernel and the generator together) stay below ``size * fan``.
    """

    __slots__ = ("expected", "delivered", "ooo", "lat", "lat_cross", "t_last", "done",
                 "disconnects", "windows", "fan", "progress")

    def __init__(self, expected: int, windows: Sequence[Window | None] = (),
                 fan: int = 1) -> None:
        self.expected = expected
        self.delivered = 0
        self.ooo = 0
        self.lat = array("q")
        self.lat_cross = array("q")
        self.t_last = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.disconnects = 0
        self.windows = list(windows)
        self.fan = max(1, fan)
        self.progress = [0] * len(self.windows)

    def finish(self) -> None:
        """Mark the phase complete (idempotent)."""
        if not self.done.done():
            self.done.set_result(None)


class Window:
    """Flow window of one sender: at most ``size`` lines sent but not yet acknowledged.

    ``sent`` is updated by the sender, ``acked`` by the receivers' sinks (see
    :class:`Tally`: lines the average receiver has seen).
    """

    __slots__ = ("size", "sent", "acked", "_fut", "_need")

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.sent = 0
        self.acked = 0
        self._fut: asyncio.Future[None] | None = None
        self._need = 0

    def update(self, acked: int) -> None:
        """Called by the acknowledging receiver with the count it has seen so far."""
        self.acked = acked
        fut = self._fut
        if fut is not None and acked >= self._need:
            self._fut = None
            if not fut.done():
                fut.set_result(None)

    async def room(self) -> int:
        """Wait until lines may be sent; return how many (>= 1).

        Waits for ``max(1, size // 8)`` free slots rather than one, so that
        writes are batched instead of one line per wake-up.
        """
        free = self.size - (self.sent - self.acked)
        if free > 0:
            return free
        self._need = self.sent - self.size + max(1, self.size // 8)
        self._fut = asyncio.get_running_loop().create_future()
        await self._fut
        return max(1, self.size - (self.sent - self.acked))


class Drain:
    """Sink that discards everything but answers ``PING`` (for senders and idle users)."""

    __slots__ = ("rest",)

    def __init__(self) -> None:
        self.rest = b""

    def feed(self, data: bytes, conn: Conn) -> None:
        """Consume received ``data`` (bytes) of ``conn``."""
        if self.rest:
            data = self.rest + data
        cut = data.rfind(b"\n") + 1
        self.rest = data[cut:]
        if data.startswith(b"PING ") or data.find(b"\nPING ", 0, cut) >= 0:
            conn.answer_pings(data[:cut])
        if data.startswith(b"ERROR ") or data.find(b"\nERROR ", 0, cut) >= 0:
            conn.note_error(data[:cut])

    def lost(self) -> None:
        """The connection closed."""


class Sink(Drain):
    """Counts benchmark PRIVMSGs for one receiving connection.

    ``nsenders`` is the number of sender ids (0..nsenders-1) in the phase;
    ``senders`` lists the ids this receiver hears from, whose windows (if the
    tally has any) it advances. ``cross`` (cluster mode) tells for each sender
    id whether it is on another node than this receiver: its latencies go to
    ``tally.lat_cross`` instead of ``tally.lat``.
    """

    __slots__ = ("tally", "last", "prev", "senders", "count", "lat_of")

    def __init__(self, tally: Tally, nsenders: int, senders: Sequence[int] = (),
                 cross: Sequence[bool] = ()) -> None:
        super().__init__()
        self.tally = tally
        self.lat_of = [(tally.lat_cross if k < len(cross) and cross[k] else tally.lat).append
                       for k in range(nsenders)]
        self.last = [-1] * nsenders
        self.prev = [-1] * nsenders
        self.senders = tuple(k for k in senders if k < len(tally.windows) and tally.windows[k])
        self.count = 0

    def feed(self, data: bytes, conn: Conn) -> None:
        """Consume received ``data`` (bytes): count, order-check and time every PRIVMSG."""
        if self.rest:
            data = self.rest + data
        cut = data.rfind(b"\n") + 1
        self.rest = data[cut:]
        if not cut:
            return
        found = BODY_RE.findall(data, 0, cut)
        if data.startswith(b"PING ") or data.find(b"\nPING ", 0, cut) >= 0:
            conn.answer_pings(data[:cut])
        if data.startswith(b"ERROR ") or data.find(b"\nERROR ", 0, cut) >= 0:
            conn.note_error(data[:cut])
        if not found:
            return
        now = time.perf_counter_ns()
        last = self.last
        lat_of = self.lat_of
        ooo = 0
        for sid, seq, ts in found:
            k = int(sid)
            s = int(seq)
            if s > last[k]:
                last[k] = s
            else:
                ooo += 1
            lat_of[k](now - int(ts))
        n = len(found)
        self.count += n
        tally = self.tally
        tally.delivered += n
        tally.t_last = now
        if ooo:
            tally.ooo += ooo
        if self.senders:
            prev, progress, windows, fan = self.prev, tally.progress, tally.windows, tally.fan
            for k in self.senders:
                step = last[k] - prev[k]
                if step:
                    prev[k] = last[k]
                    progress[k] += step
                    windows[k].update(progress[k] // fan)  # type: ignore[union-attr]
        if tally.delivered >= tally.expected:
            tally.finish()

    def lost(self) -> None:
        """The connection closed while measuring."""
        self.tally.disconnects += 1


class Conn(asyncio.Protocol):
    """One client connection (``nick``); see the module docstring for the two modes."""

    def __init__(self, nick: str) -> None:
        self.nick = nick
        self.transport: asyncio.Transport | None = None
        self.sink: Drain | None = None
        self.error: bytes | None = None
        self._pending = b""
        self._expect: tuple[asyncio.Future[bytes], frozenset[bytes], frozenset[bytes]] | None = None
        self._resume: asyncio.Future[None] | None = None
        self.paused = False
        self.closed = False

    # -- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:  # noqa: D102
        sink = self.sink
        if sink is not None:
            sink.feed(data, self)
        else:
            self._setup_data(data)

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        self.closed = True
        if self.sink is not None:
            self.sink.lost()
        self._fail(IRCError(f"{self.nick}: connection closed"
                            + (f" after {self.error.decode(errors='replace')!r}" if self.error else "")))
        if self._resume is not None and not self._resume.done():
            self._resume.set_result(None)

    def pause_writing(self) -> None:  # noqa: D102
        self.paused = True

    def resume_writing(self) -> None:  # noqa: D102
        self.paused = False
        if self._resume is not None and not self._resume.done():
            self._resume.set_result(None)

    # -- setup mode ----------------------------------------------------------

    def _setup_data(self, data: bytes) -> None:
        lines = (self._pending + data).split(b"\n")
        self._pending = lines.pop()
        for raw in lines:
            line = raw.rstrip(b"\r")
            if line.startswith(b":"):
                parts = line.split(b" ", 2)
                cmd = parts[1] if len(parts) > 1 else b""
            else:
                parts = line.split(b" ", 1)
                cmd = parts[0]
                if cmd == b"PING":
                    self.write(b"PONG " + (parts[1] if len(parts) > 1 else b"x") + b"\r\n")
                    continue
            if cmd == b"ERROR":
                self.error = line
            expect = self._expect
            if expect is None:
                continue
            fut, ok, fail = expect
            if cmd in ok:
                self._expect = None
                if not fut.done():
                    fut.set_result(line)
            elif cmd in fail:
                self._expect = None
                if not fut.done():
                    fut.set_exception(IRCError(line.decode(errors="replace")))

    def _fail(self, exc: Exception) -> None:
        expect, self._expect = self._expect, None
        if expect is not None and not expect[0].done():
            expect[0].set_exception(exc)

    def expect(self, ok: frozenset[bytes], fail: frozenset[bytes]) -> asyncio.Future[bytes]:
        """Future resolving with the first line whose command is in ``ok`` (bytes).

        It fails with :class:`IRCError` on a command in ``fail`` or when the
        connection closes. Only one expectation is active at a time.
        """
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        if self.closed:
            fut.set_exception(IRCError(f"{self.nick}: connection closed"))
        else:
            self._expect = (fut, ok, fail)
        return fut

    def set_sink(self, sink: Drain) -> None:
        """Switch to measuring mode: from now on ``sink.feed`` gets every received chunk."""
        sink.rest = self._pending
        self._pending = b""
        self.sink = sink

    # -- output --------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue ``data`` (bytes, complete CRLF-terminated lines) for sending."""
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def answer_pings(self, chunk: bytes) -> None:
        """Answer every ``PING`` line in ``chunk`` (bytes, whole lines) with ``PONG``."""
        for raw in chunk.split(b"\n"):
            if raw.startswith(b"PING "):
                self.write(b"PONG " + raw[5:].rstrip(b"\r") + b"\r\n")

    def note_error(self, chunk: bytes) -> None:
        """Remember the first ``ERROR`` line in ``chunk`` (bytes, whole lines) as ``self.error``."""
        for raw in chunk.split(b"\n"):
            if raw.startswith(b"ERROR ") and self.error is None:
                self.error = raw.rstrip(b"\r")

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark."""
        while self.paused and not self.closed:
            self._resume = asyncio.get_running_loop().create_future()
            await self._resume
            self._resume = None

    def close(self) -> None:
        """Abort the connection (no QUIT: the benchmark is done with it)."""
        if self.transport is not None:
            self.transport.abort()


async def connect(nick: str, port: int, password: str | None = None,
                  timeout: float = 30.0) -> Conn:
    """Open a connection to ``127.0.0.1:port`` and register as ``nick``.

    Sends ``PASS`` (when ``password`` is given), ``NICK`` and ``USER``, and
    returns once the server has sent end-of-MOTD (``376``) or no-MOTD (``422``).
    Raises :class:`IRCError`, ``OSError`` or ``TimeoutError`` (after ``timeout``
    seconds).
    """
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        _, conn = await loop.create_connection(lambda: Conn(nick), HOST, port)
        try:
            ready = conn.expect(REGISTERED, REGISTRATION_FAILED)
            head = f"PASS {password}\r\n" if password else ""
            conn.write(f"{head}NICK {nick}\r\nUSER {nick} 0 * :bench {nick}\r\n".encode())
            await ready
        except BaseException:
            conn.close()
            raise
    return conn


async def join(conn: Conn, channel: str, timeout: float = 30.0) -> None:
    """``JOIN channel`` and wait for end-of-NAMES (``366``); raises :class:`IRCError`."""
    async with asyncio.timeout(timeout):
        fut = conn.expect(JOINED, JOIN_FAILED)
        conn.write(f"JOIN {channel}\r\n".encode())
        await fut


async def connect_many(nicks: Iterable[str], port: int | Sequence[int], concurrency: int,
                       password: str | None = None, timeout: float = 30.0,
                       channel: str | None = None,
                       ) -> tuple[list[Conn], list[str], list[float]]:
    """Connect and register every nick (at most ``concurrency`` at a time), joining ``channel``.

    ``port`` is one port for all, or one port per nick (cluster mode: the
    nicks spread over the nodes). Returns ``(connections in nick order,
    error messages, registration latencies in seconds)``; a failed nick is
    missing from the first list.
    """
    nicks = list(nicks)
    ports = [port] * len(nicks) if isinstance(port, int) else list(port)
    if len(ports) != len(nicks):
        raise ValueError("connect_many: one port per nick")
    sem = asyncio.Semaphore(max(1, concurrency))
    errors: list[str] = []
    latencies: list[float] = []

    async def one(nick: str, port: int) -> Conn | None:
        async with sem:
            t0 = time.perf_counter()
            try:
                conn = await connect(nick, port, password, timeout)
                latencies.append(time.perf_counter() - t0)
                if channel is not None:
                    await join(conn, channel, timeout)
                return conn
            except (OSError, IRCError, TimeoutError) as exc:
                errors.append(f"{nick}: {type(exc).__name__}: {exc}")
                return None

    results = await asyncio.gather(*(one(n, p) for n, p in zip(nicks, ports, strict=True)))
    return [c for c in results if c is not None], errors, latencies


async def send_stream(conn: Conn, target: str, sid: int, count: int,
                      window: Window | None = None, pad: str = "",
                      rate: float | None = None) -> int:
    """Send ``count`` benchmark PRIVMSGs from sender ``sid`` to ``target`` (nick or channel).

    Pipelined (``window is None``): writes batches of :data:`BATCH_LINES` as
    fast as the transport's flow control allows. Windowed: never more than
    ``window.size`` lines unacknowledged. ``rate`` (lines per second) paces
    the sender to one line at a time on a fixed schedule. ``pad`` (str) is
    appended to every body. Returns the number of lines written (less than
    ``count`` when the connection closes; the caller cancels the task at its
    deadline).
    """
    prefix = f"PRIVMSG {target} :~{sid} "
    seq = 0
    start = time.monotonic()
    while seq < count and not conn.closed:
        if rate:
            delay = start + seq / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        n = BATCH_LINES if window is None else await window.room()
        n = min(n, 1 if rate else BATCH_LINES, count - seq)
        suffix = f" {time.perf_counter_ns()}{pad}\r\n"
        conn.write("".join([f"{prefix}{s}{suffix}" for s in range(seq, seq + n)]).encode())
        seq += n
        if window is not None:
            window.sent = seq
        if conn.paused:
            await conn.drain()
        else:
            await asyncio.sleep(0)
    return seq


def close_all(conns: Iterable[Conn]) -> None:
    """Abort every connection."""
    for conn in conns:
        conn.close()
