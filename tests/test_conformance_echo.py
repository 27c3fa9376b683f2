"""Conformance: USER with an empty realname, and messages to yourself with echo-message.

- ``USER <user> <mode> <unused> :`` (empty realname): 461 ERR_NEEDMOREPARAMS,
  as Ergo and InspIRCd answer ("Modern IRC", USER).
- PRIVMSG, NOTICE or TAGMSG to your own nick with IRCv3 echo-message: the
  delivery and the echo, two lines; with labeled-response exactly one of them
  (the echo) carries the label (Ergo, InspIRCd).

Raw sockets against one real server subprocess shared by the module.
"""

from __future__ import annotations

import pytest

from tests.ircv3util import SERVER, H, join, module_server, src, tags_of, untagged

pytestmark = pytest.mark.timeout(30)

srv = module_server()


# -- USER with an empty realname ---------------------------------------------------------------

def test_user_with_an_empty_realname_gets_461_and_a_valid_user_then_registers(clients):
    c = clients.raw()
    c.send("NICK emptyreal")
    c.send("USER er 0 * :")
    assert c.sync() == [f":{SERVER} 461 emptyreal USER :Not enough parameters"]
    c.send("USER er 0 * :Real Name")
    c.expect_numeric("001")
    c.sync()
    c.send("WHOIS emptyreal")
    assert f":{SERVER} 311 emptyreal emptyreal er {H} * :Real Name" in c.sync()
    # The server and other users are unaffected.
    other = clients("emptyreal2")
    join("#emptyreal", c, other)
    c.send("PRIVMSG #emptyreal :hello")
    c.sync()
    assert other.sync() == [f":emptyreal!er@{H} PRIVMSG #emptyreal :hello"]


def test_user_with_too_few_parameters_still_gets_461(clients):
    c = clients.raw()
    c.send("NICK fewparams")
    c.send("USER fp 0 *")
    assert c.sync() == [f":{SERVER} 461 fewparams USER :Not enough parameters"]


# -- messages to yourself with echo-message ---------------------------------------------------

@pytest.mark.parametrize("verb", ["PRIVMSG", "NOTICE"])
def test_message_to_yourself_with_echo_message_arrives_twice(clients, verb):
    nick = f"s{verb.lower()}"
    c = clients(nick, ["echo-message"])
    c.send(f"{verb} {nick} :note to self")
    assert c.sync() == [f":{src(nick)} {verb} {nick} :note to self"] * 2


def test_tagmsg_to_yourself_with_echo_message_arrives_twice_with_the_same_tags(clients):
    c = clients("selftag", ["echo-message", "message-tags"])
    c.send("@+draft/react=ok TAGMSG selftag")
    lines = c.sync()
    assert [untagged(x) for x in lines] == [f":{src('selftag')} TAGMSG selftag"] * 2
    assert tags_of(lines[0]) == tags_of(lines[1])
    assert tags_of(lines[0])["+draft/react"] == "ok" and tags_of(lines[0])["msgid"]


def test_message_to_yourself_without_echo_message_arrives_once(clients):
    c = clients("selfnoecho")
    c.send("PRIVMSG selfnoecho :just once")
    assert c.sync() == [f":{src('selfnoecho')} PRIVMSG selfnoecho :just once"]


@pytest.mark.parametrize("caps", [["echo-message", "labeled-response"],
                                  ["echo-message", "labeled-response", "batch"]])
def test_labeled_message_to_yourself_labels_exactly_one_of_the_two_lines(clients, caps):
    nick = f"selflabel{len(caps)}"
    c = clients(nick, caps)
    c.send(f"@label=me1 PRIVMSG {nick} :labeled note")
    lines = c.sync()
    assert [untagged(x) for x in lines] == [f":{src(nick)} PRIVMSG {nick} :labeled note"] * 2
    # The delivery comes first, unlabeled; the echo is the labeled reply.
    assert [tags_of(x).get("label") for x in lines] == [None, "me1"], lines


def test_message_to_yourself_and_another_user_echoes_both_and_delivers_both(clients):
    alice = clients("selfboth", ["echo-message"])
    bob = clients("selfbothb")
    alice.send("PRIVMSG selfboth,selfbothb :to us both")
    assert alice.sync() == [
        f":{src('selfboth')} PRIVMSG selfboth :to us both",      # the delivery
        f":{src('selfboth')} PRIVMSG selfboth :to us both",      # its echo
        f":{src('selfboth')} PRIVMSG selfbothb :to us both",     # the echo to bob's message
    ]
    assert bob.sync() == [f":{src('selfboth')} PRIVMSG selfbothb :to us both"]
