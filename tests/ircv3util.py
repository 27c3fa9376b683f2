"""Helpers shared by the IRCv3 tests (test_ircv3_*.py).

Every test talks raw IRC to a real ``python -m ircd`` subprocess on loopback.
To keep the suite fast, most tests of a module share one server (a
module-scoped fixture made with :func:`module_server`); they use their own
nicks and channels so that they cannot see each other.

Ordering without sleeps: :func:`sync` sends ``PING <token>`` and reads up to
the matching ``PONG``. The server handles one connection's lines in order and
writes to other connections synchronously while handling a line, so once
client A's sync returned, everything A's earlier commands sent to B is queued
before B's own PONG: ``sync(a); lines = sync(b)`` collects exactly what A
caused at B.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterable

import pytest

from tests.support import FAST_HASH_TOML, RawClient, ServerProcess, command_of

SERVER = "irc.chatserver.local"
TIMEOUT = 5.0
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

# FAST_HASH_TOML, no autojoin (tests pick their own channels, so the clients of
# one test never share a channel with another test's), no flood throttling of
# the tests' bursts of commands, and no login lockout from the many deliberate
# failures of the SASL tests.
QUIET_TOML = FAST_HASH_TOML + """
[server]
autojoin = []

[limits]
flood_burst = 100000
flood_rate = 100000.0
login_failures_per_ip = 100000
login_failures_per_account = 100000
login_delay_max = 0.0
"""

QUIET_SERVICES_TOML = QUIET_TOML.replace("[services]\nenabled = false", "[services]\nenabled = true")
"""QUIET_TOML with NickServ and ChanServ online."""

H = "127.0.0.1"
"""The host part of every test client's prefix (they all connect from loopback)."""

_tokens = itertools.count(1)


def module_server(config_text: str = QUIET_TOML, extra_args: Iterable[str] = ()):
    """A module-scoped pytest fixture: one server shared by the tests of a module."""

    @pytest.fixture(scope="module")
    def fixture(tmp_path_factory):
        srv = ServerProcess(tmp_path_factory.mktemp("ircv3") / "data", config_text=config_text,
                            extra_args=list(extra_args)).start()
        try:
            yield srv
        finally:
            srv.stop()

    return fixture


# -- lines -----------------------------------------------------------------------------------

def split_tags(line: str) -> tuple[dict[str, str], str]:
    """``(tags, rest)``: the tag section parsed (values still escaped) and the line without it."""
    if not line.startswith("@"):
        return {}, line
    raw, _, rest = line[1:].partition(" ")
    tags = {}
    for item in raw.split(";"):
        key, sep, value = item.partition("=")
        assert key, f"empty tag key in {line!r}"
        assert key not in tags, f"duplicate tag {key} in {line!r}"
        tags[key] = value if sep else ""
    return tags, rest


def tags_of(line: str) -> dict[str, str]:
    return split_tags(line)[0]


def untagged(line: str) -> str:
    return split_tags(line)[1]


def check_time(line: str) -> str:
    """Assert ``line`` has a well-formed ``time`` tag; return its value."""
    value = tags_of(line).get("time")
    assert value is not None, f"no time tag: {line!r}"
    assert TIME_RE.match(value), f"bad time tag {value!r}: {line!r}"
    return value


def check_msgid(line: str) -> str:
    value = tags_of(line).get("msgid")
    assert value, f"no msgid tag: {line!r}"
    assert re.fullmatch(r"[^\s;=]+", value), f"bad msgid {value!r}"
    return value


# -- clients ---------------------------------------------------------------------------------

class Client(RawClient):
    """A :class:`RawClient` with a 5-second timeout and :meth:`sync`."""

    def __init__(self, port: int) -> None:
        super().__init__(port, timeout=TIMEOUT)
        self.nick = "*"

    def sync(self) -> list[str]:
        """PING a fresh token and return every line received before its PONG."""
        token = f"sync{next(_tokens)}"
        self.send(f"PING {token}")
        start = len(self.lines)
        self.expect(lambda line: command_of(line) == "PONG" and line.endswith(f" :{token}"))
        return self.lines[start:-1]

    def numerics(self, code: str, lines: list[str]) -> list[str]:
        return [x for x in lines if command_of(x) == code]

    def quit(self) -> None:
        with contextlib.suppress(OSError, TimeoutError, ConnectionError):
            self.send("QUIT :bye")
            self.closed_by_server(2.0)
        self.close()


def connect(port: int, nick: str, caps: Iterable[str] = (), password: str | None = None,
            realname: str | None = None, user: str | None = None) -> Client:
    """Register ``nick`` (after ``CAP REQ`` of ``caps``); returns once the burst is read.

    With caps the client negotiates with ``CAP LS 302`` / ``CAP REQ`` / ``CAP END``
    and the ACK is checked.
    """
    c = Client(port)
    c.nick = nick
    caps = list(caps)
    if caps:
        c.send("CAP LS 302")
        c.send("CAP REQ :" + " ".join(caps))
    if password is not None:
        c.send(f"PASS {password}")
    c.send(f"NICK {nick}")
    c.send(f"USER {user or nick} 0 * :{realname or nick + ' real'}")
    if caps:
        ack = c.expect(lambda line: command_of(line) == "CAP" and (" ACK " in line or " NAK " in line))
        assert " ACK :" + " ".join(caps) in ack, ack
        c.send("CAP END")
    c.expect_numeric("001")
    c.expect(lambda line: command_of(line) in ("376", "422"))
    c.sync()  # the account lines (900) and autojoin, if any
    return c


def join(channel: str, *clients: Client) -> None:
    """Join every client to ``channel`` in turn, then read everything that caused."""
    for c in clients:
        c.send(f"JOIN {channel}")
        c.sync()
    for c in clients:
        c.sync()


def register_account(port: int, name: str, password: str) -> None:
    """Create account ``name`` with PASS on a throw-away connection."""
    c = Client(port)
    c.send(f"PASS :{password}")
    c.send(f"NICK {name}")
    c.send(f"USER {name[:10]} 0 * :{name}")
    c.expect_numeric("900")
    c.quit()


class Clients:
    """Tracks the clients a test opened and QUITs them all at the end."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.opened: list[Client] = []

    def __call__(self, nick: str, caps: Iterable[str] = (), **kw) -> Client:
        c = connect(self.port, nick, caps, **kw)
        self.opened.append(c)
        return c

    def raw(self) -> Client:
        c = Client(self.port)
        self.opened.append(c)
        return c

    def close_all(self) -> None:
        for c in self.opened:
            c.quit()


__all__ = [
    "SERVER", "TIME_RE", "QUIET_TOML", "Client", "Clients", "check_msgid", "check_time",
    "command_of", "connect", "join", "module_server", "register_account", "split_tags",
    "tags_of", "untagged",
]


# -- shared small helpers ----------------------------------------------------------------------

def src(nick: str) -> str:
    """``nick!nick@127.0.0.1``: the prefix of a client registered by :func:`connect` as ``nick``."""
    return f"{nick}!{nick}@{H}"


def still_chats(a: Client, b: Client) -> None:
    """``a`` and ``b`` can still exchange a message: nothing was broken."""
    a.send(f"PRIVMSG {b.nick} :still here")
    a.sync()
    assert any(line.endswith(f"PRIVMSG {b.nick} :still here") for line in b.sync())
