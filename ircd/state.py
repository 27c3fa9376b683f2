"""The world: clients, channels and the nick table.

Nothing here knows which dialect a client speaks or how bytes reach it: a
:class:`Client` is given a ``write`` callable (bytes in, nothing out) and a
``close`` callable by the front end that owns the connection (the asyncio
edge in :mod:`ircd.net`, the course dialect in :mod:`ircd.simple`, or a list
in unit tests). Every name lookup is casefolded (:mod:`ircd.protocol.casemap`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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


class Client:
    """One connection's user, registered or not.

    Identity (``nick``, ``user``, ``host``, ``realname``) becomes visible to
    others once ``registered`` is true. ``source`` is the cached
    ``nick!user@host`` prefix. ``channels`` maps casefolded channel names to
    :class:`Channel`. ``caps`` holds the IRCv3 capabilities the client
    enabled. ``kind`` names the front end (``"irc"`` or ``"simple"``).
    ``invites`` maps the casefolded name of each channel the user was
    invited to (and has not joined since) to that channel's ``created``
    time, oldest invitation first, at most :data:`MAX_INVITES`: an
    invitation is for that channel only, not for a later one of the same
    name (:meth:`invite`, :meth:`is_invited`).
    Times are ``time.time()`` seconds.
    """

    __slots__ = (
        "id", "kind", "write", "close", "ip", "host",
        "nick", "nick_cf", "user", "realname", "source",
        "password", "account", "registered", "pending", "quitting",
        "caps", "tagmask", "cap_negotiating", "cap_version", "monitoring", "sasl",
        "modes", "away", "channels", "invites",
        "signon", "last_active", "last_seen", "ping_sent", "resume", "pending_label",
        "oper", "node", "server", "in_flight", "deferred",
    )

    def __init__(self, cid: int, write: Write, close: Close, ip: str, kind: str = "irc",
                 now: float = 0.0) -> None:
        self.id = cid
        self.kind = kind
        self.write = write
        self.close = close
        self.ip = ip
        # "::1" would start a parameter with ':' in WHO replies; prefix a 0 as Ergo does.
        self.host = "0" + ip if ip.startswith(":") else ip
        self.nick = "*"
        self.nick_cf = ""
        self.user = ""
        self.realname = ""
        self.source = "*"
        self.password: str | None = None
        self.account: str | None = None
        self.registered = False
        self.pending = False          # an account check runs off the event loop
        self.quitting = False
        self.caps: set[str] = set()
        self.tagmask = 0              # ircd.capabilities TAG_* bits, from caps
        # MONITOR list: casefolded nick -> the nick as the client gave it
        self.monitoring: dict[str, str] = {}
        self.sasl: object = None      # an in-progress SASL exchange (ircd.commands.sasl)
        self.cap_negotiating = False
        self.cap_version = 0
        self.modes: set[str] = set()
        self.away: str | None = None
        self.channels: dict[str, Channel] = {}
        self.invites: dict[str, float] = {}
        self.signon = now
        self.last_active = now        # last PRIVMSG/NOTICE etc. (WHOIS idle)
        self.last_seen = now          # last line of any kind (ping timeout)
        self.ping_sent = 0.0          # when our PING went out unanswered; 0 = none
        # Set by the front end: called when ``pending`` clears, to resume reading.
        self.resume: Callable[[], None] | None = None
        self.pending_label: str | None = None  # labeled-response for an answer still to come
        # Server operator (OPER): (oper name, class "oper" or "admin"); None for a user.
        # User mode +o is in ``modes`` exactly while this is set.
        self.oper: tuple[str, str] | None = None
        # Cluster mode (ircd/cluster/): the id of the node this user is connected to
        # (0 on a single node) and that node's server name ("" for this server).
        self.node = 0
        self.server = ""
        self.in_flight = 0            # lines in the cluster's log not yet applied here
        self.deferred: list | None = None  # lines waiting for them (ircd.cluster.log)

    def set_nick(self, nick: str) -> None:
        """Set the nick and refresh the cached casefold and ``nick!user@host``."""
        self.nick = nick
        self.nick_cf = casefold(nick)
        self.update_source()

    def invite(self, chan: Channel) -> None:
        """Record an invitation to ``chan`` (RFC 2812 section 3.2.7), the newest last.

        A repeated invitation moves to the end; beyond :data:`MAX_INVITES`
        the oldest is forgotten.
        """
        cf = casefold(chan.name)
        self.invites.pop(cf, None)
        self.invites[cf] = chan.created
        while len(self.invites) > MAX_INVITES:
            del self.invites[next(iter(self.invites))]

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
        return f"<Client {self.id} {self.nick}>"


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
        client.channels[casefold(chan.name)] = chan

    def part(self, client: Client, chan: Channel) -> bool:
        """Remove ``client`` from ``chan``; an empty channel is forgotten unless registered.

        Returns True if ``chan`` was forgotten (the caller then drops what
        belongs to it: ``Server.channel_gone``).
        """
        chan.members.pop(client, None)
        client.channels.pop(casefold(chan.name), None)
        if not chan.members and chan.registration is None:
            return self.channels.pop(casefold(chan.name), None) is not None
        return False

