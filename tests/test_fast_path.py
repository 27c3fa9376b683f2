"""The direct-message fast path writes exactly what the general PRIVMSG path writes.

``relay_direct_fast`` (ircd/commands/messaging.py) relays plain DMs straight
from bytes; anything it does not handle must be left to the general path.
These tests feed the same lines to both and compare the bytes the target
receives, and check that every case the fast path must decline is declined.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ircd.accounts import AccountStore
from ircd.commands import dispatch
from ircd.commands.messaging import relay_direct_fast
from ircd.config import Config
from ircd.core import ImmediateScheduler, Server
from ircd.history import HistoryStore
from ircd.protocol.message import MessageParseError, parse_line
from ircd.state import CallbackSession
from ircd.storage.sqlite import SQLiteAccountRows, SQLiteHistoryDisk


class World:
    def __init__(self, tmp_path, history: bool = False) -> None:
        db = tmp_path / "db"
        self.core = Server(Config(), AccountStore(SQLiteAccountRows(db), time_cost=1,
                                                  memory_cost=1024),
                           ImmediateScheduler(),
                           history=HistoryStore(SQLiteHistoryDisk(db)) if history else None)
        self.out: dict[str, list[bytes]] = {}

    def user(self, nick: str, *lines: bytes):
        out = self.out.setdefault(nick, [])
        client = self.core.new_client(CallbackSession(out.append, lambda reason: None), "127.0.0.1")
        for line in (f"NICK {nick}".encode(), b"USER u 0 * :U", *lines):
            self.core.handle_line(client.session, line)
        out.clear()
        return client


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    w.alice = w.user("alice")
    w.bob = w.user("Bob[1]")
    return w


def general_path(world: World, line: bytes) -> bytes:
    reply = dispatch(world.core, world.alice, parse_line(line), world.alice.session)
    assert not reply.numerics(), reply.lines
    return b"".join(world.out["Bob[1]"])


def fast_path(world: World, line: bytes) -> bytes:
    assert relay_direct_fast(world.core, world.alice.session, line), line
    return b"".join(world.out["Bob[1]"])


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters(blacklist_characters="\r\n\0", blacklist_categories=("Cs",)),
                    min_size=1, max_size=120),
       target=st.sampled_from(["Bob[1]", "bob{1}", "BOB[1]", "bOb{1]"]))
def test_fast_path_writes_the_same_bytes_as_the_general_path(tmp_path_factory, text, target):
    world = World(tmp_path_factory.mktemp("fp"))
    world.alice = world.user("alice")
    world.bob = world.user("Bob[1]")
    line = f"PRIVMSG {target} :{text}".encode()
    if len(line) > 510:
        return
    try:
        parse_line(line)
    except MessageParseError:
        return
    slow = general_path(world, line)
    world.out["Bob[1]"].clear()
    assert fast_path(world, line) == slow


@pytest.mark.parametrize("line", [
    b"PRIVMSG #general :hi",            # a channel
    b"PRIVMSG Bob[1],alice :hi",        # several targets
    b"PRIVMSG @Bob[1] :hi",             # a status prefix
    b"PRIVMSG nobody :hi",              # offline: the general path answers 401
    b"PRIVMSG Bob[1] :",                # no text: 412
    b"PRIVMSG Bob[1] hi",               # no trailing parameter
    b"PRIVMSG Bob[1] :a\rb",            # CR is removed by the general path
    b"PRIVMSG Bob[1] :a\x00b",          # NUL likewise
    b"PRIVMSG Bob[1] :\xff\xfe",        # invalid UTF-8: refused there (UTF8ONLY)
    b"PRIVMSG Bob[1] :" + b"x" * 500,   # over 510 bytes: 417
])
def test_fast_path_declines_what_the_general_path_must_handle(world, line):
    assert relay_direct_fast(world.core, world.alice.session, line) is False
    assert world.out["Bob[1]"] == []


def test_fast_path_declines_for_tags_echo_away_and_history(tmp_path):
    w = World(tmp_path)
    alice = w.user("alice")
    w.user("tagged", b"CAP REQ :server-time")
    w.user("away", b"AWAY :gone")
    echoer = w.user("echoer", b"CAP REQ :echo-message")
    w.user("plain")
    assert not relay_direct_fast(w.core, alice.session, b"PRIVMSG tagged :hi")
    assert not relay_direct_fast(w.core, alice.session, b"PRIVMSG away :hi")
    assert not relay_direct_fast(w.core, echoer.session, b"PRIVMSG plain :hi")
    assert relay_direct_fast(w.core, alice.session, b"PRIVMSG plain :hi")
    unregistered = w.core.new_client(CallbackSession(lambda data: None), "127.0.0.1")
    assert not relay_direct_fast(w.core, unregistered.session, b"PRIVMSG plain :hi")

    h = World(tmp_path / "h", history=True)
    a = h.user("acct1")
    a.account = "acct1"
    b = h.user("acct2")
    b.account = "acct2"
    assert not relay_direct_fast(h.core, a.session, b"PRIVMSG acct2 :recorded in the history")
    guest = h.user("guest")
    assert relay_direct_fast(h.core, guest.session, b"PRIVMSG acct2 :not recorded")
