"""Channel moderation through the real server: +e, +I, the m: mute extban, user mode +B.

RFC 2811 sections 4.3.1-4.3.3, "Modern IRC" (EXCEPTS, INVEX, EXTBAN), IRCv3
bot-mode. alice creates #mod (so she is its operator), bob and carol join.
"""

from __future__ import annotations

import pytest

from tests.rawusers import WITH_ECHOBOT_TOML, chats, numerics, params, until_pong, user
from tests.support import command_of

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def room(server) -> dict:
    """alice (op of #mod), bob and carol, all in #mod; each client's backlog read."""
    clients = {nick: user(server.port, nick) for nick in ("alice", "bob", "carol")}
    alice = clients["alice"]
    alice.send("JOIN #mod")
    alice.expect(lambda line: command_of(line) == "366" and "#mod" in line)
    for nick in ("bob", "carol"):
        clients[nick].send("JOIN #mod")
        clients[nick].expect(lambda line: command_of(line) == "366" and "#mod" in line)
    for c in clients.values():
        until_pong(c)
    yield clients
    for nick in ("alice", "bob", "carol"):
        clients[nick].close()


def _mode(room, line: str, by: str = "alice") -> list[str]:
    """``by`` sends ``line``; return what ``by`` got back. Every other member's
    backlog is read, except that each other client's lines are kept in ``room["seen"]``."""
    op = room[by]
    op.send(line)
    lines = until_pong(op)
    room["seen"] = {nick: until_pong(c) for nick, c in room.items()
                    if nick not in (by, "seen")}
    return lines


def _say(c, text: str) -> list[str]:
    c.send(f"PRIVMSG #mod :{text}")
    return until_pong(c)


def _received(c, text: str) -> bool:
    return any(command_of(line) == "PRIVMSG" and line.endswith(f":{text}") for line in until_pong(c))


def test_isupport_advertises_the_list_modes_and_extbans(server):
    c = user(server.port, "amy", autojoin=False)
    tokens = " ".join(line for line in c.lines if command_of(line) == "005").split()
    for token in ("CHANMODES=beI,k,l,imnst", "EXCEPTS=e", "INVEX=I", "EXTBAN=,m", "BOT=B",
                  "MAXLIST=b:100,e:100,I:100"):
        assert token in tokens
    myinfo = next(line for line in c.lines if command_of(line) == "004")
    assert myinfo.split()[-3:] == ["Biow", "beIiklmnostv", "beIklov"]


def test_ban_exception_lets_a_banned_user_join(room):
    bob = room["bob"]
    bob.send("PART #mod")
    until_pong(bob)
    _mode(room, "MODE #mod +b bob!*@*")
    bob.send("JOIN #mod")
    assert "474" in numerics(until_pong(bob))
    lines = _mode(room, "MODE #mod +e bob!*@*")
    assert any(line.endswith("MODE #mod +e bob!*@*") for line in lines)
    bob.send("JOIN #mod")
    joined = until_pong(bob)
    assert any(command_of(line) == "JOIN" and line.startswith(":bob!") for line in joined)
    assert "474" not in numerics(joined)
    # the exception also lifts the ban's "cannot speak" for a member
    assert "404" not in numerics(_say(bob, "excepted"))
    assert _received(room["carol"], "excepted")


def test_exception_and_invite_lists_are_shown_to_anyone(room):
    bob = room["bob"]
    _mode(room, "MODE #mod +eI carol!*@* *!*@trusted.example")
    bob.send("MODE #mod e")
    lines = until_pong(bob)
    assert numerics(lines) == ["348", "349"]
    assert params(lines[0])[1:4] == ["#mod", "carol!*@*", "alice!alice@127.0.0.1"]
    assert params(lines[0])[4].isdigit()
    bob.send("MODE #mod I")
    lines = until_pong(bob)
    assert numerics(lines) == ["346", "347"]
    assert params(lines[0])[1:3] == ["#mod", "*!*@trusted.example"]
    assert "482" not in numerics(lines)


def test_non_operator_cannot_set_exceptions(room):
    alice, bob = room["alice"], room["bob"]
    lines = _mode(room, "MODE #mod +e bob!*@*", by="bob")
    assert numerics(lines) == ["482"]
    bob.send("MODE #mod e")
    assert numerics(until_pong(bob)) == ["349"]  # nothing was added
    assert not any("MODE #mod" in line for line in room["seen"]["alice"])
    chats(alice, bob, "alice", "bob")


def test_invite_exception_lets_a_matching_user_into_an_invite_only_channel(room):
    bob, carol = room["bob"], room["carol"]
    for c in (bob, carol):
        c.send("PART #mod")
        until_pong(c)
    _mode(room, "MODE #mod +i")
    bob.send("JOIN #mod")
    assert "473" in numerics(until_pong(bob))
    _mode(room, "MODE #mod +I bob!*@*")
    bob.send("JOIN #mod")
    assert any(command_of(line) == "366" for line in until_pong(bob))
    carol.send("JOIN #mod")  # the exception is bob's only
    assert "473" in numerics(until_pong(carol))


def test_removing_an_exception_brings_the_ban_back(room):
    bob = room["bob"]
    _mode(room, "MODE #mod +be bob!*@* bob!*@*")
    assert "404" not in numerics(_say(bob, "one"))
    lines = _mode(room, "MODE #mod -e bob!*@*")
    assert any(line.endswith("MODE #mod -e bob!*@*") for line in lines)
    assert "404" in numerics(_say(bob, "two"))


def test_muted_member_cannot_speak_but_others_can(room):
    alice, bob, carol = room["alice"], room["bob"], room["carol"]
    lines = _mode(room, "MODE #mod +b m:bob")
    assert any(line.endswith("MODE #mod +b m:bob!*@*") for line in lines)
    assert any(line.endswith("MODE #mod +b m:bob!*@*") for line in room["seen"]["carol"])
    assert numerics(_say(bob, "muted words")) == ["404"]
    assert not _received(carol, "muted words")
    assert not _received(alice, "muted words")
    _say(carol, "carol still talks")
    assert _received(alice, "carol still talks")
    chats(bob, carol, "bob", "carol")  # a mute is about the channel only


def test_muted_user_can_still_join(room):
    bob = room["bob"]
    _mode(room, "MODE #mod +b m:bob!*@*")
    bob.send("PART #mod")
    until_pong(bob)
    bob.send("JOIN #mod")
    lines = until_pong(bob)
    assert "474" not in numerics(lines)
    assert any(command_of(line) == "366" and "#mod" in line for line in lines)
    assert numerics(_say(bob, "still muted")) == ["404"]


def test_voice_lifts_a_mute(room):
    bob, carol = room["bob"], room["carol"]
    _mode(room, "MODE #mod +b m:bob!*@*")
    _mode(room, "MODE #mod +v bob")
    assert "404" not in numerics(_say(bob, "voiced"))
    assert _received(carol, "voiced")
    _mode(room, "MODE #mod -v bob")
    assert numerics(_say(bob, "unvoiced")) == ["404"]


def test_mute_exception_lifts_a_mute_but_not_a_ban(room):
    bob, carol = room["bob"], room["carol"]
    _mode(room, "MODE #mod +be m:bob!*@* m:bob!*@*")
    assert "404" not in numerics(_say(bob, "exempt from mute"))
    assert _received(carol, "exempt from mute")
    _mode(room, "MODE #mod +b bob!*@*")  # a real ban: the mute exception does not cover it
    assert numerics(_say(bob, "banned now")) == ["404"]


def test_mute_list_entries_show_in_the_ban_list(room):
    carol = room["carol"]
    _mode(room, "MODE #mod +b m:*!*@spam.example")
    carol.send("MODE #mod b")
    lines = until_pong(carol)
    assert numerics(lines) == ["367", "368"]
    assert params(lines[0])[2] == "m:*!*@spam.example"


@pytest.mark.parametrize("bad", ["x:bob", "m:", ":"])
def test_bad_list_masks_get_696_and_change_nothing(room, bad):
    alice, bob, carol = room["alice"], room["bob"], room["carol"]
    lines = _mode(room, f"MODE #mod +b {bad}")
    assert numerics(lines) == ["696"]
    assert params(lines[0])[1:3] == ["#mod", "b"]
    alice.send("MODE #mod b")
    assert numerics(until_pong(alice)) == ["368"]
    assert not any("MODE #mod" in line for line in room["seen"]["carol"])
    _say(bob, "after the bad mask")
    assert _received(carol, "after the bad mask")


def test_bot_mode_shows_in_whois_who_and_mode(room):
    alice, bob = room["alice"], room["bob"]
    bob.send("MODE bob +B")
    assert any(line.endswith("MODE bob :+B") for line in until_pong(bob))
    bob.send("MODE bob")
    assert any(command_of(line) == "221" and "B" in params(line)[1] for line in until_pong(bob))
    alice.send("WHOIS bob")
    lines = until_pong(alice)
    bot = [line for line in lines if command_of(line) == "335"]
    assert len(bot) == 1 and params(bot[0])[1] == "bob"
    alice.send("WHO #mod")
    flags = {params(line)[5]: params(line)[6] for line in until_pong(alice)
             if command_of(line) == "352"}
    assert "B" in flags["bob"] and "B" not in flags["alice"]
    alice.send("WHO bob %nf")
    assert any(command_of(line) == "354" and params(line)[1:] == ["bob", "HB"]
               for line in until_pong(alice))
    bob.send("MODE bob -B")
    until_pong(bob)
    alice.send("WHOIS bob")
    assert "335" not in numerics(until_pong(alice))


def test_bot_messages_carry_the_bot_tag_for_message_tags_clients(server):
    tagged = user(server.port, "tagged", caps=("message-tags",))
    plain = user(server.port, "plain")
    bot = user(server.port, "botty")
    bot.send("MODE botty +B")
    until_pong(bot)
    until_pong(tagged)
    until_pong(plain)
    bot.send("PRIVMSG #general :beep")
    until_pong(bot)  # handled (and delivered) once its PONG is back
    got = next(line for line in until_pong(tagged) if line.endswith("PRIVMSG #general :beep"))
    tags = got.split(" ", 1)[0][1:].split(";")
    assert "bot" in tags
    plain_line = next(line for line in until_pong(plain) if line.endswith("PRIVMSG #general :beep"))
    assert not plain_line.startswith("@")
    bot.send("NOTICE tagged :boop")
    until_pong(bot)  # handled (and delivered) once its PONG is back
    got = next(line for line in until_pong(tagged) if line.endswith("NOTICE tagged :boop"))
    assert "bot" in got.split(" ", 1)[0][1:].split(";")
    # a user who is not a bot sends no bot tag
    plain.send("PRIVMSG #general :human")
    until_pong(plain)  # handled (and delivered) once its PONG is back
    got = next(line for line in until_pong(tagged) if line.endswith("PRIVMSG #general :human"))
    assert "bot" not in got.split(" ", 1)[0][1:].split(";")


def test_echobot_is_a_bot(server_factory):
    srv = server_factory(config_text=WITH_ECHOBOT_TOML)
    amy = user(srv.port, "amy")
    amy.send("WHOIS echobot")
    assert "335" in numerics(until_pong(amy))
