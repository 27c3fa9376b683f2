"""Raw-socket users for the moderation, WHOWAS and conformance tests.

:func:`user` connects and registers one user (optionally with IRCv3
capabilities) and waits until its autojoin of #general is complete;
:func:`until_pong` returns every line a user received before the answer to
a PING sent now, so "received nothing" is checked with a round trip, never
with a sleep.
"""

from __future__ import annotations

import itertools

from tests.support import FAST_HASH_TOML, RawClient, command_of

_tokens = itertools.count(1)

WITH_ECHOBOT_TOML = FAST_HASH_TOML.replace("echobot = false", "echobot = true")
"""The tests' fast config, with the built-in echobot online (as by default)."""
assert WITH_ECHOBOT_TOML != FAST_HASH_TOML


def user(port: int, nick: str, caps: tuple[str, ...] = (), realname: str | None = None,
         autojoin: bool = True) -> RawClient:
    """A registered raw client ``nick`` whose welcome burst (and #general JOIN) was read."""
    c = RawClient(port)
    if caps:
        c.send("CAP LS 302")
        c.send(f"CAP REQ :{' '.join(caps)}")
    c.send(f"NICK {nick}")
    c.send(f"USER {nick} 0 * :{realname or nick + ' real name'}")
    if caps:
        c.expect(lambda line: command_of(line) == "CAP" and " ACK " in line)
        c.send("CAP END")
    c.expect_numeric("001")
    c.expect(lambda line: command_of(line) in ("376", "422"))
    if autojoin:
        c.expect(lambda line: command_of(line) == "366" and "#general" in line)
    return c


def until_pong(c: RawClient) -> list[str]:
    """Send a PING and return every line received before its PONG (the PONG excluded)."""
    token = f"sync{next(_tokens)}"
    c.send(f"PING :{token}")
    lines: list[str] = []
    while True:
        line = c.expect(lambda _line: True)
        if command_of(line) == "PONG" and line.endswith(token):
            return lines
        lines.append(line)


def numerics(lines: list[str]) -> list[str]:
    """The command (numeric) of each line, in order."""
    return [command_of(line) for line in lines]


def params(line: str) -> list[str]:
    """The parameters of ``line`` (tags and source dropped; the trailing one whole)."""
    if line.startswith("@"):
        line = line.split(" ", 1)[1]
    if line.startswith(":"):
        line = line.split(" ", 1)[1]
    head, _, trailing = line.partition(" :")
    parts = head.split()[1:]
    return [*parts, trailing] if _ else parts


def chats(sender: RawClient, receiver: RawClient, sender_nick: str, receiver_nick: str) -> None:
    """Check that ``sender`` can still send ``receiver`` a direct message (the server is fine)."""
    text = f"still here {next(_tokens)}"
    sender.send(f"PRIVMSG {receiver_nick} :{text}")
    line = receiver.expect(lambda line: command_of(line) == "PRIVMSG" and line.endswith(text))
    assert line.split(" ")[0 if not line.startswith("@") else 1].startswith(f":{sender_nick}!")
