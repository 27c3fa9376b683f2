"""The I/O link: the connection, the reader task, and the futures the user interface awaits.

Everything the session knows and decides lives in the pure
:class:`~nativeclient.state.SessionState` (registration, login outcome,
confirmations, rooms and users; see that module for the protocol).
:class:`ChatSession` only moves bytes and time between it and the network,
in the one asyncio event loop the client runs (:mod:`nativeclient.cli`
starts it; the user interface runs in it too):

* :func:`open_stream` connects (name lookup, TCP, optional verified TLS,
  each bounded by a timeout) and returns asyncio streams;
* one reader task (``chatclient-reader``) reads what arrives and hands it to
  the state with the current time, then writes what the state queued and
  settles its outputs;
* the ``send_*``/``request_*`` methods run the state, write what it queued
  (``StreamWriter.write``: they never wait) and return at once;
* the state's :class:`~nativeclient.state.Resolved`/:class:`~nativeclient.state.Rejected`
  settle :class:`asyncio.Future` objects (PRIVMSG confirmations, PING, JOIN,
  NAMES, the login), and its events go to a *sink* callable (the UI), one
  call per event, in the loop.

There is no reconnection: a lost connection ends the program (exit code 3,
see :mod:`nativeclient.cli`). The client starts no thread of its own and
needs no lock: the state is only ever touched from the event loop (asyncio
resolves host names in its executor thread, which ends with the loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TypeVar

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
    "open_stream",
]

READ_SIZE = 2**14
"""Bytes asked of one read."""

T = TypeVar("T")


def _new_future() -> asyncio.Future:
    """A future of the running loop whose exception, if nobody awaits it, is not logged as lost."""
    fut: asyncio.Future = asyncio.get_running_loop().create_future()
    fut.add_done_callback(lambda f: f.cancelled() or f.exception())
    return fut


@dataclass
class PendingSend(OutgoingMessage):
    """One PRIVMSG waiting for the server's confirmation, with the future the caller may await.

    ``future`` resolves to a :class:`~nativeclient.events.SendResult` (it
    never raises except ``ConnectionLost`` when the connection ends first).
    The other fields are those of :class:`~nativeclient.state.OutgoingMessage`.
    Made only inside the running event loop.
    """

    future: asyncio.Future = field(default_factory=_new_future)


async def open_stream(
    host: str,
    port: int,
    *,
    tls: bool = False,
    ca_file: str | None = None,
    timeout: float = 10.0,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to ``host:port`` (a name or an IPv4/IPv6 address), optionally with TLS.

    With ``tls``, the server certificate is verified against the system CAs,
    or only against ``ca_file`` (PEM) when given, and its name must match
    ``host``. ``timeout`` (seconds) bounds name lookup and connect, and
    then the TLS handshake.

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
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(sock=await _connect(host, port))
    except socket.gaierror as exc:
        raise UnreachableError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    except TimeoutError:
        raise UnreachableError(f"cannot reach {where}: timed out after {timeout:g} s") from None
    except OSError as exc:
        raise UnreachableError(f"cannot reach {where}: {_oserror_text(exc)}") from None
    if context is not None:
        try:
            async with asyncio.timeout(timeout):
                await writer.start_tls(context, server_hostname=host)
        except ssl.SSLCertVerificationError as exc:
            writer.close()
            raise UnreachableError(
                f"TLS certificate of {where} not trusted: {exc.verify_message or exc.reason}"
            ) from None
        except TimeoutError:
            writer.close()
            raise UnreachableError(f"TLS handshake with {where} failed: timed out after {timeout:g} s") from None
        except (ssl.SSLError, OSError) as exc:
            writer.close()
            raise UnreachableError(f"TLS handshake with {where} failed: {_oserror_text(exc)}") from None
    return reader, writer


async def _connect(host: str, port: int) -> socket.socket:
    """A connected non-blocking TCP socket to the first address of ``host`` that answers.

    Tries every address of the name in turn, like :func:`socket.create_connection`,
    and raises the last failure (``socket.gaierror`` when the name does not resolve).
    """
    loop = asyncio.get_running_loop()
    error: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, address in await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise error


def _oserror_text(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError) and (exc.errno or exc.strerror):
        # asyncio words a failed connect "Connect call failed (addr)": use the errno's text
        text = os.strerror(exc.errno) if exc.errno else str(exc.strerror)
        return text[0].lower() + text[1:]
    return str(exc) or type(exc).__name__


def _now() -> datetime:
    return datetime.now().astimezone()


class ChatSession:
    """One logged-in user on one server: a :class:`~nativeclient.state.SessionState` on a connection.

    ``host``/``port``: where to connect; ``username``: nick and account name;
    ``password``: sent with PASS (empty: no PASS). ``tls``/``ca_file``: see
    :func:`open_stream`; ``connect_timeout``: seconds for :func:`open_stream`.

    Lifecycle, all inside one running event loop: ``await`` :meth:`login`
    (connects, starts the reader task, returns
    :class:`~nativeclient.events.LoginInfo` or raises a ``ClientError``),
    :meth:`attach` a sink for events, use the ``send_*``/``request_*``
    methods, then ``await`` :meth:`quit` (or :meth:`close`), which always
    ends the reader task. :attr:`disconnected` (from :meth:`login` on) is a
    future that resolves with the reason when the connection ends.
    """

    disconnected: asyncio.Future[str]
    """Resolves with the reason when the connection ends (exists from :meth:`login` on)."""

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
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task | None = None
        self._futures: dict[int, asyncio.Future] = {}
        self._sink: Callable[[Event], None] | None = None
        self._queued: list[Event] = []
        self._login_future: asyncio.Future[LoginInfo] | None = None

    # ------------------------------------------------------------------ properties

    @property
    def state(self) -> SessionState:
        """The pure session state this link drives."""
        return self._state

    @property
    def nick(self) -> str:
        """Our current nick (the username until the server says otherwise)."""
        return self._state.nick

    @property
    def caps(self) -> frozenset[str]:
        """IRCv3 capabilities acknowledged by the server."""
        return self._state.caps

    @property
    def echo(self) -> bool:
        """True when the server echoes our messages back (``echo-message``)."""
        return self._state.echo

    @property
    def current_room(self) -> str | None:
        """The room plain lines go to (None when we are in no room)."""
        return self._state.current_room

    @property
    def rooms(self) -> list[str]:
        """The rooms we are in, in the order we joined them."""
        return self._state.rooms

    def members(self, room: str) -> tuple[str, ...]:
        """The users of ``room`` as last reported by the server (sorted; empty if unknown)."""
        return self._state.members(room)

    def online_users(self, exclude_self: bool = True) -> tuple[str, ...]:
        """Everyone in any of our rooms (every user is in ``#general``), sorted."""
        return self._state.online_users(exclude_self)

    @property
    def reader_alive(self) -> bool:
        """True while the reader task runs."""
        return self._task is not None and not self._task.done()

    @property
    def connected(self) -> bool:
        """True while the connection is open."""
        return self._writer is not None

    # ------------------------------------------------------------------ lifecycle

    async def login(self, timeout: float = 30.0) -> LoginInfo:
        """Connect, register and log in (at most ``timeout`` seconds after connecting).

        Returns the :class:`~nativeclient.events.LoginInfo`. Raises
        ``UnreachableError`` (cannot connect, closed or no answer during
        login) or ``LoginRefused`` (wrong password, name in use, server
        refused); in both cases, and when cancelled, the session is closed
        and the reader task ended.
        """
        self._login_future = _new_future()
        self.disconnected = _new_future()
        self._reader, self._writer = await open_stream(
            self.host, self.port, tls=self.tls, ca_file=self.ca_file, timeout=self.connect_timeout
        )
        self._state.start()
        self._flush()
        self._task = asyncio.create_task(self._read_loop(), name="chatclient-reader")
        try:
            return await asyncio.wait_for(asyncio.shield(self._login_future), timeout)
        except TimeoutError:
            await self.close()
            raise UnreachableError(
                f"no answer from {self.host}:{self.port} within {timeout:g} s during login"
            ) from None
        except BaseException:
            await self.close()
            raise

    def attach(self, sink: Callable[[Event], None]) -> None:
        """Start delivering events to ``sink`` (events since login are delivered first)."""
        queued, self._queued = self._queued, []
        for ev in queued:
            sink(ev)
        self._sink = sink

    async def quit(self, reason: str = "leaving", timeout: float = 3.0) -> None:
        """Send ``QUIT :reason``, wait up to ``timeout`` s for the server to close, then :meth:`close`."""
        self._state.close()
        self._state.quit(reason)
        self._flush()
        if self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
        await self.close()

    async def close(self) -> None:
        """End the reader task, close the connection, fail what is outstanding. Idempotent; never raises."""
        self._state.close()
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        writer = self._writer
        self._disconnect("closed")
        if writer is not None:
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        self._state.fail_outstanding("the connection is closed")
        self._flush()

    # ------------------------------------------------------------------ commands

    def _command(self, call: Callable[[], T]) -> T:
        """Run ``call`` on the state, then write what it queued and settle what it output (also when it raises)."""
        try:
            return call()
        finally:
            self._flush()

    def _request(self, call: Callable[[], int]) -> asyncio.Future:
        """A future for the request ``call`` makes; ``ConnectionLost`` sets it instead of raising."""
        fut = _new_future()
        try:
            self._futures[self._command(call)] = fut
        except ConnectionLost as exc:
            fut.set_exception(exc)
        return fut

    def sync(self) -> asyncio.Future:
        """Send ``PING :<token>``; the future resolves (True) when the matching PONG arrives.

        Everything sent before has then been processed by the server, so all
        earlier :class:`PendingSend` futures are resolved too. The future
        fails with ``ConnectionLost`` if the connection ends first.
        """
        return self._request(self._state.sync)

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
        sent = self._command(
            lambda: self._state.send_message(
                target, text, _now(), operation=operation, confirm=confirm, action=action, local_echo=local_echo
            )
        )
        pending = [PendingSend(**{f.name: getattr(m, f.name) for f in fields(OutgoingMessage)}) for m in sent]
        for p in pending:
            self._futures[p.seq] = p.future
        return pending

    def join(self, room: str) -> asyncio.Future:
        """Join ``room`` and make it the current room (if already in it, just switch).

        The future resolves to True when the server confirms the JOIN, False
        when it refuses (the error is also reported as a ``ServerError``).
        Raises ``ConnectionLost`` when not connected.
        """
        fut = _new_future()
        request = self._state.join(room)  # may resolve at once: register before settling
        self._futures[request] = fut
        self._flush()
        return fut

    async def join_and_wait(self, room: str, timeout: float = 10.0) -> bool:
        """:meth:`join` and wait up to ``timeout`` seconds; True if we are in ``room`` now."""
        try:
            return bool(await asyncio.wait_for(self.join(room), timeout))
        except TimeoutError:
            return False

    def part(self, room: str | None = None, reason: str | None = None) -> None:
        """Leave ``room`` (None: the current room). Raises ``ValueError`` if we are in no room."""
        self._command(lambda: self._state.part(room, reason))

    def request_who(self, room: str | None = None) -> None:
        """Ask for the users of ``room`` (default: current); a ``UserList`` event follows."""
        self._command(lambda: self._state.request_who(room))

    def request_rooms(self) -> None:
        """Ask for the room list; a ``RoomList`` event follows."""
        self._command(self._state.request_rooms)

    def request_topic(self, room: str | None = None) -> None:
        """Ask for the topic of ``room`` (default: current); a ``Topic`` event follows."""
        self._command(lambda: self._state.request_topic(room))

    def set_topic(self, text: str, room: str | None = None) -> None:
        """Set the topic of ``room`` (default: current); the server announces the change."""
        self._command(lambda: self._state.set_topic(text, room))

    def request_names(self, room: str = DEFAULT_ROOM) -> asyncio.Future:
        """Send ``NAMES room``; the future resolves to the sorted tuple of nicks (366 received)."""
        return self._request(lambda: self._state.request_names(room))

    # ------------------------------------------------------------------ moving bytes

    def _flush(self) -> None:
        """Write what the state queued, settle futures, hand events to the sink (or keep them)."""
        data = self._state.data_to_send()
        if data and self._writer is not None:
            self._writer.write(data)
        for out in self._state.outputs():
            if isinstance(out, Resolved | Rejected):
                fut = self._futures.pop(out.request, None)
                if fut is not None and not fut.done():
                    if isinstance(out, Resolved):
                        fut.set_result(out.value)
                    else:
                        fut.set_exception(out.error)
            elif isinstance(out, LoginSettled):
                if self._login_future is not None and not self._login_future.done():
                    if out.error is not None:
                        self._login_future.set_exception(out.error)
                    else:
                        self._login_future.set_result(out.info)  # type: ignore[arg-type]
            elif isinstance(out, Closed):
                if not self.disconnected.done():
                    self.disconnected.set_result(out.reason)
            elif self._sink is None:
                self._queued.append(out)
            else:
                self._sink(out)

    def _disconnect(self, message: str) -> None:
        """Close the connection (no QUIT is sent) and tell the state, once."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        writer.close()
        self._state.connection_lost(message)
        self._flush()

    async def _read_loop(self) -> None:
        """The reader task: feed the state until the connection ends (cancelled by :meth:`close`)."""
        assert self._reader is not None
        reason = ""
        while True:
            try:
                data = await self._reader.read(READ_SIZE)
            except OSError as exc:
                reason = f"connection error: {exc.strerror or exc}"
                break
            if not data:
                break
            try:
                self._state.receive_data(data, _now())
            except Exception as exc:  # the state never raises; never let a traceback escape anyway
                self._state.report(Info(f"internal error while reading: {type(exc).__name__}: {exc}"))
            self._flush()
        self._disconnect(reason)
        if self._login_future is not None and not self._login_future.done():
            self._login_future.set_exception(
                UnreachableError(f"{self.host}:{self.port} closed the connection during login")
            )


def debug_threads_enabled() -> bool:
    """True when ``CHATCLIENT_DEBUG_THREADS`` is set to something other than ``""``/``0``."""
    return os.environ.get("CHATCLIENT_DEBUG_THREADS", "") not in ("", "0")
