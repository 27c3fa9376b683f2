"""NickServ IDENTIFY's wrong passwords are delayed like PASS's (0.5 s per recent
failure, docs/security.md "Passwords"), for an unknown account as for a wrong
password, so neither guessing speed nor timing tells which accounts exist."""

from __future__ import annotations

import time

import pytest

from tests.support import SERVICES_TOML, RawClient

pytestmark = pytest.mark.timeout(60)


def timed_identify(c: RawClient, args: str) -> float:
    start = time.monotonic()
    c.send(f"PRIVMSG NickServ :IDENTIFY {args}")
    c.expect("Invalid account credentials")
    return time.monotonic() - start


def test_wrong_identify_answers_come_later_and_later(server_factory):
    srv = server_factory(config_text=SERVICES_TOML)
    owner = RawClient(srv.port)
    owner.register("vault", password="right-one")
    guesser = RawClient(srv.port)
    guesser.register("guesser")
    waits = [timed_identify(guesser, "vault wrong1"), timed_identify(guesser, "vault wrong2"),
             timed_identify(guesser, "vault wrong3")]
    assert waits[0] >= 0.45 and waits[1] >= 0.95 and waits[2] >= 1.45, waits
    unknown = timed_identify(guesser, "nobody-here pw")
    assert unknown >= 0.45, unknown
    # The owner, meanwhile, was not held up.
    owner.send("PING :owner")
    owner.expect("PONG")
