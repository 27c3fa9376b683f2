"""Chatting through the real server with a real IRC library (``irc``, jaraco).

Three users (alice, bob, carol) log in with passwords, which registers their
accounts; everyone is auto-joined to #general, and alice, the first to join,
is its operator. "Did not receive" assertions use :meth:`Bot.sync` (a PING
round trip), never a sleep: see :mod:`tests.ircbot`.
"""

from __future__ import annotations

import pytest

from tests.ircbot import Bot, event_is, numeric_errors

pytestmark = pytest.mark.timeout(60)

PASSWORDS = {"alice": "alice-pw-1", "bob": "bob-pw-2", "carol": "carol-pw-3"}


@pytest.fixture
def trio(server):
    """alice, bob and carol, registered (accounts) and in #general, in that order."""
    bots: list[Bot] = []
    try:
        for nick in ("alice", "bob", "carol"):
            bots.append(Bot(server.port, nick, PASSWORDS[nick]))
        # alice has seen bob and carol join, bob has seen carol join.
        alice, bob, carol = bots
        alice.wait_for(event_is("join", nick="carol", target="#general"))
        bob.wait_for(event_is("join", nick="carol", target="#general"))
        yield alice, bob, carol
    finally:
        for bot in bots:
            bot.close()


def _pubmsgs(bot: Bot, text: str, since: int = 0):
    return bot.matching(lambda ev: ev.type == "pubmsg" and ev.arguments == [text], since)


def _privmsgs(bot: Bot, text: str, since: int = 0):
    return bot.matching(lambda ev: ev.type == "privmsg" and ev.arguments == [text], since)


def _names(bot: Bot, channel: str, since: int) -> list[str]:
    """The nicks (with prefixes) of the NAMES reply for ``channel`` received since ``since``."""
    bot.wait_for(lambda ev: ev.type == "endofnames" and ev.arguments[:1] == [channel], since=since)
    out: list[str] = []
    for ev in bot.matching(lambda ev: ev.type == "namreply" and ev.arguments[1] == channel, since):
        out.extend(ev.arguments[2].split())
    return out


def test_login_with_password_registers_account_and_joins_general(trio):
    alice, bob, carol = trio
    for bot in trio:
        assert bot.matching(event_is("loggedin")), f"{bot.nick}: no 900 RPL_LOGGEDIN"
        text = f"Registered new account {bot.nick}"
        notices = bot.matching(lambda ev, text=text: ev.type == "privnotice"
                               and ev.arguments == [text])
        assert len(notices) == 1
        assert bot.matching(event_is("join", nick=bot.nick, target="#general"))


def test_channel_message_reaches_every_other_member_exactly_once(trio):
    alice, bob, carol = trio
    marks = [b.mark() for b in trio]
    alice.conn.privmsg("#general", "hello everyone")
    for bot in (bob, carol):
        ev = bot.wait_for(lambda ev: ev.type == "pubmsg" and ev.arguments == ["hello everyone"])
        assert ev.source.nick == "alice"
        assert ev.source.startswith("alice!")
        assert ev.target == "#general"
    for bot in trio:
        bot.sync()
    assert len(_pubmsgs(bob, "hello everyone", marks[1])) == 1
    assert len(_pubmsgs(carol, "hello everyone", marks[2])) == 1
    assert _pubmsgs(alice, "hello everyone", marks[0]) == [], "the sender got its own message back"
    assert numeric_errors(alice, marks[0]) == []


def test_messages_from_one_sender_arrive_in_order(trio):
    alice, bob, carol = trio
    mark = bob.mark()
    texts = [f"line {i}" for i in range(15)]  # within the default flood burst (20)
    for text in texts:
        alice.conn.privmsg("#general", text)
    bob.wait_for(lambda ev: ev.type == "pubmsg" and ev.arguments == ["line 14"], since=mark)
    got = [ev.arguments[0] for ev in bob.matching(event_is("pubmsg", nick="alice"), mark)]
    assert got == texts


def test_direct_message_reaches_only_its_target(trio):
    alice, bob, carol = trio
    marks = [b.mark() for b in trio]
    alice.conn.privmsg("bob", "just for you, bob")
    ev = bob.wait_for(lambda ev: ev.type == "privmsg" and ev.arguments == ["just for you, bob"])
    assert ev.source.nick == "alice"
    assert ev.target == "bob"
    alice.sync()
    carol.sync()
    assert len(_privmsgs(bob, "just for you, bob", marks[1])) == 1
    assert _privmsgs(carol, "just for you, bob", marks[2]) == []
    assert _privmsgs(alice, "just for you, bob", marks[0]) == []
    assert _pubmsgs(carol, "just for you, bob", marks[2]) == []
    assert numeric_errors(alice, marks[0]) == []


def test_direct_message_nick_is_case_insensitive(trio):
    alice, bob, carol = trio
    alice.conn.privmsg("BoB", "case does not matter")
    ev = bob.wait_for(lambda ev: ev.type == "privmsg" and ev.arguments == ["case does not matter"])
    assert ev.target == "bob"


def test_privmsg_to_offline_nick_gets_401(trio):
    alice, bob, carol = trio
    mark = alice.mark()
    alice.conn.privmsg("nobody", "are you there?")
    ev = alice.wait_for(event_is("nosuchnick"), since=mark)
    assert ev.target == "alice"
    assert ev.arguments[0] == "nobody"


def test_privmsg_to_registered_user_who_left_gets_401(trio):
    alice, bob, carol = trio
    carol.quit("bye")
    alice.wait_for(event_is("quit", nick="carol"))
    mark = alice.mark()
    alice.conn.privmsg("carol", "still there?")
    ev = alice.wait_for(event_is("nosuchnick"), since=mark)
    assert ev.arguments[0] == "carol"


def test_quit_with_reason_is_seen_by_the_others(trio):
    alice, bob, carol = trio
    carol.quit("gone fishing")
    assert carol.disconnected, "the server did not close the connection after QUIT"
    for bot in (alice, bob):
        ev = bot.wait_for(event_is("quit", nick="carol"))
        assert ev.arguments == ["Quit: gone fishing"]
    # The server told carol why it closed the link.
    assert any(line.startswith("ERROR ") for line in carol.raw), carol.raw[-3:]


@pytest.mark.parametrize("reset", [False, True], ids=["close", "reset"])
def test_abrupt_disconnect_is_seen_as_quit_and_frees_the_nick(server, trio, reset):
    alice, bob, carol = trio
    carol.drop(reset=reset)
    for bot in (alice, bob):
        ev = bot.wait_for(event_is("quit", nick="carol"))
        assert ev.arguments and ev.arguments[0], "QUIT without a reason"
    mark = alice.mark()
    alice.conn.ison(["carol", "bob"])
    assert alice.wait_for(event_is("ison"), since=mark).arguments == ["bob"]
    # carol can log in again at once with the same nick: nothing holds it.
    again = Bot(server.port, "carol", PASSWORDS["carol"])
    try:
        assert again.conn.get_nickname() == "carol"
        assert not again.matching(event_is("nicknameinuse"))
        alice.wait_for(event_is("join", nick="carol", target="#general"), since=mark)
        again.conn.privmsg("#general", "back again")
        alice.wait_for(lambda ev: ev.type == "pubmsg" and ev.arguments == ["back again"])
    finally:
        again.close()


def test_join_and_part_of_another_channel(trio):
    alice, bob, carol = trio
    c_mark = carol.mark()
    alice.conn.join("#dev")
    alice.wait_for(event_is("join", nick="alice", target="#dev"))
    a_mark = alice.mark()
    bob.conn.join("#dev")
    bob.wait_for(event_is("join", nick="bob", target="#dev"))
    alice.wait_for(event_is("join", nick="bob", target="#dev"), since=a_mark)
    assert sorted(_names(bob, "#dev", 0)) == ["@alice", "bob"]

    alice.conn.privmsg("#dev", "dev talk")
    bob.wait_for(lambda ev: ev.type == "pubmsg" and ev.target == "#dev"
                 and ev.arguments == ["dev talk"])

    b_mark = bob.mark()
    bob.send("PART #dev :see you later")  # irc's part() forgets the ':' before the reason
    bob.wait_for(event_is("part", nick="bob", target="#dev"), since=b_mark)
    ev = alice.wait_for(event_is("part", nick="bob", target="#dev"), since=a_mark)
    assert ev.arguments == ["see you later"]

    mark = alice.mark()
    alice.send("NAMES #dev")
    assert _names(alice, "#dev", mark) == ["@alice"]

    # bob no longer gets #dev traffic; carol never saw any of it.
    alice.conn.privmsg("#dev", "after bob left")
    alice.sync()
    bob.sync()
    carol.sync()
    assert _pubmsgs(bob, "after bob left", b_mark) == []
    assert carol.matching(lambda ev: ev.target == "#dev", c_mark) == []
    # bob is still in #general.
    alice.conn.privmsg("#general", "general still works")
    bob.wait_for(lambda ev: ev.type == "pubmsg" and ev.arguments == ["general still works"])


def test_topic_set_by_operator_is_broadcast_and_queryable(trio):
    alice, bob, carol = trio
    alice.conn.topic("#general", "Welcome to the test topic")
    for bot in (alice, bob, carol):
        ev = bot.wait_for(event_is("topic", nick="alice", target="#general"))
        assert ev.arguments == ["Welcome to the test topic"]
    mark = bob.mark()
    bob.conn.topic("#general")
    ev = bob.wait_for(event_is("currenttopic"), since=mark)
    assert ev.arguments == ["#general", "Welcome to the test topic"]
    ev = bob.wait_for(event_is("topicinfo"), since=mark)
    assert ev.arguments[0] == "#general"
    assert ev.arguments[1].split("!")[0] == "alice"


def test_topic_change_by_non_operator_gets_482(trio):
    alice, bob, carol = trio
    mark = bob.mark()
    a_mark = alice.mark()
    bob.conn.topic("#general", "bob was here")
    ev = bob.wait_for(event_is("chanoprivsneeded"), since=mark)
    assert ev.arguments[0] == "#general"
    alice.sync()
    assert alice.matching(event_is("topic"), a_mark) == []


def test_names_lists_all_three_users_in_general(trio):
    alice, bob, carol = trio
    mark = carol.mark()
    carol.conn.names(["#general"])
    names = _names(carol, "#general", mark)
    assert sorted(names) == ["@alice", "bob", "carol"]


def test_who_lists_channel_members(trio):
    alice, bob, carol = trio
    mark = bob.mark()
    bob.conn.who("#general")
    bob.wait_for(event_is("endofwho"), since=mark)
    replies = bob.matching(event_is("whoreply"), mark)
    # 352 <me> <channel> <user> <host> <server> <nick> <flags> :<hops> <realname>
    rows = {ev.arguments[4]: ev.arguments for ev in replies}
    assert sorted(rows) == ["alice", "bob", "carol"]
    assert rows["carol"][0] == "#general"
    assert rows["carol"][2] == "127.0.0.1"
    assert rows["carol"][3] == "irc.chatserver.local"
    assert rows["carol"][5] == "H"
    assert rows["alice"][5] == "H@"
    assert rows["carol"][6] == "0 carol real name"


def test_whois_describes_the_user(trio):
    alice, bob, carol = trio
    mark = alice.mark()
    alice.conn.whois(["carol"])
    alice.wait_for(event_is("endofwhois"), since=mark)
    user = alice.matching(event_is("whoisuser"), mark)
    assert len(user) == 1
    # 311 <me> <nick> <user> <host> * :<realname>
    assert user[0].arguments[0] == "carol"
    assert user[0].arguments[2] == "127.0.0.1"
    assert user[0].arguments[-1] == "carol real name"
    chans = alice.matching(event_is("whoischannels"), mark)
    assert chans and chans[0].arguments[-1].split() == ["#general"]
    account = alice.matching(event_is("whoisaccount"), mark)
    assert account and account[0].arguments[:2] == ["carol", "carol"]


def test_whois_offline_nick_gets_401_and_end(trio):
    alice, _, _ = trio
    mark = alice.mark()
    alice.conn.whois(["ghost"])
    alice.wait_for(event_is("endofwhois"), since=mark)
    assert alice.matching(event_is("nosuchnick"), mark)[0].arguments[0] == "ghost"
    assert alice.matching(event_is("whoisuser"), mark) == []


def test_ison_reports_online_nicks(trio):
    alice, bob, carol = trio
    mark = alice.mark()
    alice.conn.ison(["bob", "nobody", "CAROL"])
    ev = alice.wait_for(event_is("ison"), since=mark)
    assert ev.arguments[0].split() == ["bob", "carol"]


def test_nick_change_is_seen_by_others(trio):
    alice, bob, carol = trio
    b_mark = bob.mark()
    bob.conn.nick("bobby")
    bob.wait_for(event_is("nick", nick="bob"), since=b_mark)
    for bot in (alice, carol):
        ev = bot.wait_for(event_is("nick", nick="bob"))
        assert ev.target == "bobby"
    # Messages now reach the new nick; the old one is gone.
    alice.conn.privmsg("bobby", "hi bobby")
    bob.wait_for(lambda ev: ev.type == "privmsg" and ev.arguments == ["hi bobby"])
    mark = alice.mark()
    alice.conn.privmsg("bob", "hi old bob")
    assert alice.wait_for(event_is("nosuchnick"), since=mark).arguments[0] == "bob"
    mark = carol.mark()
    carol.send("NAMES #general")
    assert sorted(_names(carol, "#general", mark)) == ["@alice", "bobby", "carol"]


def test_nick_change_to_an_online_nick_gets_433(trio):
    alice, bob, carol = trio
    mark = bob.mark()
    a_mark = alice.mark()
    bob.conn.nick("Carol")
    ev = bob.wait_for(event_is("nicknameinuse"), since=mark)
    assert ev.arguments[0] == "Carol"
    alice.sync()
    assert alice.matching(event_is("nick"), a_mark) == []


def test_kick_by_channel_operator_removes_the_member(trio):
    alice, bob, carol = trio
    alice.conn.kick("#general", "carol", "behave")
    for bot in (alice, bob, carol):
        ev = bot.wait_for(event_is("kick", nick="alice", target="#general"))
        assert ev.arguments == ["carol", "behave"]
    mark = bob.mark()
    bob.send("NAMES #general")
    assert sorted(_names(bob, "#general", mark)) == ["@alice", "bob"]
    # #general is +n: carol, no longer a member, cannot speak there.
    c_mark = carol.mark()
    carol.conn.privmsg("#general", "let me back in")
    ev = carol.wait_for(lambda ev: ev.type == "cannotsendtochan", since=c_mark)
    assert ev.arguments[0] == "#general"
    bob.sync()
    assert _pubmsgs(bob, "let me back in", mark) == []
    # and carol can join again.
    carol.conn.join("#general")
    bob.wait_for(event_is("join", nick="carol", target="#general"), since=mark)


def test_kick_by_non_operator_gets_482(trio):
    alice, bob, carol = trio
    mark = bob.mark()
    c_mark = carol.mark()
    bob.conn.kick("#general", "carol", "no power")
    ev = bob.wait_for(event_is("chanoprivsneeded"), since=mark)
    assert ev.arguments[0] == "#general"
    carol.sync()
    assert carol.matching(event_is("kick"), c_mark) == []
