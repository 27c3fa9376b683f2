"""The cluster's sans-I/O half: log entries and this node's replica of the world.

Every node of a network holds the whole world (:class:`ircd.state.World`):
its own users behind real connections, and every other node's users as
:class:`~ircd.state.User` objects with no session on this node, so nothing
is written to them here (``user.node`` names their node). The world changes only by applying log
entries, in log order, on every node alike (state-machine replication, as
RobustIRC does with Raft; here the log is one Redis stream, see
:mod:`ircd.cluster.redis`):

- ``L`` entries carry one IRC line of a registered user (PRIVMSG, JOIN,
  MODE...), as the sender's node parsed it and re-serialised it
  (:func:`canonical_line`; never a secret: see :meth:`Replication.route`). Every node runs the ordinary handler (:mod:`ircd.commands`) on
  its replica; the handlers are deterministic because, while an entry is
  applied, the server's clock reads the entry's timestamp and message ids
  derive from the entry id. Only the node the sender is on sends it the
  reply (numerics, echo-message); each node writes deliveries only to its
  own sockets.
- ``J`` entries are JSON objects for what happens beside a command:
  ``intro`` (a user finished registering: the nick claim), ``quit`` (a
  connection closed), ``user`` (account, oper status or capabilities
  changed off the log), ``acct`` (an account name was created or dropped),
  ``hello`` (a node joins), ``lost`` (a node's liveness key expired).

PRIVMSG, NOTICE and TAGMSG that change nothing and that the sender's node
can judge (:meth:`Replication.route_targets`) are *routed*: the edge sends
them only to the nodes holding their recipients, stamped with the state
position they were judged at, if the state stream has not moved since, and
each of those nodes applies them right after that state entry
(:meth:`Replication.apply_routed`, a batch at a time; docs/cluster.md
"Routed messages").

Per line, the node parses a received line once: the :class:`Message` it
appends is the one it applies when the entry comes back (a node with
recipients parses the entry's line once). A sender paused at
:data:`MAX_IN_FLIGHT` resumes once per read batch (:meth:`Replication.begin_batch`,
:meth:`Replication.end_batch`), not after each of its lines.

:class:`Replication` is the server's :class:`~ircd.worldlog.WorldLog` in a
cluster: the core hands it lines and publishes changes to it, and it passes
each entry's :class:`~ircd.worldlog.Apply` to the handlers. Nothing here does
I/O: the edge (:mod:`ircd.cluster.redis`, or :mod:`ircd.cluster.memory` in
process) gives each entry it reads to :meth:`Replication.apply` and sends
what :meth:`Replication.submit` and friends hand to the :class:`Transport`.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from ircd import events
from ircd.capabilities import TAG_MESSAGE_TAGS
from ircd.chanaccess import is_banned, is_muted
from ircd.commands import COMMANDS, Effect, dispatch
from ircd.protocol import numerics as N
from ircd.protocol.casemap import casefold
from ircd.protocol.message import (
    Message,
    MessageParseError,
    Parsed,
    format_line,
    parse_line,
    parse_received,
)
from ircd.reply import Reply, take_label
from ircd.serverbans import ServerBan
from ircd.state import NO_SESSION, Channel, Client, Session
from ircd.worldlog import Apply, EntryClock

if TYPE_CHECKING:
    from ircd.core import Server
    from ircd.history import HistoryStore

log = logging.getLogger("ircd.cluster")

REPLICATED = frozenset(name for name, spec in COMMANDS.items() if spec.effect is not Effect.LOCAL)
"""Commands of registered users that go through the log: those the command table
(``ircd/commands/table.py``) marks as changing the world, and the routed messages
(PRIVMSG, NOTICE, TAGMSG). Every other command (WHO, WHOIS, NAMES, LIST, MONITOR,
CHATHISTORY, CAP, PING...) reads this node's replica and is answered at once."""

ROUTED = frozenset(name for name, spec in COMMANDS.items() if spec.effect is Effect.ROUTED)
"""Commands that change no state (the table's ``ROUTED`` rows: PRIVMSG, NOTICE,
TAGMSG): a node may route them to the nodes of their
recipients only (:meth:`Replication.route_targets`) instead of the state stream."""

ROUTED_BASE = 10 ** 12
"""Added to a routed batch's number in its entries' ids (``<P>.<ROUTED_BASE + n>.<i>``),
so a routed message's ids sort after every id made by state entry ``P``'s batch
(whose indexes are far smaller) and before those of the next state entry."""

HISTORY_CATCH_UP = 3.0
"""Seconds after which a node reads from the database again what it loaded when it
began to follow a target (:meth:`Replication.follow_history`): the messages sent
just before, which their senders' nodes write within about a second."""

MAX_IN_FLIGHT = 64
"""Lines of one client that may be in the log, not yet applied, before its input pauses."""

UNAVAILABLE = "Cluster unavailable, try again later"
"""The text of ``400 <nick> <command> :...`` while the log cannot be written."""

Done = Callable[[Reply | None], None]
"""Called on the loop when a submitted line was applied here (its reply for the
sender) or could not be appended to the log (None)."""


def _channel_rows(target: str, history: HistoryStore, since: float) -> list[Any]:
    """The stored messages of channel ``target`` (casefolded) since ``since``."""
    return history.recent_rows_of(target, since)


class Transport(Protocol):
    """What the replica needs from the edge (:class:`ircd.cluster.redis.RedisLog`)."""

    available: bool
    """False while the log cannot be written (Redis unreachable): submits are refused."""

    def append(self, data: bytes, seq: int, *, retry: bool = False) -> None:
        """Queue one entry for the log. If it cannot be appended, the edge calls
        :meth:`Replication.failed` with ``seq`` (``retry``: keep it and try again
        when the log is back instead, for quits)."""

    def route(self, data: bytes, seq: int, position: str, targets: frozenset[int]) -> None:
        """Queue one message (an ``L`` entry) judged at state position ``position`` for
        the nodes ``targets`` (compare and route, docs/cluster.md "Routed messages"):
        if the state stream's last entry is still ``position`` when the edge sends
        it, it goes to those nodes' inboxes only, stamped ``position``; otherwise it
        is appended to the state stream like :meth:`append`."""

    def put_snapshot(self, entry_id: str, data: bytes) -> None:
        """Store this node's snapshot taken right after entry ``entry_id``."""

    def drop_inbox(self, node_id: int) -> None:
        """Delete the inbox of node ``node_id``, declared lost by this node. Called
        once that ``lost`` entry is applied here: no message judged after it routes
        to that node (its users are gone) and one judged before it cannot pass the
        compare (the stream moved), so nothing recreates the inbox."""

    def reset(self, why: str) -> None:
        """This node was declared lost: drop every local user and rejoin as a new node."""


def pack(entries: Iterable[bytes]) -> bytes:
    """Several log entries (bytes) as one bytes value, each as ``<length>\\n<entry>``.

    A node appends each write batch as one stream entry holding this value
    (field ``b``, :mod:`ircd.cluster.redis`): one command instead of one per line.
    """
    return b"".join(b"%d\n%s" % (len(e), e) for e in entries)


def unpack(packed: bytes) -> Iterator[bytes]:
    """The entries of a :func:`pack` field, in order (a malformed tail is dropped)."""
    pos, end = 0, len(packed)
    while pos < end:
        nl = packed.find(b"\n", pos)
        if nl < 0:
            return
        try:
            size = int(packed[pos:nl])
        except ValueError:
            return
        start = nl + 1
        if start + size > end:
            return
        yield packed[start:start + size]
        pos = start + size


@dataclass(slots=True)
class NodeInfo:
    """One node of the network: its id (a new random one per start), ``[cluster]
    node_name`` and ``[server] name``."""

    id: int
    name: str
    server: str
    info: str = ""


def _caps(client: Client) -> list[str]:
    """The capabilities of ``client``'s session, for its record (informative: a
    user of another node has no session here, so no node reads them)."""
    session = client.session
    return sorted(session.caps) if session is not None else []


def canonical_line(msg: Message) -> bytes:
    """The bytes that go into the log for ``msg`` (a parsed, valid UTF-8 line):
    its tags, command and parameters re-serialised (:func:`format_line`), without the
    client's ``:source`` (the server never uses it). ``parse_line`` of the result
    gives ``msg`` back (without its source), so every node runs what the sender's
    node parsed, whatever spaces, NULs, CRs or casing the client sent."""
    return format_line(msg.command, msg.params, tags=msg.tags or None).encode("utf-8")


def encode_line(origin: int, seq: int, sender: str, line: bytes) -> bytes:
    """An ``L`` entry: ``L<origin> <seq> <sender>\\n<line>`` (bytes).

    ``sender`` is the user's network id as a decimal string, or ``~<nick>``
    for a pseudo-user (echobot, NickServ), which every node has.
    """
    return b"L%d %d %s\n" % (origin, seq, sender.encode()) + line


def entry_time(entry_id: str) -> float:
    """The time of log entry ``entry_id`` (``"<ms>-<n>"``, maybe ``".<i>"`` in a
    batch), in unix seconds: Redis's clock when it appended the entry.

    Redis never gives an entry a smaller id than the one before (XADD), so
    these times never go back in log order, and every node reads the same one.
    """
    return int(entry_id.partition("-")[0]) / 1000


def encode_json(obj: dict[str, Any]) -> bytes:
    """A ``J`` entry: ``J`` followed by compact JSON (UTF-8)."""
    return b"J" + json.dumps(obj, separators=(",", ":")).encode("utf-8")


class Replication:
    """This node's side of the replicated world, for one :class:`~ircd.core.Server`:
    the server's :class:`~ircd.worldlog.WorldLog` in cluster mode (``sequenced``).

    ``node`` is this node; ``transport`` the edge. ``by_id`` holds every
    registered user of the network (this node's and the others') by network
    id; ``nodes`` every node this replica knows. ``synced`` turns true once
    the replica holds the world (founded, or loaded from a snapshot).
    The server must have been built with an :class:`~ircd.worldlog.EntryClock`
    (``TypeError`` otherwise): while an entry is applied it reads the entry's time.
    """

    sequenced = True

    def __init__(self, server: Server, node: NodeInfo, transport: Transport) -> None:
        if not isinstance(server.clock, EntryClock):
            raise TypeError("a cluster node's Server needs clock=EntryClock(...)")
        self.server = server
        self.clock: EntryClock = server.clock
        self.node = node
        self.transport = transport
        self.by_id: dict[int, Client] = {}
        self.nodes: dict[int, NodeInfo] = {}
        self.waiting: dict[int, Done] = {}
        self.synced = False
        self.applied = 0                       # entries applied (metrics, bench)
        self.position = "0-0"                  # the last state stream entry applied
        self._seq = itertools.count(1)
        self._state_lines: dict[int, int] = {}  # client id -> its state lines in flight
        # channel name -> (position, its members' nodes or None: not routable)
        self._channel_nodes: dict[str, tuple[str, frozenset[int] | None]] = {}
        # seq -> the Message this node parsed and appended (applied here without a reparse)
        self._parsed: dict[int, Message] = {}
        # While the edge applies a read batch: the sessions to resume at its end
        # (id(session) -> session), so a paused sender resumes once per batch, not per line.
        self._resumes: dict[int, Session] | None = None
        server.attach_log(self, node.id)

    # -- the apply context -----------------------------------------------------

    @property
    def current(self) -> Apply | None:
        """The entry being applied (:class:`~ircd.worldlog.Apply`), or None."""
        return self.clock.current

    def _enter(self, entry_id: str, origin: int, at: float | None = None) -> Apply:
        """The context of entry ``entry_id`` from node ``origin`` (its time: ``at``, or
        the entry id's), made current."""
        apply = self.clock.current = Apply(entry_time(entry_id) if at is None else at, origin,
                                           origin == self.node.id, entry_id.replace("-", "."))
        return apply

    def _leave(self) -> None:
        self.clock.current = None

    def forget(self, client: Client) -> bool:
        """An applied entry removes ``client``: drop it from :attr:`by_id`; False if gone."""
        return self.by_id.pop(client.id, None) is not None

    # -- lines from this node's users ------------------------------------------

    def handle_line(self, session: Session, line: bytes | object) -> None:
        """:meth:`ircd.core.Server.handle_line` in cluster mode.

        A registered user's line is parsed once (:func:`parse_received`); that
        :class:`Message` decides where it runs (:meth:`route`) and is what runs.
        A valid line whose command is in :data:`REPLICATED` is appended to the
        log in its canonical form (:func:`canonical_line`: what was parsed, so
        every node runs identical input) and answered when this node applies
        it; up to
        :data:`MAX_IN_FLIGHT` such lines of one client may be in the log at
        once (then its input pauses). Any other line runs at once on the
        replica, but only after the client's lines in flight were applied, so
        every session's lines are answered in the order it sent them.
        """
        if session.user.quitting:
            return
        if session.deferred:  # lines wait already: this one waits behind them
            session.deferred.append(line)
            return
        self._handle(session, line)

    def _handle(self, session: Session, line: bytes | object) -> None:
        if isinstance(line, Parsed):  # decided already: it runs here
            self._run_here(session, line)
            return
        client = session.user
        if not client.registered or not isinstance(line, bytes):
            self._run_here(session, line)  # registration, or LineTooLong (417)
            return
        server = self.server
        session.last_seen = server.clock()
        parsed = parse_received(line)
        msg = parsed.msg
        if msg is None or not parsed.valid:
            self._run_here(session, parsed)  # 417, ignored, or refused (UTF8ONLY)
            return
        shared, local = self.route(msg)
        if local is not None:
            self._run_here(session, Parsed(local))
        if shared is not None:
            session.in_flight += 1
            # A message may be routed only while none of its sender's state changes
            # is in flight: it is judged here, now, on this replica.
            targets = (self.route_targets(client, shared)
                       if shared.command in ROUTED and not self._state_lines.get(client.id)
                       else None)
            if targets is None:
                self._state_lines[client.id] = self._state_lines.get(client.id, 0) + 1
            self.submit(client, shared.command, canonical_line(shared),
                        self._replier(session, shared.command, targets is None), targets,
                        shared)
            if session.in_flight >= MAX_IN_FLIGHT:
                session.pending = True

    def route_targets(self, client: Client, msg: Message) -> frozenset[int] | None:
        """The nodes a PRIVMSG/NOTICE/TAGMSG of ``client`` must reach, judged on this
        replica as it is now (state position :attr:`position`), or None: it goes
        through the state stream as every other change.

        Routed are only messages to one target that pass every check here (so
        the sender's node and the recipients' nodes, applying it at the same
        position, run the same handler on the same state): to a user who is
        not a pseudo-user, or to a channel without a status prefix and without
        pseudo-users among its members, that ``client`` may send to (+n, +m,
        bans and mutes as :mod:`ircd.commands.messaging` checks them). The
        nodes are this one (the sender's replies and echo) and the nodes of
        the recipients. Anything else (several targets, errors, services) is
        None: every node runs it, in the state stream, exactly as before.
        """
        params = msg.params
        if not params or "," in params[0] or (msg.command != "TAGMSG" and
                                              (len(params) < 2 or not params[1])):
            return None
        name = params[0]
        world = self.server.world
        here = self.node.id
        if name[:1] == "#":
            chan = world.channels.get(casefold(name))
            if chan is None:
                return None
            members = chan.members
            modes = members.get(client)
            if modes is None and "n" in chan.modes:
                return None
            if not modes and ("m" in chan.modes or (chan.bans and (
                    is_banned(chan, client) or is_muted(chan, client)))):
                return None
            # The members' nodes change only with state entries: kept per position.
            cached = self._channel_nodes.get(chan.name)
            if cached is not None and cached[0] == self.position:
                return cached[1]
            nodes: frozenset[int] | None = frozenset({here, *(m.node for m in members)})
            if any(m.is_pseudo for m in members):
                nodes = None
            if len(self._channel_nodes) > 4096:
                self._channel_nodes.clear()
            self._channel_nodes[chan.name] = (self.position, nodes)
            return nodes
        if name[:1] in "@+":
            return None
        user = world.users.get(casefold(name))
        if user is None or user.is_pseudo:
            return None
        return frozenset((here, user.node))
    def route(self, msg: Message) -> tuple[Message | None, Message | None]:
        """Where a registered user's parsed line runs: ``(shared, local)``.

        ``shared`` goes through the log (every node runs it), ``local`` runs on
        this node only; either may be None. The decision is made on the very
        :class:`Message` that then runs (never on the raw bytes): a command in
        :data:`REPLICATED` is shared, any other is local. Two exceptions keep
        secrets out of the log:

        - a PRIVMSG or NOTICE to a service whose commands run on the sender's
          node only (NickServ: ``REGISTER <password>``...), and a NOTICE to any
          service (services ignore notices), run here; when the line also names
          other targets it is split, the service targets running here (without
          a ``label``: the shared part answers it) and the others going through
          the log;
        - ``CS``/``CHANSERV`` and PRIVMSG to ChanServ with a word that is not
          one of ChanServ's commands (``CS IDENTIFY pw`` typed to the wrong
          service) run here: their only effect is "Unknown command".

        Whatever runs here changes nothing in the world by itself; NickServ's
        results (an account created, a login) enter the log as ``acct`` and
        ``user`` entries.
        """
        command = msg.command
        services = self.server.services
        if services is None:
            return (msg, None) if command in REPLICATED else (None, msg)
        if command in ("CS", "CHANSERV"):
            words = " ".join(msg.params).split()
            known = bool(words) and words[0].upper() in services.chanserv.commands
            return (msg, None) if known else (None, msg)
        if command not in ("PRIVMSG", "NOTICE") or len(msg.params) < 2:
            return (msg, None) if command in REPLICATED else (None, msg)
        nickserv, chanserv = services.nickserv.client.nick_cf, services.chanserv.client.nick_cf
        first = msg.params[0]
        if "," not in first and (first[:1] == "#" or len(first.lstrip("@+")) not in
                                 (len(nickserv), len(chanserv))):
            return msg, None   # (the common case: one target, not a service: casefold
            #                     keeps the length)
        targets = first.split(",")
        names = (nickserv, chanserv)
        private = [t for t in targets if casefold(t.lstrip("@+")) in names
                   and self._private_target(t, command, msg.params[1])]
        if not private:
            return msg, None
        if len(private) == len(targets):
            return None, msg
        rest = [t for t in targets if t not in private]
        tags = {k: v for k, v in msg.tags.items() if k != "label"}
        return (Message(command, [",".join(rest), *msg.params[1:]], msg.source, msg.tags),
                Message(command, [",".join(private), *msg.params[1:]], msg.source, tags))

    def _private_target(self, target: str, command: str, text: str) -> bool:
        """True if ``target`` of a PRIVMSG/NOTICE carrying ``text`` is a service that
        must hear it on this node only (see :meth:`route`)."""
        name = target.lstrip("@+") or target
        services = self.server.services
        folded = casefold(name)
        for service in (services.nickserv, services.chanserv):
            if service.client.nick_cf != folded:
                continue
            if command == "NOTICE" or not service.replicated:
                return True
            words = text.split()
            return not words or words[0].upper() not in service.commands
        return False

    def _run_here(self, session: Session, line: bytes | object) -> None:
        """Run a line on this node now, or once the session's lines in flight are applied.

        ``line`` is raw (bytes, or ``LineTooLong``) for an unregistered client, or
        a :class:`Parsed` line (parsed once, in :meth:`_handle`).
        """
        if session.in_flight:
            if session.deferred is None:
                session.deferred = []
            session.deferred.insert(0, line)
            session.pending = True  # the connection keeps the lines after it
            return
        server = self.server
        if isinstance(line, Parsed):
            server.run_parsed(session, line)   # (parsed once, in _handle)
        else:
            server.run_line(session, line)

    def _replier(self, session: Session, command: str, state: bool = True) -> Done:
        client = session.user

        def done(reply: Reply | None) -> None:
            session.in_flight -= 1
            if state:
                left = self._state_lines.get(client.id, 1) - 1
                if left > 0:
                    self._state_lines[client.id] = left
                else:
                    self._state_lines.pop(client.id, None)
            if client.quitting:
                return
            if reply is None:
                out = Reply(self.server.name, client, session)
                out.numeric(N.ERR_UNKNOWNERROR, command, UNAVAILABLE)
                reply = out
            if reply.lines:
                session.write(reply.to_bytes())
            self._continue(session)
        return done

    def _continue(self, session: Session) -> None:
        """After one of ``session``'s lines was applied: run the lines that waited for
        it, or resume reading when it was paused at :data:`MAX_IN_FLIGHT`.

        (The connection stops handing over lines while ``pending`` is set, so at
        most the one line that found lines in flight waits here.)
        """
        client = session.user
        deferred = session.deferred
        while deferred and not client.quitting:
            if session.in_flight:
                session.pending = True
                return
            line = deferred.pop(0)
            session.pending = False
            self._handle(session, line)
            if session.pending and not session.in_flight:
                return  # a local command that waits for a password check resumes itself
        session.deferred = None
        if client.quitting or session.in_flight >= MAX_IN_FLIGHT:
            return
        session.pending = False
        if self._resumes is not None:
            self._resumes[id(session)] = session   # at the end of the read batch
        else:
            session.resume()

    def begin_batch(self) -> None:
        """The edge begins to apply a read batch: the sessions whose lines it applies
        resume reading once, at :meth:`end_batch`, instead of after each line
        (a session paused at :data:`MAX_IN_FLIGHT` then reads up to that many
        lines at once)."""
        if self._resumes is None:
            self._resumes = {}

    def end_batch(self) -> None:
        """The read batch is applied: resume the sessions that may read again
        (unless something paused them again meanwhile; then it resumes them)."""
        resumes, self._resumes = self._resumes, None
        if not resumes:
            return
        for session in resumes.values():
            if not session.user.quitting and not session.pending:
                session.resume()

    def submit(self, client: Client, command: str, line: bytes, done: Done,
               targets: frozenset[int] | None = None, msg: Message | None = None) -> None:
        """Append ``line`` (raw bytes, no CR LF) from ``client`` to the log; ``done``
        gets the reply once it is applied here, or None (at once, or when the edge
        reports the append failed) if the log is unavailable. ``targets``: the
        nodes to route it to (:meth:`route_targets`), judged at :attr:`position`.
        ``msg``: the :class:`Message` ``line`` was made from (:func:`canonical_line`),
        which this node then applies instead of parsing ``line`` again."""
        if not self.transport.available:
            done(None)
            return
        seq = next(self._seq)
        self.waiting[seq] = done
        if msg is not None:
            self._parsed[seq] = (msg if msg.source is None
                                 else Message(msg.command, msg.params, None, msg.tags))
        sender = f"~{client.nick_cf}" if client.is_pseudo else str(client.id)
        data = encode_line(self.node.id, seq, sender, line)
        if targets is None:
            self.transport.append(data, seq)
        else:
            self.transport.route(data, seq, self.position, targets)

    def submit_message(self, client: Client, msg: Message, done: Done | None = None) -> None:
        """Run ``msg`` for ``client`` through the log (echobot's answers, SEND).

        A message to NickServ runs here instead, and never enters the log
        (:meth:`route`); ``done`` then gets its reply at once.
        """
        if msg.command in ("PRIVMSG", "NOTICE"):
            shared, local = self.route(msg)
            if local is not None:
                reply = dispatch(self.server, client, local, client.session)
                if shared is None:
                    if done is not None:
                        done(reply)
                    return
                msg = shared
        line = format_line(msg.command, msg.params, trailing=True).encode("utf-8")
        self.submit(client, msg.command, line, done or (lambda _reply: None))

    def failed(self, seq: int) -> None:
        """The edge could not append entry ``seq``: tell whoever waits for it."""
        self._parsed.pop(seq, None)
        done = self.waiting.pop(seq, None)
        if done is not None:
            done(None)

    # -- entries beside commands -------------------------------------------------

    def introduce(self, client: Client, created: bool, autojoin: list[str]) -> None:
        """Claim ``client``'s nick network-wide: the last step of registration.

        The welcome (or 433) comes when the ``intro`` entry is applied here;
        meanwhile the client's input is paused. Unavailable log: ``ERROR :Cluster
        unavailable``.
        """
        server = self.server
        if not self.transport.available:
            server.quit(client, "Cluster unavailable", error="Cluster unavailable")
            return
        seq = next(self._seq)
        session = client.session or NO_SESSION  # (a pseudo-user's inbox, or none)
        session.pending = True
        client.node = self.node.id

        def done(reply: Reply | None) -> None:
            session.pending = False
            if client.quitting:
                return
            if reply is None:
                server.quit(client, "Cluster unavailable", error="Cluster unavailable")
                return
            take_label(session, reply, server.ids)
            if reply.lines:
                session.write(reply.to_bytes())
            session.resume()

        self.waiting[seq] = done
        self.transport.append(encode_json({
            "k": "intro", "o": self.node.id, "s": seq,
            "u": self._user_record(client), "created": created, "autojoin": autojoin,
        }), seq)

    def publish_quit(self, client: Client, reason: str) -> None:
        """A user of this node left outside the log (connection closed, ping timeout...)."""
        self.transport.append(encode_json({
            "k": "quit", "o": self.node.id, "id": client.id,
            "reason": reason}), 0, retry=True)

    def publish_user(self, client: Client) -> None:
        """``client``'s account, oper status or capabilities changed off the log."""
        self.transport.append(encode_json({
            "k": "user", "o": self.node.id, "id": client.id,
            "account": client.account, "oper": list(client.oper) if client.oper else None,
            "modes": "".join(sorted(client.modes)), "caps": _caps(client)}), 0, retry=True)

    def publish_account_name(self, name: str, present: bool) -> None:
        """Account ``name`` was created (``present``) or dropped: every replica's
        ``account_names`` follows."""
        self.transport.append(encode_json({
            "k": "acct", "o": self.node.id, "name": name,
            "present": present}), 0, retry=True)

    def hello_entry(self) -> bytes:
        """The entry with which this node announces itself (see :mod:`ircd.cluster.redis`)."""
        return encode_json({"k": "hello", "o": self.node.id, "name": self.node.name, "server": self.node.server,
                            "info": self.node.info})

    def lost_entry(self, node_id: int) -> bytes:
        """The entry declaring node ``node_id`` lost (its liveness key expired)."""
        return encode_json({"k": "lost", "o": self.node.id, "node": node_id})

    # -- applying the log ---------------------------------------------------------

    def apply(self, entry_id: str, data: bytes, routed_at: float | None = None) -> None:
        """Apply one log entry (``entry_id`` is the stream id, ``"<ms>-<n>"``, and its
        place in the batch, ``".<i>"``).

        ``routed_at``: the entry is a routed message from this node's inbox
        (unix seconds: when it was routed), applied right after the state
        entry it is stamped with and before the next (``entry_id`` is then
        ``"<stamp>.<ROUTED_BASE + batch>.<i>"``, the same on every node it
        reached); otherwise it is the next entry of the state stream, and
        :attr:`position` moves to its stream entry.
        Entries from nodes this replica does not know (declared lost, or not
        yet joined) are ignored, except ``hello``. Never raises: a failing
        entry is logged and skipped.
        """
        self.applied += 1
        if routed_at is None:
            self.position = entry_id.partition(".")[0]
        try:
            if data[:1] == b"L":
                self._apply_line(entry_id, data, routed_at)
            elif data[:1] == b"J":
                obj = json.loads(data[1:])
                kind = obj.get("k")
                if kind != "hello" and obj.get("o") not in self.nodes:
                    return
                handler = getattr(self, f"_apply_{kind}", None)
                if handler is not None:
                    handler(entry_id, obj)
        except Exception:
            log.exception("applying log entry %s failed", entry_id)
        finally:
            if self.clock.current is not None:
                self._leave()

    def apply_routed(self, stamp: str, number: int, at: float, items: list[bytes]) -> None:
        """Apply one routed batch from this node's inbox, right after state entry
        ``stamp`` (``"<ms>-<n>"``): ``items`` is index, entry, index, entry...
        (the :func:`unpack` of an inbox entry's ``b``), routed as batch ``number``
        at ``at`` (unix seconds).

        Each message is applied as :meth:`apply` with ``routed_at`` applies it,
        under the id ``<stamp>.<ROUTED_BASE + number>.<index>`` (the same on
        every node it reached), in one loop whose ids share one prefix. Never
        raises: a failing message is logged and skipped.
        """
        prefix = f"{stamp}.{ROUTED_BASE + number}."
        apply_line = self._apply_line
        clock = self.clock
        for k in range(0, len(items) - 1, 2):
            data = items[k + 1]
            self.applied += 1
            try:
                entry_id = prefix + str(int(items[k]))
                if data[:1] == b"L":
                    apply_line(entry_id, data, at)
                else:
                    self.apply(entry_id, data, routed_at=at)
            except Exception:
                log.exception("applying routed message %s%s failed", prefix, items[k])
            finally:
                if clock.current is not None:
                    self._leave()

    def _apply_line(self, entry_id: str, data: bytes, routed_at: float | None = None) -> None:
        header, _, line = data[1:].partition(b"\n")
        origin_s, seq_s, sender = header.split(b" ")
        origin = int(origin_s)
        if origin not in self.nodes:
            return
        local = origin == self.node.id
        if local:
            seq = int(seq_s)
            done = self.waiting.pop(seq, None)
            msg: Message | None = self._parsed.pop(seq, None)
        else:
            done = msg = None
        server = self.server
        if sender[:1] == b"~":
            client = server.world.users.get(sender[1:].decode())
            if client is not None and not client.is_pseudo:
                client = None
        else:
            client = self.by_id.get(int(sender))
        if client is None:
            if done is not None:
                done(None)
            return
        if msg is None:
            try:
                msg = parse_line(line, check_length=False)  # checked where it was received
            except MessageParseError:
                if done is not None:
                    done(None)
                return
        history = server.history
        mark = len(history.pending) if history is not None else 0
        apply = self._enter(entry_id, origin, routed_at)
        # The command runs for the user; its reply is for the session that sent it
        # (this node's) or for none (a user of another node: its node answers).
        session = client.session if local or client.is_pseudo else None
        try:
            if session is not None:
                paused = session.pending
                if local:
                    session.pending = False  # (else dispatch keeps a label for a later answer)
            if routed_at is not None and not local:
                self._deliver_routed(client, msg, apply)
                reply = None
            else:
                reply = dispatch(server, client, msg, session, apply)
            if session is not None:
                session.pending = session.pending or paused
        finally:
            self._leave()
            if not local and history is not None:
                del history.pending[mark:]   # the origin node writes it to the database
        if local and msg.command == "JOIN" and history is not None:
            self._follow_channels(client, {casefold(n) for n in msg.params[0].split(",")}
                                  if msg.params else set())
        if done is not None:
            done(reply)

    def _deliver_routed(self, client: Client, msg: Message, apply: Apply) -> None:
        """Deliver a routed message of another node's user to this node's recipients,
        straight from the entry: no dispatch, no checks. Its sender's node judged
        it (:meth:`route_targets`) on the state this node has now (the entry's
        stamp), so what :mod:`ircd.commands.messaging` would do here is only the
        delivery, the history and the sender's idle time: the same bytes, the
        same msgid (``tests/test_cluster_routing.py`` compares both paths)."""
        verb = msg.command
        params = msg.params
        server = self.server
        world = server.world
        client.last_active = apply.now   # (PRIVMSG, NOTICE, TAGMSG: updates_idle)
        text = None if verb == "TAGMSG" else params[1]
        tags = msg.tags
        client_tags = {k: v for k, v in tags.items() if k[:1] == "+"} if tags else None
        if "B" in client.modes:
            client_tags = {**(client_tags or {}), "bot": ""}
        name = params[0]
        history = server.history
        if name[:1] == "#":
            chan = world.channels.get(casefold(name))
            if chan is None:
                return
            line = (f":{client.source} {verb} {chan.name} :{text}" if text is not None
                    else f":{client.source} TAGMSG {chan.name}")
            event = events.Event(line, apply.now, apply.new_msgid, client.account, client_tags)
            if text is None:
                event.send_with_cap(chan.members, "message-tags", exclude=client)
            else:   # (the sender is another node's: none of its sessions is here)
                event.send_to_sessions(chan.local_sessions())
            if text is not None and history is not None:
                history.record_channel(chan, client, verb, text, event)
            return
        user = world.users.get(casefold(name))
        if user is None:
            return
        line = (f":{client.source} {verb} {user.nick} :{text}" if text is not None
                else f":{client.source} TAGMSG {user.nick}")
        event = events.Event(line, apply.now, apply.new_msgid, client.account, client_tags)
        for session in user.sessions:
            mask = session.tagmask
            if text is not None or mask & TAG_MESSAGE_TAGS:
                session.write(event.bytes_for(mask) if mask else event.plain)
        if text is not None and history is not None:
            history.record_direct(client, user, verb, text, event)

    def _apply_intro(self, entry_id: str, obj: dict[str, Any]) -> None:
        from ircd.ops.welcome import complete_registration

        server = self.server
        rec = obj["u"]
        origin = obj["o"]
        local = origin == self.node.id
        done = self.waiting.pop(obj["s"], None) if local else None
        gone = False
        if local:
            client = server.world.clients.get(rec["id"])
            if client is not None and client.registered:
                return
            if client is None or client.quitting:
                # It left (or was refused when the append timed out) before its claim
                # came back: register it as every other node does, then quit it.
                client, gone = self._replica(rec), True
        else:
            client = self._replica(rec)
        reply = Reply(server.name, client)
        apply = self._enter(entry_id, origin)
        try:
            complete_registration(server, client, reply, created=obj.get("created", False),
                                  autojoin=obj.get("autojoin", []), apply=apply)
        finally:
            self._leave()
        if client.registered:
            self.by_id[client.id] = client
            if local and not gone and server.history is not None:
                self._follow_channels(client)
                if client.account:
                    self.follow_account(client.account)
            if gone:
                self.publish_quit(client, "Connection closed")
        if done is not None and not gone:
            done(reply)

    def _apply_quit(self, entry_id: str, obj: dict[str, Any]) -> None:
        client = self.by_id.get(obj["id"])
        if client is None:
            return
        apply = self._enter(entry_id, obj["o"])
        self.server.quit(client, obj["reason"], apply=apply)

    def _apply_user(self, entry_id: str, obj: dict[str, Any]) -> None:
        from ircd.ops import presence

        client = self.by_id.get(obj["id"])
        if client is None:
            return
        self._enter(entry_id, obj["o"])
        local = obj["o"] == self.node.id
        if local and obj["account"] and self.server.history is not None:
            self.follow_account(obj["account"])   # (a login after registration)
        if not local:
            client.oper = tuple(obj["oper"]) if obj["oper"] else None  # type: ignore[assignment]
            client.modes = frozenset(obj["modes"])
            account = obj["account"]
            if account != client.account:
                client.account = account
                event = events.Event(f":{client.source} ACCOUNT {account or '*'}",
                                     self.clock())
                event.write_to(presence.interested(self.server, client, "account-notify"))

    def _apply_acct(self, entry_id: str, obj: dict[str, Any]) -> None:
        names = self.server.account_names
        cf = casefold(obj["name"])
        if obj["present"]:
            names.setdefault(cf, obj["name"])
        else:
            names.pop(cf, None)
            if obj["o"] != self.node.id:
                self.server.chanreg.forget_founder(obj["name"])

    def _apply_hello(self, entry_id: str, obj: dict[str, Any]) -> None:
        node = NodeInfo(obj["o"], obj["name"], obj["server"], obj.get("info", ""))
        self.nodes[node.id] = node
        log.info("node %s (%s, id %x) joined", node.name, node.server, node.id)
        others = [n for n in self.nodes if n != node.id]
        if self.synced and others and min(others) == self.node.id:
            self.transport.put_snapshot(entry_id, self.snapshot())

    def _apply_lost(self, entry_id: str, obj: dict[str, Any]) -> None:
        lost = self.nodes.pop(obj["node"], None)
        if lost is None:
            return
        if lost.id == self.node.id:
            log.error("this node was declared lost by node %x", obj["o"])
            self.transport.reset("declared lost by another node")
            return
        log.warning("node %s (%s) lost: its users quit", lost.name, lost.server)
        if obj["o"] == self.node.id:   # this node declared it: it deletes the inbox, once
            self.transport.drop_inbox(lost.id)
        reason = f"node {lost.name} lost"
        for client in [c for c in self.by_id.values() if c.node == lost.id]:
            apply = self._enter(entry_id, obj["o"])
            self.server.quit(client, reason, apply=apply)
            self._leave()

    # -- history of the targets this node follows ----------------------------------

    def _follow_channels(self, client: Client, names: set[str] | None = None) -> None:
        """``client`` (of this node) may have joined channels (``names``, casefolded;
        None: any of its channels): for each in which it is this node's only
        member, this node begins to receive the channel's routed messages now,
        so it loads the channel's recent history."""
        here = self.node.id
        for cf, chan in client.channels.items():
            if names is not None and cf not in names:
                continue
            if all(m is client or m.node != here for m in chan.members):
                self.follow_history(partial(_channel_rows, cf))

    def follow_account(self, account: str) -> None:
        """A user of this node is logged in as ``account``: load its direct messages
        (this node receives them from now on; before, they went to other nodes)."""
        mine = casefold(account)
        self.follow_history(lambda history, since: history.recent_direct_rows(mine, since))

    def follow_history(self, read: Callable[[HistoryStore, float], list[Any]]) -> None:
        """Merge into the in-memory history the stored messages ``read(history,
        since)`` returns (it reads the targets followed, by an index: one channel,
        or one account's conversations; never every target), off the loop, and
        again :data:`HISTORY_CATCH_UP` seconds later for those their senders'
        nodes had not written yet (docs/cluster.md "History").

        With routed messages a node holds in memory only what was routed to it:
        the messages of channels it has members in and of its users'
        conversations, since it has them. CHATHISTORY is answered only to a
        channel's members and a conversation's participants, so a node begins
        to need a target's messages exactly when a user of its joins the
        channel or logs in; it reads them from the database then.
        """
        server = self.server
        history = server.history
        if history is None:
            return
        days = history.retention_days
        cutoff = self.clock.wall() - days * 86400 if days > 0 else 0.0

        def rows() -> list[Any]:
            return read(history, cutoff)

        def done(found: Any, error: BaseException | None) -> None:
            if error is not None:
                log.warning("history of a followed target not loaded: %r", error)
                return
            history.merge(found)

        def load() -> None:
            server.scheduler.run_blocking(rows, done)

        load()
        server.scheduler.call_later(HISTORY_CATCH_UP, load)

    # -- replicas of other nodes' users -------------------------------------------

    def _user_record(self, client: Client) -> dict[str, Any]:
        return {
            "id": client.id, "node": client.node, "nick": client.nick, "user": client.user,
            "host": client.host, "ip": client.ip, "realname": client.realname,
            "account": client.account, "kind": client.kind, "modes": "".join(sorted(client.modes)),
            "away": client.away, "signon": client.signon, "last_active": client.last_active,
            "oper": list(client.oper) if client.oper else None, "caps": _caps(client),
            "server": client.server or self.server.name,
            "invites": [[cf, t] for cf, t in client.invites.items()],  # oldest first
        }

    def _replica(self, rec: dict[str, Any]) -> Client:
        """A user of another node, from its record: a :class:`~ircd.state.User`
        with no session here (its node delivers to it and closes its connection)."""
        client = Client(rec["id"], rec["ip"], rec["kind"], rec["signon"])
        client.node = rec["node"]
        client.server = rec["server"]
        client.host = rec["host"]
        client.user = rec["user"]
        client.realname = rec["realname"]
        client.account = rec["account"]
        client.modes = frozenset(rec["modes"])
        client.away = rec["away"]
        client.last_active = rec["last_active"]
        client.oper = tuple(rec["oper"]) if rec["oper"] else None  # type: ignore[assignment]
        # [[casefolded channel, its creation time], ...], oldest first (User.invites)
        if rec["invites"]:
            client.invites = {cf: t for cf, t in rec["invites"]}
        client.set_nick(rec["nick"])
        return client

    # -- snapshots: how a joining node gets the world -------------------------------

    def snapshot(self) -> bytes:
        """The replica as JSON bytes: nodes, users, channels, account names, server bans.

        Pseudo-users are named, not copied: every node has its own.
        """
        world = self.server.world

        def member_key(c: Client) -> int | str:
            return f"~{c.nick_cf}" if c.is_pseudo else c.id

        channels = [{
            "name": ch.name, "created": ch.created, "topic": ch.topic, "topic_by": ch.topic_by,
            "topic_at": ch.topic_at, "modes": "".join(sorted(ch.modes)), "key": ch.key,
            "limit": ch.limit, "bans": ch.bans, "excepts": ch.excepts, "invex": ch.invex,
            "members": [[member_key(c), m] for c, m in ch.members.items()],
        } for ch in world.channels.values()]
        bans = [[b.kind, b.mask, b.reason, b.setter, b.set_at, b.expires]
                for b in self.server.serverbans.all()]
        return json.dumps({
            "nodes": [[n.id, n.name, n.server, n.info] for n in self.nodes.values()],
            "users": [self._user_record(c) for c in self.by_id.values()],
            "channels": channels,
            "accounts": self.server.account_names,
            "bans": bans,
        }, separators=(",", ":")).encode("utf-8")

    def load_snapshot(self, data: bytes) -> None:
        """Replace the replica's network state by a :meth:`snapshot` (bytes); this
        node's pseudo-users stay and take their places in the channels."""
        server = self.server
        world = server.world
        snap = json.loads(data)
        self.nodes = {n[0]: NodeInfo(*n) for n in snap["nodes"]}
        self.nodes.setdefault(self.node.id, self.node)
        for rec in snap["users"]:
            client = self._replica(rec)
            client.registered = True
            client.update_source()
            self.by_id[client.id] = client
            world.add_user(client)
        for rec in snap["channels"]:
            cf = casefold(rec["name"])
            chan = world.channels.get(cf)
            if chan is None:
                chan = world.channels[cf] = Channel(rec["name"], rec["created"])
            chan.created = rec["created"]
            chan.topic, chan.topic_by, chan.topic_at = rec["topic"], rec["topic_by"], rec["topic_at"]
            chan.modes = set(rec["modes"])
            chan.key, chan.limit = rec["key"], rec["limit"]
            chan.bans = [tuple(b) for b in rec["bans"]]  # type: ignore[misc]
            chan.excepts = [tuple(b) for b in rec["excepts"]]  # type: ignore[misc]
            chan.invex = [tuple(b) for b in rec["invex"]]  # type: ignore[misc]
            pseudo = {c: m for c, m in chan.members.items() if c.is_pseudo}
            for c in list(chan.members):
                world.part(c, chan)
            world.channels[cf] = chan
            for key, modes in rec["members"]:
                if isinstance(key, str):
                    member = world.users.get(key[1:])
                    if member is None or not member.is_pseudo:
                        continue
                    modes = pseudo.pop(member, modes)
                else:
                    member = self.by_id.get(key)
                    if member is None:
                        continue
                world.join(member, chan, modes)
            for member, modes in pseudo.items():
                world.join(member, chan, modes)
        server.account_names.update(snap["accounts"])
        for kind, mask, reason, setter, set_at, expires in snap["bans"]:
            server.serverbans.add(ServerBan(kind, mask, reason, setter, set_at, expires))
        self.synced = True

    def found(self) -> None:
        """No other node holds the world: this node's replica is it."""
        self.nodes[self.node.id] = self.node
        self.synced = True

    def drop_remote(self) -> None:
        """Forget every other node's users and every node (before rejoining)."""
        for client in [c for c in self.by_id.values() if c.node != self.node.id]:
            self.by_id.pop(client.id, None)
            for chan in list(client.channels.values()):
                self.server.world.part(client, chan)
            self.server.world.remove_user(client)
        self.nodes.clear()
        self.synced = False

    def local_users(self) -> list[Client]:
        """This node's registered users (behind this node's connections)."""
        return [c for c in self.by_id.values() if c.node == self.node.id]

    def node_of(self, client: Client) -> NodeInfo | None:
        """The node ``client`` is on (None for a pseudo-user or an unknown node)."""
        return self.nodes.get(client.node)
