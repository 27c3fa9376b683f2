"""Sans-I/O tests of cluster replication (ircd/cluster/log.py): several cores, one log.

Each node is a real :class:`ircd.core.Server` with its :class:`Replication`;
the log is :class:`MemoryLog`, an in-process list standing where the Redis
stream stands in production (the same entries, applied in the same order by
every node). The Redis edge itself is tested against a real redis-server in
tests/test_cluster.py.
"""

from __future__ import annotations

import random

import pytest

from ircd.accounts import AccountStore
from ircd.cluster import memory
from ircd.cluster.log import UNAVAILABLE, NodeInfo, entry_time
from ircd.config import Config
from ircd.core import ImmediateScheduler, Server
from ircd.history import HistoryStore, Item, log_position
from ircd.protocol.message import parse_line
from ircd.simple import EchoBot
from ircd.storage.sqlite import SQLiteAccountRows, SQLiteHistoryDisk
from ircd.worldlog import EntryClock
from tests.test_core import Conn, FakeClock

CONFIG = Config().with_overrides("simple", echobot=False).with_overrides("services", enabled=False)


class Port(memory.MemoryPort):
    """One node's :class:`ircd.cluster.log.Transport` on a :class:`MemoryLog`."""

    def __init__(self, log: MemoryLog) -> None:
        super().__init__(log)
        self.resets: list[str] = []

    def reset(self, why: str) -> None:
        self.resets.append(why)


class MemoryLog(memory.MemoryLog):
    """The log as lists (:mod:`ircd.cluster.memory`); :meth:`pump` lets every node
    apply what it has not applied."""

    def __init__(self, store: AccountStore) -> None:
        super().__init__(FakeClock())
        self.store = store

    def node(self, node_id: int, name: str, config: Config = CONFIG,
             history: HistoryStore | None = None) -> Server:
        """A new node that joins the network (founds it, or loads a snapshot)."""
        server = Server(config.with_overrides("server", name=f"{name}.test"), self.store,
                        ImmediateScheduler(), clock=EntryClock(self.clock), history=history)
        if config.simple.echobot:
            EchoBot(server)    # pseudo-users exist on every node before it joins
        self.join(server, NodeInfo(node_id, name, f"{name}.test"), Port(self))
        return server

    def pump(self) -> None:
        """Every node applies what it has not applied (:meth:`settle`)."""
        self.settle()


@pytest.fixture
def store(tmp_path):
    s = AccountStore(SQLiteAccountRows(tmp_path / "db"), time_cost=1, memory_cost=1024)
    yield s
    s.close()


@pytest.fixture
def net(store) -> MemoryLog:
    return MemoryLog(store)


def user(net: MemoryLog, server: Server, nick: str) -> Conn:
    conn = Conn(server)
    conn.send(f"NICK {nick}", f"USER {nick} 0 * :{nick}")
    net.pump()
    assert conn.client.registered, conn.take_raw()
    conn.take()
    return conn


def world_of(server: Server) -> dict:
    """The network state a replica holds, by network id (comparable across nodes)."""
    w = server.world
    return {
        "users": sorted((c.nick, c.id, c.account, "".join(sorted(c.modes)), c.away)
                        for c in w.users.values()),
        "channels": {cf: (ch.name, ch.topic, sorted(ch.modes), ch.key, ch.limit,
                          sorted((m.id, modes) for m, modes in ch.members.items()),
                          [b[0] for b in ch.bans])
                     for cf, ch in w.channels.items()},
    }


def test_a_message_reaches_members_on_every_node_exactly_once(net):
    n1, n2 = net.node(1, "n1"), net.node(2, "n2")
    alice, bob, carol = user(net, n1, "alice"), user(net, n2, "bob"), user(net, n2, "carol")
    for conn in (alice, bob, carol):
        conn.send("JOIN #room")
        net.pump()
    for conn in (alice, bob, carol):
        conn.take()
    alice.send("PRIVMSG #room :hello")
    assert alice.take() == []       # not run yet: it is in the log
    net.pump()
    for conn in (bob, carol):
        msgs = [m for m in conn.take() if m.command == "PRIVMSG"]
        assert [(m.source, m.params) for m in msgs] == [
            ("alice!alice@127.0.0.1", ["#room", "hello"])]
    assert world_of(n1) == world_of(n2)


def test_twenty_clients_racing_for_one_nick_on_two_nodes_give_one_welcome(net):
    n1, n2 = net.node(1, "n1"), net.node(2, "n2")
    conns = [Conn(n1 if i % 2 else n2) for i in range(20)]
    for conn in conns:
        conn.send("NICK prize", "USER p 0 * :p")
    net.pump()
    welcomed = [c for c in conns if "001" in c.codes()]
    assert len(welcomed) == 1
    losers = [c for c in conns if c not in welcomed]
    assert all(not c.client.registered for c in losers)
    winner = welcomed[0].client
    assert n1.world.users["prize"].id == n2.world.users["prize"].id == winner.id
    # A loser may pick another nick and register then.
    losers[0].send("NICK second")
    net.pump()
    assert losers[0].client.registered
    assert world_of(n1) == world_of(n2)


def test_a_channel_created_on_two_nodes_at_once_has_one_founding_op(net):
    n1, n2 = net.node(1, "n1"), net.node(2, "n2")
    a, b = user(net, n1, "a"), user(net, n2, "b")
    a.send("JOIN #new")
    b.send("JOIN #new")
    net.pump()
    chan = n1.world.channels["#new"]
    ops = [m.nick for m, modes in chan.members.items() if "o" in modes]
    assert ops == ["a"]
    assert world_of(n1) == world_of(n2)


def test_two_senders_on_two_nodes_give_every_receiver_the_same_interleaving(net):
    n1, n2 = net.node(1, "n1"), net.node(2, "n2")
    s1, s2 = user(net, n1, "s1"), user(net, n2, "s2")
    r1, r2 = user(net, n1, "r1"), user(net, n2, "r2")
    for conn in (s1, s2, r1, r2):
        conn.send("JOIN #order")
        net.pump()
        conn.take()
    rng = random.Random(7)
    for i in range(100):
        sender = rng.choice((s1, s2))
        sender.send(f"PRIVMSG #order :{sender.client.nick} {i}")
        if rng.random() < 0.3:
            net.pump()
    net.pump()
    seen = [[m.params[1] for m in conn.take() if m.command == "PRIVMSG"] for conn in (r1, r2)]
    assert len(seen[0]) == 100
    assert seen[0] == seen[1]


def test_a_joining_node_loads_the_world_from_a_snapshot(net):
    n1, n2 = net.node(1, "n1"), net.node(2, "n2")
    a, b = user(net, n1, "a"), user(net, n2, "b")
    a.send("JOIN #x", "TOPIC #x :the topic", "MODE #x +kl key 10")
    b.send("JOIN #x key", "AWAY :lunch")
    net.pump()
    a.send("MODE #x +b evil!*@*")
    net.pump()
    n3 = net.node(3, "n3")
    assert world_of(n3) == world_of(n1) == world_of(n2)
    c = user(net, n3, "c")
    c.send("JOIN #x key")
    net.pump()
    names = [m for m in c.take() if m.command == "353"]
    assert sorted(names[0].params[-1].split()) == ["@a", "b", "c"]
    assert world_of(n3) == world_of(n1) == world_of(n2)


def test_a_lost_node_quits_its_users_everywhere_else(net):
    n1, n2 = net.node(1, "n1"), net.node(2, "n2")
    a, b = user(net, n1, "a"), user(net, n2, "b")
    for conn in (a, b):
        conn.send("JOIN #x")
        net.pump()
    a.take()
    net.ports[0].append(net.ports[0].repl.lost_entry(2), 0)
    net.pump()
    quits = [m for m in a.take() if m.command == "QUIT"]
    assert [(q.source, q.params) for q in quits] == [("b!b@127.0.0.1", ["node n2 lost"])]
    assert "b" not in n1.world.users
    assert net.ports[1].resets == ["declared lost by another node"]
    # The nick is free again on the node that is left.
    a.send("NICK b")
    net.pump()
    assert a.client.nick == "b"


def test_while_the_log_is_unavailable_changes_are_refused_and_nothing_is_delivered(net):
    n1, n2 = net.node(1, "n1"), net.node(2, "n2")
    a, b = user(net, n1, "a"), user(net, n2, "b")
    for conn in (a, b):
        conn.send("JOIN #x")
        net.pump()
    a.take()
    b.take()
    net.ports[0].available = False
    a.send("PRIVMSG #x :lost?")
    net.pump()
    replies = a.take_raw()
    assert replies == [f":n1.test 400 a PRIVMSG :{UNAVAILABLE}"]
    assert b.take() == []
    a.send("WHOIS b")          # reads still work, from the replica
    assert "312" in a.codes()
    fresh = Conn(n1)
    fresh.send("NICK c", "USER c 0 * :c")
    assert fresh.closed == ["Cluster unavailable"]


def test_a_users_later_lines_wait_for_its_line_in_the_log(net):
    n1, _n2 = net.node(1, "n1"), net.node(2, "n2")
    a = user(net, n1, "a")
    a.send("JOIN #x", "PRIVMSG #x :one")   # two lines in the log at once
    assert a.client.session.in_flight == 2 and not a.client.session.pending
    a.send("NAMES #x")                     # a read: waits behind them
    assert a.client.session.pending and a.take() == []
    net.pump()
    assert not a.client.session.pending and a.client.session.in_flight == 0
    assert [m.command for m in a.take()] == ["JOIN", "353", "366", "353", "366"]


@pytest.mark.parametrize("seed", range(6))
def test_random_commands_from_users_on_three_nodes_leave_identical_replicas(net, seed):
    rng = random.Random(seed)
    nodes = [net.node(i + 1, f"n{i + 1}") for i in range(3)]
    conns = [user(net, nodes[i % 3], f"u{i}") for i in range(9)]
    lines = ["JOIN #a", "JOIN #b", "PART #a", "PRIVMSG #a :x", "TOPIC #a :t{}", "MODE #a +m",
             "MODE #a -m", "MODE #a +o u{}", "MODE #b +v u{}", "KICK #a u{} :bye", "NICK v{}",
             "NICK u{}", "AWAY :gone", "AWAY", "INVITE u{} #b", "MODE #a +b x{}!*@*",
             "MODE #a +i", "MODE #a -i", "NOTICE u{} :hi"]
    for i in range(300):
        conn = rng.choice(conns)
        if conn.client.quitting:
            continue
        line = "QUIT :done" if i in (100, 200) else rng.choice(lines).format(rng.randrange(9))
        conn.send(line.encode())
        if rng.random() < 0.4:
            net.pump()
    net.pump()
    first = world_of(nodes[0])
    assert first["users"]               # something is left to compare
    assert world_of(nodes[1]) == first
    assert world_of(nodes[2]) == first


def test_message_ids_are_the_same_on_every_node(net):
    n1, n2 = net.node(1, "n1"), net.node(2, "n2")
    a, b = user(net, n1, "a"), user(net, n2, "b")
    for conn in (a, b):
        conn.send("CAP REQ :message-tags echo-message")
        conn.take()
    a.send("PRIVMSG b :hi")
    net.pump()
    echo = [m for m in a.take() if m.command == "PRIVMSG"][0]
    got = [m for m in b.take() if m.command == "PRIVMSG"][0]
    assert echo.tags["msgid"] == got.tags["msgid"]
    assert parse_line(b"PING x").command == "PING"


def test_echobot_exists_once_per_network_and_answers_once(net):
    config = CONFIG.with_overrides("simple", echobot=True)
    n1, n2 = net.node(1, "n1", config), net.node(2, "n2", config)
    a, b = user(net, n1, "a"), user(net, n2, "b")
    n3 = net.node(3, "n3", config)
    assert world_of(n3) == world_of(n1) == world_of(n2)
    names = sorted(m.nick for m in n3.world.channels["#general"].members)
    assert names == ["a", "b", "echobot"]
    a.take()
    b.send("PRIVMSG echobot :ping me")
    net.pump()
    answers = [m.params for m in b.take() if m.command == "PRIVMSG"]
    assert answers == [["b", "ping me"]]
    assert a.take() == []
    assert world_of(n3) == world_of(n1) == world_of(n2)


@pytest.mark.parametrize("url, why", [
    ("http://h:1/0", "must start with redis://"),
    ("redis://:1/0", "no host"),
    ("redis://h:99999/0", "out of range"),
    ("redis://h:1/abc", "must be a number"),
])
def test_bad_cluster_urls_are_one_line_errors(url, why):
    from ircd.cluster import BadClusterURL, check_cluster_url

    with pytest.raises(BadClusterURL, match=why):
        check_cluster_url(url)


def test_cluster_mode_needs_a_shared_database():
    from ircd.config import ConfigError, validate

    config = Config().with_overrides("cluster", url="redis://127.0.0.1:6379/0")
    with pytest.raises(ConfigError, match="needs a shared 'database.url'"):
        validate(config, "test")
    validate(config.with_overrides("database", url="postgresql://u@h/db"), "test")
    validate(Config().with_overrides("cluster", url="rediss://h/3",
                                     node_name="n1").with_overrides("database",
                                                                    url="postgresql://u@h/d"),
             "test")


def test_a_client_gone_before_its_nick_claim_is_applied_leaves_no_ghost(net):
    n1, n2 = net.node(1, "n1"), net.node(2, "n2")
    watcher = user(net, n2, "watcher")
    conn = Conn(n1)
    conn.send("NICK ghost", "USER g 0 * :g")   # the claim is in the log...
    n1.quit(conn.client, "Connection closed")   # ...and the connection closes first
    net.pump()
    assert "ghost" not in n1.world.users and "ghost" not in n2.world.users
    assert world_of(n1) == world_of(n2)
    again = user(net, n1, "ghost")              # the nick is free on every node
    again.send("PRIVMSG watcher :hi")
    net.pump()
    assert [m.params for m in watcher.take() if m.command == "PRIVMSG"] == [["watcher", "hi"]]


def test_a_batch_of_entries_packs_into_one_stream_field_and_back():
    from ircd.cluster.log import pack, unpack

    entries = [b"L1 2 3 4.0\nPRIVMSG #a :x\ny", b"", b'J{"k":"quit"}', b"9\n" * 50]
    assert list(unpack(pack(entries))) == entries
    assert list(unpack(pack(entries)[:-3])) == entries[:3]   # a cut tail is dropped
    assert list(unpack(b"zz\nabc")) == []


def test_an_entry_reads_the_time_of_its_stream_id_and_history_sorts_by_log_position():
    assert entry_time("1733130000123-7") == 1733130000.123
    assert entry_time("1733130000123-7.42") == 1733130000.123
    # one millisecond, two stream entries, batch slots and counters: the log's order
    ids = ["1733130000123.10.0.1", "1733130000123.9.3.1", "1733130000123.9.12.2",
           "1733130000123.9.12.1"]
    assert sorted(ids, key=log_position) == [
        "1733130000123.9.3.1", "1733130000123.9.12.1", "1733130000123.9.12.2",
        "1733130000123.10.0.1"]
    # a single node's ids (boot prefix + hex counter) keep the database's order
    assert log_position("5f3a9c01") == () == log_position("5f3a9c0.1ab")


def test_each_node_counts_only_its_own_users_messages_relayed(net):
    """``chatserver_messages_relayed_total`` summed over the nodes counts each message
    once: the node that took the line counts it, the nodes that apply it do not."""
    n1, n2 = net.node(1, "n1"), net.node(2, "n2")
    alice, bob = user(net, n1, "alice"), user(net, n2, "bob")
    for conn in (alice, bob):
        conn.send("JOIN #room")
        net.pump()
    before = (n1.stats.messages_relayed, n2.stats.messages_relayed)
    alice.send("PRIVMSG #room :to the channel")
    alice.send("PRIVMSG bob :to bob")
    alice.send("NOTICE bob :a notice")
    bob.send("PRIVMSG alice :back to alice")
    net.pump()
    assert [m.params[-1] for m in bob.take() if m.command in ("PRIVMSG", "NOTICE")] == [
        "to the channel", "to bob", "a notice"]
    assert [m.params[-1] for m in alice.take() if m.command == "PRIVMSG"] == ["back to alice"]
    assert (n1.stats.messages_relayed - before[0], n2.stats.messages_relayed - before[1]) == (3, 1)


def test_history_merge_adds_only_the_missing_messages_in_log_order_and_keeps_the_bound(tmp_path):
    """``HistoryStore.merge``: what a node that joined reads back from the database."""
    store = HistoryStore(SQLiteHistoryDisk(tmp_path / "h.sqlite3"), max_per_target=4)

    def item(n: int, t: float = 100.0) -> Item:
        return Item("#a", t, f"1700000000000.0.{n}.1", "alice!a@h", None,
                    "PRIVMSG", "#a", f"m{n}")

    for n in (1, 4, 5):                           # what the node applied itself
        store.add(item(n))
    rows = [(i.target, i.t, i.msgid, i.source, i.account, i.command, i.to_name, i.text)
            for i in (item(0), item(2), item(3), item(4))]   # 4: held already
    assert store.merge(rows) == 2          # m0 is older than the 4 kept
    # one ms, so the order is the log's (msgid); the bound keeps the newest 4
    assert [i.text for i in store.items("#a")] == ["m2", "m3", "m4", "m5"]
    assert set(store.by_msgid) == {item(n).msgid for n in (2, 3, 4, 5)}
    assert store.merge(rows) == 0          # m0 is still too old; the rest is held
    store.close()


def test_at_most_max_in_flight_lines_of_a_client_wait_in_the_log_then_its_input_pauses(net):
    from ircd.cluster.log import MAX_IN_FLIGHT

    n1, n2 = net.node(1, "n1"), net.node(2, "n2")
    a, b = user(net, n1, "a"), user(net, n2, "b")
    for conn in (a, b):
        conn.send("JOIN #x")
        net.pump()
    a.take()
    b.take()
    a.send(*[f"PRIVMSG #x :m{i}" for i in range(MAX_IN_FLIGHT - 1)])
    assert a.client.session.in_flight == MAX_IN_FLIGHT - 1 and not a.client.session.pending
    a.send("PRIVMSG #x :last")
    assert a.client.session.in_flight == MAX_IN_FLIGHT and a.client.session.pending   # the edge stops reading
    net.pump()
    assert a.client.session.in_flight == 0 and not a.client.session.pending
    texts = [m.params[-1] for m in b.take() if m.command == "PRIVMSG"]
    assert texts == [f"m{i}" for i in range(MAX_IN_FLIGHT - 1)] + ["last"]
