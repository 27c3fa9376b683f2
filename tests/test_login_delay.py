"""The delay of a wrong password's ``464`` (docs/security.md, "Passwords").

Each wrong password's ``464 ERR_PASSWDMISMATCH`` comes 0.5 s per recent
failure of that account from that address after the check, at most
``[limits] login_delay_max`` seconds. Measured over a real connection: the
time from the ``USER`` that completes the login to the ``464``.
"""

from __future__ import annotations

import time

import pytest

from tests.support import RawClient, command_of, config_with

pytestmark = pytest.mark.timeout(60)

SERVER = "irc.chatserver.local"
DELAY_MAX = 1.0
ATTEMPTS = 5
SLACK = 0.05   # clock granularity: the timer may fire this much early as measured here


def wrong_password_delay(port: int, nick: str, password: str) -> float:
    """Seconds from the USER of a login with ``password`` to its 464 (which must come)."""
    c = RawClient(port)
    try:
        c.send(f"PASS {password}")
        c.send(f"NICK {nick}")
        start = time.monotonic()
        c.send(f"USER {nick} 0 * :{nick}")
        line = c.expect(lambda line: command_of(line) in ("001", "464"), timeout=15)
        took = time.monotonic() - start
        assert line == f":{SERVER} 464 {nick} :Password incorrect", line
        assert c.expect_next("ERROR :Closing Link: 127.0.0.1 (Bad password)")
        assert c.closed_by_server()
        return took
    finally:
        c.close()


def test_wrong_password_464_is_delayed_half_a_second_per_failure_up_to_the_cap(server_factory):
    srv = server_factory(config_text=config_with(limits={
        "login_failures_per_account": 100, "login_failures_per_ip": 100,
        "login_delay_max": DELAY_MAX}))
    alice = RawClient(srv.port)
    alice.register("alice", password="right-pw")
    alice.send("QUIT :bye")
    assert alice.closed_by_server()
    bystander = RawClient(srv.port)
    bystander.register("bystander", password="by-pw")
    bystander.expect_numeric("366")   # the #general autojoin
    bystander.drain(0.2)

    delays = [wrong_password_delay(srv.port, "alice", "wrong-pw") for _ in range(ATTEMPTS)]
    promised = [min(DELAY_MAX, 0.5 * n) for n in range(1, ATTEMPTS + 1)]   # 0.5, 1, 1, 1, 1
    assert all(d >= p - SLACK for d, p in zip(delays, promised, strict=True)), (delays, promised)
    # The cap holds: without it the fifth answer would wait 2.5 s.
    assert delays[-1] < 0.5 * ATTEMPTS - 0.5, delays

    # The waits held up nobody else, and the right password still logs in (and
    # forgets the failures: the next wrong one waits 0.5 s again).
    bystander.send("PING :still")
    bystander.expect_only(f":{SERVER} PONG {SERVER} :still")
    ok = RawClient(srv.port)
    ok.register("alice", password="right-pw")
    ok.close()
    again = wrong_password_delay(srv.port, "alice", "wrong-pw")
    assert 0.5 - SLACK <= again < 1.0, again
