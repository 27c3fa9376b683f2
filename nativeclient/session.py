"""The I/O link: the socket, the reader thread, and the futures the user interface waits on.

Everything the session knows and decides lives in the pure
:class:`~nativeclient.state.SessionState` (registration, login outcome,
confirmations, rooms and users; see that module for the protocol).
:class:`ChatSession` only moves bytes and time between it and the network:

* :func:`open_socket` connects (name lookup, TCP, optional verified TLS,
  bounded by a timeout) and returns a blocking socket;
* one reader thread (``chatclient-reader``) waits for data (``select``,
  0.2 s ticks so that :meth:`ChatSession.close` is noticed), reads it and
  hands it to the state with the current time, then writes what the state
  queued and delivers its outputs;
* the UI thread calls the ``send_*``/``request_*`` methods; they run the
  state under the same lock and write at once, so they never wait for the
  reader;
* the state's :class:`~nativeclient.state.Resolved`/:class:`~nativeclient.state.Rejected`
  settle :class:`concurrent.futures.Future` objects (PRIVMSG confirmations,
  PING, JOIN, NAMES, the login), and its events go to a *sink* callable (the
  UI), outside the lock, one call per event.

Socket reads and writes share one lock (a TLS socket must not be used from
two threads at once); a failed write shuts the socket down, so the reader
notices and reports the disconnection. There is no reconnection: a lost
connection ends the program (exit code 3, see :mod:`nativeclient.cli`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import select
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime

from nativeclient.commands import DEFAULT_ROOM
from nativeclient.events import (
    ConnectionLost,
    Event,
    Info,
    LoginInfo,
    UnreachableError,
)
from nativeclient.state import (
    JOIN_ERRORS,
    SEND_ERRORS,
    WANTED_CAPS,
    Closed,
    LoginSettled,
    OutgoingMessage,
    Output,
    Rejected,
    Resolved,
    SessionState,
)
from nativeclient.wire import fold

__all__ = [
    "JOIN_ERRORS",
    "SEND_ERRORS",
    "WANTED_CAPS",
    "ChatSession",
    "PendingSend",
    "debug_threads_enabled",
    "fold",
    "open_socket",
]

log = logging.getLogger(__name__)

READ_TICK = 0.2
"""Seconds the reader thread waits for data before checking whether it should stop."""

READ_SIZE = 2**14
"""Bytes asked of one ``recv``."""


@dataclass
class PendingSend(OutgoingMessage):
    """One PRIVMSG waiting for the server's confirmation, with the future the caller may wait on.

    ``future`` resolves to a :class:`~nativeclient.events.SendResult` (it
    never raises except ``ConnectionLost`` when the connection ends first).
    The other fields are those of :class:`~nativeclient.state.OutgoingMessage`.
    """

    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


def open_socket(
    host: str,
    port: int,
    *,
    tls: bool = False,
    ca_file: str | None = None,
    timeout: float = 10.0,
) -> socket.socket:
    """Connect to ``host:port`` (a name or an IPv4/IPv6 address), optionally with TLS.

    With ``tls``, the server certificate is verified against the system CAs,
    or only against ``ca_file`` (PEM) when given, and its name must match
    ``host``. ``timeout`` (seconds) bounds name lookup, connect and TLS
    handshake; the returned socket is blocking.

    Raises :class:`~nativeclient.events.UnreachableError` with a one-line
    explanation on any failure.
    """
    where = f"{host}:{port}"
    context: ssl.SSLContext | None = None
    if tls:
        try:
            context = ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise UnreachableError(f"cannot use CA file {ca_file}: {_oserror_text(exc)}") from None
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as exc:
        raise UnreachableError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    except TimeoutError:
        raise UnreachableError(f"cannot reach {where}: timed out after {timeout:g} s") from None
    except OSError as exc:
        raise UnreachableError(f"cannot reach {where}: {_oserror_text(exc)}") from None
    if context is not None:
        try:
            sock = context.wrap_socket(sock, server_hostname=host)
        except ssl.SSLCertVerificationError as exc:
            sock.close()
            raise UnreachableError(
                f"TLS certificate of {where} not trusted: {exc.verify_message or exc.reason}"
            ) from None
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            raise UnreachableError(f"TLS handshake with {where} failed: {_oserror_text(exc)}") from None
    sock.settimeout(None)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _oserror_text(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return str(exc) or type(exc).__name__


def _now() -> datetime:
    return datetime.now().astimezone()


class ChatSession:
    """One logged-in user on one server: a :class:`~nativeclient.state.SessionState` on a socket.

    ``host``/``port``: where to connect; ``username``: nick and account name;
    ``password``: sent with PASS (empty: no PASS). ``tls``/``ca_file``: see
    :func:`open_socket`; ``connect_timeout``: seconds for :func:`open_socket`.

    Lifecycle: :meth:`login` (connects, starts the reader thread, returns
    :class:`~nativeclient.events.LoginInfo` or raises a ``ClientError``),
    :meth:`attach` a sink for events, use the ``send_*``/``request_*``
    methods, then :meth:`quit` (or :meth:`close`), which always joins the
    reader thread. :attr:`disconnected` is a future that resolves with the
    reason when the connection ends.

    Thread-safety: every public method may be called from any thread; the
    sink is called from the thread whose call produced the event (mostly the
    reader thread), one event at a time per thread.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        *,
        tls: bool = False,
        ca_file: str | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.tls = tls
        self.ca_file = ca_file
        self.connect_timeout = connect_timeout

        self._state = SessionState(username, password, where=f"{host}:{port}")
        self._lock = threading.RLock()  # the state, the futures, the sink, socket writes
        self._io_lock = threading.RLock()  # one socket operation at a time (TLS)
        self._sock: socket.socket | None = None
        self._lost_reason: str | None = None
        self._thread = threading.Thread(target=self._run, name="chatclient-reader", daemon=True)
        self._stop = threading.Event()

        self._futures: dict[int, concurrent.futures.Future] = {}
        self._sink: Callable[[Event], None] | None = None
        self._queued: list[Event] = []
        self._login_future: concurrent.futures.Future[LoginInfo] = concurrent.futures.Future()
        self.disconnected: concurrent.futures.Future[str] = concurrent.futures.Future()

    # ------------------------------------------------------------------ properties

    @property
    def state(self) -> SessionState:
        """The pure session state (read it under no lock only from the reader thread, or in tests)."""
        return self._state

    @property
    def nick(self) -> str:
        """Our current nick (the username until the server says otherwise)."""
        with self._lock:
            return self._state.nick

    @property
    def caps(self) -> frozenset[str]:
        """IRCv3 capabilities acknowledged by the server."""
        with self._lock:
            return self._state.caps

    @property
    def echo(self) -> bool:
        """True when the server echoes our messages back (``echo-message``)."""
        with self._lock:
            return self._state.echo

    @property
    def current_room(self) -> str | None:
        """The room plain lines go to (None when we are in no room)."""
        with self._lock:
            return self._state.current_room

    @property
    def rooms(self) -> list[str]:
        """The rooms we are in, in the order we joined them."""
        with self._lock:
            return self._state.rooms

    def members(self, room: str) -> tuple[str, ...]:
        """The users of ``room`` as last reported by the server (sorted; empty if unknown)."""
        with self._lock:
            return self._state.members(room)

    def online_users(self, exclude_self: bool = True) -> tuple[str, ...]:
        """Everyone in any of our rooms (every user is in ``#general``), sorted."""
        with self._lock:
            return self._state.online_users(exclude_self)

    @property
    def reader_alive(self) -> bool:
        """True while the reader thread runs."""
        return self._thread.is_alive()

    @property
    def connected(self) -> bool:
        """True while the socket is open."""
        return self._sock is not None

    # ------------------------------------------------------------------ lifecycle

    def login(self, timeout: float = 30.0) -> LoginInfo:
        """Connect, register and log in; block until done (at most ``timeout`` seconds).

        Returns the :class:`~nativeclient.events.LoginInfo`. Raises
        ``UnreachableError`` (cannot connect, closed or no answer during
        login) or ``LoginRefused`` (wrong password, name in use, server
        refused); in both cases the session is closed and the reader joined.
        """
        sock = open_socket(
            self.host, self.port, tls=self.tls, ca_file=self.ca_file, timeout=self.connect_timeout
        )
        with self._lock:
            self._sock = sock
            self._state.start()
            events = self._flush()
        self._deliver(events)
        self._thread.start()
        try:
            return self._login_future.result(timeout)
        except concurrent.futures.TimeoutError:
            self.close()
            raise UnreachableError(
                f"no answer from {self.host}:{self.port} within {timeout:g} s during login"
            ) from None
        except BaseException:
            self.close()
            raise

    def attach(self, sink: Callable[[Event], None]) -> None:
        """Start delivering events to ``sink`` (events since login are delivered first)."""
        with self._lock:
            queued, self._queued = self._queued, []
            for ev in queued:
                sink(ev)
            self._sink = sink

    def quit(self, reason: str = "leaving", timeout: float = 3.0) -> None:
        """Send ``QUIT :reason``, wait up to ``timeout`` s for the server to close, then :meth:`close`."""
        with self._lock:
            self._state.close()
            self._state.quit(reason)
            events = self._flush()
        self._deliver(events)
        if self.connected and self._thread.is_alive():
            self._thread.join(timeout)
        self.close()

    def close(self) -> None:
        """Stop the reader thread, join it, close the socket. Idempotent; never raises."""
        with self._lock:
            self._state.close()
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(5.0)
        if not self._thread.is_alive():
            self._disconnect("closed")
        with self._lock:
            self._state.fail_outstanding("the connection is closed")
            events = self._flush()
        self._deliver(events)

    # ------------------------------------------------------------------ commands (UI thread)

    def _run_command(self, call: Callable[[], object]) -> object:
        """Run ``call`` on the state under the lock, write what it queued, then deliver its events.

        Whatever ``call`` raises propagates, after what it queued before
        raising has been written and delivered.
        """
        events: list[Event] = []
        try:
            with self._lock:
                try:
                    return call()
                finally:
                    events = self._flush()
        finally:
            self._deliver(events)

    def sync(self) -> concurrent.futures.Future:
        """Send ``PING :<token>``; the future resolves (True) when the matching PONG arrives.

        Everything sent before has then been processed by the server, so all
        earlier :class:`PendingSend` futures are resolved too. The future
        fails with ``ConnectionLost`` if the connection ends first.
        """
        return self._request(self._state.sync)

    def _request(self, call: Callable[[], int]) -> concurrent.futures.Future:
        """A future for the request ``call`` makes; ``ConnectionLost`` sets it instead of raising."""
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def make() -> None:
            self._futures[call()] = fut

        try:
            self._run_command(make)
        except ConnectionLost as exc:
            fut.set_exception(exc)
        return fut

    def send_message(
        self,
        target: str,
        text: str,
        *,
        operation: str = "msg",
        confirm: bool = False,
        action: bool = False,
        local_echo: bool = True,
    ) -> list[PendingSend]:
        """Send ``text`` to ``target`` (room or nick) as one or more PRIVMSGs.

        See :meth:`SessionState.send_message <nativeclient.state.SessionState.send_message>`
        for the arguments. Returns one :class:`PendingSend` per PRIVMSG. Raises
        ``ConnectionLost`` when not connected, ``ValueError`` for an empty text.
        """
        sent: list[PendingSend] = []

        def make() -> None:
            for m in self._state.send_message(
                target, text, _now(), operation=operation, confirm=confirm, action=action, local_echo=local_echo
            ):
                p = PendingSend(**{f.name: getattr(m, f.name) for f in fields(OutgoingMessage)})
                self._futures[p.seq] = p.future
                sent.append(p)

        self._run_command(make)
        return sent

    def join(self, room: str) -> concurrent.futures.Future:
        """Join ``room`` and make it the current room (if already in it, just switch).

        The future resolves to True when the server confirms the JOIN, False
        when it refuses (the error is also reported as a ``ServerError``).
        Raises ``ConnectionLost`` when not connected.
        """
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def make() -> None:
            self._futures[self._state.join(room)] = fut

        self._run_command(make)
        return fut

    def join_and_wait(self, room: str, timeout: float = 10.0) -> bool:
        """:meth:`join` and wait up to ``timeout`` seconds; True if we are in ``room`` now."""
        try:
            return bool(self.join(room).result(timeout))
        except concurrent.futures.TimeoutError:
            return False

    def part(self, room: str | None = None, reason: str | None = None) -> None:
        """Leave ``room`` (None: the current room). Raises ``ValueError`` if we are in no room."""
        self._run_command(lambda: self._state.part(room, reason))

    def request_who(self, room: str | None = None) -> None:
        """Ask for the users of ``room`` (default: current); a ``UserList`` event follows."""
        self._run_command(lambda: self._state.request_who(room))

    def request_rooms(self) -> None:
        """Ask for the room list; a ``RoomList`` event follows."""
        self._run_command(self._state.request_rooms)

    def request_topic(self, room: str | None = None) -> None:
        """Ask for the topic of ``room`` (default: current); a ``Topic`` event follows."""
        self._run_command(lambda: self._state.request_topic(room))

    def set_topic(self, text: str, room: str | None = None) -> None:
        """Set the topic of ``room`` (default: current); the server announces the change."""
        self._run_command(lambda: self._state.set_topic(text, room))

    def request_names(self, room: str = DEFAULT_ROOM) -> concurrent.futures.Future:
        """Send ``NAMES room``; the future resolves to the sorted tuple of nicks (366 received)."""
        return self._request(lambda: self._state.request_names(room))

    # ------------------------------------------------------------------ moving bytes

    def _flush(self) -> list[Event]:
        """Under ``_lock``: write what the state queued, settle futures; return the events to deliver."""
        data = self._state.data_to_send()
        if data:
            self._write(data)
        events: list[Event] = []
        for out in self._state.outputs():
            self._settle(out, events)
        return events

    def _write(self, data: bytes) -> None:
        sock = self._sock
        if sock is None:
            return  # the state learns of the end from _disconnect, under the same lock
        try:
            with self._io_lock:
                sock.sendall(data)
        except OSError as exc:
            self._lost_reason = self._lost_reason or f"write failed: {exc.strerror or exc}"
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _settle(self, out: Output, events: list[Event]) -> None:
        if isinstance(out, Resolved):
            fut = self._futures.pop(out.request, None)
            if fut is not None and not fut.done():
                fut.set_result(out.value)
        elif isinstance(out, Rejected):
            fut = self._futures.pop(out.request, None)
            if fut is not None and not fut.done():
                fut.set_exception(out.error)
        elif isinstance(out, LoginSettled):
            if not self._login_future.done():
                if out.error is not None:
                    self._login_future.set_exception(out.error)
                else:
                    self._login_future.set_result(out.info)  # type: ignore[arg-type]
        elif isinstance(out, Closed):
            if not self.disconnected.done():
                self.disconnected.set_result(out.reason)
        else:
            events.append(out)

    def _deliver(self, events: list[Event]) -> None:
        """Outside ``_lock``: hand events to the sink, or keep them until :meth:`attach`."""
        if not events:
            return
        with self._lock:
            sink = self._sink
            if sink is None:
                self._queued.extend(events)
                return
        for ev in events:
            sink(ev)

    def _disconnect(self, message: str) -> None:
        """Close the socket (no QUIT is sent) and tell the state, once."""
        with self._lock:
            sock, self._sock = self._sock, None
            if sock is None:
                return
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
            self._state.connection_lost(message)
            events = self._flush()
        self._deliver(events)

    # ------------------------------------------------------------------ reader thread

    def _run(self) -> None:
        while not self._stop.is_set() and self._sock is not None:
            try:
                self._read_once()
            except Exception as exc:  # keep reading; never let a traceback escape
                with self._lock:
                    self._state.report(Info(f"internal error while reading: {type(exc).__name__}: {exc}"))
                    events = self._flush()
                self._deliver(events)
        if not self._login_future.done():
            self._login_future.set_exception(
                UnreachableError(f"{self.host}:{self.port} closed the connection during login")
            )

    def _read_once(self) -> None:
        """Wait up to :data:`READ_TICK` s for data; read it and hand it to the state."""
        sock = self._sock
        if sock is None:
            return
        try:
            readable, _, _ = select.select([sock], [], [], READ_TICK)
        except (OSError, ValueError):
            readable = [sock]  # closed under us: recv reports it
        if not readable:
            return
        try:
            with self._io_lock:
                data = sock.recv(READ_SIZE)
                while data and isinstance(sock, ssl.SSLSocket) and sock.pending():
                    more = sock.recv(READ_SIZE)
                    if not more:
                        break
                    data += more
        except OSError as exc:
            self._disconnect(self._lost_reason or f"connection error: {exc.strerror or exc}")
            return
        if not data:
            self._disconnect(self._lost_reason or "")
            return
        with self._lock:
            self._state.receive_data(data, _now())
            events = self._flush()
        self._deliver(events)


def debug_threads_enabled() -> bool:
    """True when ``CHATCLIENT_DEBUG_THREADS`` is set to something other than ``""``/``0``."""
    return os.environ.get("CHATCLIENT_DEBUG_THREADS", "") not in ("", "0")
