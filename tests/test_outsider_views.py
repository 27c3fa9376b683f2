"""What an outsider learns of a secret channel, and small target rules (found by an
outside attack on the running server; docs/protocol.md "Secret channels", PRIVMSG).

Real server, raw sockets; every refused line is checked for its exact answer."""

from __future__ import annotations

import pytest

from tests.rawusers import until_pong
from tests.support import RawClient, command_of, config_with

pytestmark = pytest.mark.timeout(60)

FAST = config_with(limits={"flood_burst": 400, "flood_rate": 200.0})


def answers(c: RawClient, line: str | None) -> list[str]:
    """Every line ``c`` gets for ``line`` (up to the PONG of a PING sent after it)."""
    if line is not None:
        c.send(line)
    return until_pong(c)


def user(port: int, nick: str) -> RawClient:
    c = RawClient(port)
    c.register(nick)
    answers(c, None)
    return c


def test_a_secret_channel_is_no_such_channel_to_outsiders_for_every_command(server_factory):
    srv = server_factory(config_text=FAST)
    bob, eve = user(srv.port, "bob"), user(srv.port, "eve")
    answers(bob, "JOIN #sec")
    answers(bob, "MODE #sec +sk key")
    answers(bob, "MODE #sec +b bad!*@*")
    answers(bob, "TOPIC #sec :the plan")
    for line in ("MODE #sec", "MODE #sec b", "MODE #sec +o eve", "TOPIC #sec",
                 "TOPIC #sec :mine", "PART #sec", "KICK #sec bob", "INVITE eve #sec"):
        got = answers(eve, line)
        assert [command_of(x) for x in got] == ["403"], (line, got)
        assert "bad!" not in got[0] and "plan" not in got[0]
    # The same answers as for a channel that does not exist at all.
    assert [command_of(x) for x in answers(eve, "MODE #nothere")] == ["403"]
    # Members still see everything.
    got = answers(bob, "MODE #sec")
    assert command_of(got[0]) == "324" and "s" in got[0].split()[4], got
    assert any("bad!*@*" in x for x in answers(bob, "MODE #sec b"))
    # And a public channel is as before: 442 for a non-member.
    answers(bob, "JOIN #pub")
    assert [command_of(x) for x in answers(eve, "TOPIC #pub :x")] == ["442"]


def test_each_target_once_and_no_status_prefix_on_a_nick(server_factory):
    srv = server_factory(config_text=FAST)
    alice, bob = user(srv.port, "alice"), user(srv.port, "bob")
    answers(alice, "PRIVMSG bob,BOB,bob :once")
    got = answers(bob, None)
    assert [x for x in got if "PRIVMSG" in x] == [":alice!alice@127.0.0.1 PRIVMSG bob :once"]
    got = answers(alice, "PRIVMSG @bob :status")
    assert [command_of(x) for x in got] == ["401"] and " @bob " in got[0], got
    assert not [x for x in answers(bob, None) if "PRIVMSG" in x]


def test_a_channel_limit_must_be_a_32_bit_ascii_number(server_factory):
    srv = server_factory(config_text=FAST)
    op = user(srv.port, "op")
    answers(op, "JOIN #lim")
    for bad in ("99999999999999999999", "2147483648", "²", "0", "-1"):
        got = answers(op, f"MODE #lim +l {bad}")
        assert [command_of(x) for x in got] == ["696"], (bad, got)
    got = answers(op, "MODE #lim +l 2147483647")
    assert [command_of(x) for x in got] == ["MODE"], got
