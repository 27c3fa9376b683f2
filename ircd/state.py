"""The world: users, their sessions, channels and the nick table.

A :class:`User` is an identity (nick, account, modes, channels, away); a
:class:`Session` is one connection of a user (capabilities, CAP and SASL
state, input pausing, ping times). A user has zero or more sessions on this
node: delivery to a user is a write to each (:meth:`User.write`), so a user
connected to another node of a cluster, which has none here, receives
nothing here. Today a user has at most one session.

Nothing here knows which dialect a connection speaks or how bytes reach it:
the front end that owns it subclasses :class:`Session` (the asyncio edge in
:mod:`ircd.net`, WebSocket in :mod:`ircd.websocket`, the course dialect in
:mod:`ircd.simple`) or uses a :class:`CallbackSession` (unit tests,
pseudo-users). Every name lookup is casefolded (:mod:`ircd.protocol.casemap`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ircd.protocol.casemap import casefold

Write = Callable[[bytes], None]
"""Queues bytes for one connection; never blocks (the edge enforces the sendq)."""

Close = Callable[[str], None]
"""Closes one connection after sending ``ERROR :<reason>``; idempotent."""

CONNECTION_KINDS = ("irc", "simple")
"""``Client.kind`` values of users behind a real connection (IRC, WebSocket, the SEND dialect)."""

USERLEN = 10
"""Longest user name (the ``user`` of ``nick!user@host``), advertised as ISUPPORT USERLEN."""

MAX_INVITES = 16
"""Pending invitations kept per user (``Client.invites``); a newer one drops the oldest."""

NAMELEN = 100
"""Longest realname in bytes of UTF-8 (USER, SETNAME), advertised as ISUPPORT NAMELEN."""


EMPTY_SET: frozenset[str] = frozenset()
"""The shared value of an empty per-user or per-session set (``User.modes``,
``Session.caps``) until its first change, which replaces it: an idle
connection costs no set of its own."""

EMPTY_MAP: Mapping[Any, Any] = MappingProxyType({})
"""The shared, read-only value of an empty per-user mapping (``User.channels``,
``User.invites``, ``User.monitoring``) until something is added to it."""


class Session:
    """One connection of a user: what belongs to the socket, not to the identity.

    The front end that owns the connection subclasses it and implements
    :meth:`write` and :meth:`close` (:class:`ircd.net.Connection`, the
    WebSocket and SEND-dialect front ends); :class:`CallbackSession` wraps
    two callables (unit tests, pseudo-users). ``user`` is the :class:`User`
    this connection belongs to. ``caps`` holds the IRCv3 capabilities this
    connection enabled (:data:`EMPTY_SET` until the first ``CAP REQ``) and
    ``tagmask`` their ``ircd.capabilities`` TAG_* bits; ``cap_negotiating``
    and ``cap_version`` the state of ``CAP LS``/``END``; ``sasl`` an
    exchange in progress (:mod:`ircd.commands.sasl`); ``password`` the
    ``PASS`` given before registration. ``pending`` is set while an
    asynchronous step of this connection's runs (a password check, a line in
    the cluster's log): the front end then keeps its further lines until
    :meth:`resume`. ``pending_label`` is the labeled-response label of that
    step's answer. ``in_flight`` counts this connection's lines in the
    cluster's log not yet applied here and ``deferred`` holds the lines that
    wait for them (:mod:`ircd.cluster.log`). ``last_seen`` is when the last
    line arrived and ``ping_sent`` when our unanswered PING went out (0:
    none), for the ping timeout. Times are ``time.time()`` seconds.
    """

    __slots__ = (
        "user", "caps", "tagmask", "cap_negotiating", "cap_version", "sasl", "password",
        "pending", "pending_label", "in_flight", "deferred", "last_seen", "ping_sent",
    )

    def __init__(self) -> None:
        self.user: User = None  # type: ignore[assignment]  # set by Server.new_client
        self.caps: frozenset[str] | set[str] = EMPTY_SET
        self.tagmask = 0
        self.cap_negotiating = False
        self.cap_version = 0
        self.sasl: object = None
        self.password: str | None = None
        self.pending = False
        self.pending_label: str | None = None
        self.in_flight = 0
        self.deferred: list | None = None
        self.last_seen = 0.0
        self.ping_sent = 0.0

    def write(self, data: bytes) -> None:
        """Queue ``data`` (complete CR LF terminated lines) for this connection; never blocks."""
        raise NotImplementedError

    def close(self, reason: str) -> None:
        """Send ``ERROR :<reason>`` where the dialect has it, then close; idempotent."""
        raise NotImplementedError

    def resume(self) -> None:
        """Called when ``pending`` clears: hand over the lines kept meanwhile."""


class NoSession(Session):
    """The session of a command no connection of ours sent (a remote user's,
    applied from a cluster's log; a reply built for a user with no local
    session): no capabilities, what is written to it goes nowhere, and it
    keeps nothing (setting an attribute does nothing: there is no connection
    to pause or to remember a state for), so one instance, :data:`NO_SESSION`,
    serves every such command."""

    __slots__ = ()

    def __init__(self) -> None:
        for name, value in _SESSION_DEFAULTS.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        pass

    def write(self, data: bytes) -> None:
        pass

    def close(self, reason: str) -> None:
        pass


_SESSION_DEFAULTS: dict[str, Any] = {
    "user": None, "caps": EMPTY_SET, "tagmask": 0, "cap_negotiating": False,
    "cap_version": 0, "sasl": None, "password": None, "pending": False,
    "pending_label": None, "in_flight": 0, "deferred": None, "last_seen": 0.0,
    "ping_sent": 0.0,
}

NO_SESSION: Session = NoSession()
"""The one :class:`NoSession` (immutable, so shared)."""


class CallbackSession(Session):
    """A :class:`Session` whose output goes to the callable ``write`` and whose
    close to ``close`` (unit tests, benchmarks; pseudo-users, whose "connection"
    is the service reading the lines delivered to it; the SEND dialect).
    ``on_resume`` is called when ``pending`` clears.

    The callables are kept in the instance's own ``write`` and ``close`` slots
    (which shadow the methods), so a write is one call of ``write``, e.g.
    ``list.append``.
    """

    __slots__ = ("write", "close", "on_resume")  # type: ignore[assignment]

    def __init__(self, write: Write, close: Close | None = None,
                 on_resume: Callable[[], None] | None = None) -> None:
        Session.__init__(self)
        self.write = write  # type: ignore[method-assign,assignment]
        self.close = close if close is not None else _ignore_close  # type: ignore[method-assign,assignment]
        self.on_resume = on_resume

    def resume(self) -> None:
        if self.on_resume is not None:
            self.on_resume()


def _ignore_close(reason: str) -> None:
    """The close of a session with nothing to close (a pseudo-user's inbox)."""


class User:
    """A user, registered or not: the identity others see, apart from its connections.

    Identity (``nick``, ``user``, ``host``, ``realname``) becomes visible to
    others once ``registered`` is true. ``source`` is the cached
    ``nick!user@host`` prefix. ``channels`` maps casefolded channel names to
    :class:`Channel`. ``kind`` names the front end the user came through
    (``"irc"`` or ``"simple"``) or the pseudo-user (``"service"``, ``"bot"``).
    ``ip`` is the address the user connected from. ``invites`` maps the
    casefolded name of each channel the user was invited to (and has not
    joined since) to that channel's ``created`` time, oldest invitation
    first, at most :data:`MAX_INVITES`: an invitation is for that channel
    only, not for a later one of the same name (:meth:`invite`,
    :meth:`is_invited`). ``monitoring`` is the user's MONITOR list
    (casefolded nick -> the nick as given). Empty collections are the shared
    :data:`EMPTY_SET`/:data:`EMPTY_MAP` until first filled.

    ``sessions`` are the user's connections on this node (a tuple, empty for
    a user on another node of a cluster): :meth:`write` delivers to each of
    them, so a user with no local session receives nothing here. ``session``
    is the one session when there is exactly one (the case every delivery
    loop tries first), else None. ``node`` is
    the id of the node the user is connected to (0 on a single node) and
    ``server`` that node's server name (``""`` for this server).
    Times are ``time.time()`` seconds.
    """

    __slots__ = (
        "id", "kind", "ip", "host", "nick", "nick_cf", "user", "realname", "source",
        "account", "registered", "quitting", "monitoring",
        "modes", "away", "channels", "invites", "signon", "last_active",
        "oper", "node", "server", "sessions", "session",
    )

    def __init__(self, uid: int, ip: str, kind: str = "irc", now: float = 0.0) -> None:
        self.id = uid
        self.kind = kind
        self.ip = ip
        # "::1" would start a parameter with ':' in WHO replies; prefix a 0 as Ergo does.
        self.host = "0" + ip if ip.startswith(":") else ip
        self.nick = "*"
        self.nick_cf = ""
        self.user = ""
        self.realname = ""
        self.source = "*"
        self.account: str | None = None
        self.registered = False
        self.quitting = False
        self.monitoring: Mapping[str, str] = EMPTY_MAP
        self.modes: frozenset[str] = EMPTY_SET
        self.away: str | None = None
        self.channels: Mapping[str, Channel] = EMPTY_MAP
        self.invites: Mapping[str, float] = EMPTY_MAP
        self.signon = now
        self.last_active = now        # last PRIVMSG/NOTICE etc. (WHOIS idle)
        # Server operator (OPER): (oper name, class "oper" or "admin"); None for a user.
        # User mode +o is in ``modes`` exactly while this is set.
        self.oper: tuple[str, str] | None = None
        self.node = 0
        self.server = ""
        self.sessions: tuple[Session, ...] = ()
        self.session: Session | None = None

    # -- sessions ------------------------------------------------------------

    def attach(self, session: Session) -> None:
        """Add ``session`` to the user's connections (it then receives what the user does)."""
        session.user = self
        self._set_sessions((*self.sessions, session))

    def detach(self, session: Session) -> None:
        """Remove ``session`` from the user's connections (closed or moved away)."""
        self._set_sessions(tuple(s for s in self.sessions if s is not session))

    def _set_sessions(self, sessions: tuple[Session, ...]) -> None:
        self.sessions = sessions
        self.session = sessions[0] if len(sessions) == 1 else None
        for chan in self.channels.values():
            chan.targets = None  # (its fan-out list names the sessions)

    def write(self, data: bytes) -> None:
        """Deliver ``data`` (CR LF terminated lines) to each of the user's local sessions."""
        for s in self.sessions:
            s.write(data)

    def close(self, reason: str) -> None:
        """Close each of the user's local sessions with ``ERROR :<reason>``."""
        for s in self.sessions:
            s.close(reason)

    def has_cap(self, cap: str) -> bool:
        """True if a local session of the user enabled IRCv3 capability ``cap``."""
        return any(cap in s.caps for s in self.sessions)

    # -- identity ------------------------------------------------------------

    def set_nick(self, nick: str) -> None:
        """Set the nick and refresh the cached casefold and ``nick!user@host``."""
        self.nick = nick
        self.nick_cf = casefold(nick)
        self.update_source()

    def set_mode(self, mode: str, on: bool) -> None:
        """Set (``on``) or unset user mode ``mode`` (one letter)."""
        self.modes = self.modes | {mode} if on else self.modes - {mode}

    def invite(self, chan: Channel) -> None:
        """Record an invitation to ``chan`` (RFC 2812 section 3.2.7), the newest last.

        A repeated invitation moves to the end; beyond :data:`MAX_INVITES`
        the oldest is forgotten.
        """
        cf = casefold(chan.name)
        invites = self.invites
        if not isinstance(invites, dict):
            invites = self.invites = {}
        invites.pop(cf, None)
        invites[cf] = chan.created
        while len(invites) > MAX_INVITES:
            del invites[next(iter(invites))]

    def forget_invite(self, cf: str) -> None:
        """Drop the invitation to the channel whose casefolded name is ``cf``, if any."""
        if cf in self.invites:
            del self.invites[cf]  # type: ignore[attr-defined]

    def is_invited(self, chan: Channel) -> bool:
        """True if the user holds an invitation to this very ``chan`` (same name and
        creation time: an invitation dies with the channel it was given for)."""
        return self.invites.get(casefold(chan.name)) == chan.created

    @property
    def is_pseudo(self) -> bool:
        """True for a pseudo-user with no connection behind it (echobot, NickServ, ChanServ).

        Such users are never KILLed or removed by a server ban.
        """
        return self.kind not in CONNECTION_KINDS

    def update_source(self) -> None:
        self.source = f"{self.nick}!{self.user}@{self.host}" if self.user else self.nick

    def __repr__(self) -> str:
        return f"<User {self.id} {self.nick}>"


Client = User
"""The name the handlers and tests have long used for a :class:`User`."""


@dataclass(eq=False, slots=True)
class Channel:
    """A channel (RFC 2812 section 1.3; RFC 2811 for modes).

    ``members`` maps each :class:`Client` to its prefix modes, a string of
    ``"o"``/``"v"`` letters. ``modes`` holds the flag modes (``n t m i s``);
    ``key`` and ``limit`` the parameter modes; ``bans`` the +b masks as
    ``(mask, setter, set_at)``, ``excepts`` the +e ban exceptions and
    ``invex`` the +I invite exceptions in the same shape (a ``m:<mask>``
    entry in ``bans`` is a mute, see :mod:`ircd.chanaccess`). ``registration`` is set while the channel
    is registered (ChanServ or ``server.registered_channels``). Times are
    ``time.time()`` seconds.
    """

    name: str
    created: float
    members: dict[Client, str] = field(default_factory=dict)
    topic: str = ""
    topic_by: str = ""
    topic_at: float = 0.0
    modes: set[str] = field(default_factory=lambda: {"n", "t"})
    key: str | None = None
    limit: int | None = None
    bans: list[tuple[str, str, float]] = field(default_factory=list)
    excepts: list[tuple[str, str, float]] = field(default_factory=list)
    invex: list[tuple[str, str, float]] = field(default_factory=list)
    # Set while the channel is registered (ircd.chanreg.Registration): then it is
    # kept while empty and across restarts.
    registration: Any = None
    # The list masks compiled (ircd.chanaccess), so a JOIN or message does not
    # compile every +b/+e/+I mask again; at most about the three lists' entries.
    globs: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # The members' local sessions in membership order (local_sessions), None until
    # asked for after a change of members or of a member's sessions.
    targets: list[Session] | None = field(default=None, compare=False, repr=False)

    def local_sessions(self) -> list[Session]:
        """Every session on this node of every member, in membership order (the
        fan-out list of a channel message; kept until the members or their
        sessions change)."""
        targets = self.targets
        if targets is None:
            targets = self.targets = [s for m in self.members for s in m.sessions]
        return targets

    def is_op(self, client: Client) -> bool:
        return "o" in self.members.get(client, "")

    def mode_string(self, show_key: bool = True) -> tuple[str, list[str]]:
        """The channel's modes as (``"+ntkl"``, ``[key, limit]``) for RPL_CHANNELMODEIS."""
        flags = "".join(sorted(self.modes))
        params: list[str] = []
        if self.key is not None:
            flags += "k"
            params.append(self.key if show_key else "*")
        if self.limit is not None:
            flags += "l"
            params.append(str(self.limit))
        return "+" + flags, params


PREFIX_ORDER = "ov"
PREFIX_SYMBOLS = {"o": "@", "v": "+"}


def prefix_of(modes: str, multi: bool = False) -> str:
    """Prefix symbols for member modes: the highest only, or all with multi-prefix (IRCv3)."""
    if not modes:
        return ""
    symbols = [PREFIX_SYMBOLS[m] for m in PREFIX_ORDER if m in modes]
    return "".join(symbols) if multi else symbols[0]


class World:
    """Every client and channel on this server.

    ``users`` maps casefolded nicks to registered clients (the nick table);
    ``channels`` maps casefolded channel names to channels; ``clients`` holds
    every connection, registered or not, by id; ``monitors`` maps casefolded
    nicks to the clients that MONITOR them.
    """

    __slots__ = ("users", "channels", "clients", "max_users", "monitors", "pseudo_users")

    def __init__(self) -> None:
        self.users: dict[str, Client] = {}
        self.channels: dict[str, Channel] = {}
        self.clients: dict[int, Client] = {}
        self.max_users = 0            # most users at once, pseudo-users not counted (LUSERS)
        self.pseudo_users = 0         # pseudo-users in ``users`` (echobot, NickServ, ChanServ)
        # MONITOR (IRCv3): casefolded nick -> the clients watching it
        self.monitors: dict[str, set[Client]] = {}

    def find_user(self, nick: str) -> Client | None:
        return self.users.get(casefold(nick))

    def find_channel(self, name: str) -> Channel | None:
        return self.channels.get(casefold(name))

    def add_user(self, client: Client) -> None:
        self.users[client.nick_cf] = client
        if client.is_pseudo:
            self.pseudo_users += 1
        self.max_users = max(self.max_users, len(self.users) - self.pseudo_users)

    def rename_user(self, client: Client, new_nick: str) -> None:
        del self.users[client.nick_cf]
        client.set_nick(new_nick)
        self.users[client.nick_cf] = client

    def remove_user(self, client: Client) -> None:
        if self.users.get(client.nick_cf) is client:
            del self.users[client.nick_cf]
            if client.is_pseudo:
                self.pseudo_users -= 1

    def peers(self, client: Client) -> Iterator[Client]:
        """Each client sharing at least one channel with ``client``, once, excluding itself."""
        seen = {client}
        for chan in client.channels.values():
            for member in chan.members:
                if member not in seen:
                    seen.add(member)
                    yield member

    def join(self, client: Client, chan: Channel, modes: str = "") -> None:
        chan.members[client] = modes
        chan.targets = None
        channels = client.channels
        if not isinstance(channels, dict):
            channels = client.channels = {}
        channels[casefold(chan.name)] = chan

    def part(self, client: Client, chan: Channel) -> bool:
        """Remove ``client`` from ``chan``; an empty channel is forgotten unless registered.

        Returns True if ``chan`` was forgotten (the caller then drops what
        belongs to it: ``Server.channel_gone``).
        """
        chan.members.pop(client, None)
        chan.targets = None
        channels = client.channels
        cf = casefold(chan.name)
        if cf in channels:
            del channels[cf]  # type: ignore[attr-defined]  # (a dict once joined)
        if not chan.members and chan.registration is None:
            return self.channels.pop(casefold(chan.name), None) is not None
        return False

