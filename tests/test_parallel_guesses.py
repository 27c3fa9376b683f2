"""Password guesses in parallel get no more tries than guesses in a row.

An attempt counts against the login throttle from the moment its check
starts (``LoginThrottle.begin``), not when the off-loop argon2 check ends, so
60 connections guessing at once from one address get the same 5 checks for
an account as one connection guessing 60 times (docs/security.md
"Passwords"). Real server, raw sockets, argon2 at its default cost so that
the checks overlap.
"""

from __future__ import annotations

import socket
import time

import pytest

from ircd.config import LimitsSection
from ircd.limits import LoginThrottle
from tests.support import RawClient, command_of

pytestmark = pytest.mark.timeout(90)

CONFIG = """
[server]
autojoin = []

[simple]
echobot = false

[services]
enabled = false

[limits]
exempt = []
max_per_ip = 100
login_failures_per_account = 5
login_failures_per_ip = 10
login_delay_max = 0.0
"""


def test_begin_counts_attempts_in_flight_and_settles_them():
    throttle = LoginThrottle(LimitsSection(login_failures_per_account=3, login_failures_per_ip=10))
    assert [throttle.begin("10.0.0.1", "acct", 0.0) for _ in range(3)] == [0.0] * 3
    assert throttle.begin("10.0.0.1", "acct", 0.0) > 0       # 3 unanswered: the 4th waits
    throttle.abandon("10.0.0.1", "acct")                      # one was never checked
    assert throttle.begin("10.0.0.1", "acct", 0.0) == 0.0
    throttle.success("10.0.0.1", "acct", begun=True)
    assert throttle.begin("10.0.0.1", "acct", 0.0) == 0.0     # a right password forgets them
    throttle.failure("10.0.0.1", "acct", 0.0, begun=True)
    assert throttle.begin("10.0.0.2", "acct", 0.0) == 0.0     # other addresses are unaffected


def test_sixty_parallel_guesses_get_at_most_five_checks(server_factory):
    srv = server_factory(config_text=CONFIG)
    owner = RawClient(srv.port, source="127.0.0.9")
    owner.register("victim", password="the-right-one")
    owner.send("QUIT")
    owner.closed_by_server()
    socks = []
    for _ in range(60):
        s = socket.create_connection(("127.0.0.1", srv.port), source_address=("127.0.0.2", 0))
        socks.append(s)
    for i, s in enumerate(socks):
        s.sendall(f"PASS wrong-{i}\r\nNICK victim\r\nUSER a 0 * :a\r\n".encode())
    answers: list[str] = []
    deadline = time.monotonic() + 60
    for s in socks:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        data = b""
        while b"464" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        line = next((x for x in data.decode().split("\r\n") if command_of(x) == "464"), "")
        answers.append(line)
        s.close()
    checked = [a for a in answers if a.endswith(":Password incorrect")]
    throttled = [a for a in answers if "Too many failed login attempts" in a]
    assert len(checked) <= 5, (len(checked), len(throttled))
    assert len(checked) + len(throttled) == 60, answers
    # The owner, from elsewhere, still logs in.
    again = RawClient(srv.port, source="127.0.0.9")
    again.register("victim", password="the-right-one")
