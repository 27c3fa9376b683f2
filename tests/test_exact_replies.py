"""Exact replies: every line a command causes, for the sender and for the others.

``RawClient.expect`` skips the lines before the one it waits for, so a
duplicated JOIN, a second 433 or a stray error numeric would go unseen
there. These tests use ``expect_only`` (tests/support.py): the next lines
must be exactly the given ones, and nothing else may come before a PING
round trip. Each bad input also checks that the other users still chat.

Replies as in RFC 2812 sections 3.1.2 (NICK), 3.2.1 (JOIN), 3.2.3 (MODE),
3.2.4 (TOPIC), 3.2.8 (KICK), 3.3.1 (PRIVMSG), 3.6.1 (WHO) and 5 (numerics).
"""

from __future__ import annotations

import re

import pytest

from tests.support import RawClient, config_with

pytestmark = pytest.mark.timeout(60)

S = ":irc.chatserver.local"


def src(nick: str) -> str:
    return f":{nick}!{nick}@127.0.0.1"


@pytest.fixture
def room(server_factory):
    """alice (channel operator), bob and carol in #room, each having seen exactly the
    lines the others' JOINs cause; no autojoin."""
    srv = server_factory(config_text=config_with(server={"autojoin": []}))
    users: list[RawClient] = []
    try:
        for nick in ("alice", "bob", "carol"):
            c = RawClient(srv.port)
            users.append(c)
            c.register(nick)
            c.expect_only()   # nothing after the end of MOTD (no autojoin)
        alice, bob, carol = users
        alice.send("JOIN #room")
        alice.expect_only(f"{src('alice')} JOIN #room", f"{S} 353 alice = #room :@alice",
                          f"{S} 366 alice #room :End of /NAMES list")
        bob.send("JOIN #room")
        bob.expect_only(f"{src('bob')} JOIN #room", f"{S} 353 bob = #room :@alice bob",
                        f"{S} 366 bob #room :End of /NAMES list")
        alice.expect_only(f"{src('bob')} JOIN #room")
        carol.send("JOIN #room")
        carol.expect_only(f"{src('carol')} JOIN #room",
                          f"{S} 353 carol = #room :@alice bob carol",
                          f"{S} 366 carol #room :End of /NAMES list")
        alice.expect_only(f"{src('carol')} JOIN #room")
        bob.expect_only(f"{src('carol')} JOIN #room")
        yield srv, alice, bob, carol
    finally:
        for c in users:
            c.close()


def still_chat(**users: RawClient) -> None:
    """Each user's (keyword: nick) message to #room reaches every other member once."""
    for nick, sender in users.items():
        sender.send(f"PRIVMSG #room :still here, {nick}")
        sender.expect_only()
        for other in users.values():
            if other is not sender:
                other.expect_only(f"{src(nick)} PRIVMSG #room :still here, {nick}")


def test_join_of_a_topic_channel_sends_topic_names_once_and_one_join_to_members(room):
    srv, alice, bob, carol = room
    alice.send("TOPIC #room :the topic")
    for c in (alice, bob, carol):
        c.expect_only(f"{src('alice')} TOPIC #room :the topic")
    carol.send("PART #room")
    for c in (alice, bob, carol):
        c.expect_only(f"{src('carol')} PART #room")
    carol.send("JOIN #room")
    carol.expect_only(f"{src('carol')} JOIN #room", f"{S} 332 carol #room :the topic",
                      re.compile(rf"{S} 333 carol #room alice!alice@127\.0\.0\.1 :\d+"),
                      f"{S} 353 carol = #room :@alice bob carol",
                      f"{S} 366 carol #room :End of /NAMES list")
    alice.expect_only(f"{src('carol')} JOIN #room")
    bob.expect_only(f"{src('carol')} JOIN #room")
    # Joining again while in the channel: no reply at all, nothing to the others.
    carol.send("JOIN #room")
    carol.expect_only()
    alice.expect_only()
    still_chat(alice=alice, bob=bob, carol=carol)


def test_privmsg_errors_are_answered_once_each(room):
    srv, alice, bob, carol = room
    alice.send("PRIVMSG nobody :hi")
    alice.expect_only(f"{S} 401 alice nobody :No such nick/channel")
    alice.send("PRIVMSG #nochan :hi")
    alice.expect_only(f"{S} 403 alice #nochan :No such channel")
    alice.send("PRIVMSG bob")
    alice.expect_only(f"{S} 412 alice :No text to send")
    alice.send("PRIVMSG")
    alice.expect_only(f"{S} 411 alice :No recipient given (PRIVMSG)")
    # Two targets, one missing: one 401, and bob gets the message once.
    alice.send("PRIVMSG nobody,bob :hey")
    alice.expect_only(f"{S} 401 alice nobody :No such nick/channel")
    bob.expect_only(f"{src('alice')} PRIVMSG bob :hey")
    carol.expect_only()
    # An empty item in the target list: one 411 for it, the others are served once.
    alice.send("PRIVMSG ,bob, :again")
    alice.expect_only(f"{S} 411 alice :No recipient given (PRIVMSG)",
                      f"{S} 411 alice :No recipient given (PRIVMSG)")
    bob.expect_only(f"{src('alice')} PRIVMSG bob :again")
    alice.send("NOTICE bob,,#room :quiet")            # NOTICE is never answered
    alice.expect_only()
    bob.expect_only(f"{src('alice')} NOTICE bob :quiet", f"{src('alice')} NOTICE #room :quiet")
    carol.expect_only(f"{src('alice')} NOTICE #room :quiet")
    still_chat(alice=alice, bob=bob, carol=carol)


def test_outsider_gets_404_442_482_once_and_members_see_nothing(room):
    srv, alice, bob, carol = room
    dave = RawClient(srv.port)
    try:
        dave.register("dave")
        dave.expect_only()
        dave.send("PRIVMSG #room :from outside")        # +n by default
        dave.expect_only(f"{S} 404 dave #room :Cannot send to channel")
        dave.send("KICK #room bob")
        dave.expect_only(f"{S} 442 dave #room :You're not on that channel")
        dave.send("MODE #room +m")
        dave.expect_only(f"{S} 482 dave #room :You're not channel operator")
        for c in (alice, bob, carol):
            c.expect_only()
    finally:
        dave.close()
    still_chat(alice=alice, bob=bob, carol=carol)


def test_kick_reaches_every_member_once_and_errors_once(room):
    srv, alice, bob, carol = room
    bob.send("KICK #room carol :no")
    bob.expect_only(f"{S} 482 bob #room :You're not channel operator")
    alice.send("KICK #room nobody")
    alice.expect_only(f"{S} 401 alice nobody :No such nick/channel")
    alice.send("KICK #room carol :bye")
    for c in (alice, bob, carol):
        c.expect_only(f"{src('alice')} KICK #room carol :bye")
    # carol is out: her messages to #room get 404 and nobody sees them.
    carol.send("PRIVMSG #room :ghost")
    carol.expect_only(f"{S} 404 carol #room :Cannot send to channel")
    still_chat(alice=alice, bob=bob)


def test_mode_changes_reach_every_member_once_and_a_no_op_sends_nothing(room):
    srv, alice, bob, carol = room
    alice.send("MODE #room +o bob")
    for c in (alice, bob, carol):
        c.expect_only(f"{src('alice')} MODE #room +o bob")
    alice.send("MODE #room +o bob")          # already an operator: no change, no line
    for c in (alice, bob, carol):
        c.expect_only()
    alice.send("MODE #room +o nobody")
    alice.expect_only(f"{S} 401 alice nobody :No such nick/channel")
    bob.expect_only()
    alice.send("MODE #room")
    alice.expect_only(f"{S} 324 alice #room :+nt", re.compile(rf"{S} 329 alice #room :\d+"))
    still_chat(alice=alice, bob=bob, carol=carol)


def test_who_lists_each_member_once_then_one_end(room):
    srv, alice, bob, carol = room
    alice.send("WHO #room")
    alice.expect_only(
        f"{S} 352 alice #room alice 127.0.0.1 irc.chatserver.local alice H@ :0 alice's real name",
        f"{S} 352 alice #room bob 127.0.0.1 irc.chatserver.local bob H :0 bob's real name",
        f"{S} 352 alice #room carol 127.0.0.1 irc.chatserver.local carol H :0 carol's real name",
        f"{S} 315 alice #room :End of WHO list")
    alice.send("WHO nobody")
    alice.expect_only(f"{S} 315 alice nobody :End of WHO list")
    still_chat(alice=alice, bob=bob, carol=carol)


def test_nick_in_use_gets_one_433_before_and_after_registration(room):
    srv, alice, bob, carol = room
    bob.send("NICK Alice")
    bob.expect_only(f"{S} 433 bob Alice :Nickname is already in use")
    alice.expect_only()
    newcomer = RawClient(srv.port)
    try:
        newcomer.send("NICK alice")
        newcomer.send("USER e 0 * :e")
        newcomer.expect_only(f"{S} 433 * alice :Nickname is already in use")
        newcomer.send("NICK erin")
        newcomer.expect_next(re.compile(rf"{S} 001 erin :.*"))
    finally:
        newcomer.close()
    still_chat(alice=alice, bob=bob, carol=carol)
