"""Typed events the session reports to the user interface, and the client's errors.

The session state (:mod:`nativeclient.state`) turns IRC lines into these
small immutable records; the renderer (:mod:`nativeclient.render`) turns them into
display lines. Neither side needs to know about the other's internals.

Exit codes (see :class:`ClientError` subclasses):

* 0 -- left normally (``EX``, ``/quit``, Ctrl-D, Ctrl-C, end of piped input);
* 1 -- the server could not be reached, or the login could not complete;
* 2 -- the server refused the login (wrong password, name already online);
* 3 -- the connection was lost after login.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

EXIT_OK = 0
EXIT_UNREACHABLE = 1
EXIT_REFUSED = 2
EXIT_DISCONNECTED = 3
EXIT_INTERRUPTED = 130
"""Ctrl-C before the login finished (e.g. at the password prompt)."""


class ClientError(Exception):
    """An error to show the user as one line, ending the program with ``exit_code``."""

    exit_code = EXIT_UNREACHABLE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnreachableError(ClientError):
    """The server cannot be reached (DNS, refused, timeout, TLS) or login did not finish."""

    exit_code = EXIT_UNREACHABLE


class LoginRefused(ClientError):
    """The server refused the login: wrong password (464) or name in use (433)."""

    exit_code = EXIT_REFUSED


class ConnectionLost(ClientError):
    """The connection ended after login; ``message`` is the reason shown to the user."""

    exit_code = EXIT_DISCONNECTED


@dataclass(frozen=True)
class Message:
    """A PRIVMSG or NOTICE: to a room (``room``) or a direct message (``dm``).

    ``sender`` is a nick (or the server name for server notices); ``target``
    is the room, or for a DM the recipient nick. ``own`` is true for the
    user's own messages (echoed by the server, or shown locally when the
    server has no ``echo-message``). ``action`` marks ``/me`` (CTCP ACTION);
    ``notice`` marks NOTICEs.
    """

    kind: Literal["room", "dm"]
    sender: str
    target: str
    text: str
    own: bool = False
    action: bool = False
    notice: bool = False
    time: datetime | None = None


@dataclass(frozen=True)
class Presence:
    """Someone joined, left (PART), quit, was kicked, or changed nick.

    ``room`` is None for ``quit`` and ``nick`` (they concern every room);
    ``reason`` is the PART/QUIT/KICK text (None when empty); ``new_nick`` is
    set for ``nick``; ``by`` is the kicker for ``kick``.
    """

    kind: Literal["join", "part", "quit", "kick", "nick"]
    nick: str
    room: str | None = None
    reason: str | None = None
    new_nick: str | None = None
    by: str | None = None
    own: bool = False
    time: datetime | None = None


@dataclass(frozen=True)
class Topic:
    """A room's topic: the answer to TOPIC (``setter`` None) or a change (``setter`` set).

    ``text`` is None when the room has no topic.
    """

    room: str
    text: str | None
    setter: str | None = None


@dataclass(frozen=True)
class UserList:
    """The users of ``room`` (answer to NAMES or WHO), sorted case-insensitively."""

    room: str
    users: tuple[str, ...]


@dataclass(frozen=True)
class RoomInfo:
    """One entry of the room list: name, number of users, topic (may be empty)."""

    name: str
    users: int
    topic: str


@dataclass(frozen=True)
class RoomList:
    """The answer to LIST."""

    rooms: tuple[RoomInfo, ...]


@dataclass(frozen=True)
class SendResult:
    """The outcome of a message the user asked to have confirmed (PM, DM) or that failed.

    ``ok`` true: the server confirmed it (``via`` is ``"echo"``, ``"label"``
    or ``"ping"``). ``ok`` false: ``reason`` says why; ``not_online`` is true
    when the server answered that the target nick does not exist or is
    offline (ERR_NOSUCHNICK 401).
    """

    target: str
    text: str
    ok: bool
    operation: Literal["PM", "DM", "msg"] = "msg"
    via: str = ""
    reason: str = ""
    not_online: bool = False


@dataclass(frozen=True)
class Info:
    """A neutral informational line (server notices, MOTD on request, status)."""

    text: str


@dataclass(frozen=True)
class ServerError:
    """An error reply from the server (a 4xx/5xx numeric), as ``text``; ``code`` is the numeric."""

    text: str
    code: str = ""


@dataclass(frozen=True)
class Disconnected:
    """The connection ended without the user asking; ``reason`` is shown as ``disconnected: reason``."""

    reason: str


@dataclass(frozen=True)
class LoginInfo:
    """The result of a successful login.

    ``nick``: the nick the server gave us; ``account``: the account name from
    RPL_LOGGEDIN (900), None on servers without accounts; ``new_account``:
    the server said it registered a new account; ``room``: the room we are
    in (``#general``, or None if it could not be joined); ``online``: users
    in that room, sorted; ``caps``: IRCv3 capabilities in use.
    """

    nick: str
    account: str | None
    new_account: bool
    room: str | None
    online: tuple[str, ...]
    caps: frozenset[str] = field(default_factory=frozenset)


Event = (
    Message | Presence | Topic | UserList | RoomList | SendResult | Info | ServerError | Disconnected
)
"""Everything the session reports to its sink."""
