"""Routed messages in process (docs/cluster.md "Routed messages", "Orders guaranteed").

8 to 16 replicas (:class:`~ircd.cluster.log.Replication`) on the in-process
log of tests/test_cluster_unit.py (:mod:`ircd.cluster.memory`): PRIVMSG,
NOTICE and TAGMSG that their sender's node judged at the state stream's last
entry reach only the nodes of their recipients and the sender's; everything
else goes through the state stream every node applies. Checked here: a node
with no recipient applies nothing for a routed message; a message judged on
a stale replica goes through the state stream; and, for random interleavings
of JOIN, PART, KICK, NICK, MODE and PRIVMSG from users on different nodes
applying the log at different paces, every two members of a channel see the
events and messages of that channel they both saw in the same order, and
every replica ends in the same world.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ircd.accounts import AccountStore
from ircd.history import HistoryStore
from ircd.storage.sqlite import SQLiteAccountRows, SQLiteHistoryDisk
from tests.test_cluster_unit import MemoryLog, user, world_of
from tests.test_core import Conn


@pytest.fixture
def store(tmp_path):
    s = AccountStore(SQLiteAccountRows(tmp_path / "db"), time_cost=1, memory_cost=1024)
    yield s
    s.close()


def nodes(net: MemoryLog, count: int):
    return [net.node(i + 1, f"n{i + 1}") for i in range(count)]


def applied(net: MemoryLog) -> list[int]:
    return [port.repl.applied for port in net.ports]


def privmsgs(conn: Conn) -> list[tuple[str | None, list[str]]]:
    return [(m.source, m.params) for m in conn.take() if m.command == "PRIVMSG"]


def test_a_dm_across_nodes_reaches_only_the_two_nodes_and_no_other_node_applies_it(store):
    net = MemoryLog(store)
    servers = nodes(net, 8)
    alice, bob = user(net, servers[0], "alice"), user(net, servers[1], "bob")
    net.pump()
    before, state = applied(net), len(net.entries)
    alice.send("PRIVMSG bob :hello")
    net.pump()
    assert privmsgs(bob) == [("alice!alice@127.0.0.1", ["bob", "hello"])]
    assert len(net.entries) == state            # nothing in the state stream
    assert len(net.routed) == 1 and net.routed[0].targets == {1, 2}
    after = applied(net)
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 0, 0, 0, 0, 0, 0]


def test_a_channel_message_reaches_only_the_nodes_with_members(store):
    net = MemoryLog(store)
    servers = nodes(net, 10)
    members = [user(net, servers[i], f"u{k}") for k, i in enumerate((0, 3, 3, 7))]
    for conn in members:
        conn.send("JOIN #room")
        net.pump()
    for conn in members:
        conn.take()
    before = applied(net)
    members[0].send("PRIVMSG #room :hi all")
    net.pump()
    for conn in members[1:]:
        assert privmsgs(conn) == [("u0!u0@127.0.0.1", ["#room", "hi all"])]
    after = applied(net)
    assert [i for i, (a, b) in enumerate(zip(after, before, strict=True)) if a != b] == [0, 3, 7]
    assert {world_of(s)["channels"]["#room"] == world_of(servers[0])["channels"]["#room"]
            for s in servers} == {True}


def test_a_message_right_after_the_senders_own_join_goes_through_the_state_stream(store):
    net = MemoryLog(store)
    servers = nodes(net, 8)
    alice, bob = user(net, servers[0], "alice"), user(net, servers[5], "bob")
    bob.send("JOIN #room")
    net.pump()
    alice.send("JOIN #room", "PRIVMSG #room :here I am")  # its JOIN is still in flight
    net.pump()
    assert ("alice!alice@127.0.0.1", ["#room", "here I am"]) in privmsgs(bob)
    assert net.routed == []


def test_a_message_judged_on_a_replica_behind_the_log_goes_through_the_state_stream(store):
    net = MemoryLog(store)
    servers = nodes(net, 8)
    alice, bob, carol = (user(net, servers[0], "alice"), user(net, servers[1], "bob"),
                         user(net, servers[2], "carol"))
    for conn in (alice, bob, carol):
        conn.send("JOIN #room")
        net.pump()
    carol.send("MODE #room +m")   # carol is not an op: refused, but an entry of the log
    bob.send("PRIVMSG #room :bob here")   # judged on n2, which has not applied carol's entry
    state = len(net.entries)
    net.pump()
    assert len(net.entries) == state      # appended already, in the state stream
    assert net.routed == []
    assert ("bob!bob@127.0.0.1", ["#room", "bob here"]) in privmsgs(alice)


def test_a_message_and_a_kick_of_its_sender_are_seen_in_one_order_on_every_node(store):
    net = MemoryLog(store)
    servers = nodes(net, 8)
    op = user(net, servers[0], "op")
    op.send("JOIN #room")
    net.pump()
    others = [user(net, servers[i], f"m{i}") for i in range(1, 8)]
    for conn in others:
        conn.send("JOIN #room")
        net.pump()
    for conn in (op, *others):
        conn.take()
    others[0].send("PRIVMSG #room :before the kick")   # routed, stamped before the KICK
    op.send("KICK #room m1 :bye")
    others[0].send("PRIVMSG #room :after the kick")    # judged at the same position
    net.pump()
    seen = []
    for conn in (op, *others[1:]):
        seen.append([(m.command, m.params[-1]) for m in conn.take()
                     if m.command in ("PRIVMSG", "KICK")])
    assert all(s == seen[0] for s in seen), seen


def _deliveries(store, routing: bool) -> tuple[list[str], list[str], int]:
    """What bob (tags) and carol (none), on n2, get from alice (a bot, on n1)."""
    net = MemoryLog(store)
    servers = nodes(net, 3)
    if not routing:
        for port in net.ports:
            port.repl.route_targets = lambda client, msg: None  # type: ignore[method-assign]
    alice, bob, carol = (user(net, servers[0], "alice"), user(net, servers[1], "bob"),
                         user(net, servers[1], "carol"))
    bob.send("CAP REQ :message-tags server-time account-tag")
    for conn in (alice, bob, carol):
        conn.send("JOIN #room")
        net.pump()
    alice.send("MODE alice +B")
    net.pump()
    for conn in (alice, bob, carol):
        conn.take()
    alice.send("@+draft/react=x PRIVMSG #room :hi there", "NOTICE #room :note",
               "@+typing=active TAGMSG #room", "PRIVMSG bob :dm", "TAGMSG bob",
               "PRIVMSG carol :dm2")
    net.pump()

    def strip(raw: str) -> str:   # msgid and time differ between the two paths
        if not raw.startswith("@"):
            return raw
        tags, rest = raw[1:].split(" ", 1)
        kept = [t for t in tags.split(";") if not t.startswith(("msgid=", "time="))]
        return "@" + ";".join(kept) + " " + rest
    return ([strip(r) for r in bob.take_raw()], [strip(r) for r in carol.take_raw()],
            len(net.routed))


def test_a_routed_message_is_delivered_as_the_state_stream_delivers_it(store):
    """The node of the recipients delivers a routed message from the entry, without
    running the handler: the bytes are the ones the handler writes."""
    bob, carol, routed = _deliveries(store, routing=True)
    assert routed == 6
    assert (bob, carol) == _deliveries(store, routing=False)[:2]
    assert bob[0] == "@+draft/react=x;bot :alice!alice@127.0.0.1 PRIVMSG #room :hi there"
    assert "TAGMSG" not in " ".join(carol)


def test_a_node_whose_first_member_joins_a_channel_loads_its_history(store, tmp_path):
    """A node receives a channel's routed messages only while it has members there;
    when its first member joins, it reads the channel's history from the database,
    so CHATHISTORY answers there as on the nodes that had members all along."""
    net = MemoryLog(store)
    path = tmp_path / "history.sqlite3"
    servers = [net.node(i + 1, f"n{i + 1}", history=HistoryStore(SQLiteHistoryDisk(path))) for i in range(3)]
    alice, bob = user(net, servers[0], "alice"), user(net, servers[1], "bob")
    for conn in (alice, bob):
        conn.send("JOIN #room")
        net.pump()
    alice.send("PRIVMSG #room :one")
    bob.send("PRIVMSG #room :two")
    net.pump()
    assert net.routed and servers[2].history.items("#room") == []   # nothing came to n3
    for server in servers:
        server.flush_history()      # each origin writes its users' messages
    carol = user(net, servers[2], "carol")
    carol.send("CAP REQ :draft/chathistory batch server-time message-tags")
    carol.send("JOIN #room")
    net.pump()
    carol.take()
    carol.send("CHATHISTORY LATEST #room * 10")
    net.pump()
    got = [m for m in carol.take() if m.command == "PRIVMSG"]
    assert [m.params[-1] for m in got] == ["one", "two"]
    mine = [(i.msgid, i.text) for i in servers[0].history.items("#room")]
    assert [(m.tags["msgid"], m.params[-1]) for m in got] == mine


# -- random interleavings -----------------------------------------------------------------------

CHANNELS = ("#a", "#b")

command = st.one_of(
    st.tuples(st.just("join"), st.sampled_from(CHANNELS)),
    st.tuples(st.just("part"), st.sampled_from(CHANNELS)),
    st.tuples(st.just("kick"), st.sampled_from(CHANNELS), st.integers(0, 31)),
    st.tuples(st.just("nick"), st.integers(0, 3)),
    st.tuples(st.just("mode"), st.sampled_from(CHANNELS),
              st.sampled_from(["+m", "-m", "+n", "-n", "+b *!x*@*", "-b *!x*@*", "+o"]),
              st.integers(0, 31)),
    st.tuples(st.just("say"), st.sampled_from(CHANNELS)),
    st.tuples(st.just("dm"), st.integers(0, 31)),
)
action = st.one_of(
    st.tuples(st.just("send"), st.integers(0, 31), command),
    st.tuples(st.just("apply"), st.integers(0, 15), st.integers(1, 40)),
    st.tuples(st.just("apply"), st.integers(0, 15), st.just(1 << 30)),
    st.tuples(st.just("send"), st.integers(0, 31), st.tuples(st.just("say"),
                                                           st.sampled_from(CHANNELS))),
    st.tuples(st.just("send"), st.integers(0, 31), st.tuples(st.just("dm"),
                                                           st.integers(0, 31))),
)


def event_key(msg) -> tuple[str, ...]:
    """An event's identity: a message's msgid, else the line with its server-time."""
    if msg.command in ("PRIVMSG", "NOTICE") and "msgid" in msg.tags:
        return ("msgid", msg.tags["msgid"])
    return (msg.tags.get("time", ""), msg.source or "", msg.command, *msg.params)


def channel_of(msg) -> str | None:
    if msg.command in ("JOIN", "PART", "KICK", "MODE", "PRIVMSG", "NOTICE", "TOPIC") and msg.params:
        return msg.params[0].lower() if msg.params[0].startswith("#") else None
    return None


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(n_nodes=st.integers(8, 16), per_node=st.integers(1, 2),
       actions=st.lists(action, min_size=10, max_size=120))
def test_random_interleavings_on_8_to_16_replicas_keep_one_order_per_channel(
        tmp_path_factory, n_nodes, per_node, actions):
    store = AccountStore(SQLiteAccountRows(tmp_path_factory.mktemp("db") / "db"),
                         time_cost=1, memory_cost=1024)
    try:
        net = MemoryLog(store)
        servers = nodes(net, n_nodes)
        conns = []
        for i in range(n_nodes * per_node):
            conn = user(net, servers[i % n_nodes], f"u{i}")
            conn.send("CAP REQ :server-time message-tags echo-message")
            conns.append(conn)
        net.pump()
        for conn in conns:
            conn.take()
        log: dict[int, list] = {i: [] for i in range(len(conns))}
        said = 0
        for kind, who, what in actions:
            if kind == "apply":
                port = net.ports[who % n_nodes]
                net.step(port, what)
            else:
                i = who % len(conns)
                conn = conns[i]
                if conn.client.quitting:
                    continue
                nick = conn.client.nick
                verb = what[0]
                if verb == "join":
                    conn.send(f"JOIN {what[1]}")
                elif verb == "part":
                    conn.send(f"PART {what[1]}")
                elif verb == "kick":
                    conn.send(f"KICK {what[1]} {conns[what[2] % len(conns)].client.nick}")
                elif verb == "nick":
                    conn.send(f"NICK {nick.split('_')[0]}_{what[1]}")
                elif verb == "mode":
                    arg = conns[what[3] % len(conns)].client.nick if what[2] == "+o" else ""
                    conn.send(f"MODE {what[1]} {what[2]} {arg}".strip())
                elif verb == "say":
                    said += 1
                    conn.send(f"PRIVMSG {what[1]} :m{said}")
                else:
                    said += 1
                    conn.send(f"PRIVMSG {conns[what[1] % len(conns)].client.nick} :d{said}")
            for j, c in enumerate(conns):
                log[j].extend(c.take())
        net.pump()
        for j, c in enumerate(conns):
            log[j].extend(c.take())
        # Every replica holds the same world.
        first = world_of(servers[0])
        assert all(world_of(s) == first for s in servers[1:])
        # Per channel, the events two members both saw come in one order for both.
        for chan in CHANNELS:
            seqs = [[event_key(m) for m in log[j] if channel_of(m) == chan] for j in log]
            for a in range(len(seqs)):
                for b in range(a + 1, len(seqs)):
                    common = set(seqs[a]) & set(seqs[b])
                    in_a = [k for k in seqs[a] if k in common]
                    in_b = [k for k in seqs[b] if k in common]
                    assert in_a == in_b, (chan, a, b)
    finally:
        store.close()


def test_an_inbox_trimmed_past_unread_entries_makes_the_node_rejoin(store):
    """The Redis edge checks each inbox entry's offset as it checks the stream's."""
    from ircd.cluster.log import pack
    from ircd.cluster.redis import RedisLog
    from ircd.config import Config
    from ircd.core import ImmediateScheduler, Server
    from ircd.worldlog import EntryClock

    server = Server(Config(), store, ImmediateScheduler(), clock=EntryClock(lambda: 1e9))
    edge = RedisLog(server, "redis://127.0.0.1:1/0", "n1", 10)   # never connects here
    resets: list[str] = []
    edge.reset = resets.append  # type: ignore[method-assign]

    def entry(offset: int) -> dict[bytes, bytes]:
        return {b"p": b"0-0", b"n": b"1", b"t": b"1000", b"b": pack([]), b"o": b"%d" % offset}

    edge._apply_routed(b"5-0", entry(1))
    edge._apply_routed(b"6-0", entry(2))
    assert resets == [] and edge.inbox_id == "6-0"
    edge._apply_routed(b"9-0", entry(5))          # 3 and 4 were trimmed unread
    assert resets == ["inbox entries missed"] and edge.inbox_id == "6-0"


def test_a_paused_sender_resumes_once_per_applied_batch_and_its_lines_are_not_parsed_again(
        store, monkeypatch):
    """The edge applies what it read between ``begin_batch`` and ``end_batch``: a
    session paused at MAX_IN_FLIGHT resumes once, at the end, not once per line;
    its node applies its lines from the Message parsed when they arrived."""
    from ircd.cluster import log as cluster_log

    net = MemoryLog(store)
    n1, n2 = nodes(net, 2)
    alice, bob = user(net, n1, "alice"), user(net, n2, "bob")
    net.pump()
    session = alice.client.session
    resumed: list[object] = []
    monkeypatch.setattr(type(session), "resume", lambda self: resumed.append(self))
    parsed: list[object] = []
    real_parse = cluster_log.parse_line
    monkeypatch.setattr(cluster_log, "parse_line",
                        lambda *a, **k: parsed.append(a) or real_parse(*a, **k))
    for i in range(cluster_log.MAX_IN_FLIGHT):
        alice.send(f"PRIVMSG bob :m{i}")
    assert session.pending and session.in_flight == cluster_log.MAX_IN_FLIGHT
    net.step(net.ports[0], 1 << 30)              # alice's node applies one batch
    assert [s for s in resumed if s is session] == [session]
    assert not session.pending and session.in_flight == 0
    assert parsed == []
    net.pump()
    assert [p[1] for _, p in privmsgs(bob)] == [f"m{i}" for i in range(cluster_log.MAX_IN_FLIGHT)]
    assert len(parsed) == cluster_log.MAX_IN_FLIGHT   # bob's node parses each line once
