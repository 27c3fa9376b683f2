"""No user input makes the server do super-linear work (issue 19), against the real server.

Each test has a victim with the longest nick (30 characters) and realname
(100 characters) of one repeated letter, an attacker sending a mask that a
backtracking matcher needs forever for (``*a*a*...*a*b``), and a bystander
whose PING must still be answered within 2 s: the event loop never stalls.
"""

from __future__ import annotations

import time

from tests.rawusers import chats, numerics, params, until_pong, user
from tests.support import command_of

LONG_NICK = "a" * 30
LONG_REALNAME = "a" * 100
EVIL = "*a" * 40 + "*b"  # matches nothing here; exponential for a backtracking regex


def _pong_within(c, seconds: float) -> None:
    start = time.monotonic()
    c.send("PING :alive")
    c.expect(lambda line: command_of(line) == "PONG" and line.endswith("alive"), timeout=seconds)
    assert time.monotonic() - start < seconds


def _three(port):
    victim = user(port, LONG_NICK, realname=LONG_REALNAME)
    mallory = user(port, "mallory")
    carol = user(port, "carol")
    for c in (victim, mallory):
        until_pong(c)  # the later JOINs of #general
    return victim, mallory, carol


def test_adversarial_who_mask_leaves_the_server_responsive_and_gets_its_315(server):
    victim, mallory, carol = _three(server.port)
    mallory.send(f"WHO {EVIL}")
    time.sleep(0.3)  # ordering only: the WHO is read before carol's PING
    _pong_within(carol, 2.0)
    lines = until_pong(mallory)
    assert numerics(lines) == ["315"], lines
    assert params(lines[0])[1] == EVIL
    # The same kind of mask that does match is answered with the victim's 352.
    mallory.send("WHO " + "*a" * 40 + "*")
    lines = until_pong(mallory)
    assert numerics(lines) == ["352", "315"], lines
    assert params(lines[0])[5] == LONG_NICK and params(lines[0])[-1] == "0 " + LONG_REALNAME
    chats(carol, victim, "carol", LONG_NICK)
    chats(victim, carol, LONG_NICK, "carol")


def test_adversarial_ban_mask_then_join_and_privmsg_by_a_long_nick_user(server):
    victim, mallory, carol = _three(server.port)
    mallory.send("JOIN #adv")
    mallory.expect(lambda line: command_of(line) == "366")
    mallory.send(f"MODE #adv +b {EVIL}")
    mode = mallory.expect(lambda line: command_of(line) == "MODE")
    assert params(mode) == ["#adv", "+b", EVIL + "!*@*"]
    victim.send("JOIN #adv")
    time.sleep(0.3)
    _pong_within(carol, 2.0)
    victim.expect(lambda line: command_of(line) == "366" and "#adv" in line)
    mallory.expect(lambda line: command_of(line) == "JOIN" and line.startswith(f":{LONG_NICK}!"))
    victim.send("PRIVMSG #adv :not banned, long nick")
    got = mallory.expect(lambda line: command_of(line) == "PRIVMSG")
    assert got.startswith(f":{LONG_NICK}!") and got.endswith(":not banned, long nick")
    assert until_pong(victim) == []  # no 404
    # A mask of the same shape that matches bans the victim from another channel.
    mallory.send("JOIN #adv2")
    mallory.expect(lambda line: command_of(line) == "366" and "#adv2" in line)
    mallory.send("MODE #adv2 +b " + "*a" * 30)  # all 30 letters of the nick
    mallory.expect(lambda line: command_of(line) == "MODE" and "#adv2" in line)
    victim.send("JOIN #adv2")
    assert numerics(until_pong(victim)) == ["474"]
    chats(carol, victim, "carol", LONG_NICK)


def test_adversarial_list_mask_leaves_the_server_responsive(server):
    victim, mallory, carol = _three(server.port)
    long_channel = "#" + "a" * 60
    victim.send(f"JOIN {long_channel}")
    victim.expect(lambda line: command_of(line) == "366")
    mallory.send(f"LIST {EVIL}")
    time.sleep(0.3)
    _pong_within(carol, 2.0)
    assert numerics(until_pong(mallory)) == ["321", "323"]
    mallory.send("LIST " + "*a" * 40 + "*,!" + EVIL)
    lines = until_pong(mallory)
    assert numerics(lines) == ["321", "322", "323"], lines
    assert params(lines[1])[1] == long_channel
    chats(carol, victim, "carol", LONG_NICK)
