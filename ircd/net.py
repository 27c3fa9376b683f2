"""The asyncio edge: listeners, connections, send queues, timers and signals.

Everything protocol-related happens in the sans-I/O core (:class:`ircd.core.Server`);
this module only moves bytes:

- :class:`IRCConnection` (an ``asyncio.Protocol``) splits received bytes into
  lines (:class:`~ircd.protocol.framing.LineDecoder`) and hands them to the
  core. While the core checks a password off the loop, the connection's later
  lines wait, in order.
- Output is coalesced: ``write()`` only appends to a list, and one callback
  per event-loop iteration (:class:`Flusher`) joins each connection's pending
  lines into a single ``transport.write``. A fan-out to N members costs N list
  appends plus one write per member per iteration, not one syscall per line.
- The send queue (sendq) is bounded: when the bytes the kernel has not taken
  yet exceed ``server.sendq``, that client alone is disconnected with
  ``ERROR :SendQ exceeded``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ircd.core import Server
from ircd.protocol.framing import LineDecoder, LineTooLong
from ircd.simple import SimpleSession

log = logging.getLogger("ircd.net")

SENDQ_GRACE = 10.0
"""Seconds a connection closed for SendQ may take to drain before it is aborted."""


class ExecutorScheduler:
    """Runs blocking work in a thread pool and reports back on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, workers: int) -> None:
        self.loop = loop
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ircd-work")

    def run_blocking(self, fn, done) -> None:
        future = self.loop.run_in_executor(self.executor, fn)

        def finished(fut: asyncio.Future) -> None:
            if fut.cancelled():
                done(None, asyncio.CancelledError())
            elif fut.exception() is not None:
                done(None, fut.exception())
            else:
                done(fut.result(), None)

        future.add_done_callback(finished)

    def call_soon(self, fn) -> None:
        self.loop.call_soon(fn)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


class Flusher:
    """Writes every connection's pending output once per event-loop iteration."""

    __slots__ = ("loop", "dirty", "scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.dirty: list[IRCConnection] = []
        self.scheduled = False

    def mark(self, conn: IRCConnection) -> None:
        self.dirty.append(conn)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.run)

    def run(self) -> None:
        self.scheduled = False
        dirty, self.dirty = self.dirty, []
        for conn in dirty:
            conn.flush()


class IRCConnection(asyncio.Protocol):
    """One client connection speaking IRC, or the SEND/SEND-OK dialect.

    With ``dialect="auto"`` (the IRC port) a first line starting with
    ``HELLO-FROM `` switches the connection to the SEND/SEND-OK dialect;
    ``dialect="simple"`` (the dedicated listener) speaks only that dialect.
    """

    def __init__(self, node: Node, dialect: str = "auto") -> None:
        self.node = node
        self.dialect = dialect
        self.simple: SimpleSession | None = None
        self.first_line = True
        self.core: Server = node.core
        self.transport: asyncio.Transport | None = None
        self.decoder = LineDecoder()
        self.out: list[bytes] = []
        self.dirty = False
        self.closed = False
        self.backlog: deque = deque()
        self.paused = False
        self.client: Any = None
        self.peer = "?"

    # -- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        ip = peer[0] if peer else "unknown"
        self.peer = f"{ip}:{peer[1]}" if peer else "?"
        self.ip = ip
        self.node.connections.add(self)
        if self.dialect == "simple":
            self._start_simple()
            log.info("connect %s (simple dialect)", self.peer)
            return
        self.client = self.core.new_client(self.write, self.close, ip)
        self.client.resume = self.resume
        log.info("connect %s (client %d)", self.peer, self.client.id)

    def _start_simple(self) -> None:
        self.simple = SimpleSession(self.core, self.write, self._close_simple, self.ip)
        self.decoder.max_line = self.core.config.simple.max_line

    def _close_simple(self) -> None:
        if not self.closed:
            self.flush()
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def data_received(self, data: bytes) -> None:
        lines = self.decoder.push(data)
        if not lines:
            return
        if self.first_line and self.dialect == "auto":
            self.first_line = False
            first = lines[0]
            if first is not LineTooLong and first.startswith(b"HELLO-FROM "):  # type: ignore[union-attr]
                # The course dialect on the IRC port: forget the IRC client state.
                self.core.world.clients.pop(self.client.id, None)
                self.client = None
                self._start_simple()
        if self.simple is not None:
            session = self.simple
            for line in lines:
                if line is LineTooLong:
                    session.line_too_long()
                else:
                    session.handle_line(line)  # type: ignore[arg-type]
            return
        if self.backlog or self.client.pending:
            self.backlog.extend(lines)
            self._limit_backlog()
            return
        handle = self.core.handle_line
        client = self.client
        for i, line in enumerate(lines):
            handle(client, line)
            if client.pending:
                self.backlog.extend(lines[i + 1 :])
                self._limit_backlog()
                return
            if self.closed:
                return

    def connection_lost(self, exc: Exception | None) -> None:
        self.node.connections.discard(self)
        was_closed = self.closed
        self.closed = True
        self.out = []
        if self.simple is not None:
            self.simple.connection_lost("Connection closed" if exc is None else "Connection reset by peer")
        elif self.client is not None and not self.client.quitting:
            reason = "Connection reset by peer" if exc else "Remote host closed the connection"
            self.core.quit(self.client, reason)
        if not was_closed:
            log.info("disconnect %s (%s)", self.peer, "reset" if exc else "closed by peer")

    # -- input backlog while an account check runs ---------------------------

    def _limit_backlog(self) -> None:
        if len(self.backlog) > self.core.config.server.recvq_lines and not self.paused:
            self.paused = True
            if self.transport is not None:
                self.transport.pause_reading()

    def resume(self) -> None:
        """Process lines that arrived while the core was waiting (called by the core)."""
        client = self.client
        while self.backlog and not client.pending and not self.closed:
            self.core.handle_line(client, self.backlog.popleft())
        if self.paused and not client.pending and not self.closed:
            self.paused = False
            if self.transport is not None:
                self.transport.resume_reading()

    # -- output ----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue ``data`` (complete lines, bytes) for this connection."""
        if self.closed:
            return
        self.out.append(data)
        if not self.dirty:
            self.dirty = True
            self.node.flusher.mark(self)

    def flush(self) -> None:
        """Hand the queued output to the transport; enforce the sendq."""
        self.dirty = False
        if not self.out or self.transport is None:
            return
        data = b"".join(self.out) if len(self.out) > 1 else self.out[0]
        self.out = []
        transport = self.transport
        if self.closed:
            transport.write(data)
            return
        transport.write(data)
        if transport.get_write_buffer_size() > self.core.config.server.sendq:
            log.warning("sendq exceeded for %s", self.peer)
            if self.client is not None:
                self.core.quit(self.client, "SendQ exceeded", error="SendQ exceeded")
            else:
                self.close("SendQ exceeded")
            self.node.loop.call_later(SENDQ_GRACE, transport.abort)

    def close(self, reason: str) -> None:
        """Send ``ERROR :<reason>``, flush, and close; later writes are dropped."""
        if self.closed:
            return
        self.out.append(f"ERROR :{reason}\r\n".encode())
        self.flush()
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        log.info("disconnect %s (%s)", self.peer, reason)


class Node:
    """The running server process: the core, its listeners and its timers."""

    def __init__(self, core: Server, loop: asyncio.AbstractEventLoop) -> None:
        self.core = core
        self.loop = loop
        self.flusher = Flusher(loop)
        self.connections: set[IRCConnection] = set()
        self.listeners: list[asyncio.base_events.Server] = []
        self._ticker: asyncio.TimerHandle | None = None

    async def listen(self, host: str, port: int, dialect: str = "auto") -> None:
        """Open a plaintext listener; raises ``OSError`` (e.g. address in use).

        ``dialect`` is ``"auto"`` for the IRC port, ``"simple"`` for the
        dedicated SEND/SEND-OK listener.
        """
        srv = await self.loop.create_server(
            lambda: IRCConnection(self, dialect), host, port, reuse_address=True, backlog=4096
        )
        self.listeners.append(srv)
        for sock in srv.sockets:
            log.info("listening on %s:%s (%s)", *sock.getsockname()[:2],
                     "IRC" if dialect == "auto" else "SEND/SEND-OK dialect")

    def start_ticker(self) -> None:
        def tick() -> None:
            try:
                self.core.tick()
            except Exception:  # never let a timer bug stop the timers
                log.exception("tick failed")
            self._ticker = self.loop.call_later(1.0, tick)

        self._ticker = self.loop.call_later(1.0, tick)

    async def shutdown(self, reason: str = "Server shutting down") -> None:
        """Tell every client, stop listening, and let output drain (at most 2 s)."""
        if self._ticker is not None:
            self._ticker.cancel()
        for srv in self.listeners:
            srv.close()
        self.core.shutdown(reason)
        self.flusher.run()
        deadline = self.loop.time() + 2.0
        while self.connections and self.loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
