"""The world log: the one way a change reaches the world (docs/cluster.md "The log").

A received line of a registered user that changes the world (JOIN, PRIVMSG,
MODE...) and the changes made beside a command (a user registered, a
connection closed, an account logged in) go through the server's
:class:`WorldLog`. Two implementations:

- :class:`LocalLog`, a single node: every change applies at once, in the
  call that made it (the core's :meth:`~ircd.core.Server.run_line`), with
  the wall clock and the process's message ids. Nothing is sequenced and
  nothing is published; this costs one attribute test per line.
- :class:`ircd.cluster.log.Replication`, a node of a cluster: changes are
  appended to a shared ordered log (a Redis stream,
  :mod:`ircd.cluster.redis`) and applied when they come back, in log order,
  on every node alike.

While an entry of a sequenced log is applied, what is deterministic about it
travels in an :class:`Apply`: the entry's time, the node it came from, and
where its message ids come from. The log passes it to the handler
(:func:`ircd.commands.registry.dispatch` ``apply=``, read as ``ctx.apply``,
``ctx.now``, ``ctx.new_msgid``) and to the core's operations that act on an
entry (:meth:`~ircd.core.Server.quit`, ``complete_registration``,
:meth:`~ircd.core.Server.store_serverban`). The only other place that knows
it is the node's clock, an :class:`EntryClock` given to the server when it is
built: while an entry applies, every time the core reads is the entry's.

The core never imports :mod:`ircd.cluster`; it knows the cluster only as a
:class:`WorldLog` whose ``sequenced`` is true.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ircd.core import Server
    from ircd.protocol.message import Message
    from ircd.reply import Reply
    from ircd.state import Client, Session


class Apply:
    """The context of one log entry being applied (a sequenced log only).

    ``now`` is the entry's time (unix seconds: the log's clock when it took
    the entry, the same on every node); ``origin`` the id of the node the
    entry came from; ``here`` whether that is this node (then this node
    answers the sender and writes the entry's results to the database).
    :meth:`new_msgid` gives the entry's message ids: ``prefix.1``,
    ``prefix.2``, ... with ``prefix`` made from the entry id, so every node
    gives one message the same id (IRCv3 message-ids).
    """

    __slots__ = ("now", "origin", "here", "prefix", "_count")

    def __init__(self, now: float, origin: int, here: bool, prefix: str) -> None:
        self.now = now
        self.origin = origin
        self.here = here
        self.prefix = prefix
        self._count = itertools.count(1)

    def new_msgid(self) -> str:
        """The next message id of this entry (``"<prefix>.<n>"``, n from 1)."""
        return f"{self.prefix}.{next(self._count)}"


class EntryClock:
    """The clock of a server whose world changes come from a sequenced log.

    Reads the time of the entry being applied (``current``, set by the log
    around each apply) or else ``wall()`` (unix seconds). Given to
    :class:`~ircd.core.Server` as its ``clock`` when the server is built, so
    the handlers' ``server.clock()`` is deterministic during an apply.
    """

    __slots__ = ("wall", "current")

    def __init__(self, wall: Callable[[], float]) -> None:
        self.wall = wall
        self.current: Apply | None = None

    def __call__(self) -> float:
        current = self.current
        return self.wall() if current is None else current.now


class WorldLog(Protocol):
    """Where the world's changes go: what the core asks of its log.

    ``sequenced`` is False when changes apply at once (:class:`LocalLog`) and
    True when they go through a shared log and apply when it hands them back.
    ``current`` is the entry being applied, if any (None on a single node).
    ``nodes`` maps node ids to what the log knows of each node (``name``,
    ``server``, ``info``); empty on a single node.
    """

    sequenced: bool
    nodes: dict[int, Any]

    @property
    def current(self) -> Apply | None:
        """The entry being applied, or None."""

    def handle_line(self, session: Session, line: bytes | object) -> None:
        """Take one line ``session`` received (bytes without CR LF, or
        ``LineTooLong``): run it, or sequence it and run it when it comes back."""

    def submit_message(self, client: Client, msg: Message,
                       done: Callable[[Reply | None], None] | None = None) -> None:
        """Run ``msg`` as ``client`` (a pseudo-user's answer, the SEND dialect);
        ``done`` gets the reply once it ran here, or None if it could not be logged."""

    def introduce(self, client: Client, created: bool, autojoin: list[str]) -> None:
        """Claim ``client``'s nick (the last step of registration, sequenced only)."""

    def publish_quit(self, client: Client, reason: str) -> None:
        """A user of this node left outside the log (EOF, ping timeout, sendq)."""

    def forget(self, client: Client) -> bool:
        """An applied entry removes ``client`` from the world: drop it from the log's
        own tables; False if it was gone already (then nothing more is done)."""

    def publish_user(self, client: Client) -> None:
        """``client``'s account, oper status or capabilities changed outside the log."""

    def publish_account_name(self, name: str, present: bool) -> None:
        """Account ``name`` was created (``present``) or dropped."""


class LocalLog:
    """The :class:`WorldLog` of a single node: every change applies at once.

    The core runs lines itself (its :meth:`~ircd.core.Server.handle_line` tests
    ``sequenced`` and goes straight on), so this log only runs the messages of
    pseudo-users and publishes nothing.
    """

    sequenced = False
    current: Apply | None = None

    def __init__(self, server: Server) -> None:
        self.server = server
        self.nodes: dict[int, Any] = {}

    def handle_line(self, session: Session, line: bytes | object) -> None:
        """Run the line at once (:meth:`ircd.core.Server.run_line`)."""
        self.server.run_line(session, line)

    def submit_message(self, client: Client, msg: Message,
                       done: Callable[[Reply | None], None] | None = None) -> None:
        """Run ``msg`` as ``client`` at once; ``done`` gets its reply."""
        from ircd.commands.registry import dispatch

        reply = dispatch(self.server, client, msg, client.session)
        if done is not None:
            done(reply)

    def introduce(self, client: Client, created: bool, autojoin: list[str]) -> None:
        """Never called: a single node completes a registration at once."""
        raise RuntimeError("a local log does not sequence registrations")

    def publish_quit(self, client: Client, reason: str) -> None:
        """Nothing to publish: the quit applied at once."""

    def forget(self, client: Client) -> bool:
        """Nothing to forget: a single node's quit is idempotent by ``client.quitting``."""
        return not client.quitting

    def publish_user(self, client: Client) -> None:
        """Nothing to publish: no other replica."""

    def publish_account_name(self, name: str, present: bool) -> None:
        """Nothing to publish: no other replica."""

