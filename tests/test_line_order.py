"""A client's replies come in the order of its lines, also across work done off the loop.

Every command whose answer needs the worker threads (a password check for
PASS, SASL, OPER, NickServ REGISTER/IDENTIFY, IRCv3 REGISTER) holds the
client's later lines until it has answered: the lines wait, in order, in the
connection's backlog (``ircd/net.py``), whether they arrived in the same TCP
segment or a later one, over TCP or WebSocket (docs/protocol.md section 1,
"Order of replies").

These tests send each line in its own segment (or WebSocket message) a few
milliseconds apart, the way gamja, bots and conformance suites do, with the
default argon2 cost so that each check takes long enough for the next lines
to arrive while it runs.
"""

from __future__ import annotations

import base64
import time

import pytest
from passlib.hash import argon2
from websockets.sync.client import connect

from tests.opersupport import OPER_PASSWORD
from tests.support import RawClient, command_of, free_port, wait_for_port

pytestmark = pytest.mark.timeout(60)

# The default argon2 cost (about 20-60 ms a check here), no throttling of the
# tests' bursts; NickServ on.
SLOW_HASH_TOML = """
[server]
autojoin = []

[simple]
echobot = false

[services]
enabled = true

[limits]
flood_burst = 1000
flood_rate = 1000.0
login_delay_max = 0.0
"""


def trickle(client: RawClient, *lines: str, gap: float = 0.003) -> None:
    """Send each line in its own TCP segment, ``gap`` seconds apart."""
    for line in lines:
        client.send(line)
        time.sleep(gap)


def read_until(client: RawClient, command: str, token: str | None = None,
               timeout: float = 10.0) -> list[str]:
    """Lines up to and including the first ``command`` line (containing ``token``)."""
    out: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        line = client.readline(max(0.01, deadline - time.monotonic()))
        assert line is not None, f"closed by the server; saw {out!r}"
        out.append(line)
        if command_of(line) == command and (token is None or token in line):
            return out


def position(lines: list[str], command: str, token: str = "") -> int:
    for i, line in enumerate(lines):
        if command_of(line) == command and token in line:
            return i
    raise AssertionError(f"no {command} {token!r} in {lines!r}")


# An oper whose hash has argon2's default cost (chatserver mkpasswd's), so that the
# check takes a while.
SLOW_OPER_TOML = f"""
[[opers]]
name = "ops"
password = "{argon2.using(type="ID", time_cost=3, memory_cost=65536).hash(OPER_PASSWORD)}"
"""


@pytest.fixture
def srv(server_factory):
    return server_factory(config_text=SLOW_HASH_TOML + SLOW_OPER_TOML)


def guest(port: int, nick: str) -> RawClient:
    client = RawClient(port)
    client.register(nick)
    client.drain(0.1)
    return client


def test_oper_is_answered_before_a_ping_sent_in_the_next_segment(srv):
    alice = guest(srv.port, "alice")
    trickle(alice, f"OPER ops :{OPER_PASSWORD}", "PING :after-oper")
    lines = read_until(alice, "PONG", "after-oper")
    assert position(lines, "381") < position(lines, "PONG"), lines
    # A wrong password's 464 also comes before the next PONG.
    mallory = guest(srv.port, "mallory")
    trickle(mallory, "OPER ops :wrong", "PING :after-bad-oper")
    lines = read_until(mallory, "PONG", "after-bad-oper")
    assert position(lines, "464") < position(lines, "PONG"), lines


def test_nickserv_register_and_identify_answer_before_later_lines(srv):
    bob = guest(srv.port, "bob")
    trickle(bob, "PRIVMSG NickServ :REGISTER hunter22", "PING :after-register")
    lines = read_until(bob, "PONG", "after-register")
    assert position(lines, "NOTICE", "registered") < position(lines, "PONG"), lines
    bob.send("QUIT")
    bob.close()

    carol = guest(srv.port, "carol")
    trickle(carol, "PRIVMSG NickServ :IDENTIFY bob hunter22", "WHOIS carol", "PING :after-id")
    lines = read_until(carol, "PONG", "after-id")
    logged_in = position(lines, "900")
    assert logged_in < position(lines, "330") < position(lines, "PONG"), lines


def test_sasl_with_cap_end_right_behind_completes_registration(srv):
    """gamja's order: CAP LS, NICK, USER, CAP REQ, AUTHENTICATE, payload, CAP END,
    each its own segment a few ms apart; the account exists (a full password check)."""
    maker = RawClient(srv.port)
    maker.register("dave", password="s3cret-pw")
    maker.send("QUIT")
    maker.closed_by_server()
    payload = base64.b64encode(b"\0dave\0s3cret-pw").decode()
    for gap in (0.002, 0.01):
        client = RawClient(srv.port)
        trickle(client, "CAP LS 302", "NICK dave", "USER dave 0 * :Dave", "CAP REQ :sasl",
                "AUTHENTICATE PLAIN", f"AUTHENTICATE {payload}", "CAP END", "PING :after-end",
                gap=gap)
        lines = read_until(client, "PONG", "after-end", timeout=10)
        assert (position(lines, "900") < position(lines, "903") < position(lines, "001")
                < position(lines, "PONG")), lines
        client.send("QUIT")
        client.closed_by_server()


def test_pass_login_answers_in_order_with_the_next_lines(srv):
    maker = RawClient(srv.port)
    maker.register("erin", password="pw-of-erin")
    maker.send("QUIT")
    maker.closed_by_server()
    client = RawClient(srv.port)
    trickle(client, "PASS pw-of-erin", "NICK erin", "USER erin 0 * :Erin", "JOIN #order",
            "PING :after-join")
    lines = read_until(client, "PONG", "after-join")
    assert (position(lines, "001") < position(lines, "JOIN", "#order") < position(lines, "366")
            < position(lines, "PONG")), lines


def test_lines_held_behind_a_check_keep_their_order_and_all_run(srv):
    """Fifty lines pipelined behind an OPER, each in its own segment: all answered, in order."""
    frank = guest(srv.port, "frank")
    frank.send(f"OPER ops :{OPER_PASSWORD}")
    for i in range(50):
        frank.send(f"PING :n{i}")
    lines = read_until(frank, "PONG", "n49")
    pongs = [line.rsplit(":", 1)[1] for line in lines if command_of(line) == "PONG"]
    assert pongs == [f"n{i}" for i in range(50)], lines
    assert position(lines, "381") < position(lines, "PONG"), lines


def test_gamja_style_websocket_sasl_one_message_per_line(server_factory):
    ws_port = free_port()
    srv = server_factory(config_text=SLOW_HASH_TOML,
                         extra_args=["--websocket-port", str(ws_port)])
    wait_for_port(ws_port, srv.proc)
    maker = RawClient(srv.port)
    maker.register("gina", password="gina-pw")
    maker.send("QUIT")
    maker.closed_by_server()
    payload = base64.b64encode(b"gina\0gina\0gina-pw").decode()
    with connect(f"ws://127.0.0.1:{ws_port}/socket", open_timeout=5) as ws:
        for line in ("CAP LS 302", "NICK gina", "USER gina 0 * :Gina", "CAP REQ :sasl",
                     "AUTHENTICATE PLAIN", f"AUTHENTICATE {payload}", "CAP END",
                     "PING :ws-after-end"):
            ws.send(line)
        lines: list[str] = []
        deadline = time.monotonic() + 10
        while not (lines and command_of(lines[-1]) == "PONG"):
            msg = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
            lines.append(msg if isinstance(msg, str) else msg.decode())
    assert (position(lines, "900") < position(lines, "903") < position(lines, "001")
            < position(lines, "PONG")), lines
