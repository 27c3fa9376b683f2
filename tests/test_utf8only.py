"""UTF8ONLY (IRCv3 utf8-only): a line that is not valid UTF-8 is answered and never relayed.

docs/protocol.md section 1 and ``ircd/commands/utf8only.py``. Raw sockets
against one real server subprocess shared by the module; each test uses its
own nicks and channels, and checks that the others still chat afterwards.
"""

from __future__ import annotations

import pytest

from tests.ircv3util import (
    SERVER,
    Client,
    H,
    command_of,
    join,
    module_server,
    src,
    untagged,
)

pytestmark = pytest.mark.timeout(30)

srv = module_server()
FAIL_TEXT = "Message rejected, contains invalid UTF-8"


def still_chat(a: Client, b: Client, channel: str) -> None:
    """``a`` and ``b`` (both in ``channel``) still exchange a valid message."""
    a.send(f"PRIVMSG {channel} :still here ✓")
    a.sync()
    assert b.sync() == [f":{src(a.nick)} PRIVMSG {channel} :still here ✓"]


def test_isupport_advertises_utf8only(clients):
    c = clients.raw()
    c.send("NICK u8isupport")
    c.send("USER u 0 * :u")
    c.expect_numeric("001")
    lines = [c.expect_numeric("005")]
    lines += c.sync()
    assert any(" UTF8ONLY " in line for line in lines if command_of(line) == "005")


def test_invalid_utf8_to_a_channel_gets_fail_and_reaches_nobody(clients):
    alice = clients("u8alice")
    bob = clients("u8bob", ["echo-message", "server-time", "message-tags"])
    join("#u8", alice, bob)
    alice.send(b"PRIVMSG #u8 :caf\xe9 \xff\xfe ok\r\n")
    assert alice.sync() == [f":{SERVER} FAIL PRIVMSG INVALID_UTF8 :{FAIL_TEXT}"]
    assert bob.sync() == []
    # Valid multi-byte UTF-8 passes unchanged, byte for byte.
    alice.send("PRIVMSG #u8 :héllo ✓ 日本\r\n".encode())
    alice.sync()
    assert [untagged(x) for x in bob.sync()] == [f":{src('u8alice')} PRIVMSG #u8 :héllo ✓ 日本"]
    still_chat(bob, alice, "#u8")


def test_invalid_utf8_direct_message_is_refused_on_the_fast_path_too(clients):
    # The recipient has no capabilities: the case the direct fast path relays.
    alice = clients("u8dma")
    bob = clients("u8dmb")
    alice.send(b"PRIVMSG u8dmb :\xc3\x28 broken\r\n")
    assert alice.sync() == [f":{SERVER} FAIL PRIVMSG INVALID_UTF8 :{FAIL_TEXT}"]
    alice.send(b"NOTICE u8dmb :\xed\xa0\x80 a surrogate\r\n")  # UTF-8 forbids encoded surrogates
    assert alice.sync() == [f":{SERVER} FAIL NOTICE INVALID_UTF8 :{FAIL_TEXT}"]
    assert bob.sync() == []
    alice.send("PRIVMSG u8dmb :fine é")
    alice.sync()
    assert bob.sync() == [f":{src('u8dma')} PRIVMSG u8dmb :fine é"]


def test_invalid_utf8_in_a_client_tag_refuses_the_tagmsg(clients):
    alice = clients("u8taga", ["message-tags"])
    bob = clients("u8tagb", ["message-tags"])
    alice.send(b"@+draft/react=\xff TAGMSG u8tagb\r\n")
    assert alice.sync() == [f":{SERVER} FAIL TAGMSG INVALID_UTF8 :{FAIL_TEXT}"]
    assert bob.sync() == []
    alice.send("@+draft/react=👍 TAGMSG u8tagb")
    alice.sync()
    got = bob.sync()
    assert [untagged(x) for x in got] == [f":{src('u8taga')} TAGMSG u8tagb"]
    assert "+draft/react=👍" in got[0]


def test_invalid_nick_gets_432_before_and_after_registration(clients):
    c = clients.raw()
    c.send(b"NICK caf\xe9\r\n")
    assert c.sync() == [f":{SERVER} 432 * caf\ufffd :Erroneous nickname (not valid UTF-8)"]
    c.send("NICK u8nick")
    c.send("USER u 0 * :u")
    c.expect_numeric("001")
    c.sync()
    c.send(b"NICK u8\xffx\r\n")
    assert c.sync() == [f":{SERVER} 432 u8nick u8\ufffdx :Erroneous nickname (not valid UTF-8)"]
    c.send("WHOIS u8nick")
    assert any(command_of(x) == "311" for x in c.sync())


def test_invalid_channel_name_gets_403_and_nothing_on_the_line_is_joined(clients):
    alice = clients("u8joina")
    bob = clients("u8joinb")
    join("#u8join", bob)
    alice.send(b"JOIN #u8join,#caf\xe9\r\n")
    assert alice.sync() == [f":{SERVER} 403 u8joina #caf\ufffd :No such channel (not valid UTF-8)"]
    assert bob.sync() == []
    alice.send("NAMES #u8join")
    names = alice.sync()
    assert f":{SERVER} 353 u8joina = #u8join :@u8joinb" in names
    join("#u8join", alice)
    assert bob.sync() == [f":{src('u8joina')} JOIN #u8join"]
    still_chat(alice, bob, "#u8join")


def test_invalid_realname_or_username_in_user_gets_fail_invalid_utf8_then_a_valid_user_registers(
        clients):
    # IRCv3 utf8-only: "FAIL <command> INVALID_UTF8" (irctest's utf8 tests accept FAIL or 468).
    c = clients.raw()
    c.send("NICK u8user")
    c.send(b"USER u 0 * :Jos\xe9\r\n")
    assert c.sync() == [f":{SERVER} FAIL USER INVALID_UTF8 :{FAIL_TEXT}"]
    c.send(b"USER \xe8rc 0 * :realname\r\n")
    assert c.sync() == [f":{SERVER} FAIL USER INVALID_UTF8 :{FAIL_TEXT}"]
    c.send("USER u 0 * :José")
    c.expect_numeric("001")
    c.sync()
    c.send("WHOIS u8user")
    assert f":{SERVER} 311 u8user u8user u {H} * :José" in c.sync()
    c.send(b"USER u 0 * :\xff\r\n")
    assert c.sync() == [f":{SERVER} 462 u8user :You may not reregister"]


def test_invalid_away_message_is_refused_and_the_user_is_not_away(clients):
    alice = clients("u8awaya")
    bob = clients("u8awayb", ["away-notify"])
    join("#u8away", alice, bob)
    alice.send(b"AWAY :lunch \xe0 midi\r\n")
    assert alice.sync() == [f":{SERVER} FAIL AWAY INVALID_UTF8 :{FAIL_TEXT}"]
    assert bob.sync() == []
    bob.send("WHOIS u8awaya")
    assert not [x for x in bob.sync() if command_of(x) == "301"]
    alice.send("AWAY :à midi")
    assert [command_of(x) for x in alice.sync()] == ["306"]
    assert bob.sync() == [f":{src('u8awaya')} AWAY :à midi"]


def test_invalid_setname_gets_invalid_realname_and_invalid_topic_is_not_set(clients):
    alice = clients("u8seta", ["setname"])
    bob = clients("u8setb", ["setname"])
    join("#u8set", alice, bob)
    alice.send(b"SETNAME :\xff\xff\r\n")
    assert alice.sync() == [f":{SERVER} FAIL SETNAME INVALID_REALNAME :Realname is not valid UTF-8"]
    alice.send(b"TOPIC #u8set :new \xfe topic\r\n")
    assert alice.sync() == [f":{SERVER} FAIL TOPIC INVALID_UTF8 :{FAIL_TEXT}"]
    assert bob.sync() == []
    bob.send("TOPIC #u8set")
    assert [command_of(x) for x in bob.sync()] == ["331"]
    still_chat(alice, bob, "#u8set")


def test_quit_with_an_invalid_reason_still_quits_with_a_plain_reason(clients):
    alice = clients("u8quita")
    bob = clients("u8quitb")
    join("#u8quit", alice, bob)
    alice.send(b"QUIT :au revoir \xe9\r\n")
    assert alice.expect(lambda x: x.startswith("ERROR")) == \
        f"ERROR :Closing Link: {H} (Quit)"
    assert f":{SERVER} FAIL QUIT INVALID_UTF8 :{FAIL_TEXT}" in alice.lines
    assert alice.closed_by_server()
    assert bob.sync() == [f":{src('u8quita')} QUIT :Quit"]


def test_fail_carries_the_label_and_an_unknown_command_is_named(clients):
    alice = clients("u8label", ["labeled-response"])
    alice.send(b"@label=q1 PRIVMSG u8label :\x80\r\n")
    assert alice.sync() == [f"@label=q1 :{SERVER} FAIL PRIVMSG INVALID_UTF8 :{FAIL_TEXT}"]
    alice.send(b"FROB \xff\r\n")
    assert alice.sync() == [f":{SERVER} FAIL FROB INVALID_UTF8 :{FAIL_TEXT}"]
    alice.send(b"FR\xffOB x\r\n")
    assert alice.sync() == [f":{SERVER} FAIL * INVALID_UTF8 :{FAIL_TEXT}"]


def test_a_510_byte_invalid_line_gets_fail_not_417(clients):
    # The length limit counts the bytes received, so this line is not too long;
    # it is refused because it is not UTF-8.
    alice = clients("u8long")
    bob = clients("u8longb")
    join("#u8long", alice, bob)
    line = b"PRIVMSG #u8long :" + b"e" * (510 - 17 - 12) + b"\xff" * 12
    assert len(line) == 510
    alice.send(line + b"\r\n")
    assert alice.sync() == [f":{SERVER} FAIL PRIVMSG INVALID_UTF8 :{FAIL_TEXT}"]
    assert bob.sync() == []
    still_chat(alice, bob, "#u8long")


def test_pass_with_invalid_utf8_is_refused_and_not_used(clients):
    c = clients.raw()
    c.send(b"PASS caf\xe9\r\n")
    assert c.sync() == [f":{SERVER} FAIL PASS INVALID_UTF8 :{FAIL_TEXT}"]
    # No password was taken: a new nick registers as a guest (no account, no 900).
    c.send("NICK u8pass")
    c.send("USER u 0 * :u")
    c.expect_numeric("001")
    assert not [x for x in c.sync() if command_of(x) == "900"]
