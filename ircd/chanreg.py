"""Registered channels: kept while empty and across restarts, with a founder and an access list.

A channel is registered by ChanServ (``REGISTER #chan``; the founder is the
registering account) or by ``server.registered_channels`` (no founder). Its
:class:`~ircd.state.Channel` then carries a :class:`Registration`, and:

- it is not forgotten when the last member leaves (:meth:`ircd.state.World.part`);
- its topic, modes, key, limit, ban, exception (+e) and invite-exception
  (+I) lists and registration are saved: once a
  second :meth:`ChannelRegistry.flush` compares each channel's
  :meth:`~ChannelRegistry.record` with the last one saved and hands the
  changed ones to the :class:`~ircd.chanstore.ChannelStore` off the event
  loop, one batch (and one write in flight) at a time; at start the records
  are loaded back (:meth:`ChannelRegistry.load`);
- on join (:meth:`ChannelRegistry.joined`) the founder and accounts with
  ``op`` access get ``+o``, accounts with ``voice`` access ``+v``: a ``MODE``
  from ChanServ to every member, as Ergo and Atheme do. A channel without a
  founder gives ``+o`` to whoever joins it empty, as an unregistered one would;
- with TOPICLOCK on, only the founder and ``op`` accounts may change the topic;
- with GUARD on, ChanServ sits in the channel as an operator.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ircd.chanstore import Changes, ChannelStore, Record
from ircd.events import Event
from ircd.protocol.casemap import casefold
from ircd.reply import Reply
from ircd.state import Channel, Client

log = logging.getLogger("ircd.chanreg")

LEVELS = ("op", "voice")
"""Access levels an account may be given (``ACCESS #chan ADD <account> op|voice``)."""

_LEVEL_MODE = {"founder": "o", "op": "o", "voice": "v"}


@dataclass(slots=True)
class Registration:
    """What registration adds to a channel.

    ``founder`` is the founder's account as registered (None: registered by
    configuration); ``registered_at`` unix seconds; ``access`` maps
    casefolded account names to ``(account, level)`` with level ``"op"`` or
    ``"voice"``.
    """

    founder: str | None
    registered_at: float
    access: dict[str, tuple[str, str]] = field(default_factory=dict)
    topiclock: bool = False
    guard: bool = False

    def level(self, account: str | None) -> str | None:
        """``"founder"``, ``"op"``, ``"voice"`` or None for ``account`` (None: not logged in)."""
        if account is None:
            return None
        cf = casefold(account)
        if self.founder is not None and casefold(self.founder) == cf:
            return "founder"
        entry = self.access.get(cf)
        return entry[1] if entry else None


class ChannelRegistry:
    """The registered channels of ``server`` (an :class:`ircd.core.Server`).

    ``store`` persists them (None: kept in memory only, for unit tests).
    ``chanserv`` is ChanServ's client once the services exist; status
    modes are then sent from it, otherwise from the server.
    """

    def __init__(self, server: Any, store: ChannelStore | None = None) -> None:
        self.server = server
        self.store = store
        self.chanserv: Client | None = None
        self._saved: dict[str, Record] = {}
        self._unsaved_drops: set[str] = set()  # dropped channels whose deletion is not yet written
        self._writing = False
        self._waiters: list[Callable[[BaseException | None], None]] = []

    # -- registering -----------------------------------------------------------

    def channels(self) -> list[Channel]:
        """Every registered channel."""
        return [c for c in self.server.world.channels.values() if c.registration is not None]

    def register(self, chan: Channel, founder: str | None) -> Registration:
        """Register ``chan`` (already in the world) with ``founder`` (an account or None)."""
        chan.registration = Registration(founder, self.server.clock())
        log.info("channel %s registered (founder %s)", chan.name, founder or "none")
        return chan.registration

    def drop(self, chan: Channel) -> None:
        """Unregister ``chan``; an empty one is then forgotten; ChanServ leaves it."""
        reg = chan.registration
        if reg is None:
            return
        if reg.guard:
            self.set_guard(chan, False)
        chan.registration = None
        if not chan.members:
            self.server.world.channels.pop(casefold(chan.name), None)
            self.server.channel_gone(chan)  # its history goes too
        log.info("channel %s dropped", chan.name)

    def ensure(self, name: str) -> Channel:
        """The channel ``name``, created if needed (empty, ``+nt``) and registered without
        a founder if it is not registered yet (``server.registered_channels``)."""
        world = self.server.world
        cf = casefold(name)
        chan = world.channels.get(cf)
        if chan is None:
            chan = Channel(name=name, created=self.server.clock())
            world.channels[cf] = chan
        if chan.registration is None:
            self.register(chan, None)
        return chan

    def apply_config(self, names: list[str]) -> None:
        """Register each channel of ``server.registered_channels`` that is not registered."""
        for name in names:
            self.ensure(name)

    def forget_founder(self, account: str) -> None:
        """A dropped account founds nothing any more and loses its access entries."""
        cf = casefold(account)
        for chan in self.channels():
            reg = chan.registration
            if reg.founder is not None and casefold(reg.founder) == cf:
                reg.founder = None
            reg.access.pop(cf, None)

    # -- persistence -------------------------------------------------------------

    @staticmethod
    def record(chan: Channel) -> Record:
        """``chan`` with its registration as a JSON-compatible dict (see :mod:`ircd.chanstore`)."""
        reg = chan.registration
        return {
            "name": chan.name,
            "created": chan.created,
            "topic": chan.topic,
            "topic_by": chan.topic_by,
            "topic_at": chan.topic_at,
            "modes": "".join(sorted(chan.modes)),
            "key": chan.key,
            "limit": chan.limit,
            "bans": [list(b) for b in chan.bans],
            "excepts": [list(e) for e in chan.excepts],
            "invex": [list(i) for i in chan.invex],
            "founder": reg.founder,
            "registered_at": reg.registered_at,
            "access": {cf: list(entry) for cf, entry in sorted(reg.access.items())},
            "topiclock": reg.topiclock,
            "guard": reg.guard,
        }

    def load(self, records: list[Record]) -> int:
        """Recreate the channels of ``records`` (from :meth:`ChannelStore.load`); returns how many.

        A malformed record is logged and skipped.
        """
        loaded = 0
        for rec in records:
            try:
                chan = self._from_record(rec)
            except (KeyError, TypeError, ValueError) as exc:
                log.error("skipping a malformed registered channel %r: %r", rec.get("name"), exc)
                continue
            self.server.world.channels[casefold(chan.name)] = chan
            self._saved[casefold(chan.name)] = self.record(chan)
            loaded += 1
        return loaded

    @staticmethod
    def _from_record(rec: Record) -> Channel:
        limit = rec.get("limit")
        chan = Channel(
            name=str(rec["name"]),
            created=float(rec["created"]),
            topic=str(rec.get("topic") or ""),
            topic_by=str(rec.get("topic_by") or ""),
            topic_at=float(rec.get("topic_at") or 0.0),
            modes={m for m in str(rec.get("modes", "nt")) if m in "imnst"},
            key=str(rec["key"]) if rec.get("key") is not None else None,
            limit=int(limit) if limit is not None else None,
            bans=_entries(rec.get("bans", [])),
            excepts=_entries(rec.get("excepts", [])),
            invex=_entries(rec.get("invex", [])),
        )
        access = {str(cf): (str(name), str(level))
                  for cf, (name, level) in dict(rec.get("access", {})).items() if level in LEVELS}
        founder = rec.get("founder")
        chan.registration = Registration(
            founder=str(founder) if founder is not None else None,
            registered_at=float(rec["registered_at"]),
            access=access,
            topiclock=bool(rec.get("topiclock")),
            guard=bool(rec.get("guard")),
        )
        return chan

    def changes(self) -> Changes:
        """What changed since the last save (and count it as saved)."""
        out: Changes = []
        current = {casefold(c.name): c for c in self.channels()}
        for cf, chan in current.items():
            rec = self.record(chan)
            if self._saved.get(cf) != rec:
                out.append((cf, rec))
                self._saved[cf] = rec
        for cf in [cf for cf in self._saved if cf not in current]:
            del self._saved[cf]
            self._unsaved_drops.add(cf)
        # A drop stays pending until a write that carried it succeeded.
        out.extend((cf, None) for cf in sorted(self._unsaved_drops) if cf not in current)
        self._unsaved_drops &= {cf for cf, rec in out if rec is None}
        return out

    def when_saved(self, done: Callable[[BaseException | None], None]) -> None:
        """Call ``done(error)`` on the loop once every change made so far is written.

        Starts a write now if none is in flight (otherwise the next one starts
        when it returns). ``error`` is None when the write returned (durable:
        the store commits before returning), else the store's exception (the
        changes stay pending and are retried by the next :meth:`flush`).
        Without a store, or with nothing unsaved, ``done(None)`` is called at
        once, before this returns. ChanServ answers through this.
        """
        if self.store is None:
            done(None)
            return
        self._waiters.append(done)
        self.flush()

    def flush(self) -> None:
        """Save what changed, off the loop (at most one write in flight; called every second)."""
        store = self.store
        if store is None or self._writing:
            return
        batch = self.changes()
        waiters, self._waiters = self._waiters, []
        if not batch:
            for waiter in waiters:
                waiter(None)
            return
        self._writing = True

        def done(_result: Any, error: BaseException | None) -> None:
            self._writing = False
            if error is not None:
                log.error("saving %d registered channels failed: %r", len(batch), error)
                for cf, _ in batch:  # try again next time (drops stay in _unsaved_drops)
                    self._saved.pop(cf, None)
            else:
                self._unsaved_drops.difference_update(cf for cf, rec in batch if rec is None)
            for waiter in waiters:
                waiter(error)
            if self._waiters:  # changes made while this write was in flight
                self.flush()

        self.server.scheduler.run_blocking(lambda: store.write(batch), done)

    def founded_by(self, account: str) -> int:
        """How many registered channels ``account`` is the founder of."""
        cf = casefold(account)
        return sum(1 for chan in self.channels()
                   if chan.registration.founder is not None
                   and casefold(chan.registration.founder) == cf)

    # -- status on join, topic lock, guard ------------------------------------------

    def _source(self) -> str:
        return self.chanserv.source if self.chanserv is not None else self.server.name

    def set_status(self, chan: Channel, target: Client, letter: str, adding: bool,
                   reply: Reply | None = None) -> bool:
        """Give or take ``+o``/``+v`` from ``target`` as ChanServ; every member sees the MODE.

        ``reply`` is the target's own reply when it is the one issuing the
        command (so its copy arrives in order). Returns False if nothing changed.
        """
        current = chan.members.get(target)
        if current is None or adding == (letter in current):
            return False
        if adding:
            chan.members[target] = "".join(m for m in "ov" if m in current or m == letter)
        else:
            chan.members[target] = current.replace(letter, "")
        sign = "+" if adding else "-"
        event = Event(f":{self._source()} MODE {chan.name} {sign}{letter} {target.nick}",
                      self.server.clock())
        if reply is not None:
            event.send_to(chan.members, exclude=reply.client)
            if reply.client in chan.members:
                reply.raw(event.str_for(reply.session.tagmask))
        else:
            event.send_to(chan.members)
        return True

    def joined(self, client: Client, chan: Channel, reply: Reply) -> None:
        """``client`` just joined registered ``chan``: give it the status its account has."""
        reg = chan.registration
        if reg is None:
            return
        level = reg.level(client.account)
        others = [m for m in chan.members if m is not client and m is not self.chanserv]
        if level is None and reg.founder is None and not others:
            level = "op"  # no founder: an empty channel's first member is its operator
        if level is not None:
            self.set_status(chan, client, _LEVEL_MODE[level], True, reply)

    def apply_access(self, chan: Channel, account: str) -> None:
        """Give members logged in to ``account`` the status their access now grants."""
        reg = chan.registration
        level = reg.level(account) if reg is not None else None
        if level is None:
            return
        for member in list(chan.members):
            if member.account is not None and casefold(member.account) == casefold(account):
                self.set_status(chan, member, _LEVEL_MODE[level], True)

    def topic_locked(self, chan: Channel, client: Client) -> bool:
        """True if TOPICLOCK keeps ``client`` from changing ``chan``'s topic."""
        reg = chan.registration
        if reg is None or not reg.topiclock or client is self.chanserv:
            return False
        return reg.level(client.account) not in ("founder", "op")

    def set_guard(self, chan: Channel, on: bool) -> None:
        """GUARD: ChanServ joins ``chan`` as an operator (on) or leaves it (off)."""
        reg = chan.registration
        if reg is None:
            return
        reg.guard = on
        cs = self.chanserv
        if cs is None:
            return
        world = self.server.world
        t = self.server.clock()
        if on and cs not in chan.members:
            Event(f":{cs.source} JOIN {chan.name}", t).send_to(chan.members)
            world.join(cs, chan, "o")
            Event(f":{self.server.name} MODE {chan.name} +o {cs.nick}", t).send_to(
                chan.members, exclude=cs)
        elif not on and cs in chan.members:
            Event(f":{cs.source} PART {chan.name} :Guard off", t).send_to(chan.members, exclude=cs)
            self.server.world.part(cs, chan)  # (a registered channel: never forgotten)


def _entries(raw: list) -> list[tuple[str, str, float]]:
    """A saved ``+b``/``+e``/``+I`` list as ``(mask, setter, set_at)`` tuples; raises on bad shapes."""
    return [(str(mask), str(setter), float(at)) for mask, setter, at in raw]
