"""The server's sans-I/O core: one object that owns the world and runs commands.

The asyncio edge (:mod:`ircd.net`) and the course dialect (:mod:`ircd.simple`)
create users with :meth:`Server.new_client`, giving each its connection's
:class:`~ircd.state.Session`, feed each line a session received to
:meth:`Server.handle_line`, report lost connections with :meth:`Server.quit`
and call :meth:`Server.tick` about once a second. Blocking work (password
hashing, database access) goes through the injected :class:`Scheduler`, and
time comes from the injected ``clock``, so the core is testable without
sockets, threads or sleeping.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from ircd import __version__
from ircd.accounts import AccountStore
from ircd.capabilities import CAPABILITIES
from ircd.chanaccess import EXTBAN_PREFIX, EXTBAN_TYPES, MAX_LIST_ENTRIES
from ircd.chanreg import ChannelRegistry
from ircd.chanstore import ChannelStore
from ircd.cloak import cloak_host
from ircd.commands import dispatch, refuse_invalid_utf8, relay_direct_fast
from ircd.config import Config
from ircd.events import Event, Ids
from ircd.history import HistoryStore
from ircd.limits import LoginThrottle, RegistrationThrottle
from ircd.listfilter import ELIST
from ircd.metrics import Stats
from ircd.ops import presence
from ircd.protocol import numerics as N
from ircd.protocol.casemap import CASEMAPPING, CHANTYPES, casefold
from ircd.protocol.message import Message, Parsed, fit_line, parse_received
from ircd.reply import Reply
from ircd.serverbans import BanList, ServerBan, ServerBanStore
from ircd.state import NAMELEN, USERLEN, Channel, Client, Session, World
from ircd.whowas import WhowasEntry, WhowasLog
from ircd.worldlog import Apply, LocalLog, WorldLog

log = logging.getLogger("ircd")


ACCOUNT_NAMES_REFRESH = 30.0
"""Seconds between re-reads of ``Server.account_names`` when the account store is
shared with other servers (PostgreSQL); never with SQLite."""


HISTORY_RETRY_MAX = 100_000
"""Most unwritten history messages kept for a retry after failed writes (the newest)."""


BAN_RETRY_INTERVAL = 10.0
"""Seconds between retries of server-ban saves and deletions that failed."""


class WorkQueueFull(Exception):
    """A blocking job was refused: too many jobs already wait for a worker thread
    (``[accounts] max_queued_jobs``); given to the job's ``done`` instead of running it."""


class Scheduler(Protocol):
    """Runs blocking work away from the event loop.

    ``run_blocking(fn, done)`` calls ``fn()`` in a worker and later, back on
    the loop, ``done(result, error)`` with either the result or the exception.
    A scheduler with a bounded queue may refuse the job: ``done(None,
    WorkQueueFull(...))`` then, without running ``fn``.
    """

    def run_blocking(self, fn: Callable[[], Any],
                     done: Callable[[Any, BaseException | None], None]) -> None: ...

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` on the loop after the current work (e.g. a bot's answer)."""

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn()`` on the loop in ``delay`` seconds (e.g. a delayed 464)."""


class ImmediateScheduler:
    """A :class:`Scheduler` that runs the work at once, for tests of the core."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def run_blocking(self, fn: Callable[[], Any],
                     done: Callable[[Any, BaseException | None], None]) -> None:
        try:
            result = fn()
        except Exception as exc:
            done(None, exc)
        else:
            done(result, None)

    def call_soon(self, fn: Callable[[], None]) -> None:
        fn()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        self.delays.append(delay)  # recorded for tests; run at once
        fn()


class Server:
    """The IRC server's state machine.

    ``config`` is the loaded :class:`~ircd.config.Config`; ``accounts`` the
    account store (its methods are only called through ``scheduler``, except
    :meth:`AccountStore.names` once here at start-up); ``clock`` returns unix
    seconds; ``history`` is the message history (None: CHATHISTORY is off);
    ``ban_store`` keeps K-lines and D-lines across restarts (None: in memory
    only), its methods called only through ``scheduler``; the bans it held at
    start are given to :meth:`load_serverbans`.
    ``channel_store`` is where registered channels are saved (None: kept in
    memory only), through ``chanreg`` (:class:`~ircd.chanreg.ChannelRegistry`).
    ``account_names`` is :meth:`AccountStore.names` read beforehand, off the
    loop (None: read here; fine for SQLite and tests).
    ``services`` is set by :func:`ircd.services.start_services`.
    ``cloak_key`` keys the host cloaks (:mod:`ircd.cloak`; empty: no cloaking,
    whatever ``[server] cloak_hosts`` says).
    """

    def __init__(self, config: Config, accounts: AccountStore, scheduler: Scheduler,
                 clock: Callable[[], float] = time.time,
                 history: HistoryStore | None = None,
                 ban_store: ServerBanStore | None = None,
                 channel_store: ChannelStore | None = None,
                 account_names: dict[str, str] | None = None,
                 cloak_key: bytes = b"") -> None:
        self.config = config
        self.cloak_key = cloak_key
        self.accounts = accounts
        self.history = history
        self.scheduler = scheduler
        self.clock = clock
        self.world = World()
        # casefolded account name -> the name as registered
        self.account_names: dict[str, str] = (
            accounts.names() if account_names is None else account_names)
        self.created = clock()
        self._next_id = 0
        self.version = f"chatserver-{__version__}"
        self.login_throttle = LoginThrottle(config.limits)
        self.registration_throttle = RegistrationThrottle(config.accounts, config.limits)
        self.stats = Stats()  # counters for the metrics endpoint (ircd.metrics)
        self.ids = Ids()  # message ids and batch reference tags (ircd.events)
        self.whowas = WhowasLog(config.server.whowas_length)
        self._last_prune = self.created
        self._last_names_refresh = self.created
        # Server bans (KLINE/DLINE, ircd/commands/oper.py) and the process hooks that
        # REHASH and DIE call (set by ircd.cli: the SIGHUP reload, the SIGTERM stop).
        self.serverbans = BanList()
        self.ban_store = ban_store
        # The latest change of each ban not yet known written: key -> (change number,
        # ban, delete). Every write writes the latest change of its ban under one
        # lock, so two changes of one ban (KLINE, then UNKLINE) cannot land in the
        # wrong order, whatever order the worker threads run them in; a change whose
        # write failed stays here and is written again by the retry (tick).
        self._bans_latest: dict[tuple[str, str], tuple[int, ServerBan, bool]] = {}
        self._bans_written: dict[tuple[str, str], int] = {}  # key -> last change written
        self._bans_seq = 0
        self._bans_lock = threading.Lock()
        self._bans_retrying = False
        self._last_ban_retry = self.created
        self.rehash_hook: Callable[[], tuple[str, str]] | None = None  # (file, outcome)
        self.die_hook: Callable[[], None] | None = None
        # Registered channels (ChanServ, server.registered_channels), saved to channel_store.
        self.chanreg = ChannelRegistry(self, channel_store)
        self.services: Any = None  # ircd.services.Services once started (cli.py)
        # Where the world's changes go (ircd/worldlog.py): applied at once on a single
        # node; a cluster's log (ircd/cluster/) replaces it through attach_log.
        self.log: WorldLog = LocalLog(self)
        self.node_id = 0
        self.reconfigure(config)

    def attach_log(self, log: WorldLog, node_id: int) -> None:
        """Make ``log`` (a sequenced :class:`~ircd.worldlog.WorldLog`: a cluster's) the
        way the world changes, before any client connects; ``node_id`` is this node's
        id in it (the high bits of every new client's id). The server must have been
        built with an :class:`~ircd.worldlog.EntryClock` as its clock."""
        self.log = log
        self.node_id = node_id

    # -- configuration -----------------------------------------------------

    def reconfigure(self, config: Config) -> None:
        """Apply a (re)loaded configuration: limits, MOTD, ISUPPORT."""
        self.config = config
        self.login_throttle.configure(config.limits)
        self.registration_throttle.configure(config.accounts, config.limits)
        self._cloak_exempt = [ipaddress.ip_network(n, strict=False)
                              for n in config.server.cloak_exempt]
        self.whowas.resize(config.server.whowas_length)
        s = config.server
        self.name = s.name
        self.isupport = {
            "AWAYLEN": str(s.awaylen),
            "CASEMAPPING": CASEMAPPING,
            "CHANLIMIT": f"{CHANTYPES}:{s.max_channels}",
            "BOT": "B",
            "CHANMODES": "beI,k,l,imnst",
            "CHANNELLEN": str(s.channellen),
            "CHANTYPES": CHANTYPES,
            "ELIST": ELIST,
            "EXCEPTS": "e",
            "EXTBAN": f"{EXTBAN_PREFIX},{EXTBAN_TYPES}",
            "HOSTLEN": "64",
            "INVEX": "I",
            "KICKLEN": str(s.kicklen),
            "MAXLIST": f"b:{MAX_LIST_ENTRIES},e:{MAX_LIST_ENTRIES},I:{MAX_LIST_ENTRIES}",
            "MAXTARGETS": str(s.maxtargets),
            "MODES": "4",
            "NETWORK": s.network,
            "NICKLEN": str(s.nicklen),
            "PREFIX": "(ov)@+",
            "SAFELIST": "",
            "STATUSMSG": "@+",
            "TARGMAX": f"JOIN:,KICK:{s.maxtargets},NAMES:{s.maxtargets},"
                       f"NOTICE:{s.maxtargets},PART:,"
                       f"PRIVMSG:{s.maxtargets},WHOIS:1,WHOWAS:{s.maxtargets}",
            "TOPICLEN": str(s.topiclen),
            "USERLEN": str(USERLEN),
            "UTF8ONLY": "",
            "MONITOR": str(presence.MONITOR_LIMIT),
            "NAMELEN": str(NAMELEN),
            "WHOX": "",
        }
        self.capabilities = dict(CAPABILITIES)
        self.chanreg.apply_config(s.registered_channels)
        if self.history is not None:
            self.isupport["CHATHISTORY"] = str(config.history.chathistory_limit)
            self.isupport["MSGREFTYPES"] = "msgid,timestamp"
        else:
            del self.capabilities["draft/chathistory"]

    # -- connections -------------------------------------------------------

    def new_client(self, session: Session, ip: str, kind: str = "irc") -> Client:
        """Create the (not yet registered) :class:`~ircd.state.User` of a new
        connection from ``ip``, with ``session`` as its one session."""
        self._next_id += 1
        now = self.clock()
        # In a cluster, ids are network-unique: the node's id in the high bits.
        client = Client((self.node_id << 32) + self._next_id, ip, kind, now)
        client.node = self.node_id
        client.host = self.visible_host(ip, client.host)
        session.last_seen = now
        client.attach(session)
        self.world.clients[client.id] = client
        return client

    def visible_host(self, ip: str, plain: str) -> str:
        """The host others see for a client from ``ip``: its cloak
        (:func:`ircd.cloak.cloak_host`) when ``[server] cloak_hosts`` is on and
        ``ip`` is not in ``cloak_exempt``, else ``plain`` (the address)."""
        s = self.config.server
        if not (s.cloak_hosts and self.cloak_key):
            return plain
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            addr = None
        if addr is not None and any(addr in net for net in self._cloak_exempt):
            return plain
        return cloak_host(ip, self.cloak_key, s.cloak_suffix, self.config.limits.ipv6_prefix)

    def node_info(self, client: Client) -> str:
        """The description of the server ``client`` is on (WHOIS 312's last parameter)."""
        if self.log.sequenced and not self.is_local(client):
            node = self.log.nodes.get(client.node)
            if node is not None:
                return node.info
        return self.config.server.description

    def is_local(self, client: Client) -> bool:
        """True if ``client`` is connected to this node (always, on a single node)."""
        return client.node == self.node_id

    def run_command(self, client: Client, msg: Message) -> None:
        """Run ``msg`` as if ``client`` had sent it (a pseudo-user's answer), through
        the world log like a user's line (at once on a single node)."""
        self.log.submit_message(client, msg)

    def user_changed(self, client: Client) -> None:
        """``client``'s account, oper status or capabilities changed outside a command
        that goes through the log (a login, OPER): tell the other nodes (the log)."""
        if client.registered and self.log.current is None:
            self.log.publish_user(client)

    def account_name_changed(self, name: str, present: bool) -> None:
        """Account ``name`` was created (``present``) or dropped: tell the other nodes."""
        if self.log.current is None:
            self.log.publish_account_name(name, present)

    def handle_line(self, session: Session, line: bytes | object) -> None:
        """Take one line (bytes without CR LF, or ``LineTooLong``) that ``session``
        received; its user issues the command, its replies go to ``session``.

        A sequenced world log (a cluster) takes it
        (:meth:`ircd.worldlog.WorldLog.handle_line`); on a single node it runs
        at once, as :meth:`run_line` does (inlined: the hot path).
        """
        if self.log.sequenced:
            self.log.handle_line(session, line)
            return
        client = session.user
        if client.quitting:
            return
        session.last_seen = self.clock()
        if not isinstance(line, bytes):  # LineTooLong
            self.send_numeric(session, N.ERR_INPUTTOOLONG, "Input line was too long")
            return
        if line[:8] == b"PRIVMSG " and relay_direct_fast(self, session, line):
            return
        self.run_parsed(session, parse_received(line))

    def run_line(self, session: Session, line: bytes | object) -> None:
        """Parse and run one line ``session`` received now, on this node.

        A line over the limits gets 417 ERR_INPUTTOOLONG and is dropped
        ("Modern IRC"); the connection stays usable. A line that is not valid
        UTF-8 is not run: it gets the answer of
        :func:`~ircd.commands.utf8only.refuse_invalid_utf8` (IRCv3 utf8-only).
        """
        client = session.user
        if client.quitting:
            return
        session.last_seen = self.clock()
        if not isinstance(line, bytes):  # LineTooLong
            self.send_numeric(session, N.ERR_INPUTTOOLONG, "Input line was too long")
            return
        if line[:8] == b"PRIVMSG " and relay_direct_fast(self, session, line):
            return
        self.run_parsed(session, parse_received(line))

    def run_parsed(self, session: Session, parsed: Parsed) -> None:
        """Run one line ``session`` received, parsed by
        :func:`~ircd.protocol.message.parse_received`; the reply goes to ``session``."""
        msg = parsed.msg
        if msg is None:
            if parsed.too_long:
                self.send_numeric(session, N.ERR_INPUTTOOLONG, "Input line was too long")
            return  # an empty or prefix-only line is ignored, as RFC 1459 allows
        client = session.user
        # UTF8ONLY (IRCv3 utf8-only): a line that is not UTF-8 is answered, never run.
        reply = (dispatch(self, client, msg, session) if parsed.valid
                 else refuse_invalid_utf8(self, client, msg, session))
        if reply.lines and not client.quitting:
            session.write(reply.to_bytes())

    def send_numeric(self, to: Client | Session, code: str, *params: str) -> None:
        """Write one numeric at once (outside a command's reply) to a user (each of
        its sessions) or to one session."""
        reply = (Reply(self.name, to.user, to) if isinstance(to, Session) else Reply(self.name, to))
        reply.numeric(code, *params)
        to.write(reply.to_bytes())

    def notice(self, client: Client, text: str) -> None:
        """Write a server NOTICE to ``client``."""
        client.write((fit_line(f":{self.name} NOTICE {client.nick} :{text}") + "\r\n").encode())

    def quit(self, client: Client, reason: str, *, error: str | None = None,
             apply: Apply | None = None) -> None:
        """Remove ``client`` from the world and tell everyone who shares a channel.

        ``reason`` is the QUIT message others see. If ``error`` is given the
        client is sent ``ERROR :<error>`` and its connection is closed.
        Idempotent: later calls do nothing. ``apply`` is the log entry that
        decided the quit (a cluster); without one, a registered user's quit on
        a sequenced log only closes the connection and is published: the log
        decides when the user leaves the world.
        """
        log = self.log
        if log.sequenced and client.registered and not client.is_pseudo:
            if apply is None:
                # A local event (connection closed, ping timeout): close the
                # connection now; the log decides when the user leaves the world.
                if not client.quitting:
                    client.quitting = True
                    client.close(error if error is not None else reason)
                    log.publish_quit(client, reason)
                return
            if not log.forget(client):
                return  # already gone from the replica
        elif client.quitting:
            return
        client.quitting = True
        self._leave_world(client, reason)
        client.close(error if error is not None else reason)

    def _leave_world(self, client: Client, reason: str) -> None:
        """The world without ``client``: QUIT to its peers, channels, nick table, MONITOR."""
        self.world.clients.pop(client.id, None)
        if client.monitoring:
            presence.forget(self, client)
        if client.registered:
            Event(fit_line(f":{client.source} QUIT :{reason}"), self.clock(),
                  account=client.account).send_to(self.world.peers(client))
            for chan in list(client.channels.values()):
                if self.world.part(client, chan):
                    self.channel_gone(chan)
            self.world.remove_user(client)
            presence.notify_offline(self, client.nick)
            self.remember_nick(client)
            log.info("quit %s (%s)", client.nick, reason)
            if client.account is not None and self.is_local(client):
                self.record_last_seen(client.account)

    def remember_nick(self, client: Client) -> None:
        """Record ``client``'s current identity in the WHOWAS history (RFC 2812 section 3.6.3).

        Called when a registered user leaves and, with the old nick, before a nick change.
        """
        self.whowas.record(WhowasEntry(client.nick, client.user, client.host, client.realname,
                                       client.server or self.name, self.clock()))

    def record_last_seen(self, account: str) -> None:
        """Store, off the loop, that a user of ``account`` was seen now (NickServ INFO)."""
        when = self.clock()

        def done(_result: Any, error: BaseException | None) -> None:
            if error is not None:
                log.error("recording last seen for %s failed: %r", account, error)

        self.scheduler.run_blocking(lambda: self.accounts.touch(account, when), done)

    def refresh_account_names(self) -> None:
        """Re-read the account names off the loop (a shared database: accounts that
        other servers registered or dropped); errors are logged, the cache kept."""
        before = set(self.account_names)

        def done(names: Any, error: BaseException | None) -> None:
            if error is not None:
                log.warning("refreshing the account names failed: %r", error)
                return
            for gone in before - names.keys():
                self.account_names.pop(gone, None)
            self.account_names.update(names)

        self.scheduler.run_blocking(self.accounts.names, done)

    def tick(self, now: float | None = None) -> None:
        """Time-based work, called about once a second: registration and ping timeouts.

        A client silent for ``ping_interval`` seconds is sent ``PING``; if it
        stays silent ``ping_timeout`` more seconds it is disconnected with
        ``Ping timeout: N seconds``. An unregistered connection older than
        ``registration_timeout`` is closed with ``Registration timeout``,
        also while its password check is still running (its outcome is then
        dropped; a job not yet started is skipped). Server-ban writes that
        failed are retried every :data:`BAN_RETRY_INTERVAL` seconds.
        """
        now = self.clock() if now is None else now
        s = self.config.server
        if now - self._last_prune > 60:
            self._last_prune = now
            self.login_throttle.prune(now)
            self.registration_throttle.prune(now)
            for ban in self.serverbans.expire(now):
                log.info("%s-line on %s expired", ban.kind, ban.mask)
                self.store_serverban(ban, delete=True)
        self.flush_history()
        self.chanreg.flush()
        if self._bans_latest and now - self._last_ban_retry >= BAN_RETRY_INTERVAL:
            self._last_ban_retry = now
            self._retry_serverbans()
        if (self.accounts.shared and not self.log.sequenced
                and now - self._last_names_refresh >= ACCOUNT_NAMES_REFRESH):
            self._last_names_refresh = now
            self.refresh_account_names()
        for client in list(self.world.clients.values()):
            if client.kind != "irc":
                continue
            if not client.registered:
                if now - client.signon > s.registration_timeout:
                    self.quit(client, "Registration timeout", error="Registration timeout")
                continue
            for session in client.sessions:
                silent = now - session.last_seen
                if session.ping_sent and session.last_seen < session.ping_sent:
                    if now - session.ping_sent > s.ping_timeout:
                        secs = int(now - session.last_seen)
                        # (one session per user today: its timeout ends the user)
                        self.quit(client, f"Ping timeout: {secs} seconds",
                                  error=f"Ping timeout: {secs} seconds")
                        break
                elif silent > s.ping_interval:
                    session.ping_sent = now
                    session.write(f"PING :{self.name}\r\n".encode())

    # -- server bans (storage; the commands are in ircd/commands/oper.py) --------

    def load_serverbans(self, bans: list[ServerBan]) -> None:
        """Put the bans read from the store at start into force (expired ones are deleted)."""
        now = self.clock()
        for ban in bans:
            if ban.expired(now):
                self.store_serverban(ban, delete=True)
            else:
                self.serverbans.add(ban)

    def store_serverban(self, ban: ServerBan, delete: bool = False, *,
                        apply: Apply | None = None) -> None:
        """Save (or delete) ``ban`` in the ban store, off the loop; a failure is logged
        and retried (:meth:`tick`) until it succeeds or a newer change of that ban is
        written. ``apply``: the log entry that changed it (a cluster: only the node
        the command came from writes it)."""
        if self.ban_store is None or (apply is not None and not apply.here):
            return
        self._bans_seq += 1
        self._bans_latest[ban.key] = (self._bans_seq, ban, delete)
        self._write_bans([ban.key])

    def _write_latest_ban(self, key: tuple[str, str]) -> None:
        """(Worker thread.) Write the latest change of ban ``key`` unless it was written
        already; raises what the store raises."""
        store = self.ban_store
        assert store is not None
        with self._bans_lock:
            entry = self._bans_latest.get(key)
            if entry is None or self._bans_written.get(key, 0) >= entry[0]:
                return
            seq, ban, delete = entry
            if delete:
                store.delete(ban.kind, ban.mask)
            else:
                store.save(ban)
            self._bans_written[key] = seq

    def _write_bans(self, keys: list[tuple[str, str]], retry: bool = False) -> None:
        """Write the latest changes of the bans ``keys`` in one job, in order (the first
        failure stops the job: the rest stay for the next retry)."""

        def write() -> None:
            for key in keys:
                self._write_latest_ban(key)

        def done(_result: Any, error: BaseException | None) -> None:
            if retry:
                self._bans_retrying = False
            for key in keys:  # forget what is written (a newer change stays)
                entry = self._bans_latest.get(key)
                if entry is not None and entry[0] <= self._bans_written.get(key, 0):
                    del self._bans_latest[key]
                    del self._bans_written[key]
            if error is not None:
                log.error("writing %d server-ban change(s) failed (retried later): %r",
                          len(keys), error)

        self.scheduler.run_blocking(write, done)

    def _retry_serverbans(self) -> None:
        """Write every ban change not yet written, in one job (at most one in flight)."""
        if self.ban_store is None or self._bans_retrying:
            return
        self._bans_retrying = True
        self._write_bans(list(self._bans_latest), retry=True)

    def dline_for(self, ip: str) -> ServerBan | None:
        """The D-line banning address ``ip`` now, or None (checked when a connection opens)."""
        return self.serverbans.dline_for(ip, self.clock())

    def flush_history(self) -> None:
        """Write the messages recorded since the last call, off the loop, in one batch.

        At most one batch is in flight: while one is being written (a slow or
        unanswering database), new messages wait in ``history.pending``, of which
        the newest :data:`HISTORY_RETRY_MAX` are kept (older ones are dropped
        from the write, logged; they stay in memory for CHATHISTORY).
        """
        history = self.history
        stats = self.stats
        if history is None or not (history.pending or history.erasing):
            return
        if stats.history_in_flight:
            excess = len(history.pending) - HISTORY_RETRY_MAX
            if excess > 0:
                del history.pending[:excess]
                log.error("history: %d messages not written (the database is behind)", excess)
            return
        items = history.take_pending()
        erase = history.take_erasures()   # forgotten channels (channel_gone)
        stats.history_in_flight += len(items)

        def done(_result: Any, error: BaseException | None) -> None:
            stats.history_in_flight -= len(items)
            if error is not None:
                # (e.g. PostgreSQL restarting) try again with the next batch, up to a bound
                keep = max(0, HISTORY_RETRY_MAX - len(history.pending))
                history.requeue(items[-keep:] if keep else [], erase)
                log.error("history write of %d messages failed (%d kept for a retry): %r",
                          len(items), min(keep, len(items)), error)
            history.batch_done()

        self.scheduler.run_blocking(lambda: history.write(items, erase), done)

    def channel_gone(self, chan: Channel) -> None:
        """``chan`` was forgotten (its last member left and it is not registered):
        its history goes with it, from memory now and from the database with the
        next history batch, so whoever creates a channel of that name later
        cannot read it (docs/protocol.md "CHATHISTORY"). The server's own
        channels (``[server] autojoin``, where everyone is put) keep theirs."""
        if self.history is not None and not self.keeps_history(chan.name):
            self.history.forget(casefold(chan.name), self.clock())

    def keeps_history(self, name: str) -> bool:
        """True if channel ``name``'s history outlives the channel: it is registered
        (ChanServ, ``[server] registered_channels``) or one of ``[server] autojoin``,
        which everyone joins anyway."""
        cf = casefold(name)
        chan = self.world.channels.get(cf)
        if chan is not None and chan.registration is not None:
            return True
        return any(casefold(a) == cf for a in self.config.server.autojoin)

    def shutdown(self, reason: str = "Server shutting down") -> None:
        """Disconnect every client with ``ERROR :<reason>``."""
        for client in list(self.world.clients.values()):
            self.quit(client, reason, error=reason)
