"""Lengths are bytes: no line the server sends exceeds 512 bytes (issue 19), with 4-byte UTF-8.

TOPICLEN, AWAYLEN, KICKLEN and NAMELEN count bytes of UTF-8 and cut at a
character boundary; any line that would still be longer than 512 bytes with
CR LF (tags excluded) loses the end of its last parameter, never half a
character. The sender has the longest nick (30) and user (10) and the
channel the longest name (64), against the real server. (PRIVMSG and NOTICE
are relayed whole, as tests/test_irc_robustness.py and the SEND dialect's
tests require: see docs/protocol.md.)
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from ircd.protocol.message import fit_line, truncate_utf8
from tests.rawusers import user
from tests.support import RawClient, command_of

EMOJI = "\U0001F600"  # 4 bytes in UTF-8
NICK = "L" + "o" * 29
USER = "longuserxx"
CHAN = "#" + "c" * 63
SRC = f"{NICK}!{USER}@127.0.0.1"
_tokens = itertools.count(1)


def raw_until_pong(c: RawClient) -> list[bytes]:
    """Every line (raw bytes, CR LF included) received before the answer to a PING sent now."""
    token = f"bytes{next(_tokens)}"
    c.send(f"PING :{token}")
    out = []
    while True:
        while b"\n" not in c.buf:
            chunk = c.sock.recv(65536)
            assert chunk, "closed"
            c.buf += chunk
        line, c.buf = c.buf.split(b"\n", 1)
        line += b"\n"
        if b" PONG " in line and line.rstrip(b"\r\n").endswith(token.encode()):
            return out
        out.append(line)


def checked(lines: list[bytes]) -> list[str]:
    """Each line is valid UTF-8 and at most 512 bytes with CR LF, tags excluded; as str."""
    out = []
    for line in lines:
        assert line.endswith(b"\r\n"), line
        body = line.split(b" ", 1)[1] if line.startswith(b"@") else line
        assert len(body) <= 512, (len(body), body[:80])
        out.append(line.decode("utf-8").rstrip("\r\n"))  # raises on invalid UTF-8
    return out


def only(lines: list[str], command: str) -> str:
    found = [x for x in lines if command_of(x) == command]
    assert len(found) == 1, lines
    return found[0]


def fitted(head: str, count: int, cap: int | None = None) -> str:
    """``head`` + the most emoji (of ``count``) within ``cap`` bytes that keeps the line at 510."""
    n = count if cap is None else min(count, cap // 4)
    while len(head.encode()) + 4 * n > 510:
        n -= 1
    return head + EMOJI * n


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200),
       st.integers(min_value=-2, max_value=900))
def test_truncate_utf8_gives_the_longest_whole_character_prefix_within_the_bytes(text, limit):
    cut = truncate_utf8(text, limit)
    assert text.startswith(cut)
    assert len(cut.encode()) <= max(0, limit)
    if cut != text:  # maximal: one more character would not fit
        assert len(text[:len(cut) + 1].encode()) > limit
    assert fit_line(text) == truncate_utf8(text, 510)


def long_user(port: int) -> RawClient:
    c = RawClient(port)
    c.send(f"NICK {NICK}")
    c.send(f"USER {USER} 0 * :" + EMOJI * 40)  # 160 bytes: NAMELEN is 100
    c.expect_numeric("001")
    c.expect(lambda line: command_of(line) in ("376", "422"))
    c.expect(lambda line: command_of(line) == "366")
    return c


def test_topic_away_kick_part_quit_with_emoji_stay_within_512_bytes(server):
    port = server.port
    long = long_user(port)
    bob = user(port, "bob", caps=("away-notify",))
    for c in (long, bob):  # long first: it is the channel operator
        c.send(f"JOIN {CHAN}")
        checked(raw_until_pong(c))
    checked(raw_until_pong(long))

    def said(line: str) -> list[str]:
        """``long`` sends ``line``; its own answer, once the server has run it."""
        long.send(line)
        return checked(raw_until_pong(long))

    # TOPIC: 390 bytes at most (97 emoji), then the line cap.
    head = f":{SRC} TOPIC {CHAN} :"
    assert only(said(f"TOPIC {CHAN} :" + EMOJI * 109), "TOPIC") == fitted(head, 109, 390)
    assert only(checked(raw_until_pong(bob)), "TOPIC") == fitted(head, 109, 390)
    carol = user(port, carol_nick())
    carol.send(f"JOIN {CHAN}")
    got = checked(raw_until_pong(carol))
    assert only(got, "332") == fitted(f":irc.chatserver.local 332 {carol_nick()} {CHAN} :",
                                      109, 390)
    checked(raw_until_pong(long))
    checked(raw_until_pong(bob))

    # Realname: NAMELEN 100 bytes, a whole number of emoji (25).
    bob.send(f"WHOIS {NICK}")
    assert only(checked(raw_until_pong(bob)), "311").endswith(" :" + EMOJI * 25)

    # AWAY: AWAYLEN 390 bytes; bob (away-notify) sees it, and gets 301 when writing to it.
    said("AWAY :" + EMOJI * 126)
    assert only(checked(raw_until_pong(bob)), "AWAY") == fitted(f":{SRC} AWAY :", 126, 390)
    bob.send(f"PRIVMSG {NICK} :hi")
    assert only(checked(raw_until_pong(bob)), "301") == fitted(
        f":irc.chatserver.local 301 bob {NICK} :", 126, 390)
    checked(raw_until_pong(long))

    # KICK: KICKLEN 390 bytes, then the line cap.
    head = f":{SRC} KICK {CHAN} bob :"
    assert only(said(f"KICK {CHAN} bob :" + EMOJI * 108), "KICK") == fitted(head, 108, 390)
    for c in (bob, carol):
        assert only(checked(raw_until_pong(c)), "KICK") == fitted(head, 108, 390)

    # PART and QUIT reasons: the line cap.
    said(f"PART {CHAN} :" + EMOJI * 109)
    assert only(checked(raw_until_pong(carol)), "PART") == fitted(f":{SRC} PART {CHAN} :", 109)
    long.send("QUIT :" + EMOJI * 126)
    rest = long.buf
    while chunk := long.sock.recv(65536):
        rest += chunk
    error = checked([x + b"\n" for x in rest.split(b"\n")[:-1]])
    assert error == [fitted("ERROR :Closing Link: 127.0.0.1 (Quit: ", 126)]
    assert only(checked(raw_until_pong(bob)), "QUIT") == fitted(f":{SRC} QUIT :Quit: ", 126)
    # The others chat on.
    bob.send(f"PRIVMSG {carol_nick()} :still here")
    checked(raw_until_pong(bob))
    assert only(checked(raw_until_pong(carol)), "PRIVMSG").endswith(" :still here")


def carol_nick() -> str:
    return "c" + "a" * 29


def test_setname_counts_bytes(server):
    bob = user(server.port, "bob", caps=("setname",))
    bob.send("SETNAME :" + EMOJI * 26)  # 104 bytes
    got = checked(raw_until_pong(bob))
    assert len(got) == 1 and got[0].startswith(":irc.chatserver.local FAIL SETNAME INVALID_REALNAME")
    bob.send("SETNAME :" + EMOJI * 25)  # 100 bytes
    assert only(checked(raw_until_pong(bob)), "SETNAME").endswith("SETNAME :" + EMOJI * 25)
