"""The asyncio edge: listeners, connections, send queues, flood control, timers.

Everything protocol-related happens in the sans-I/O core (:class:`ircd.core.Server`)
and the SEND dialect (:class:`ircd.simple.SimpleSession`); this module only
moves bytes and applies the limits of :mod:`ircd.limits`:

- :class:`Connection` (an ``asyncio.Protocol``) splits received bytes into
  lines (:class:`~ircd.protocol.framing.LineDecoder`) and hands them to the
  core. Lines wait, in order, in a backlog while the core checks a password
  off the loop or while the client's flood budget (a token bucket) is spent;
  a client whose backlog exceeds its class's ``flood_backlog`` is
  disconnected with ``ERROR :Excess Flood``.
- Output is coalesced: ``write()`` only appends to a list, and one callback
  per event-loop iteration (:class:`Flusher`) joins each connection's pending
  lines into a single ``transport.write``.
- The send queue (sendq) is bounded: when the bytes the kernel has not taken
  yet exceed the client's sendq, that client alone is disconnected with
  ``ERROR :SendQ exceeded``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from ircd.config import Config
from ircd.core import Server, WorkQueueFull
from ircd.limits import ConnectionLimiter, TokenBucket
from ircd.protocol.framing import LineDecoder, LineTooLong
from ircd.protocol.message import fit_line
from ircd.simple import SimpleSession
from ircd.state import Session

log = logging.getLogger("ircd.net")

SENDQ_GRACE = 10.0
"""Seconds a connection closed for SendQ may take to drain before it is aborted."""

IRC_MAX_LINE = LineDecoder().max_line
"""Longest IRC line buffered (tags and body), bytes without CR LF."""

TLS_HANDSHAKE_TIMEOUT = 10.0
"""Seconds a TLS client has to complete its handshake."""


class ExecutorScheduler:
    """The core's :class:`~ircd.core.Scheduler`: a thread pool plus the event loop's timers.

    ``workers`` threads run the blocking jobs; at most ``max_queued`` more jobs
    wait for one (``[accounts] max_queued_jobs``). A job submitted beyond that
    is not run: its ``done`` gets :class:`~ircd.core.WorkQueueFull` on the
    loop's next iteration.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, workers: int,
                 max_queued: int = 500) -> None:
        self.loop = loop
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ircd-work")
        self.workers = workers
        self.max_queued = max_queued
        self.in_flight = 0  # jobs submitted and not yet done (running or waiting)
        self.refused = 0    # jobs refused because the queue was full

    def run_blocking(self, fn, done) -> None:
        if self.in_flight >= self.workers + self.max_queued:
            self.refused += 1
            if self.refused == 1 or self.refused % 100 == 0:
                log.warning("%d jobs wait for a worker thread: refusing more (%d refused so far)",
                            self.max_queued, self.refused)
            error = WorkQueueFull(f"more than {self.max_queued} jobs wait for a worker thread")
            self.loop.call_soon(done, None, error)
            return
        self.in_flight += 1
        future = self.loop.run_in_executor(self.executor, fn)

        def finished(fut: asyncio.Future) -> None:
            self.in_flight -= 1
            if fut.cancelled():
                done(None, asyncio.CancelledError())
            elif fut.exception() is not None:
                done(None, fut.exception())
            else:
                done(fut.result(), None)

        future.add_done_callback(finished)

    def call_soon(self, fn) -> None:
        self.loop.call_soon(fn)

    def call_later(self, delay: float, fn) -> None:
        self.loop.call_later(delay, fn)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True)


class Flusher:
    """Writes every connection's pending output once per event-loop iteration."""

    __slots__ = ("loop", "dirty", "scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.dirty: list[Connection] = []
        self.scheduled = False

    def mark(self, conn: Connection) -> None:
        self.dirty.append(conn)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.run)

    def run(self) -> None:
        self.scheduled = False
        dirty, self.dirty = self.dirty, []
        for conn in dirty:
            conn.flush()


class Connection(Session, asyncio.Protocol):
    """One client connection speaking IRC, or the SEND/SEND-OK dialect.

    With ``dialect="auto"`` (the IRC and TLS ports) a first line starting with
    ``HELLO-FROM `` switches the connection to the SEND/SEND-OK dialect;
    ``dialect="simple"`` (the dedicated listener) speaks only that dialect.

    An IRC connection is itself its user's :class:`~ircd.state.Session`
    (``client`` is the :class:`~ircd.state.User`): the core writes to it and
    pauses it directly, with no callables kept per connection. Memory per
    idle connection is kept small (``__slots__``; ``out`` and ``backlog`` are
    None until there is output or a line waits; no per-connection bound
    methods).
    """

    __slots__ = (
        "node", "core", "dialect", "transport", "decoder", "out", "closed",
        "sendq_exceeded", "admitted", "backlog", "paused", "timer", "client", "simple",
        "first_line", "peer", "ip", "opened", "login_timer", "sendq", "flood_backlog",
        "bucket",
    )

    def __init__(self, node: Node, dialect: str = "auto") -> None:
        Session.__init__(self)
        self.node = node
        self.core: Server = node.core
        self.dialect = dialect
        self.transport: Any = None
        self.decoder = LineDecoder()
        self.out: list[bytes] | None = None  # output not yet flushed (None: none)
        self.closed = False
        self.sendq_exceeded = False
        self.admitted = False
        self.backlog: deque | None = None    # lines waiting, oldest first (None: none)
        self.paused = False
        self.timer: asyncio.TimerHandle | None = None
        self.client: Any = None
        self.simple: SimpleSession | None = None
        self.first_line = True
        if dialect == "auto":
            # Until the first line tells the dialect, allow the longer of the two limits.
            self.decoder.max_line = max(IRC_MAX_LINE, self.core.config.simple.max_line)
        self.peer = "?"
        self.ip = "unknown"
        self.opened = node.loop.time()  # when the connection was accepted (loop clock, s)
        self.login_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.note_peer(transport)
        self.admit()

    def note_peer(self, transport: Any) -> None:
        """Record the peer's address (``ip``, ``peer`` as ``ip:port``).

        (TCP_NODELAY is on already: asyncio's and uvloop's TCP transports set it.)
        """
        peer = transport.get_extra_info("peername")
        self.ip = peer[0] if peer else "unknown"
        self.peer = f"{self.ip}:{peer[1]}" if peer else "?"

    def admission_refusal(self) -> str | None:
        """Check ``self.ip`` against the D-lines, then count it against the connection
        limits (:class:`~ircd.limits.ConnectionLimiter`).

        Returns ``None`` once the connection is counted (``admitted``; it must be
        released once, which ``connection_lost`` does), or the reason it is
        refused (``"D-Lined (<reason>)"``, ``"Server full"``, ``"Too many
        connections from your IP"``), counting nothing. Every listener calls it
        when a connection is accepted (a TLS listener, :class:`TLSListener`,
        before the handshake; then this returns ``None`` at once).
        """
        if self.admitted:
            return None
        dline = self.core.dline_for(self.ip)  # DLINE: refused before registration
        if dline is not None:
            log.warning("refused %s: D-lined (%s)", self.peer, dline.mask)
            return f"D-Lined ({dline.reason})"
        refused = self.node.limiter.admit(self.ip)
        if refused is not None:
            log.warning("refused %s: %s", self.peer, refused)
            return refused
        self.admitted = True
        return None

    def release_admission(self) -> None:
        """Stop counting this connection against the limits (once; later calls do nothing)."""
        if self.admitted:
            self.admitted = False
            self.node.limiter.release(self.ip)

    def admit(self) -> None:
        """Count the connection from ``self.ip`` against the limits and create its
        client, or refuse it (``ERROR :Closing Link``/``BUSY``, then close)."""
        transport = self.transport
        refused = self.admission_refusal()
        if refused is not None:
            transport.write(b"BUSY\n" if self.dialect == "simple"
                            else f"ERROR :Closing Link: {self.ip} ({refused})\r\n".encode())
            self.closed = True
            transport.close()
            return
        self.start_session()

    def start_session(self) -> None:
        """Give a counted (``admitted``) connection its flood budget, sendq and
        client (an IRC client, or a SEND-dialect session on the dedicated port)."""
        transport = self.transport
        node = self.node
        cls = node.limiter.class_for(self.ip)
        self.sendq = cls.sendq
        self.flood_backlog = cls.flood_backlog
        self.bucket = TokenBucket(cls.flood_burst, cls.flood_rate, node.loop.time())
        node.connections.add(self)
        if self.dialect == "simple":
            self._start_simple()
            log.info("connect %s (SEND dialect)", self.peer)
            return
        self.client = self.core.new_client(self, self.ip)
        log.info("connect %s (client %d%s)", self.peer, self.client.id,
                 ", TLS" if transport.get_extra_info("sslcontext") else "")

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.lines_received(self.decoder.push(data))

    def lines_received(self, lines: list) -> None:
        """Handle decoded lines (bytes or ``LineTooLong``): dialect detection, flood budget."""
        if not lines:
            return
        if self.first_line and self.dialect == "auto":
            self.first_line = False
            first = lines[0]
            if first is not LineTooLong and first.startswith(b"HELLO-FROM "):  # type: ignore[union-attr]
                # The course dialect on the IRC port: drop the unregistered IRC state.
                self.core.world.clients.pop(self.client.id, None)
                self.client = None
                self._start_simple()
            else:
                self.decoder.max_line = IRC_MAX_LINE
                lines = [LineTooLong if isinstance(line, bytes) and len(line) > IRC_MAX_LINE
                         else line for line in lines]
        if self.backlog or self.pending:
            # Lines wait behind older ones, or behind the client's asynchronous step
            # (a password check, OPER, a services write, a line in the cluster log):
            # its answer comes first, then these, in order.
            self._keep(lines)
            self._check_backlog()
        else:
            self._run(lines)

    def _keep(self, lines: Any) -> None:
        """Append ``lines`` to the backlog (made on first use)."""
        backlog = self.backlog
        if backlog is None:
            backlog = self.backlog = deque()
        backlog.extend(lines)

    def connection_lost(self, exc: Exception | None) -> None:
        node = self.node
        node.connections.discard(self)
        self.release_admission()
        if self.timer is not None:
            self.timer.cancel()
        if self.login_timer is not None:
            self.login_timer.cancel()
            self.login_timer = None
        was_closed = self.closed
        self.closed = True
        self.out = None
        self.backlog = None
        if self.simple is not None:
            self.simple.connection_lost(
                "Connection reset by peer" if exc else "Connection closed")
        elif self.client is not None and not self.client.quitting:
            reason = "Connection reset by peer" if exc else "Remote host closed the connection"
            self.core.quit(self.client, reason)
        if not was_closed:
            log.info("disconnect %s (%s)", self.peer, "reset" if exc else "closed by peer")

    # -- the SEND/SEND-OK dialect ------------------------------------------------

    def _start_simple(self) -> None:
        self.simple = SimpleSession(self.core, self.write, partial(self.close, "closed by server"),
                                    self.ip)
        self.decoder.max_line = self.core.config.simple.max_line
        # No HELLO yet: the registration timeout runs from the accept, as for IRC.
        self._schedule_login_check(
            self.opened + self.core.config.server.registration_timeout - self.node.loop.time())

    def _schedule_login_check(self, delay: float) -> None:
        self.login_timer = self.node.loop.call_later(max(0.0, delay), self._login_expired)

    def _login_expired(self) -> None:
        """``registration_timeout`` seconds after the accept: a SEND-dialect
        connection that has not logged in (no ``HELLO``) is closed without a
        line (the dialect has no message for it). One waiting for the cluster
        to confirm its name is checked again a second later."""
        self.login_timer = None
        simple = self.simple
        if self.closed or simple is None or simple.client is not None:
            return
        if simple.busy:
            self._schedule_login_check(1.0)
            return
        log.info("SEND-dialect connection %s did not log in within %.0f s", self.peer,
                 self.core.config.server.registration_timeout)
        simple.connection_lost("Registration timeout")
        self.close("Registration timeout")

    # -- line processing: flood budget and password checks -------------------------

    def _run(self, lines: list) -> None:
        """Handle ``lines`` (a fresh batch; the backlog is empty) in order while the
        flood budget allows and no asynchronous step of the client's is pending;
        the rest wait in the backlog."""
        allowed = self.bucket.take_upto(self.node.loop.time(), len(lines))
        for i in range(allowed):
            if self._handle(lines[i]):
                if not self.closed:
                    # The lines after this one wait for its answer, in order.
                    self.bucket.give_back(allowed - i - 1)
                    self._keep(lines[i + 1:])
                    self._check_backlog()
                return
        if allowed < len(lines):
            self._keep(lines[allowed:])
            self._wait_for_budget()

    def _handle(self, line: Any) -> bool:
        """Give one line to the dialect; True if the connection must stop handing
        over lines for now (closed, or the client's asynchronous step is pending)."""
        simple = self.simple
        if simple is not None:
            if line is LineTooLong:
                simple.line_too_long()
            else:
                simple.handle_line(line)
            return self.closed
        self.core.handle_line(self, line)
        return self.closed or self.pending

    def _wait_for_budget(self) -> None:
        self._check_backlog()
        if not self.closed and self.timer is None:
            self.timer = self.node.loop.call_later(self.bucket.wait(), self._on_timer)

    def _drain(self) -> None:
        """Handle the backlog as far as the budget and the client's asynchronous
        steps allow: each line is taken from the front of the deque, so a long
        backlog costs O(1) per line handled, never a copy per resumption."""
        backlog = self.backlog
        if self.closed or self.pending:
            return
        if backlog:
            allowed = self.bucket.take_upto(self.node.loop.time(), len(backlog))
            for i in range(allowed):
                if self._handle(backlog.popleft()):
                    if self.closed:
                        return
                    self.bucket.give_back(allowed - i - 1)
                    self._check_backlog()
                    break
            else:
                if backlog:
                    self._wait_for_budget()
        if self.closed:
            return
        if self.paused and (not backlog or len(backlog) <= self.flood_backlog):
            self.paused = False
            self.transport.resume_reading()
        if backlog is not None and not backlog and self.backlog is backlog:
            self.backlog = None  # an idle connection keeps no empty deque

    def _on_timer(self) -> None:
        self.timer = None
        self._drain()

    def resume(self) -> None:
        """Called by the core when ``pending`` clears (a password check has finished)."""
        self._drain()

    def _check_backlog(self) -> None:
        backlog = self.backlog
        if backlog is None or len(backlog) <= self.flood_backlog or self.closed:
            return
        if self.pending:
            # Waiting for our own password check is not the client's fault: stop reading.
            if not self.paused:
                self.paused = True
                self.transport.pause_reading()
            return
        self.excess_flood()

    def excess_flood(self) -> None:
        """Disconnect this client for ``Excess Flood`` (counted in the metrics)."""
        log.warning("excess flood from %s", self.peer)
        self.core.stats.flood_disconnects += 1
        self.backlog = None
        if self.client is not None:
            self.core.quit(self.client, "Excess Flood", error="Excess Flood")
        else:
            if self.simple is not None:
                self.simple.connection_lost("Excess Flood")
            self.close("Excess Flood")

    # -- output ----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue ``data`` (complete lines, bytes) for this connection."""
        if self.closed:
            return
        out = self.out
        if out is None:
            self.out = [data]
            self.node.flusher.mark(self)
        else:
            out.append(data)

    def flush(self) -> None:
        """Hand the queued output to the transport; enforce the sendq."""
        out = self.out
        self.out = None
        if not out or self.transport is None:
            return
        self.transport.write(b"".join(out) if len(out) > 1 else out[0])
        self.enforce_sendq()

    def enforce_sendq(self) -> None:
        """Disconnect this client (``SendQ exceeded``) if the bytes its transport
        has not handed to the kernel exceed its ``sendq``; call after every write."""
        transport = self.transport
        if (not self.closed and not self.sendq_exceeded
                and transport.get_write_buffer_size() > self.sendq):
            self.sendq_exceeded = True  # quit() below flushes again: handle this once
            log.warning("sendq exceeded for %s (%d bytes queued)", self.peer,
                        transport.get_write_buffer_size())
            self.core.stats.sendq_drops += 1
            if self.client is not None:
                self.core.quit(self.client, "SendQ exceeded", error="SendQ exceeded")
            else:
                if self.simple is not None:
                    self.simple.connection_lost("SendQ exceeded")
                self.close("SendQ exceeded")
            self.node.loop.call_later(SENDQ_GRACE, transport.abort)

    def close(self, reason: str) -> None:
        """Send ``ERROR :<reason>`` (IRC only), flush, and close; later writes are dropped."""
        if self.closed:
            return
        if self.simple is None:
            error = (fit_line(f"ERROR :{reason}") + "\r\n").encode()  # 512 bytes at most
            if self.out is None:
                self.out = [error]
            else:
                self.out.append(error)
        self.flush()
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.login_timer is not None:
            self.login_timer.cancel()
            self.login_timer = None
        if self.transport is not None:
            self.transport.close()
        log.info("disconnect %s (%s)", self.peer, reason)


def make_tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2+); raises ``OSError``/``ssl.SSLError`` for bad files."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key or None)
    return ctx


class TLSListener:
    """A TLS listener that counts each connection from its accept, before its handshake.

    asyncio's own TLS server hands a connection to its protocol only once the
    handshake is done, so connections stuck in their handshake would count
    against no limit. Here the node accepts each TCP connection itself
    (``loop.sock_accept``), checks the D-lines and counts it
    (:meth:`Connection.admission_refusal`), closes a refused one at once (no
    plaintext answer can reach a TLS client), and only then runs the
    handshake (``loop.connect_accepted_socket``) within
    :data:`TLS_HANDSHAKE_TIMEOUT` seconds; a failed or late handshake
    releases the count. ``make`` builds the protocol (a :class:`Connection`
    or a WebSocket connection), which gets ``connection_made`` with the TLS
    transport. Open with :meth:`open`; :meth:`close` stops accepting.
    """

    def __init__(self, node: Node, make: Callable[[], Connection], ctx: ssl.SSLContext,
                 socks: list[socket.socket]) -> None:
        self.node = node
        self.make = make
        self.ctx = ctx
        self.sockets = socks
        self._accepting = [node.loop.create_task(self._accept_loop(s)) for s in socks]

    @classmethod
    async def open(cls, node: Node, host: str, port: int, make: Callable[[], Connection],
                   ctx: ssl.SSLContext) -> TLSListener:
        """Bind and listen on every address of ``host:port``; raises ``OSError``."""
        infos = await node.loop.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                            flags=socket.AI_PASSIVE)
        socks: list[socket.socket] = []
        try:
            for family, kind, proto, _name, addr in dict.fromkeys(infos):
                sock = socket.socket(family, kind, proto)
                socks.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(addr)
                sock.listen(4096)
                sock.setblocking(False)
        except OSError:
            for sock in socks:
                sock.close()
            raise
        return cls(node, make, ctx, socks)

    async def _accept_loop(self, listening: socket.socket) -> None:
        loop = self.node.loop
        while True:
            try:
                sock, addr = await loop.sock_accept(listening)
            except OSError as exc:  # e.g. out of file descriptors: try again shortly
                log.warning("accept on the TLS listener failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            conn = self.make()
            conn.ip = addr[0] if addr else "unknown"
            conn.peer = f"{conn.ip}:{addr[1]}" if addr else "?"
            if conn.admission_refusal() is not None:
                sock.close()
                continue
            self.node.spawn(self._handshake(sock, conn))

    async def _handshake(self, sock: socket.socket, conn: Connection) -> None:
        try:
            await self.node.loop.connect_accepted_socket(
                lambda: conn, sock, ssl=self.ctx, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
        except (OSError, ssl.SSLError, ConnectionError, RuntimeError) as exc:
            log.info("TLS handshake with %s failed: %s", conn.peer, exc or type(exc).__name__)
            conn.release_admission()
            sock.close()

    def close(self) -> None:
        """Stop accepting and close the listening sockets (connections stay)."""
        for task in self._accepting:
            task.cancel()
        for sock in self.sockets:
            sock.close()


class Node:
    """The running server process: the core, its listeners, limits and timers."""

    def __init__(self, core: Server, loop: asyncio.AbstractEventLoop) -> None:
        self.core = core
        self.loop = loop
        self.flusher = Flusher(loop)
        self.limiter = ConnectionLimiter(core.config.limits, core.config.server.sendq)
        self.connections: set[Connection] = set()
        self.listeners: list[Any] = []  # asyncio Servers and TLSListeners: close()
        self._ticker: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()  # TLS handshakes in progress (TLSListener)

    def spawn(self, coro: Any) -> None:
        """Run ``coro`` as a task kept until it is done (cancelled at shutdown)."""
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def serve(self, host: str, port: int, make: Callable[[], Connection],
                    tls: ssl.SSLContext | None) -> Any:
        """Listen on ``host:port`` with protocol factory ``make``: an asyncio server,
        or a :class:`TLSListener` (counted from the accept) with ``tls``. Raises
        ``OSError``; the listener is added to :attr:`listeners` and returned."""
        srv: Any
        if tls is None:
            srv = await self.loop.create_server(make, host, port, reuse_address=True,
                                                backlog=4096)
        else:
            srv = await TLSListener.open(self, host, port, make, tls)
        self.listeners.append(srv)
        return srv

    async def listen(self, host: str, port: int, dialect: str = "auto",
                     tls: ssl.SSLContext | None = None) -> None:
        """Open a listener; raises ``OSError`` (e.g. address in use).

        ``dialect`` is ``"auto"`` for the IRC port, ``"simple"`` for the
        dedicated SEND/SEND-OK listener; ``tls`` makes it a TLS listener.
        """
        srv = await self.serve(host, port, lambda: Connection(self, dialect), tls)
        kind = "SEND/SEND-OK dialect" if dialect == "simple" else ("IRC over TLS" if tls else "IRC")
        for sock in srv.sockets:
            log.info("listening on %s:%s (%s)", *sock.getsockname()[:2], kind)

    def reconfigure(self, config: Config) -> None:
        """Apply reloaded settings to the core and the limits (new connections get new classes)."""
        self.core.reconfigure(config)
        self.limiter.configure(config.limits, config.server.sendq)

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
        for task in list(self._tasks):
            task.cancel()
        for srv in self.listeners:
            srv.close()
        self.core.shutdown(reason)
        for conn in list(self.connections):
            if conn.simple is not None and not conn.closed:
                conn.close(reason)
        self.flusher.run()
        deadline = self.loop.time() + 2.0
        while self.connections and self.loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
