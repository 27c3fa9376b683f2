"""WHOWAS (RFC 2812 section 3.6.3) through the real server, and the bounded log it reads.

The server remembers the last ``[server] whowas_length`` nick changes and
quits; WHOWAS answers 314 + 312 per entry, newest first, 406 only when there
is none, and 369 at the end.
"""

from __future__ import annotations

import pytest

from ircd.whowas import WhowasEntry, WhowasLog
from tests.rawusers import chats, numerics, params, until_pong, user
from tests.support import command_of, config_with

pytestmark = pytest.mark.timeout(60)


def _gone(port: int, nick: str, realname: str) -> None:
    """Connect ``nick`` with ``realname``, then QUIT and wait for the server to close."""
    c = user(port, nick, realname=realname, autojoin=False)
    c.send("QUIT :bye")
    assert c.closed_by_server()
    c.close()


def _whowas(c, line: str) -> list[str]:
    """The numerics ``c`` gets for ``line`` (JOIN/QUIT lines of the others left out)."""
    until_pong(c)
    c.send(line)
    return [x for x in until_pong(c) if command_of(x).isdigit()]


def test_whowas_after_a_quit_gives_314_312_369(server):
    amy = user(server.port, "amy")
    _gone(server.port, "bob", "Bob Builder")
    lines = _whowas(amy, "WHOWAS bob")
    assert numerics(lines) == ["314", "312", "369"]
    assert params(lines[0]) == ["amy", "bob", "bob", "127.0.0.1", "*", "Bob Builder"]
    assert params(lines[1])[:3] == ["amy", "bob", "irc.chatserver.local"]
    assert params(lines[2])[:2] == ["amy", "bob"]


def test_whowas_remembers_the_old_nick_after_a_nick_change(server):
    amy = user(server.port, "amy")
    bob = user(server.port, "bob", realname="Robert")
    bob.send("NICK rob")
    bob.expect(lambda line: command_of(line) == "NICK")
    lines = _whowas(amy, "WHOWAS bob")
    assert numerics(lines) == ["314", "312", "369"]
    assert params(lines[0])[1:] == ["bob", "bob", "127.0.0.1", "*", "Robert"]
    # the new nick is online and has no history yet
    assert numerics(_whowas(amy, "WHOWAS rob")) == ["406", "369"]


def test_several_entries_for_one_nick_come_newest_first_and_count_limits_them(server):
    amy = user(server.port, "amy")
    for realname in ("first", "second", "third"):
        _gone(server.port, "bob", realname)

    def realnames(line: str) -> list[str]:
        return [params(x)[-1] for x in _whowas(amy, line) if command_of(x) == "314"]

    assert realnames("WHOWAS bob") == ["third", "second", "first"]
    assert realnames("WHOWAS bob 1") == ["third"]
    assert realnames("WHOWAS bob 2") == ["third", "second"]
    assert realnames("WHOWAS bob 0") == ["third", "second", "first"]
    assert realnames("WHOWAS bob -1") == ["third", "second", "first"]
    assert realnames("WHOWAS BOB 1") == ["third"]  # casemapped


def test_whowas_of_a_nick_never_used_is_406_then_369(server):
    amy = user(server.port, "amy")
    bob = user(server.port, "bob")
    lines = _whowas(amy, "WHOWAS nobody")
    assert numerics(lines) == ["406", "369"]
    assert params(lines[0])[1] == "nobody"
    chats(bob, amy, "bob", "amy")


def test_whowas_of_several_nicks_answers_each(server):
    amy = user(server.port, "amy")
    _gone(server.port, "bob", "Bob")
    lines = _whowas(amy, "WHOWAS nobody,bob")
    assert numerics(lines) == ["406", "369", "314", "312", "369"]


def test_whowas_without_a_nick_is_431(server):
    amy = user(server.port, "amy")
    bob = user(server.port, "bob")
    assert numerics(_whowas(amy, "WHOWAS")) == ["431"]
    assert numerics(_whowas(amy, "WHOWAS :")) == ["431"]
    chats(amy, bob, "amy", "bob")


def test_whowas_length_bounds_the_history(server_factory):
    srv = server_factory(config_text=config_with(server={"whowas_length": 2}))
    amy = user(srv.port, "amy")
    for nick in ("one", "two", "three"):
        _gone(srv.port, nick, nick)
    assert numerics(_whowas(amy, "WHOWAS one")) == ["406", "369"]
    assert numerics(_whowas(amy, "WHOWAS two")) == ["314", "312", "369"]
    assert numerics(_whowas(amy, "WHOWAS three")) == ["314", "312", "369"]


# -- the log itself (sans-I/O) ----------------------------------------------------


def _entry(nick: str, realname: str = "r", when: float = 0.0) -> WhowasEntry:
    return WhowasEntry(nick, "u", "h", realname, "srv", when)


def test_log_returns_newest_first_and_honours_count():
    log = WhowasLog(10)
    for i in range(3):
        log.record(_entry("Bob", str(i)))
    assert [e.realname for e in log.lookup("bob")] == ["2", "1", "0"]
    assert [e.realname for e in log.lookup("BOB", 2)] == ["2", "1"]
    assert [e.realname for e in log.lookup("bob", -5)] == ["2", "1", "0"]
    assert log.lookup("nobody") == []


def test_log_forgets_the_oldest_entries_over_all_nicks():
    log = WhowasLog(3)
    for nick in ("a", "b", "a", "c"):
        log.record(_entry(nick, nick))
    assert len(log) == 3
    assert [e.nick for e in log.lookup("a")] == ["a"]  # the first "a" went
    log.record(_entry("d"))
    assert log.lookup("b") == []
    assert len(log) == 3


def test_log_resize_drops_the_oldest_and_zero_keeps_nothing():
    log = WhowasLog(5)
    for nick in "abcde":
        log.record(_entry(nick))
    log.resize(2)
    assert len(log) == 2 and log.lookup("c") == [] and log.lookup("e")
    log.resize(0)
    log.record(_entry("f"))
    assert len(log) == 0 and log.lookup("f") == []
