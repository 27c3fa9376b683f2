"""Users and sessions (ircd.state): a user is an identity with zero or more
sessions (connections) on this node; delivery fans out to the sessions, and
what is per connection (capabilities, CAP state, replies) belongs to the
session that sent the line."""

from __future__ import annotations

import pytest

from ircd.accounts import AccountStore
from ircd.config import Config
from ircd.core import ImmediateScheduler, Server
from ircd.events import Event
from ircd.net import Connection
from ircd.state import EMPTY_MAP, EMPTY_SET, NO_SESSION, CallbackSession, Session, User
from ircd.storage.sqlite import SQLiteAccountRows
from tests.test_cluster_unit import MemoryLog
from tests.test_cluster_unit import user as cluster_user
from tests.test_core import Conn, FakeClock

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def store(tmp_path):
    s = AccountStore(SQLiteAccountRows(tmp_path / "db"), time_cost=1, memory_cost=1024)
    yield s
    s.close()


@pytest.fixture
def server(store):
    cfg = (Config().with_overrides("server", autojoin=[])
           .with_overrides("simple", echobot=False).with_overrides("services", enabled=False))
    return Server(cfg, store, ImmediateScheduler(), clock=FakeClock())


def registered(server: Server, nick: str, *caps: str) -> Conn:
    conn = Conn(server)
    if caps:
        conn.send(f"CAP REQ :{' '.join(caps)}")
    conn.send(f"NICK {nick}", f"USER {nick} 0 * :{nick}")
    if caps:
        conn.send("CAP END")
    assert conn.client.registered, conn.take_raw()
    conn.take()
    return conn


def test_a_user_with_no_session_receives_nothing_and_costs_nothing(server):
    ghost = User(9999, "192.0.2.1", now=0.0)
    assert ghost.sessions == () and ghost.session is None
    # Nothing of its own until something is stored: the shared empty containers.
    assert ghost.modes is EMPTY_SET and ghost.channels is EMPTY_MAP
    assert ghost.invites is EMPTY_MAP and ghost.monitoring is EMPTY_MAP
    assert not hasattr(ghost, "__dict__")
    ghost.set_nick("ghost")
    ghost.user = "ghost"
    ghost.registered = True
    ghost.update_source()
    server.world.add_user(ghost)
    alice = registered(server, "alice")
    alice.send("JOIN #room")
    chan = server.world.find_channel("#room")
    server.world.join(ghost, chan)
    assert chan.local_sessions() == [alice.client.session]
    alice.take()
    alice.send("PRIVMSG #room :hello", "PRIVMSG ghost :hi")
    assert [m.command for m in alice.take()] == []   # delivered, nothing comes back
    ghost.write(b"PING :x\r\n")                      # fans out to no session: a no-op
    Event(":x PRIVMSG ghost :y", 0.0).send_to([ghost])
    ghost.close("gone")


def test_each_session_of_a_user_gets_a_delivery_in_its_own_tags(server):
    alice = registered(server, "alice")
    bob = registered(server, "bob")
    tagged: list[bytes] = []
    second = CallbackSession(tagged.append)
    second.caps = frozenset({"server-time"})
    second.tagmask = 2
    bob.client.attach(second)
    assert bob.client.session is None and len(bob.client.sessions) == 2
    alice.send("PRIVMSG bob :two devices")
    plain = [m for m in bob.take() if m.command == "PRIVMSG"]
    assert [m.params for m in plain] == [["bob", "two devices"]] and not plain[0].tags
    assert len(tagged) == 1 and tagged[0].startswith(b"@time=")
    bob.client.detach(second)
    assert bob.client.session is bob.client.sessions[0]


def test_capabilities_belong_to_the_session_not_the_user(server):
    alice = registered(server, "alice", "echo-message")
    session = alice.client.session
    assert "echo-message" in session.caps
    assert not hasattr(alice.client, "caps")
    assert session.user is alice.client
    alice.send("CAP REQ :-echo-message")
    assert "echo-message" not in session.caps


def test_a_user_whose_session_closes_leaves_and_gets_nothing_more(server):
    alice = registered(server, "alice")
    bob = registered(server, "bob")
    for conn in (alice, bob):
        conn.send("JOIN #room")
    chan = server.world.find_channel("#room")
    assert chan.local_sessions() == [alice.client.session, bob.client.session]
    alice.take()
    server.quit(bob.client, "Connection closed")
    assert bob.closed == ["Connection closed"]
    assert chan.local_sessions() == [alice.client.session]
    quits = [m for m in alice.take() if m.command == "QUIT"]
    assert len(quits) == 1
    bob.take()
    alice.send("PRIVMSG #room :after")
    assert bob.take() == []


def test_a_user_on_another_node_is_a_user_with_no_session_here(store):
    net = MemoryLog(store)
    n1, n2 = net.node(1, "n1"), net.node(2, "n2")
    alice, bob = cluster_user(net, n1, "alice"), cluster_user(net, n2, "bob")
    remote = n1.world.find_user("bob")
    assert remote is not None and remote is not bob.client
    assert remote.sessions == () and remote.session is None
    assert not n1.is_local(remote) and n1.is_local(alice.client)
    for conn in (alice, bob):
        conn.send("JOIN #room")
        net.pump()
    chan = n1.world.find_channel("#room")
    assert chan.local_sessions() == [alice.client.session]   # n2 delivers to bob
    alice.take()
    bob.take()
    alice.send("PRIVMSG bob :across", "PRIVMSG #room :all")
    net.pump()
    got = [(m.command, m.params) for m in bob.take()]
    assert got == [("PRIVMSG", ["bob", "across"]), ("PRIVMSG", ["#room", "all"])]
    assert alice.take() == []


def test_a_connection_is_a_session_with_slots_only():
    assert issubclass(Connection, Session)
    # No per-connection __dict__ anywhere in the class chain (memory per idle connection).
    assert all("__dict__" not in vars(cls) for cls in Connection.__mro__ if cls is not object)
    assert all("__dict__" not in vars(cls) for cls in User.__mro__ if cls is not object)


def test_the_session_of_a_command_from_no_connection_keeps_nothing():
    """A remote user's command applied here runs with NO_SESSION: one shared
    object, so nothing a handler sets on it may stick."""
    NO_SESSION.pending = True
    NO_SESSION.caps = frozenset({"echo-message"})
    NO_SESSION.write(b"lost\r\n")
    assert NO_SESSION.pending is False and NO_SESSION.caps == frozenset()
    assert NO_SESSION.user is None and NO_SESSION.tagmask == 0
