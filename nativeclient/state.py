"""The client's IRC session as a pure state machine: lines in, lines and events out.

Theory of operation (the h11 shape: a protocol object that does no I/O):
:class:`SessionState` owns no socket, no thread and no clock. The I/O link
(:class:`nativeclient.session.ChatSession`) drives it:

* received bytes or lines go in through :meth:`SessionState.receive_data` or
  :meth:`SessionState.receive_line`, with the current time (``now``, an aware
  :class:`~datetime.datetime`; used when a line has no ``server-time`` tag);
* the user's commands go in through the ``send_*``/``request_*``/:meth:`~SessionState.join`
  methods; they raise ``ValueError`` for what the user can fix and
  ``ConnectionLost`` when the connection is gone, and never block;
* what to write comes out of :meth:`SessionState.data_to_send` (bytes, CR LF
  terminated lines), and everything else out of :meth:`SessionState.outputs`,
  in order: the typed events of :mod:`nativeclient.events` for the user
  interface, and :data:`Settlement` records for the link (a request answered,
  the login settled, the connection closed);
* the end of the connection goes in through :meth:`SessionState.connection_lost`.

Requests the user waits for (a PRIVMSG's confirmation, a PING, a JOIN, a
NAMES) get an integer id when made; a :class:`Resolved` or :class:`Rejected`
with that id comes out when the server answers or the connection ends.

Registration (what is sent, in order)::

    CAP LS 302
    PASS :<password>            (omitted when the password is empty)
    NICK <name>
    USER <name> 0 * :<name>
    CAP REQ :echo-message ...   (only capabilities the server listed in CAP LS)
    CAP END

Login outcome (a :class:`LoginSettled`):

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

Confirmations of sent messages (:class:`OutgoingMessage`):

* with ``echo-message`` the server echoes each PRIVMSG back: the echo is the
  confirmation (matched by ``label`` when ``labeled-response`` is in use,
  otherwise by target and text, in order);
* with ``labeled-response`` alone, the labelled ``ACK`` confirms;
* otherwise, for messages that need confirmation (PM, DM, piped input), a
  ``PING :<token>`` follows the message and its ``PONG`` confirms everything
  sent before it;
* an error numeric about the target (401 no such nick, 404 cannot send,
  403 no such channel, ...) fails the oldest unconfirmed message to it.

Events during login: only what others say or do (messages, others'
joins/parts/quits) after ``001`` is kept, to be shown right after the login
summary; the login burst itself is summarised in the ``LoginInfo``. After
:meth:`SessionState.close` no event comes out at all.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from nativeclient.commands import DEFAULT_ROOM, MAX_TEXT_BYTES, is_channel, split_text
from nativeclient.events import (
    ClientError,
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
from nativeclient.wire import (
    Line,
    LineDecoder,
    ctcp_split,
    decode_line,
    encode_line,
    fold,
    is_user_source,
    nick_of,
    parse_line,
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
"""Error numerics that can answer a JOIN; the first parameter after our nick is the room."""

DEFAULT_PREFIXES = "~&@%+!"
"""Membership prefixes stripped from NAMES entries besides those of ISUPPORT ``PREFIX``."""

_LIST_MODES = re.compile(r"^\[\+[A-Za-z]*(?: [^\]]*)?\] ?")

_NUMERIC_NAMES = {
    "001": "welcome",  # RPL_WELCOME
    "301": "away",  # RPL_AWAY
    "315": "endofwho",  # RPL_ENDOFWHO
    "321": "liststart",  # RPL_LISTSTART
    "322": "list",  # RPL_LIST
    "323": "listend",  # RPL_LISTEND
    "331": "notopic",  # RPL_NOTOPIC
    "332": "currenttopic",  # RPL_TOPIC
    "352": "whoreply",  # RPL_WHOREPLY
    "353": "namreply",  # RPL_NAMREPLY
    "366": "endofnames",  # RPL_ENDOFNAMES
    "376": "endofmotd",  # RPL_ENDOFMOTD
    "422": "nomotd",  # ERR_NOMOTD
    "432": "erroneusnickname",  # ERR_ERRONEUSNICKNAME
    "433": "nicknameinuse",  # ERR_NICKNAMEINUSE
    "464": "passwdmismatch",  # ERR_PASSWDMISMATCH
    "465": "yourebannedcreep",  # ERR_YOUREBANNEDCREEP
    "900": "loggedin",  # RPL_LOGGEDIN
}
"""Numerics with a handler of their own (``_on_<name>``); other 4xx/5xx go to ``_numeric``."""


@dataclass(frozen=True)
class IrcEvent:
    """One received line, shaped for the handlers.

    ``type``: the handler name (``privmsg``, ``pubmsg``, ``action``, ``ctcp``,
    ``join``, ``namreply``, ..., or the numeric's three digits); ``target``:
    the first parameter (the PRIVMSG/JOIN target, our nick in a numeric);
    ``arguments``: the parameters after it (for QUIT: the reason alone; for a
    CTCP request: tag and data); ``tags``: the IRCv3 tags.
    """

    type: str
    source: str
    target: str | None
    arguments: tuple[str, ...]
    tags: dict[str, str]


def line_events(line: Line) -> list[IrcEvent]:
    """The handler events of one parsed line (a PRIVMSG with CTCP parts gives several).

    PRIVMSG/NOTICE to a channel become ``pubmsg``/``pubnotice``, to a nick
    ``privmsg``/``privnotice``; a CTCP request in a PRIVMSG is a ``ctcp``
    event, followed by an ``action`` event for ``ACTION``; CTCP replies (in a
    NOTICE) are ``ctcpreply``. A PRIVMSG/NOTICE with fewer than two
    parameters gives no event.
    """
    source = line.source or ""
    params = line.params
    command = line.command
    if command in ("PRIVMSG", "NOTICE"):
        if len(params) < 2:
            return []
        target, text = params[0], params[1]
        channel = is_channel(target)
        if command == "PRIVMSG":
            plain = "pubmsg" if channel else "privmsg"
        else:
            plain = "pubnotice" if channel else "privnotice"
        out: list[IrcEvent] = []
        for piece in ctcp_split(text):
            if isinstance(piece, tuple):
                kind = "ctcp" if command == "PRIVMSG" else "ctcpreply"
                out.append(IrcEvent(kind, source, target, piece, line.tags))
                if kind == "ctcp" and piece[0] == "ACTION":
                    out.append(IrcEvent("action", source, target, piece[1:], line.tags))
            else:
                out.append(IrcEvent(plain, source, target, (piece,), line.tags))
        return out
    name = _NUMERIC_NAMES.get(command, command.lower())
    if command == "QUIT":
        return [IrcEvent(name, source, None, params[:1], line.tags)]
    if command == "PING":
        return [IrcEvent(name, source, params[0] if params else "", params, line.tags)]
    return [IrcEvent(name, source, params[0] if params else None, params[1:], line.tags)]


@dataclass
class OutgoingMessage:
    """One PRIVMSG waiting for the server's confirmation.

    ``seq`` is its request id (it also orders sends and PINGs); ``label`` is
    the labeled-response label (None when not in use); ``notify`` asks for a
    ``SendResult`` event on success (failures are always reported).
    ``operation`` is copied into the ``SendResult``.
    """

    target: str
    text: str
    operation: str
    seq: int
    action: bool = False
    label: str | None = None
    notify: bool = False


@dataclass(frozen=True)
class Resolved:
    """Request ``request`` is answered with ``value``.

    The value by request: a PRIVMSG -- its :class:`~nativeclient.events.SendResult`
    (``ok`` false when refused); a PING -- True; a JOIN -- True when joined,
    False when refused; a NAMES -- the sorted tuple of nicks.
    """

    request: int
    value: object


@dataclass(frozen=True)
class Rejected:
    """Request ``request`` will never be answered: ``error`` (a ``ConnectionLost``) says why."""

    request: int
    error: ClientError


@dataclass(frozen=True)
class LoginSettled:
    """The login ended: ``info`` on success, else ``error`` (``LoginRefused`` or ``UnreachableError``)."""

    info: LoginInfo | None = None
    error: ClientError | None = None


@dataclass(frozen=True)
class Closed:
    """The connection has ended (the link was told so); ``reason`` is shown to the user."""

    reason: str


Settlement = Resolved | Rejected | LoginSettled | Closed
"""What :meth:`SessionState.outputs` gives the link besides the user interface's events."""

Output = Event | Settlement
"""One item of :meth:`SessionState.outputs`."""


class _Room:
    __slots__ = ("name", "members", "topic")

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: dict[str, str] = {}  # folded nick -> nick as shown
        self.topic: str | None = None


def _sorted_nicks(nicks: object) -> tuple[str, ...]:
    return tuple(sorted(nicks, key=fold))  # type: ignore[call-overload]


class SessionState:
    """The state of one user's session with one server; see the module docstring.

    ``username``: nick and account name; ``password``: sent with PASS (empty:
    no PASS); ``where``: ``host:port``, used only in the text of errors.

    Not thread-safe: the link uses it from its event loop only. Every method
    returns at once; nothing here waits.
    """

    def __init__(self, username: str, password: str, *, where: str = "the server") -> None:
        self.username = username
        self.password = password
        self.where = where

        self._decoder = LineDecoder()
        self._outbox: list[bytes] = []
        self._outputs: list[Output] = []
        self._seq = itertools.count(1)
        self._tokens = itertools.count(1)

        # connection and registration
        self._open = False
        self._closing = False
        self._closed_reported = False
        self._registered = False
        self._logged_in = False
        self._login_settled = False
        self._login_token: str | None = None
        self._login_joining = False
        self._real_nick = username
        self._prefix_chars = ""
        self._cap_ls: list[str] = []
        self._cap_negotiating = False
        self._caps: set[str] = set()
        self._account: str | None = None
        self._new_account = False
        self._error_reason: str | None = None
        self._prelogin_error: str | None = None

        # rooms and users
        self._rooms: dict[str, _Room] = {}
        self._current_room: str | None = None
        self._switch_on_join: str | None = None
        self._announce_names: set[str] = set()
        self._names_acc: dict[str, dict[str, str]] = {}
        self._names_waiters: dict[str, list[int]] = {}
        self._join_waiters: dict[str, list[int]] = {}
        self._who_acc: dict[str, list[str]] = {}
        self._list_acc: list[RoomInfo] = []

        # confirmations
        self._pending: list[OutgoingMessage] = []
        self._pings: dict[str, int] = {}  # token -> request id (its seq)
        self._batches: dict[str, str] = {}  # batch reference -> label

    # ------------------------------------------------------------------ what the link reads

    def data_to_send(self) -> bytes:
        """The bytes to write to the server now (CR LF terminated lines), emptying the outbox."""
        data, self._outbox = b"".join(self._outbox), []
        return data

    def outputs(self) -> list[Output]:
        """Events for the user interface and settlements for the link, in order; empties the queue."""
        out, self._outputs = self._outputs, []
        return out

    @property
    def nick(self) -> str:
        """Our current nick (the username until the server says otherwise)."""
        return self._real_nick if self._registered else self.username

    @property
    def caps(self) -> frozenset[str]:
        """IRCv3 capabilities acknowledged by the server."""
        return frozenset(self._caps)

    @property
    def echo(self) -> bool:
        """True when the server echoes our messages back (``echo-message``)."""
        return "echo-message" in self._caps

    @property
    def is_open(self) -> bool:
        """True between :meth:`start` and :meth:`connection_lost`: commands can be sent."""
        return self._open

    @property
    def registered(self) -> bool:
        """True once the server has welcomed us (``001``)."""
        return self._registered

    @property
    def logged_in(self) -> bool:
        """True once the login is complete (the login ``PONG``, and ``#general`` joined if possible)."""
        return self._logged_in

    @property
    def current_room(self) -> str | None:
        """The room plain lines go to (None when we are in no room)."""
        return self._current_room

    @property
    def rooms(self) -> list[str]:
        """The rooms we are in, in the order we joined them."""
        return [r.name for r in self._rooms.values()]

    def members(self, room: str) -> tuple[str, ...]:
        """The users of ``room`` as last reported by the server (sorted; empty if unknown)."""
        r = self._rooms.get(fold(room))
        return _sorted_nicks(r.members.values()) if r else ()

    def online_users(self, exclude_self: bool = True) -> tuple[str, ...]:
        """Everyone in any of our rooms (every user is in ``#general``), sorted."""
        seen: dict[str, str] = {}
        for r in self._rooms.values():
            seen.update(r.members)
        if exclude_self:
            seen.pop(fold(self.nick), None)
        return _sorted_nicks(seen.values())

    def pending_requests(self) -> set[int]:
        """Ids of every request not yet resolved or rejected (for consistency checks)."""
        ids = {p.seq for p in self._pending} | set(self._pings.values())
        for waiting in (*self._names_waiters.values(), *self._join_waiters.values()):
            ids.update(waiting)
        return ids

    # ------------------------------------------------------------------ what the link feeds

    def start(self) -> None:
        """The connection is open: queue the registration (see the module docstring)."""
        self._open = True
        self._cap_negotiating = True
        self._send("CAP LS 302")
        if self.password:
            self._send(f"PASS :{self.password}")
        self._send(f"NICK {self.username}")
        self._send(f"USER {self.username} 0 * :{self.username}")

    def receive_data(self, data: bytes, now: datetime) -> None:
        """Bytes read from the server: every line they complete is handled (:meth:`receive_line`)."""
        for text in self._decoder.push(data):
            self.receive_line(text, now)

    def receive_line(self, line: str | bytes, now: datetime) -> None:
        """Handle one received line (without CR LF; bytes are decoded as :class:`~nativeclient.wire.LineDecoder` does).

        Never raises: a line that does not parse is ignored, and an error in
        a handler is reported as an :class:`~nativeclient.events.Info` event.
        """
        text = decode_line(line) if isinstance(line, bytes) else line
        text = text.rstrip("\r\n")
        if not text:
            return
        log.debug("<- %s", text)
        parsed = parse_line(text)
        if parsed is None:
            return
        self._track(parsed)
        for event in line_events(parsed):
            self._dispatch(event, now)

    def connection_lost(self, message: str = "") -> None:
        """The connection has ended (``message``: what the link saw, may be empty).

        Settles the login (``UnreachableError``) if it was under way, rejects
        every outstanding request, reports ``Disconnected`` when the user did
        not ask for it, and outputs :class:`Closed`. Further commands raise
        ``ConnectionLost``. Only the first call counts.
        """
        if self._closed_reported:
            return
        self._closed_reported = True
        self._open = False
        reason = self._error_reason or message or "connection closed by the server"
        if not self._login_settled:
            self._settle_login(error=UnreachableError(f"{self.where} closed the connection during login ({reason})"))
        self.fail_outstanding(f"disconnected: {reason}")
        if not self._closing and self._logged_in:
            self._emit(Disconnected(reason))
        self._outputs.append(Closed(reason))

    def close(self) -> None:
        """The user is leaving: no event comes out from now on (settlements still do)."""
        self._closing = True

    def report(self, event: Event) -> None:
        """Output an event the link produced (e.g. an internal error while reading), filtered like the state's own."""
        self._emit(event)

    def fail_outstanding(self, reason: str) -> None:
        """Reject every outstanding request with ``ConnectionLost(reason)``; fail the login if unsettled."""
        pending, self._pending = self._pending, []
        pings, self._pings = self._pings, {}
        names, self._names_waiters = self._names_waiters, {}
        joins, self._join_waiters = self._join_waiters, {}
        lost = ConnectionLost(reason)
        for p in pending:
            self._outputs.append(Rejected(p.seq, lost))
        for seq in pings.values():
            self._outputs.append(Rejected(seq, lost))
        for waiting in (*names.values(), *joins.values()):
            for request in waiting:
                self._outputs.append(Rejected(request, lost))
        if not self._login_settled:
            self._settle_login(error=UnreachableError(reason))

    # ------------------------------------------------------------------ the user's commands

    def _send(self, line: str) -> None:
        """Queue ``line``. Raises ``ConnectionLost`` when not connected, ``ValueError`` (see :func:`encode_line`)."""
        if not self._open:
            raise ConnectionLost("not connected")
        data = encode_line(line)
        log.debug("-> %s", line)
        self._outbox.append(data)

    def _new_token(self) -> str:
        return f"chatclient-{next(self._tokens)}"

    def sync(self) -> int:
        """Queue ``PING :<token>``; returns its request id, resolved (True) by the matching PONG.

        Everything sent before has then been processed by the server, so every
        earlier message is resolved too. Raises ``ConnectionLost`` when not
        connected.
        """
        token = self._new_token()
        seq = next(self._seq)
        self._send(f"PING :{token}")
        self._pings[token] = seq
        return seq

    def send_message(
        self,
        target: str,
        text: str,
        now: datetime,
        *,
        operation: str = "msg",
        confirm: bool = False,
        action: bool = False,
        local_echo: bool = True,
    ) -> list[OutgoingMessage]:
        """Queue ``text`` to ``target`` (room or nick) as one or more PRIVMSGs.

        Long texts are split (see :func:`~nativeclient.commands.split_text`).
        ``operation`` (``"PM"``, ``"DM"``, ``"msg"``) is copied into the
        :class:`~nativeclient.events.SendResult`. ``confirm``: report success
        with a ``SendResult`` event (a PING follows when needed, see the module
        docstring); failures are always reported. ``action``: send as ``/me``.
        ``local_echo``: without ``echo-message``, report our own message
        immediately as a ``Message(own=True)`` event stamped ``now``.

        Returns one :class:`OutgoingMessage` per PRIVMSG (their ``seq`` are
        the request ids). Raises ``ConnectionLost`` when not connected,
        ``ValueError`` for an empty text or a line the server would misread
        (pieces queued before it stay queued).
        """
        # relayed as ":nick!user@host PRIVMSG target :text" -- keep under 512 bytes
        budget = 390 - len(target.encode()) - (9 if action else 0)
        pieces = split_text(text, max(16, min(MAX_TEXT_BYTES, budget)))
        if not pieces:
            raise ValueError("nothing to send")
        use_labels = "labeled-response" in self._caps
        echo = self.echo
        sent: list[OutgoingMessage] = []
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            seq = next(self._seq)
            label = f"cl{seq}" if use_labels else None
            p = OutgoingMessage(target, piece, operation, seq, action=action, label=label, notify=confirm and last)
            body = f"\x01ACTION {piece}\x01" if action else piece
            tag = f"@label={label} " if label else ""
            self._send(f"{tag}PRIVMSG {target} :{body}")
            self._pending.append(p)
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
                        time=now,
                    )
                )
        if confirm and not use_labels:
            self.sync()
        return sent

    def join(self, room: str) -> int:
        """Queue ``JOIN room`` and make it the current room once joined (if already in it, just switch).

        Returns the request id: resolved True when the server confirms the
        JOIN (at once when already in the room), False when it refuses (the
        error is also reported as a ``ServerError``). Raises ``ConnectionLost``.
        """
        request = next(self._seq)
        existing = self._rooms.get(fold(room))
        if existing is not None:
            self._current_room = existing.name
            self._outputs.append(Resolved(request, True))
            self._emit(Info(f"now talking in {existing.name}"))
            return request
        self._send(f"JOIN {room}")
        self._switch_on_join = fold(room)
        self._join_waiters.setdefault(fold(room), []).append(request)
        return request

    def _room_or_current(self, room: str | None) -> str:
        room = room or self._current_room
        if not room:
            raise ValueError("you are not in any room")
        return room

    def part(self, room: str | None = None, reason: str | None = None) -> None:
        """Queue PART of ``room`` (None: the current room). Raises ``ValueError`` if we are in no room."""
        room = self._room_or_current(room)
        self._send(f"PART {room} :{reason}" if reason else f"PART {room}")

    def request_who(self, room: str | None = None) -> None:
        """Ask for the users of ``room`` (default: current); a ``UserList`` event follows."""
        self._send(f"WHO {self._room_or_current(room)}")

    def request_rooms(self) -> None:
        """Ask for the room list; a ``RoomList`` event follows."""
        self._list_acc = []
        self._send("LIST")

    def request_topic(self, room: str | None = None) -> None:
        """Ask for the topic of ``room`` (default: current); a ``Topic`` event follows."""
        self._send(f"TOPIC {self._room_or_current(room)}")

    def set_topic(self, text: str, room: str | None = None) -> None:
        """Set the topic of ``room`` (default: current); the server announces the change."""
        self._send(f"TOPIC {self._room_or_current(room)} :{text}")

    def request_names(self, room: str = DEFAULT_ROOM) -> int:
        """Queue ``NAMES room``; returns the request id, resolved with the sorted nicks at its 366."""
        self._send(f"NAMES {room}")
        request = next(self._seq)
        self._names_waiters.setdefault(fold(room), []).append(request)
        return request

    def quit(self, reason: str = "leaving") -> None:
        """Queue ``QUIT :reason`` (a plain ``QUIT`` when the reason is empty or unsendable); no-op when closed."""
        if not self._open:
            return
        try:
            self._send(f"QUIT :{reason}" if reason else "QUIT")
        except ValueError:
            self._send("QUIT")

    # ------------------------------------------------------------------ dispatch

    def _track(self, line: Line) -> None:
        """What the connection itself remembers, before any handler runs: our nick, ISUPPORT PREFIX."""
        ours = line.command == "001" or (line.command == "NICK" and nick_of(line.source) == self._real_nick)
        if ours and line.params:
            self._real_nick = line.params[0]
        elif line.command == "005":
            for token in line.params[1:-1]:
                if token.upper().startswith("PREFIX=") and ")" in token:
                    self._prefix_chars = token.split(")", 1)[1]
                elif token.upper() == "-PREFIX":
                    self._prefix_chars = ""

    def _dispatch(self, event: IrcEvent, now: datetime) -> None:
        handler: Callable[[IrcEvent, datetime], None] | None = getattr(self, "_on_" + event.type, None)
        try:
            if event.type == "ping":
                self._pong(event)
            if handler is not None:
                handler(event, now)
            elif event.type.isdigit():
                self._numeric(event.type, event)
        except ConnectionLost:
            pass
        except Exception as exc:  # a bug here must not stop the session
            self._emit(Info(f"internal error handling {event.type}: {type(exc).__name__}: {exc}"))

    def _emit(self, event: Event) -> None:
        if self._closing:
            return
        if not self._logged_in:
            keep = isinstance(event, Message) or (isinstance(event, Presence) and not event.own)
            if not (self._registered and keep):
                return
        self._outputs.append(event)

    def _settle_login(self, info: LoginInfo | None = None, error: ClientError | None = None) -> None:
        if not self._login_settled:
            self._login_settled = True
            self._outputs.append(LoginSettled(info, error))

    # --- helpers for event handlers

    def _label_of(self, event: IrcEvent) -> str | None:
        if "label" in event.tags:
            return event.tags["label"]
        ref = event.tags.get("batch")
        return self._batches.get(ref) if ref else None

    @staticmethod
    def _time_of(event: IrcEvent, now: datetime) -> datetime:
        stamp = event.tags.get("time")
        if stamp:
            try:
                return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone()
            except ValueError:
                pass
        return now

    def _is_me(self, nick: str | None) -> bool:
        return bool(nick) and fold(nick) == fold(self.nick)  # type: ignore[arg-type]

    def _prefixes(self) -> str:
        return self._prefix_chars + DEFAULT_PREFIXES

    def _pong(self, event: IrcEvent) -> None:
        token = event.target or ""
        self._send(f"PONG {token}" if token and " " not in token and not token.startswith(":") else f"PONG :{token}")

    # --- registration

    def _on_cap(self, event: IrcEvent, now: datetime) -> None:
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
            for cap in args[-1].split():
                if cap.startswith("-"):
                    self._caps.discard(cap[1:])
                else:
                    self._caps.add(cap)
            self._end_cap()
        elif sub == "NAK":
            self._end_cap()
        elif sub == "DEL":
            for cap in args[-1].split():
                self._caps.discard(cap)

    def _end_cap(self) -> None:
        if self._cap_negotiating:
            self._cap_negotiating = False
            self._send("CAP END")

    def _fail_login(self, exc: ClientError) -> None:
        if not self._login_settled:
            self._settle_login(error=exc)
            if self._open:
                self._send("QUIT :login failed")

    def _on_welcome(self, event: IrcEvent, now: datetime) -> None:
        self._registered = True
        self._cap_negotiating = False

    def _on_endofmotd(self, event: IrcEvent, now: datetime) -> None:
        if self._registered and not self._logged_in and self._login_token is None:
            self._login_token = self._new_token()
            self._send(f"PING :{self._login_token}")

    _on_nomotd = _on_endofmotd

    def _on_loggedin(self, event: IrcEvent, now: datetime) -> None:
        args = event.arguments
        self._account = args[1] if len(args) >= 2 else self.username

    def _on_passwdmismatch(self, event: IrcEvent, now: datetime) -> None:
        text = event.arguments[-1] if event.arguments else ""
        if text.strip().lower() in ("", "password incorrect", "password mismatch"):
            self._fail_login(LoginRefused(f"wrong password for {self.username}"))
        else:  # e.g. "Too many failed login attempts; try again in 31 seconds"
            self._fail_login(LoginRefused(f"login refused for {self.username}: {text}"))

    def _on_nicknameinuse(self, event: IrcEvent, now: datetime) -> None:
        if not self._registered:
            self._fail_login(LoginRefused(f"{self.username} is already online"))
        else:
            self._emit(ServerError(" ".join(event.arguments), "433"))

    def _on_erroneusnickname(self, event: IrcEvent, now: datetime) -> None:
        if not self._registered:
            reason = event.arguments[-1] if event.arguments else "erroneous nickname"
            self._fail_login(LoginRefused(f"the server does not accept the name {self.username!r}: {reason}"))

    def _on_yourebannedcreep(self, event: IrcEvent, now: datetime) -> None:
        reason = event.arguments[-1] if event.arguments else "banned"
        self._fail_login(LoginRefused(f"the server refused the login: {reason}"))

    def _on_error(self, event: IrcEvent, now: datetime) -> None:
        reason = event.target or (event.arguments[0] if event.arguments else "") or "closing"
        self._error_reason = reason
        if not self._registered and not self._login_settled:
            why = self._prelogin_error or reason
            self._settle_login(error=LoginRefused(f"the server refused the login: {why}"))

    def _complete_login(self) -> None:
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
        self._settle_login(info=info)

    # --- PING/PONG

    def _on_pong(self, event: IrcEvent, now: datetime) -> None:
        token = event.arguments[-1] if event.arguments else (event.target or "")
        if token == self._login_token and not self._logged_in:
            self._login_token = None
            if fold(DEFAULT_ROOM) in self._rooms:
                self._complete_login()
            else:
                self._login_joining = True
                self._send(f"JOIN {DEFAULT_ROOM}")
            return
        seq = self._pings.pop(token, None)
        if seq is None:
            return
        done = [p for p in self._pending if p.seq < seq]
        self._pending = [p for p in self._pending if p.seq >= seq]
        for p in done:
            self._resolve(p, True, via="ping")
        self._outputs.append(Resolved(seq, True))

    # --- confirmations

    def _resolve(self, p: OutgoingMessage, ok: bool, via: str = "", reason: str = "", not_online: bool = False) -> None:
        if p in self._pending:
            self._pending.remove(p)
        result = SendResult(
            target=p.target,
            text=p.text,
            ok=ok,
            operation=p.operation,  # type: ignore[arg-type]
            via=via,
            reason=reason,
            not_online=not_online,
        )
        self._outputs.append(Resolved(p.seq, result))
        if not ok or p.notify:
            self._emit(result)

    def _find_pending(
        self, *, label: str | None = None, target: str | None = None, text: str | None = None, action: bool | None = None
    ) -> OutgoingMessage | None:
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

    def _on_ack(self, event: IrcEvent, now: datetime) -> None:
        label = self._label_of(event)
        p = self._find_pending(label=label) if label else None
        if p is not None:
            self._resolve(p, True, via="label")

    def _on_batch(self, event: IrcEvent, now: datetime) -> None:
        ref = event.target or ""
        if ref.startswith("+"):
            label = event.tags.get("label")
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

    def _message(self, event: IrcEvent, now: datetime, *, action: bool = False, notice: bool = False) -> None:
        source = event.source
        text = event.arguments[0] if event.arguments else ""
        nick = nick_of(source)
        own = self._is_me(nick) and is_user_source(source)
        try:
            self._show_message(event, now, source, nick, text, own=own, action=action, notice=notice)
        finally:
            if own and not notice:
                self._own_echo(event, text, action)  # the confirmation comes after the message

    def _show_message(
        self, event: IrcEvent, now: datetime, source: str, nick: str, text: str, *, own: bool, action: bool, notice: bool
    ) -> None:
        target = event.target or ""
        if notice and not is_user_source(source) and not is_channel(target):
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
                time=self._time_of(event, now),
            )
        )

    def _on_pubmsg(self, event: IrcEvent, now: datetime) -> None:
        self._message(event, now)

    _on_privmsg = _on_pubmsg

    def _on_action(self, event: IrcEvent, now: datetime) -> None:
        self._message(event, now, action=True)

    def _on_pubnotice(self, event: IrcEvent, now: datetime) -> None:
        self._message(event, now, notice=True)

    _on_privnotice = _on_pubnotice

    def _on_ctcp(self, event: IrcEvent, now: datetime) -> None:
        nick = nick_of(event.source)
        kind = event.arguments[0] if event.arguments else ""
        try:
            if kind == "VERSION" and not self._is_me(nick):
                self._send(f"NOTICE {nick} :\x01VERSION chatclient\x01")
            elif kind == "PING" and not self._is_me(nick) and len(event.arguments) > 1:
                self._send(f"NOTICE {nick} :\x01PING {event.arguments[1]}\x01")
        except (ConnectionLost, ValueError):
            pass

    # --- presence

    def _on_join(self, event: IrcEvent, now: datetime) -> None:
        nick = nick_of(event.source)
        room = event.target or ""
        key = fold(room)
        own = self._is_me(nick)
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
        for request in self._join_waiters.pop(key, []) if own else []:
            self._outputs.append(Resolved(request, True))
        self._emit(Presence("join", nick, room=room, own=own, time=self._time_of(event, now)))

    def _leave_room(self, key: str, *, any_room: bool) -> bool:
        """Forget room ``key``; if it was the current room, switch (``#general`` first). True if switched."""
        self._rooms.pop(key, None)
        if not (self._current_room and fold(self._current_room) == key):
            return False
        general = self._rooms.get(fold(DEFAULT_ROOM))
        nxt = general or (next(iter(self._rooms.values()), None) if any_room else None)
        self._current_room = nxt.name if nxt else None
        return True

    def _on_part(self, event: IrcEvent, now: datetime) -> None:
        nick = nick_of(event.source)
        room = event.target or ""
        key = fold(room)
        reason = event.arguments[0] if event.arguments else None
        own = self._is_me(nick)
        switched = None
        if own:
            if self._leave_room(key, any_room=True):
                switched = self._current_room or ""
        else:
            r = self._rooms.get(key)
            if r is not None:
                r.members.pop(fold(nick), None)
        self._emit(Presence("part", nick, room=room, reason=reason or None, own=own, time=self._time_of(event, now)))
        if switched is not None:
            self._emit(Info(f"now talking in {switched}" if switched else "you are in no room now; /join #room"))

    def _on_kick(self, event: IrcEvent, now: datetime) -> None:
        by = nick_of(event.source)
        room = event.target or ""
        nick = event.arguments[0] if event.arguments else ""
        reason = event.arguments[1] if len(event.arguments) > 1 else None
        own = self._is_me(nick)
        if own:
            self._leave_room(fold(room), any_room=False)
        else:
            r = self._rooms.get(fold(room))
            if r is not None:
                r.members.pop(fold(nick), None)
        self._emit(Presence("kick", nick, room=room, reason=reason, by=by, own=own))

    def _on_quit(self, event: IrcEvent, now: datetime) -> None:
        nick = nick_of(event.source)
        reason = event.arguments[0] if event.arguments else None
        for r in self._rooms.values():
            r.members.pop(fold(nick), None)
        if not self._is_me(nick):
            self._emit(Presence("quit", nick, reason=reason or None, time=self._time_of(event, now)))

    def _on_nick(self, event: IrcEvent, now: datetime) -> None:
        old = nick_of(event.source)
        new = event.target or ""
        for r in self._rooms.values():
            if r.members.pop(fold(old), None) is not None:
                r.members[fold(new)] = new
        self._emit(Presence("nick", old, new_nick=new, own=self._is_me(new)))

    # --- names, who, list, topic

    def _on_namreply(self, event: IrcEvent, now: datetime) -> None:
        args = event.arguments
        if len(args) < 3:
            return
        room, nicks = args[1], args[2]
        prefixes = self._prefixes()
        acc = self._names_acc.setdefault(fold(room), {})
        for raw in nicks.split():
            nick = raw.lstrip(prefixes).split("!", 1)[0]
            if nick:
                acc[fold(nick)] = nick

    def _on_endofnames(self, event: IrcEvent, now: datetime) -> None:
        room = event.arguments[0] if event.arguments else ""
        key = fold(room)
        acc = self._names_acc.pop(key, {})
        r = self._rooms.get(key)
        if r is not None:
            r.members = dict(acc)
        users = _sorted_nicks(acc.values())
        for request in self._names_waiters.pop(key, []):
            self._outputs.append(Resolved(request, users))
        if key in self._announce_names:
            self._announce_names.discard(key)
            self._emit(UserList(r.name if r else room, users))
        if self._login_joining and key == fold(DEFAULT_ROOM):
            self._login_joining = False
            self._complete_login()

    def _on_whoreply(self, event: IrcEvent, now: datetime) -> None:
        args = event.arguments
        if len(args) >= 5:
            self._who_acc.setdefault(fold(args[0]), []).append(args[4])

    def _on_endofwho(self, event: IrcEvent, now: datetime) -> None:
        mask = event.arguments[0] if event.arguments else ""
        nicks = self._who_acc.pop(fold(mask), [])
        r = self._rooms.get(fold(mask))
        if r is not None and nicks:
            r.members = {fold(n): n for n in nicks}
        self._emit(UserList(r.name if r else mask, _sorted_nicks(set(nicks))))

    def _on_liststart(self, event: IrcEvent, now: datetime) -> None:
        self._list_acc = []

    def _on_list(self, event: IrcEvent, now: datetime) -> None:
        args = event.arguments
        if not args:
            return
        count = int(args[1]) if len(args) > 1 and args[1].isdigit() else 0
        # many servers put the channel modes first: "[+nt] the topic"
        topic = _LIST_MODES.sub("", args[2]) if len(args) > 2 else ""
        self._list_acc.append(RoomInfo(args[0], count, topic))

    def _on_listend(self, event: IrcEvent, now: datetime) -> None:
        rooms, self._list_acc = self._list_acc, []
        self._emit(RoomList(tuple(sorted(rooms, key=lambda r: fold(r.name)))))

    def _on_currenttopic(self, event: IrcEvent, now: datetime) -> None:
        args = event.arguments
        if len(args) >= 2:
            r = self._rooms.get(fold(args[0]))
            if r is not None:
                r.topic = args[1]
            self._emit(Topic(args[0], args[1]))

    def _on_notopic(self, event: IrcEvent, now: datetime) -> None:
        if event.arguments:
            self._emit(Topic(event.arguments[0], None))

    def _on_topic(self, event: IrcEvent, now: datetime) -> None:
        room = event.target or ""
        text = event.arguments[0] if event.arguments else ""
        r = self._rooms.get(fold(room))
        if r is not None:
            r.topic = text or None
        self._emit(Topic(room, text or None, setter=nick_of(event.source)))

    def _on_away(self, event: IrcEvent, now: datetime) -> None:
        args = event.arguments
        if len(args) >= 2:
            self._emit(Info(f"{args[0]} is away: {args[1]}"))

    # --- other numerics

    def _numeric(self, code: str, event: IrcEvent) -> None:
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
            if self._switch_on_join == fold(args[0]):
                self._switch_on_join = None
            for request in self._join_waiters.pop(fold(args[0]), []):
                self._outputs.append(Resolved(request, False))
            if self._login_joining and fold(args[0]) == fold(DEFAULT_ROOM):
                self._login_joining = False
                self._complete_login()
        if not self._logged_in:
            if args and not self._registered:
                self._prelogin_error = args[-1]
            return
        text = f"{' '.join(args[:-1])}: {args[-1]}" if len(args) >= 2 else (args[0] if args else code)
        self._emit(ServerError(text, code))
