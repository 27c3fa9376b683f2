"""The IRC session: connection, reader thread, login, confirmations, rooms and users.

No terminal code lives here. :class:`ChatSession` owns an ``irc.client``
reactor and connection; one reader thread runs the reactor (``irc.client``
does the parsing) and turns IRC events into the typed events of
:mod:`nativeclient.events`, which it hands to a *sink* callable (the UI).
The UI thread calls the ``send_*``/``request_*`` methods; they only write to
the socket, so they never wait for the reader.

Registration (what is sent, in order)::

    CAP LS 302
    PASS :<password>            (omitted when the password is empty)
    NICK <name>
    USER <name> 0 * :<name>
    CAP REQ :echo-message ...   (only capabilities the server listed in CAP LS)
    CAP END

Login outcome, decided by the reader thread:

* ``464`` (ERR_PASSWDMISMATCH) -> :class:`~nativeclient.events.LoginRefused` "wrong password";
* ``433`` (ERR_NICKNAMEINUSE) before ``001`` -> ``LoginRefused`` "already online";
* ``ERROR`` before ``001`` -> ``LoginRefused`` with the server's reason;
* connection closed before login -> :class:`~nativeclient.events.UnreachableError`;
* after the end of the welcome burst (376/422) the client sends
  ``PING :<token>``; the server processes a connection's commands in order,
  so when the ``PONG`` arrives every line of the login burst (``NOTICE ...
  Registered new account``, ``900`` RPL_LOGGEDIN, the automatic ``JOIN
  #general`` and its ``353``/``366`` names) has been seen. If the server did
  not put us in ``#general`` (a plain IRC server), the client joins it and
  waits for its ``366``. Then the login is complete.

Confirmations of sent messages (:class:`PendingSend`):

* with ``echo-message`` the server echoes each PRIVMSG back: the echo is the
  confirmation (matched by ``label`` when ``labeled-response`` is in use,
  otherwise by target and text, in order);
* with ``labeled-response`` alone, the labelled ``ACK`` confirms;
* otherwise, for messages that need confirmation (PM, DM, piped input), a
  ``PING :<token>`` follows the message and its ``PONG`` confirms everything
  sent before it;
* an error numeric about the target (401 no such nick, 404 cannot send,
  403 no such channel, ...) fails the oldest unconfirmed message to it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import logging
import os
import re
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import irc.client
import irc.strings
from irc.client import Event as IrcEvent
from irc.client import NickMask
from jaraco.stream import buffer as jbuffer

from nativeclient.commands import DEFAULT_ROOM, MAX_TEXT_BYTES, is_channel, split_text
from nativeclient.events import (
    ConnectionLost,
    Disconnected,
    Event,
    Info,
    LoginInfo,
    LoginRefused,
    Message,
    Presence,
    RoomInfo,
    RoomList,
    SendResult,
    ServerError,
    Topic,
    UnreachableError,
    UserList,
)

log = logging.getLogger(__name__)

WANTED_CAPS = ("echo-message", "labeled-response", "batch", "server-time")
"""IRCv3 capabilities requested when the server lists them in ``CAP LS``."""

SEND_ERRORS = {
    "401",  # ERR_NOSUCHNICK
    "402",  # ERR_NOSUCHSERVER
    "403",  # ERR_NOSUCHCHANNEL
    "404",  # ERR_CANNOTSENDTOCHAN
    "407",  # ERR_TOOMANYTARGETS
    "411",  # ERR_NORECIPIENT
    "412",  # ERR_NOTEXTTOSEND
    "442",  # ERR_NOTONCHANNEL
}
"""Error numerics that can answer a PRIVMSG; the first parameter after our nick is the target."""

JOIN_ERRORS = {"403", "405", "471", "473", "474", "475", "476", "477"}


_LIST_MODES = re.compile(r"^\[\+[A-Za-z]*(?: [^\]]*)?\] ?")


def fold(name: str) -> str:
    """Case-fold a nick or room name the IRC way (RFC 1459: ``[]\\^`` ~ ``{}|~``)."""
    return irc.strings.lower(name)


def _strip_prefixes(nick: str, prefixes: str) -> str:
    return nick.lstrip(prefixes)


def _sorted_nicks(nicks: object) -> tuple[str, ...]:
    return tuple(sorted(nicks, key=fold))  # type: ignore[call-overload]


@dataclass
class PendingSend:
    """One PRIVMSG waiting for the server's confirmation.

    ``future`` resolves to a :class:`~nativeclient.events.SendResult` (it
    never raises except ``ConnectionLost`` when the connection ends first).
    ``seq`` orders sends and PINGs; ``label`` is the labeled-response label
    (None when not in use); ``notify`` asks for a ``SendResult`` event on
    success (failures are always reported).
    """

    target: str
    text: str
    operation: str
    seq: int
    action: bool = False
    label: str | None = None
    notify: bool = False
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


class _Room:
    def __init__(self, name: str) -> None:
        self.name = name
        self.members: dict[str, str] = {}  # folded nick -> nick as shown
        self.topic: str | None = None


class _Connection(irc.client.ServerConnection):
    """``irc.client.ServerConnection`` with thread-safe socket I/O.

    Writes use ``sendall`` (the library uses ``send``, which may write only
    part of a line) under a lock shared with reads, so the UI thread and the
    reader thread never use the (possibly TLS) socket at the same time.
    Bytes that are not UTF-8 are decoded as latin-1 instead of raising.
    A failed write shuts the socket down so that the reader thread notices
    and reports the disconnection.
    """

    buffer_class = jbuffer.LenientDecodingLineBuffer

    def __init__(self, reactor: irc.client.Reactor) -> None:
        super().__init__(reactor)
        self.io_lock = threading.RLock()
        self.lost_reason: str | None = None

    def send_raw(self, string: str) -> None:
        log.debug("-> %s", string)
        sock = self.socket
        if sock is None:
            raise irc.client.ServerNotConnectedError("Not connected.")
        data = self._prep_message(string)
        try:
            with self.io_lock:
                sock.sendall(data)
        except OSError as exc:
            self.lost_reason = self.lost_reason or f"write failed: {exc.strerror or exc}"
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def process_data(self) -> None:
        sock = self.socket
        if sock is None:
            return
        try:
            with self.io_lock:
                data = sock.recv(2**14)
                while data and isinstance(sock, ssl.SSLSocket) and sock.pending():
                    more = sock.recv(2**14)
                    if not more:
                        break
                    data += more
        except OSError as exc:
            self.disconnect(self.lost_reason or f"connection error: {exc.strerror or exc}")
            return
        if not data:
            self.disconnect(self.lost_reason or "")
            return
        self.buffer.feed(data)
        for line in self.buffer:
            if not line:
                continue
            log.debug("<- %s", line)
            try:
                self._process_line(line)
            except AttributeError:
                continue  # a line the library's grammar does not match: ignore it

    def disconnect(self, message: str = "") -> None:
        """Close the socket (no QUIT is sent) and fire the ``disconnect`` event once."""
        try:
            del self.connected
        except AttributeError:
            return
        sock = self.socket
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
        del self.socket
        self._handle_event(IrcEvent("disconnect", self.server, "", [message]))


class _Reactor(irc.client.Reactor):
    connection_class = _Connection


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


class ChatSession:
    """One logged-in user on one server.

    ``host``/``port``: where to connect; ``username``: nick and account name;
    ``password``: sent with PASS (empty: no PASS). ``tls``/``ca_file``: see
    :func:`open_socket`.

    Lifecycle: :meth:`login` (connects, starts the reader thread, returns
    :class:`~nativeclient.events.LoginInfo` or raises a ``ClientError``),
    :meth:`attach` a sink for events, use the ``send_*``/``request_*``
    methods, then :meth:`quit` (or :meth:`close`), which always joins the
    reader thread. :attr:`disconnected` is a future that resolves with the
    reason when the connection ends without the user asking.

    Thread-safety: every public method may be called from any thread; the
    sink is called from the reader thread, one event at a time.
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

        self._lock = threading.RLock()
        self._reactor = _Reactor()
        self._conn: _Connection = self._reactor.server()  # type: ignore[assignment]
        self._reactor.add_global_handler("all_events", self._on_irc_event, 0)
        self._thread = threading.Thread(target=self._run, name="chatclient-reader", daemon=True)
        self._stop = threading.Event()

        self._seq = itertools.count(1)
        self._tokens = itertools.count(1)
        self._sink: Callable[[Event], None] | None = None
        self._queued: list[Event] = []

        # registration / login state
        self._login_future: concurrent.futures.Future[LoginInfo] = concurrent.futures.Future()
        self.disconnected: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._registered = False
        self._logged_in = False
        self._login_token: str | None = None
        self._login_joining = False
        self._cap_ls: list[str] = []
        self._cap_negotiating = False
        self._caps: set[str] = set()
        self._account: str | None = None
        self._new_account = False
        self._error_reason: str | None = None
        self._prelogin_error: str | None = None
        self._closing = False

        # rooms and users
        self._rooms: dict[str, _Room] = {}
        self._current_room: str | None = None
        self._switch_on_join: str | None = None
        self._announce_names: set[str] = set()
        self._names_acc: dict[str, dict[str, str]] = {}
        self._names_waiters: dict[str, list[concurrent.futures.Future]] = {}
        self._join_waiters: dict[str, list[concurrent.futures.Future]] = {}
        self._who_acc: dict[str, list[str]] = {}
        self._list_acc: list[RoomInfo] = []

        # confirmations
        self._pending: list[PendingSend] = []
        self._pings: dict[str, tuple[int, concurrent.futures.Future]] = {}
        self._batches: dict[str, str] = {}  # batch reference -> label

    # ------------------------------------------------------------------ properties

    @property
    def nick(self) -> str:
        """Our current nick (the username until the server says otherwise)."""
        return self._conn.get_nickname() if self._registered else self.username

    @property
    def caps(self) -> frozenset[str]:
        """IRCv3 capabilities acknowledged by the server."""
        with self._lock:
            return frozenset(self._caps)

    @property
    def echo(self) -> bool:
        """True when the server echoes our messages back (``echo-message``)."""
        return "echo-message" in self.caps

    @property
    def current_room(self) -> str | None:
        """The room plain lines go to (None when we are in no room)."""
        with self._lock:
            return self._current_room

    @property
    def rooms(self) -> list[str]:
        """The rooms we are in, in the order we joined them."""
        with self._lock:
            return [r.name for r in self._rooms.values()]

    def members(self, room: str) -> tuple[str, ...]:
        """The users of ``room`` as last reported by the server (sorted; empty if unknown)."""
        with self._lock:
            r = self._rooms.get(fold(room))
            return _sorted_nicks(r.members.values()) if r else ()

    def online_users(self, exclude_self: bool = True) -> tuple[str, ...]:
        """Everyone in any of our rooms (every user is in ``#general``), sorted."""
        with self._lock:
            seen: dict[str, str] = {}
            for r in self._rooms.values():
                seen.update(r.members)
            if exclude_self:
                seen.pop(fold(self.nick), None)
            return _sorted_nicks(seen.values())

    @property
    def reader_alive(self) -> bool:
        """True while the reader thread runs."""
        return self._thread.is_alive()

    @property
    def connected(self) -> bool:
        """True while the socket is open."""
        return bool(self._conn.connected)

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
        preamble = ["CAP LS 302"]
        if self.password:
            preamble.append(f"PASS :{self.password}")
        self._cap_negotiating = True

        def factory(_address: object) -> socket.socket:
            sock.sendall("".join(line + "\r\n" for line in preamble).encode())
            return sock

        try:
            self._conn.connect(
                self.host,
                self.port,
                self.username,
                username=self.username,
                ircname=self.username,
                connect_factory=factory,
            )
        except irc.client.ServerConnectionError as exc:
            sock.close()
            raise UnreachableError(f"cannot talk to {self.host}:{self.port}: {exc}") from None
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
            self._closing = True
        if self.connected:
            with contextlib.suppress(irc.client.ServerNotConnectedError):
                self._conn.send_raw(f"QUIT :{reason}" if reason else "QUIT")
            if self._thread.is_alive():
                self._thread.join(timeout)
        self.close()

    def close(self) -> None:
        """Stop the reader thread, join it, close the socket. Idempotent; never raises."""
        with self._lock:
            self._closing = True
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(5.0)
        if self._conn.connected and not self._thread.is_alive():
            with self._reactor.mutex:
                self._conn.disconnect("closed")
        self._fail_outstanding("the connection is closed")

    # ------------------------------------------------------------------ sending

    def _send(self, line: str) -> None:
        try:
            self._conn.send_raw(line)
        except irc.client.ServerNotConnectedError:
            raise ConnectionLost("not connected") from None
        except (irc.client.InvalidCharacters, irc.client.MessageTooLong) as exc:
            raise ValueError(str(exc)) from None

    def _new_token(self) -> str:
        return f"chatclient-{next(self._tokens)}"

    def sync(self) -> concurrent.futures.Future:
        """Send ``PING :<token>``; the future resolves (True) when the matching PONG arrives.

        Everything sent before has then been processed by the server, so all
        earlier :class:`PendingSend` futures are resolved too. The future
        fails with ``ConnectionLost`` if the connection ends first.
        """
        token = self._new_token()
        fut: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            self._pings[token] = (next(self._seq), fut)
        try:
            self._send(f"PING :{token}")
        except ConnectionLost as exc:
            with self._lock:
                self._pings.pop(token, None)
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

        Long texts are split (see :func:`~nativeclient.commands.split_text`).
        ``operation`` (``"PM"``, ``"DM"``, ``"msg"``) is copied into the
        :class:`~nativeclient.events.SendResult`. ``confirm``: report success
        with a ``SendResult`` event (a PING follows when needed, see the module
        docstring); failures are always reported. ``action``: send as ``/me``.
        ``local_echo``: without ``echo-message``, report our own message
        immediately as a ``Message(own=True)`` event.

        Returns one :class:`PendingSend` per PRIVMSG. Raises ``ConnectionLost``
        when not connected, ``ValueError`` for an empty text.
        """
        # relayed as ":nick!user@host PRIVMSG target :text" -- keep under 512 bytes
        budget = 390 - len(target.encode()) - (9 if action else 0)
        pieces = split_text(text, max(16, min(MAX_TEXT_BYTES, budget)))
        if not pieces:
            raise ValueError("nothing to send")
        use_labels = "labeled-response" in self.caps
        echo = self.echo
        sent: list[PendingSend] = []
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            with self._lock:
                seq = next(self._seq)
                label = f"cl{seq}" if use_labels else None
                p = PendingSend(
                    target, piece, operation, seq, action=action, label=label, notify=confirm and last
                )
                self._pending.append(p)
            body = f"\x01ACTION {piece}\x01" if action else piece
            tag = f"@label={label} " if label else ""
            try:
                self._send(f"{tag}PRIVMSG {target} :{body}")
            except BaseException:
                with self._lock:
                    if p in self._pending:
                        self._pending.remove(p)
                raise
            sent.append(p)
            if not echo and local_echo:
                self._emit(
                    Message(
                        kind="room" if is_channel(target) else "dm",
                        sender=self.nick,
                        target=target,
                        text=piece,
                        own=True,
                        action=action,
                        time=datetime.now().astimezone(),
                    )
                )
        if confirm and not use_labels:
            self.sync()
        return sent

    def join(self, room: str) -> concurrent.futures.Future:
        """Join ``room`` and make it the current room (if already in it, just switch).

        The future resolves to True when the server confirms the JOIN, False
        when it refuses (the error is also reported as a ``ServerError``).
        """
        fut: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            existing = self._rooms.get(fold(room))
            if existing is not None:
                self._current_room = existing.name
                fut.set_result(True)
                self._emit(Info(f"now talking in {existing.name}"))
                return fut
            self._switch_on_join = fold(room)
            self._join_waiters.setdefault(fold(room), []).append(fut)
        self._send(f"JOIN {room}")
        return fut

    def join_and_wait(self, room: str, timeout: float = 10.0) -> bool:
        """:meth:`join` and wait up to ``timeout`` seconds; True if we are in ``room`` now."""
        try:
            return bool(self.join(room).result(timeout))
        except concurrent.futures.TimeoutError:
            return False

    def part(self, room: str | None = None, reason: str | None = None) -> None:
        """Leave ``room`` (None: the current room). Raises ``ValueError`` if we are in no room."""
        room = room or self.current_room
        if not room:
            raise ValueError("you are not in any room")
        self._send(f"PART {room} :{reason}" if reason else f"PART {room}")

    def request_who(self, room: str | None = None) -> None:
        """Ask for the users of ``room`` (default: current); a ``UserList`` event follows."""
        room = room or self.current_room
        if not room:
            raise ValueError("you are not in any room")
        self._send(f"WHO {room}")

    def request_rooms(self) -> None:
        """Ask for the room list; a ``RoomList`` event follows."""
        with self._lock:
            self._list_acc = []
        self._send("LIST")

    def request_topic(self, room: str | None = None) -> None:
        """Ask for the topic of ``room`` (default: current); a ``Topic`` event follows."""
        room = room or self.current_room
        if not room:
            raise ValueError("you are not in any room")
        self._send(f"TOPIC {room}")

    def set_topic(self, text: str, room: str | None = None) -> None:
        """Set the topic of ``room`` (default: current); the server announces the change."""
        room = room or self.current_room
        if not room:
            raise ValueError("you are not in any room")
        self._send(f"TOPIC {room} :{text}")

    def request_names(self, room: str = DEFAULT_ROOM) -> concurrent.futures.Future:
        """Send ``NAMES room``; the future resolves to the sorted tuple of nicks (366 received)."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            self._names_waiters.setdefault(fold(room), []).append(fut)
        try:
            self._send(f"NAMES {room}")
        except ConnectionLost as exc:
            fut.set_exception(exc)
        return fut

    # ------------------------------------------------------------------ reader thread

    def _run(self) -> None:
        while not self._stop.is_set() and self._conn.connected:
            try:
                self._reactor.process_once(0.2)
            except Exception as exc:  # keep reading; never let a traceback escape
                self._emit(Info(f"internal error while reading: {type(exc).__name__}: {exc}"))
        if not self._login_future.done():
            self._login_future.set_exception(
                UnreachableError(f"{self.host}:{self.port} closed the connection during login")
            )

    def _emit(self, event: Event) -> None:
        with self._lock:
            if self._closing:
                return
            if not self._logged_in:
                # During login only what others say or do is kept (shown right
                # after the login summary); the login burst itself is summarised.
                keep = isinstance(event, Message) or (isinstance(event, Presence) and not event.own)
                if not (self._registered and keep):
                    return
            if self._sink is None:
                self._queued.append(event)
                return
            sink = self._sink
        sink(event)

    def _on_irc_event(self, connection: irc.client.ServerConnection, event: IrcEvent) -> None:
        etype = str(event.type)
        if etype == "all_raw_messages":
            return
        code = getattr(event.type, "code", etype)
        handler = getattr(self, "_on_" + etype.replace("-", "_"), None)
        try:
            if handler is not None:
                handler(event)
            elif code.isdigit():
                self._on_numeric(code, event)
        except ConnectionLost:
            pass
        except Exception as exc:  # a bug here must not kill the reader thread
            self._emit(Info(f"internal error handling {etype}: {type(exc).__name__}: {exc}"))

    # --- helpers for event handlers

    @staticmethod
    def _tags(event: IrcEvent) -> dict[str, str]:
        return {t["key"]: t["value"] or "" for t in (event.tags or [])}

    def _label_of(self, event: IrcEvent) -> str | None:
        tags = self._tags(event)
        if "label" in tags:
            return tags["label"]
        ref = tags.get("batch")
        return self._batches.get(ref) if ref else None

    @staticmethod
    def _time_of(event: IrcEvent) -> datetime:
        stamp = ChatSession._tags(event).get("time")
        if stamp:
            with contextlib.suppress(ValueError):
                return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone()
        return datetime.now().astimezone()

    def _is_me(self, nick: str | None) -> bool:
        return bool(nick) and fold(nick) == fold(self.nick)  # type: ignore[arg-type]

    def _prefixes(self) -> str:
        prefix = getattr(self._conn.features, "prefix", None) or {}
        return "".join(prefix) + "~&@%+!"

    # --- registration

    def _on_cap(self, event: IrcEvent) -> None:
        args = list(event.arguments)
        if not args:
            return
        sub = args[0].upper()
        if sub == "LS":
            more = len(args) >= 3 and args[1] == "*"
            self._cap_ls.extend(args[-1].split())
            if more or not self._cap_negotiating:
                return
            offered = {c.split("=", 1)[0] for c in self._cap_ls}
            wanted = [c for c in WANTED_CAPS if c in offered]
            if "labeled-response" in wanted and "batch" not in wanted:
                wanted.remove("labeled-response")
            if wanted:
                self._send("CAP REQ :" + " ".join(wanted))
            else:
                self._end_cap()
        elif sub == "ACK":
            with self._lock:
                for cap in args[-1].split():
                    if cap.startswith("-"):
                        self._caps.discard(cap[1:])
                    else:
                        self._caps.add(cap)
            self._end_cap()
        elif sub == "NAK":
            self._end_cap()
        elif sub == "DEL":
            with self._lock:
                for cap in args[-1].split():
                    self._caps.discard(cap)

    def _end_cap(self) -> None:
        if self._cap_negotiating:
            self._cap_negotiating = False
            self._send("CAP END")

    def _fail_login(self, exc: Exception) -> None:
        if not self._login_future.done():
            self._login_future.set_exception(exc)
            with contextlib.suppress(ConnectionLost):
                self._send("QUIT :login failed")

    def _on_welcome(self, event: IrcEvent) -> None:
        self._registered = True
        self._cap_negotiating = False

    def _on_endofmotd(self, event: IrcEvent) -> None:
        if self._registered and not self._logged_in and self._login_token is None:
            self._login_token = self._new_token()
            self._send(f"PING :{self._login_token}")

    _on_nomotd = _on_endofmotd

    def _on_loggedin(self, event: IrcEvent) -> None:
        args = event.arguments
        self._account = args[1] if len(args) >= 2 else self.username

    def _on_passwdmismatch(self, event: IrcEvent) -> None:
        text = event.arguments[-1] if event.arguments else ""
        if text.strip().lower() in ("", "password incorrect", "password mismatch"):
            self._fail_login(LoginRefused(f"wrong password for {self.username}"))
        else:  # e.g. "Too many failed login attempts; try again in 31 seconds"
            self._fail_login(LoginRefused(f"login refused for {self.username}: {text}"))

    def _on_nicknameinuse(self, event: IrcEvent) -> None:
        if not self._registered:
            self._fail_login(LoginRefused(f"{self.username} is already online"))
        else:
            self._emit(ServerError(" ".join(event.arguments), "433"))

    def _on_erroneusnickname(self, event: IrcEvent) -> None:
        if not self._registered:
            reason = event.arguments[-1] if event.arguments else "erroneous nickname"
            self._fail_login(LoginRefused(f"the server does not accept the name {self.username!r}: {reason}"))

    def _on_yourebannedcreep(self, event: IrcEvent) -> None:
        reason = event.arguments[-1] if event.arguments else "banned"
        self._fail_login(LoginRefused(f"the server refused the login: {reason}"))

    def _on_error(self, event: IrcEvent) -> None:
        reason = event.target or (event.arguments[0] if event.arguments else "") or "closing"
        self._error_reason = reason
        if not self._registered and not self._login_future.done():
            why = self._prelogin_error or reason
            self._login_future.set_exception(LoginRefused(f"the server refused the login: {why}"))

    def _on_disconnect(self, event: IrcEvent) -> None:
        message = event.arguments[0] if event.arguments else ""
        reason = self._error_reason or message or "connection closed by the server"
        if not self._login_future.done():
            self._login_future.set_exception(
                UnreachableError(f"{self.host}:{self.port} closed the connection during login ({reason})")
            )
        with self._lock:
            closing = self._closing
        self._fail_outstanding(f"disconnected: {reason}")
        if not closing and self._logged_in:
            self._emit(Disconnected(reason))
        if not self.disconnected.done():
            self.disconnected.set_result(reason)

    def _fail_outstanding(self, reason: str) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            pings, self._pings = self._pings, {}
            waiters, self._names_waiters = self._names_waiters, {}
            joins, self._join_waiters = self._join_waiters, {}
        waiters.update({"join " + k: v for k, v in joins.items()})
        lost = ConnectionLost(reason)
        for p in pending:
            if not p.future.done():
                p.future.set_exception(lost)
        for _, fut in pings.values():
            if not fut.done():
                fut.set_exception(lost)
        for futs in waiters.values():
            for fut in futs:
                if not fut.done():
                    fut.set_exception(lost)
        if not self._login_future.done():
            self._login_future.set_exception(UnreachableError(reason))

    def _complete_login(self) -> None:
        with self._lock:
            general = self._rooms.get(fold(DEFAULT_ROOM))
            room = general.name if general else (next(iter(self._rooms.values())).name if self._rooms else None)
            self._current_room = room
            online = self.members(room) if room else ()
            self._logged_in = True
            info = LoginInfo(
                nick=self.nick,
                account=self._account,
                new_account=self._new_account,
                room=room,
                online=online,
                caps=frozenset(self._caps),
            )
        if not self._login_future.done():
            self._login_future.set_result(info)

    # --- PING/PONG

    def _on_pong(self, event: IrcEvent) -> None:
        token = event.arguments[-1] if event.arguments else (event.target or "")
        if token == self._login_token and not self._logged_in:
            self._login_token = None
            with self._lock:
                in_general = fold(DEFAULT_ROOM) in self._rooms
            if in_general:
                self._complete_login()
            else:
                self._login_joining = True
                self._send(f"JOIN {DEFAULT_ROOM}")
            return
        with self._lock:
            entry = self._pings.pop(token, None)
            if entry is None:
                return
            seq, fut = entry
            done = [p for p in self._pending if p.seq < seq]
            self._pending = [p for p in self._pending if p.seq >= seq]
        for p in done:
            self._resolve(p, True, via="ping")
        if not fut.done():
            fut.set_result(True)

    # --- confirmations

    def _resolve(self, p: PendingSend, ok: bool, via: str = "", reason: str = "", not_online: bool = False) -> None:
        with self._lock:
            if p in self._pending:
                self._pending.remove(p)
        if p.future.done():
            return
        result = SendResult(
            target=p.target,
            text=p.text,
            ok=ok,
            operation=p.operation,  # type: ignore[arg-type]
            via=via,
            reason=reason,
            not_online=not_online,
        )
        p.future.set_result(result)
        if not ok or p.notify:
            self._emit(result)

    def _find_pending(self, *, label: str | None = None, target: str | None = None, text: str | None = None, action: bool | None = None) -> PendingSend | None:
        with self._lock:
            for p in self._pending:
                if label is not None:
                    if p.label == label:
                        return p
                    continue
                if target is not None and fold(p.target) != fold(target):
                    continue
                if text is not None and p.text != text:
                    continue
                if action is not None and p.action != action:
                    continue
                return p
        return None

    def _on_ack(self, event: IrcEvent) -> None:
        label = self._label_of(event)
        p = self._find_pending(label=label) if label else None
        if p is not None:
            self._resolve(p, True, via="label")

    def _on_batch(self, event: IrcEvent) -> None:
        ref = event.target or ""
        if ref.startswith("+"):
            label = self._tags(event).get("label")
            if label:
                self._batches[ref[1:]] = label
        elif ref.startswith("-"):
            label = self._batches.pop(ref[1:], None)
            p = self._find_pending(label=label) if label else None
            if p is not None:
                self._resolve(p, True, via="label")

    def _own_echo(self, event: IrcEvent, text: str, action: bool) -> None:
        label = self._label_of(event)
        p = (
            self._find_pending(label=label)
            if label
            else self._find_pending(target=event.target, text=text, action=action)
        )
        if p is not None:
            self._resolve(p, True, via="label" if label else "echo")

    # --- messages

    def _message(self, event: IrcEvent, *, action: bool = False, notice: bool = False) -> None:
        source = NickMask(event.source or "")
        text = event.arguments[0] if event.arguments else ""
        nick = source.nick if "!" in source else source
        own = self._is_me(nick) and "!" in source
        try:
            self._show_message(event, source, nick, text, own=own, action=action, notice=notice)
        finally:
            if own and not notice:
                self._own_echo(event, text, action)  # the confirmation comes after the message

    def _show_message(
        self, event: IrcEvent, source: str, nick: str, text: str, *, own: bool, action: bool, notice: bool
    ) -> None:
        target = event.target or ""
        if notice and "!" not in source and not is_channel(target):
            # a server notice
            if not self._logged_in and text.lower().startswith("registered new account"):
                self._new_account = True
                return
            self._emit(Info(text))
            return
        kind: Literal["room", "dm"] = "room" if is_channel(target) else "dm"
        self._emit(
            Message(
                kind=kind,
                sender=nick,
                target=target,
                text=text,
                own=own,
                action=action,
                notice=notice,
                time=self._time_of(event),
            )
        )

    def _on_pubmsg(self, event: IrcEvent) -> None:
        self._message(event)

    def _on_privmsg(self, event: IrcEvent) -> None:
        self._message(event)

    def _on_action(self, event: IrcEvent) -> None:
        self._message(event, action=True)

    def _on_pubnotice(self, event: IrcEvent) -> None:
        self._message(event, notice=True)

    def _on_privnotice(self, event: IrcEvent) -> None:
        self._message(event, notice=True)

    def _on_ctcp(self, event: IrcEvent) -> None:
        source = NickMask(event.source or "")
        kind = event.arguments[0] if event.arguments else ""
        if kind == "VERSION" and not self._is_me(source.nick):
            with contextlib.suppress(ConnectionLost, ValueError):
                self._send(f"NOTICE {source.nick} :\x01VERSION chatclient\x01")
        elif kind == "PING" and not self._is_me(source.nick) and len(event.arguments) > 1:
            with contextlib.suppress(ConnectionLost, ValueError):
                self._send(f"NOTICE {source.nick} :\x01PING {event.arguments[1]}\x01")

    # --- presence

    def _on_join(self, event: IrcEvent) -> None:
        nick = NickMask(event.source).nick
        room = event.target or ""
        key = fold(room)
        own = self._is_me(nick)
        with self._lock:
            if own:
                self._rooms[key] = _Room(room)
                if self._switch_on_join == key:
                    self._current_room = room
                    self._switch_on_join = None
                if self._logged_in:
                    self._announce_names.add(key)
            r = self._rooms.get(key)
            if r is not None:
                r.members[fold(nick)] = nick
            waiters = self._join_waiters.pop(key, []) if own else []
        for fut in waiters:
            if not fut.done():
                fut.set_result(True)
        self._emit(Presence("join", nick, room=room, own=own, time=self._time_of(event)))

    def _on_part(self, event: IrcEvent) -> None:
        nick = NickMask(event.source).nick
        room = event.target or ""
        key = fold(room)
        reason = event.arguments[0] if event.arguments else None
        own = self._is_me(nick)
        switched = None
        with self._lock:
            if own:
                self._rooms.pop(key, None)
                if self._current_room and fold(self._current_room) == key:
                    general = self._rooms.get(fold(DEFAULT_ROOM))
                    nxt = general or next(iter(self._rooms.values()), None)
                    self._current_room = nxt.name if nxt else None
                    switched = self._current_room or ""
            else:
                r = self._rooms.get(key)
                if r is not None:
                    r.members.pop(fold(nick), None)
        self._emit(Presence("part", nick, room=room, reason=reason or None, own=own, time=self._time_of(event)))
        if switched is not None:
            self._emit(Info(f"now talking in {switched}" if switched else "you are in no room now; /join #room"))

    def _on_kick(self, event: IrcEvent) -> None:
        by = NickMask(event.source).nick
        room = event.target or ""
        nick = event.arguments[0] if event.arguments else ""
        reason = event.arguments[1] if len(event.arguments) > 1 else None
        own = self._is_me(nick)
        with self._lock:
            if own:
                self._rooms.pop(fold(room), None)
                if self._current_room and fold(self._current_room) == fold(room):
                    general = self._rooms.get(fold(DEFAULT_ROOM))
                    self._current_room = general.name if general else None
            else:
                r = self._rooms.get(fold(room))
                if r is not None:
                    r.members.pop(fold(nick), None)
        self._emit(Presence("kick", nick, room=room, reason=reason, by=by, own=own))

    def _on_quit(self, event: IrcEvent) -> None:
        nick = NickMask(event.source).nick
        reason = event.arguments[0] if event.arguments else None
        with self._lock:
            for r in self._rooms.values():
                r.members.pop(fold(nick), None)
        if not self._is_me(nick):
            self._emit(Presence("quit", nick, reason=reason or None, time=self._time_of(event)))

    def _on_nick(self, event: IrcEvent) -> None:
        old = NickMask(event.source).nick
        new = event.target or ""
        with self._lock:
            for r in self._rooms.values():
                if r.members.pop(fold(old), None) is not None:
                    r.members[fold(new)] = new
        self._emit(Presence("nick", old, new_nick=new, own=self._is_me(new)))

    # --- names, who, list, topic

    def _on_namreply(self, event: IrcEvent) -> None:
        args = event.arguments
        if len(args) < 3:
            return
        room, nicks = args[1], args[2]
        prefixes = self._prefixes()
        with self._lock:
            acc = self._names_acc.setdefault(fold(room), {})
            for raw in nicks.split():
                nick = _strip_prefixes(raw, prefixes).split("!", 1)[0]
                if nick:
                    acc[fold(nick)] = nick

    def _on_endofnames(self, event: IrcEvent) -> None:
        room = event.arguments[0] if event.arguments else ""
        key = fold(room)
        with self._lock:
            acc = self._names_acc.pop(key, {})
            r = self._rooms.get(key)
            if r is not None:
                r.members = dict(acc)
            users = _sorted_nicks(acc.values())
            waiters = self._names_waiters.pop(key, [])
            announce = key in self._announce_names
            self._announce_names.discard(key)
            display = r.name if r else room
        for fut in waiters:
            if not fut.done():
                fut.set_result(users)
        if announce:
            self._emit(UserList(display, users))
        if self._login_joining and key == fold(DEFAULT_ROOM):
            self._login_joining = False
            self._complete_login()

    def _on_whoreply(self, event: IrcEvent) -> None:
        args = event.arguments
        if len(args) >= 5:
            with self._lock:
                self._who_acc.setdefault(fold(args[0]), []).append(args[4])

    def _on_endofwho(self, event: IrcEvent) -> None:
        mask = event.arguments[0] if event.arguments else ""
        with self._lock:
            nicks = self._who_acc.pop(fold(mask), [])
            r = self._rooms.get(fold(mask))
            if r is not None and nicks:
                r.members = {fold(n): n for n in nicks}
            display = r.name if r else mask
        self._emit(UserList(display, _sorted_nicks(set(nicks))))

    def _on_liststart(self, event: IrcEvent) -> None:
        with self._lock:
            self._list_acc = []

    def _on_list(self, event: IrcEvent) -> None:
        args = event.arguments
        if not args:
            return
        count = int(args[1]) if len(args) > 1 and args[1].isdigit() else 0
        # many servers put the channel modes first: "[+nt] the topic"
        topic = _LIST_MODES.sub("", args[2]) if len(args) > 2 else ""
        with self._lock:
            self._list_acc.append(RoomInfo(args[0], count, topic))

    def _on_listend(self, event: IrcEvent) -> None:
        with self._lock:
            rooms, self._list_acc = self._list_acc, []
        self._emit(RoomList(tuple(sorted(rooms, key=lambda r: fold(r.name)))))

    def _on_currenttopic(self, event: IrcEvent) -> None:
        args = event.arguments
        if len(args) >= 2:
            with self._lock:
                r = self._rooms.get(fold(args[0]))
                if r is not None:
                    r.topic = args[1]
            self._emit(Topic(args[0], args[1]))

    def _on_notopic(self, event: IrcEvent) -> None:
        if event.arguments:
            self._emit(Topic(event.arguments[0], None))

    def _on_topic(self, event: IrcEvent) -> None:
        room = event.target or ""
        text = event.arguments[0] if event.arguments else ""
        with self._lock:
            r = self._rooms.get(fold(room))
            if r is not None:
                r.topic = text or None
        self._emit(Topic(room, text or None, setter=NickMask(event.source).nick))

    def _on_away(self, event: IrcEvent) -> None:
        args = event.arguments
        if len(args) >= 2:
            self._emit(Info(f"{args[0]} is away: {args[1]}"))

    # --- other numerics

    def _on_numeric(self, code: str, event: IrcEvent) -> None:
        if not ("400" <= code <= "599"):
            return
        args = list(event.arguments)
        label = self._label_of(event)
        if args and (code in SEND_ERRORS or args[0].upper() == "PRIVMSG"):
            # "<target> :reason", or ERR_UNKNOWNERROR-style "PRIVMSG :reason" (the oldest message)
            is_command = args[0].upper() == "PRIVMSG" and code not in SEND_ERRORS
            p = (
                self._find_pending(label=label)
                if label
                else self._find_pending() if is_command else self._find_pending(target=args[0])
            )
            if p is not None:
                not_online = code == "401"
                reason = f"{p.target} is not online" if not_online else f"could not send to {p.target}: {args[-1]}"
                self._resolve(p, False, reason=reason, not_online=not_online)
                return
        if code in JOIN_ERRORS and args:
            with self._lock:
                if self._switch_on_join == fold(args[0]):
                    self._switch_on_join = None
                waiters = self._join_waiters.pop(fold(args[0]), [])
            for fut in waiters:
                if not fut.done():
                    fut.set_result(False)
            if self._login_joining and fold(args[0]) == fold(DEFAULT_ROOM):
                self._login_joining = False
                self._complete_login()
        if not self._logged_in:
            if args and not self._registered:
                self._prelogin_error = args[-1]
            return
        text = f"{' '.join(args[:-1])}: {args[-1]}" if len(args) >= 2 else (args[0] if args else code)
        self._emit(ServerError(text, code))


def debug_threads_enabled() -> bool:
    """True when ``CHATCLIENT_DEBUG_THREADS`` is set to something other than ``""``/``0``."""
    return os.environ.get("CHATCLIENT_DEBUG_THREADS", "") not in ("", "0")
