"""Cluster convergence as a property (hypothesis): every replica ends in the same world.

Three to five nodes run in one process, each a real :class:`ircd.core.Server` with
its :class:`~ircd.cluster.log.Replication`, NickServ and ChanServ. The log is one
list (:class:`Log`); each node has its own read position, and hypothesis decides
when which node applies its next entries, so the replicas apply the same log at
different speeds and with the users' lines interleaved in any order. Users on
every node send random valid and malformed lines (leading spaces, NUL and CR in
the command word, odd casing, tags, a ``:source`` prefix, over-long lines,
invalid UTF-8) and services commands with passwords. After the whole log is
applied everywhere, the test asserts:

- every replica holds the same world: nicks, users' accounts, modes and away
  texts, channels with their members and member modes, channel modes, key,
  limit, topic, ban/except/invex lists and ChanServ registrations, and the
  account names;
- no password (every one contains :data:`SECRET`) is in any log entry, nor in
  anything the server logged (Python ``logging``).

The Redis edge is not involved (tests/test_cluster.py runs real nodes over a real
Redis); this file checks the replication core's decisions.
"""

from __future__ import annotations

import logging
import tempfile
from collections import deque
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ircd.accounts import AccountStore
from ircd.cluster.log import NodeInfo
from ircd.cluster.memory import MemoryLog, MemoryPort
from ircd.config import Config
from ircd.core import ImmediateScheduler, Server
from ircd.protocol.message import Message, parse_line
from ircd.services import start_services
from ircd.storage.sqlite import SQLiteAccountRows
from ircd.worldlog import EntryClock
from tests.test_core import Conn, FakeClock

SECRET = "SECRETpw"
"""Every password the test sends contains this; it must never reach the log."""

CONFIG = (Config().with_overrides("simple", echobot=False)
          .with_overrides("services", enabled=True)
          .with_overrides("server", autojoin=["#a"]))

NICKS = ["u0", "u1", "u2", "u3", "Nick", "nick"]
CHANS = ["#a", "#b", "#A"]

PLAIN = [
    "NICK {nick}", "JOIN {chan}", "JOIN {chan} key", "PART {chan}", "PART {chan} :bye",
    "KICK {chan} {nick} :out", "MODE {chan} +o {nick}", "MODE {chan} -o {nick}",
    "MODE {chan} +v {nick}", "MODE {chan} +k key", "MODE {chan} -k key", "MODE {chan} +l 3",
    "MODE {chan} -l", "MODE {chan} +i", "MODE {chan} -i", "MODE {chan} +m", "MODE {chan} -m",
    "MODE {chan} +t", "MODE {chan} -t", "MODE {chan} +n", "MODE {chan} +b {nick}!*@*",
    "MODE {chan} -b {nick}!*@*", "MODE {chan} +e {nick}!*@*", "MODE {chan} +I {nick}!*@*",
    "MODE {chan} +bv x!*@* {nick}", "TOPIC {chan} :topic of {nick}", "TOPIC {chan} :",
    "PRIVMSG {chan} :hello", "PRIVMSG {nick} :hi", "NOTICE {chan} :note",
    "PRIVMSG {nick},{chan} :both", "TAGMSG {chan}", "INVITE {nick} {chan}", "AWAY :gone",
    "AWAY", "SETNAME :real {nick}", "CS REGISTER {chan}", "CS OP {chan} {nick}",
    "CS ACCESS {chan} ADD {nick} op", "CS SET {chan} TOPICLOCK on", "CS DROP {chan}",
    "PRIVMSG ChanServ :REGISTER {chan}", "PRIVMSG NickServ,{chan} :INFO",
    "PRIVMSG ChanServ,NickServ :HELP", "NS INFO {nick}", "WHOIS {nick}", "NAMES {chan}",
    "QUIT :done",
]
"""Lines without secrets; ``{nick}``/``{chan}`` are filled from small pools, so
nick and channel races and case collisions happen."""

SECRETS = [
    "PRIVMSG NickServ :REGISTER {pw}", "PRIVMSG NickServ :IDENTIFY {pw}",
    "PRIVMSG NickServ :IDENTIFY {nick} {pw}", "privmsg nickserv :register {pw}",
    "PRIVMSG @NickServ :IDENTIFY {pw}", "PRIVMSG NickServ,NICKSERV :IDENTIFY {pw}",
    "NOTICE NickServ :IDENTIFY {pw}", "NS REGISTER {pw}", "NS IDENTIFY {nick} {pw}",
    "NICKSERV IDENTIFY {pw}", "NS PASSWORD {pw} {pw}x", "NS DROP {pw}",
    "PRIVMSG NickServ :DROP {pw}", "CS IDENTIFY {pw}", "PRIVMSG ChanServ :IDENTIFY {pw}",
    "CHANSERV LOGIN {pw}", "OPER admin {pw}", "PASS {pw}", "AUTHENTICATE {pw}",
    "REGISTER * * {pw}", "VERIFY {nick} {pw}",
]
"""Lines carrying a password (each contains :data:`SECRET` once filled)."""

MUTATIONS = ["space", "nul", "cr", "lower", "tags", "source", "long", "utf8"]


def mutate(line: str, how: list[str]) -> bytes:
    """``line`` as a client might send it, made odd in the ways ``how`` lists."""
    command, _, rest = line.partition(" ")
    if "lower" in how:
        command = command.lower()
    if "nul" in how and len(command) > 1:
        command = command[:2] + "\0" + command[2:]
    if "cr" in how and len(command) > 1:
        command = command[:1] + "\r" + command[1:]
    data = (command + (" " + rest if rest else "")).encode()
    if "source" in how:
        data = b":someone!x@y " + data
    if "space" in how:
        data = b"  " + data
    if "tags" in how:
        data = b"@label=L1;+draft/reply=x " + data
    if "utf8" in how:
        data += b" \xff\xfe"
    if "long" in how:
        data += b" " + b"z" * 520
    return data


line_strategy = st.one_of(
    st.tuples(st.sampled_from(PLAIN), st.sampled_from(NICKS), st.sampled_from(CHANS),
              st.just(""), st.lists(st.sampled_from(MUTATIONS), max_size=2)),
    st.tuples(st.sampled_from(SECRETS), st.sampled_from(NICKS), st.sampled_from(CHANS),
              st.sampled_from([SECRET + "1", SECRET + "2"]),
              st.lists(st.sampled_from(MUTATIONS), max_size=2)),
).map(lambda t: mutate(t[0].format(nick=t[1], chan=t[2], pw=t[3]), t[4]))

action = st.one_of(
    st.tuples(st.just("send"), st.integers(0, 99), line_strategy),
    st.tuples(st.just("apply"), st.integers(0, 99), st.integers(1, 6)),
)


# -- the in-process network ---------------------------------------------------------------------


Port = MemoryPort
"""One node's transport: appends go to the shared lists; ``pos`` is what it applied."""


class Log(MemoryLog):
    """The log as lists (:mod:`ircd.cluster.memory`); each :class:`Port` applies it at
    its own pace."""

    def __init__(self, store: AccountStore) -> None:
        super().__init__(FakeClock())
        self.store = store
        self.users: list[User] = []

    def node(self, node_id: int) -> Server:
        name = f"n{node_id}"
        server = Server(CONFIG.with_overrides("server", name=f"{name}.test"), self.store,
                        ImmediateScheduler(), clock=EntryClock(self.clock))
        start_services(server)
        self.join(server, NodeInfo(node_id, name, f"{name}.test"))
        return server

    def step(self, port: Port, count: int) -> int:
        """``port``'s node applies up to ``count`` more entries, then its users go on."""
        done = super().step(port, count)
        for user in self.users:
            user.flush()
        return done

    def settle(self) -> None:
        """Every node applies everything (entries appended meanwhile too)."""
        while any(self.behind(p) for p in self.ports) or any(
                u.outbox and not u.conn.client.session.pending and not u.conn.client.quitting
                for u in self.users):
            for port in self.ports:
                self.step(port, 1 << 30)


class User:
    """A connection that, like ircd/net.py, hands over its lines only while its
    client is not ``pending`` (a password check, or its lines in the log)."""

    def __init__(self, server: Server) -> None:
        self.conn = Conn(server)
        self.outbox: deque[bytes] = deque()
        self.conn.client.session.on_resume = self.flush

    def send(self, line: bytes) -> None:
        self.outbox.append(line)
        self.flush()

    def flush(self) -> None:
        client = self.conn.client
        while self.outbox and not client.session.pending and not client.quitting:
            self.conn.server.handle_line(client.session, self.outbox.popleft())


def world_of(server: Server) -> dict[str, Any]:
    """Everything the replicas must agree on, keyed by network-wide ids (pseudo-users,
    which every node has its own copy of, by nick)."""

    def key(c) -> int | str:
        return f"~{c.nick}" if c.is_pseudo else c.id

    w = server.world
    channels = {}
    for cf, ch in w.channels.items():
        reg = ch.registration
        channels[cf] = (
            ch.name, ch.topic, ch.topic_by, ch.topic_at, sorted(ch.modes), ch.key, ch.limit,
            sorted(((str(key(m)), modes) for m, modes in ch.members.items())),
            list(ch.bans), list(ch.excepts), list(ch.invex),
            None if reg is None else (reg.founder, sorted(reg.access.items()), reg.topiclock,
                                      reg.guard))
    return {
        "users": sorted((str(key(c)), c.nick, c.user, c.host, c.realname, c.account,
                         "".join(sorted(c.modes)), c.away, sorted(c.invites))
                        for c in w.users.values() if not c.is_pseudo),
        "services": sorted(c.nick for c in w.users.values() if c.is_pseudo),  # host: its node
        "channels": channels,
        "accounts": dict(server.account_names),
    }


class Capture(logging.Handler):
    """Every log record, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(logging.Formatter().format(record))


def run_network(n_nodes: int, actions: list[tuple[str, int, Any]]) -> list[User]:
    """``n_nodes`` nodes with two users each (``u0``, ``u1``... on nodes 1, 2, ...,
    1, 2...); run ``actions`` (``("send", user, line)``, ``("apply", node, count)``);
    apply everything everywhere; assert the replicas agree and no secret was logged.
    Returns the users (their connections hold what they received)."""
    capture = Capture()
    root = logging.getLogger("ircd")
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    with tempfile.TemporaryDirectory() as tmp:
        store = AccountStore(SQLiteAccountRows(Path(tmp) / "db"), time_cost=1, memory_cost=1024)
        try:
            net = Log(store)
            servers = [net.node(i + 1) for i in range(n_nodes)]
            for i in range(2 * n_nodes):
                user = User(servers[i % n_nodes])
                net.users.append(user)
                user.send(f"NICK u{i}".encode())
                user.send(f"USER u{i} 0 * :u{i}".encode())
            net.settle()
            assert all(u.conn.client.registered for u in net.users)
            for kind, who, what in actions:
                if kind == "send":
                    net.users[who % len(net.users)].send(what)
                else:
                    net.step(net.ports[who % n_nodes], what)
            net.settle()
            first = world_of(servers[0])
            for server in servers[1:]:
                assert world_of(server) == first
            leaked = [e for e in [*net.entries, *(r.data for r in net.routed)]
                      if SECRET.encode() in e]
            assert leaked == [], leaked[:3]
        finally:
            store.close()
            root.removeHandler(capture)
            root.setLevel(old_level)
    logged = [t for t in capture.texts if SECRET in t]
    assert logged == [], logged[:3]
    return net.users


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.data_too_large])
@given(n_nodes=st.integers(3, 5), actions=st.lists(action, min_size=1, max_size=60))
def test_replicas_converge_and_no_secret_enters_the_log(n_nodes, actions):
    run_network(n_nodes, actions)


@pytest.mark.parametrize("line", [
    b" NICK x", b"  MODE #a +o u1", b"PRIV\0MSG #a :hi", b"PRIV\rMSG #a :hi", b" PRIVMSG #a :hi",
    b"@label=1 :fake!x@y  privmsg   #a   :hi", b"J\0OIN #b", b"\0 NICK x",
])
def test_odd_lines_run_the_same_on_every_node(line):
    """The audit's cases, pinned: a line with a leading space or a NUL/CR in its command
    word is shared like its plain form, so every node runs it (and a second user cannot
    take the nick, be op on one node only, or miss the message)."""
    users = run_network(3, [("send", 0, line), ("send", 3, b"NICK x"), ("send", 3, b"JOIN #b"),
                            ("send", 4, b"MODE #a +o u4"), ("send", 1, b"PRIVMSG #a :after")])
    for user in users[2:]:  # (u0 and u1 sent the messages; nobody else did)
        texts = [m.params[-1] for m in user.conn.take() if m.command == "PRIVMSG"]
        assert texts == (["hi", "after"] if b"hi" in line else ["after"]), (user.conn.client.nick,
                                                                           texts)


def test_where_a_line_runs_is_decided_on_the_parsed_message(tmp_path):
    """``Replication.route``: shared lines and lines that stay on the sender's node."""
    store = AccountStore(SQLiteAccountRows(tmp_path / "db"), time_cost=1, memory_cost=1024)
    try:
        net = Log(store)
        net.node(1)
        repl = net.ports[0].repl

        def route(line: bytes) -> tuple[str | None, str | None]:
            shared, local = repl.route(parse_line(line))
            return (None if shared is None else canonical(shared),
                    None if local is None else canonical(local))

        def canonical(msg: Message) -> str:
            from ircd.cluster.log import canonical_line

            return canonical_line(msg).decode()

        assert route(b" nick  x") == ("NICK x", None)
        assert route(b"@label=a;+x=y :src PRIVMSG #a :hi") == ("@label=a;+x=y PRIVMSG #a hi", None)
        assert route(b"WHOIS x") == (None, "WHOIS x")
        assert route(b"PRIVMSG NickServ :REGISTER pw") == (None, "PRIVMSG NickServ :REGISTER pw")
        assert route(b"PRIVMSG @nickserv :IDENTIFY pw") == (None, "PRIVMSG @nickserv :IDENTIFY pw")
        assert route(b"NOTICE ChanServ :x") == (None, "NOTICE ChanServ x")
        assert route(b"@label=q PRIVMSG #a,NickServ,bob :INFO") == (
            "@label=q PRIVMSG #a,bob INFO", "PRIVMSG NickServ INFO")
        assert route(b"CS REGISTER #a") == ("CS REGISTER #a", None)
        assert route(b"PRIVMSG ChanServ :register #a") == ("PRIVMSG ChanServ :register #a", None)
        assert route(b"CS IDENTIFY pw") == (None, "CS IDENTIFY pw")
        assert route(b"PRIVMSG ChanServ :IDENTIFY pw") == (None, "PRIVMSG ChanServ :IDENTIFY pw")
        assert route(b"NS IDENTIFY pw") == (None, "NS IDENTIFY pw")
        assert route(b"OPER a pw") == (None, "OPER a pw")
    finally:
        store.close()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80).filter(lambda b: b"\n" not in b))
def test_the_canonical_line_parses_back_to_what_was_parsed(raw):
    """What enters the log parses, on every node, to the Message the sender's node ran."""
    from ircd.cluster.log import canonical_line
    from ircd.protocol.message import parse_received

    parsed = parse_received(raw)
    if parsed.msg is None or not parsed.valid:
        return
    msg = parsed.msg
    again = parse_line(canonical_line(msg), check_length=False)
    assert (again.command, again.params, again.tags) == (msg.command, msg.params, msg.tags)
