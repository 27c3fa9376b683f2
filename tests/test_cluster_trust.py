"""Cluster mode, issue 19 ("Trust"): odd lines run on every node, and no password enters Redis.

Two real ``python -m ircd --cluster`` nodes over a real redis-server and a real
PostgreSQL (fixtures from tests/cluster_support.py and tests/engines.py), with
NickServ and ChanServ on. The test reads the whole Redis stream with XRANGE
and both nodes' log files. docs/cluster.md "Which lines enter the log" says
what is checked here.
"""

from __future__ import annotations

import pytest
import redis as redis_py

from tests.cluster_support import FaultyRedis, cluster, redis  # noqa: F401 - fixtures
from tests.engines import pg_url, postgres  # noqa: F401 - fixtures
from tests.ircv3util import command_of, untagged
from tests.test_cluster import (  # noqa: F401 - the fixture
    WAIT,
    assert_logged_in,
    config_text,
    configured,
    irc,
    names,
    wait_names,
    whois,
)

pytestmark = pytest.mark.timeout(120)

H = "127.0.0.1"
PASSWORD = "Tr0ub4dor-SECRET-pw"
NEW_PASSWORD = "Correct-Horse-SECRET-2"


def services_on() -> str:
    text = config_text(server={"autojoin": []})
    assert "[services]\nenabled = false" in text
    return text.replace("[services]\nenabled = false", "[services]\nenabled = true")


def stream_bytes(url: str) -> bytes:
    """Every field of every entry of ``chatserver:log`` and of every node's inbox
    (``chatserver:inbox:<id>``, the routed messages), read with XRANGE - +."""
    r = redis_py.Redis.from_url(url)
    try:
        entries = r.xrange("chatserver:log", "-", "+")
        assert entries, "the stream is empty"
        for key in r.scan_iter(match="chatserver:inbox:*"):
            entries += r.xrange(key, "-", "+")
    finally:
        r.close()
    return b"\n".join(k + b"=" + v for _id, fields in entries for k, v in fields.items())


def test_lines_with_a_leading_space_or_a_nul_in_the_command_run_on_both_nodes(
        configured):  # noqa: F811 - fixture
    net = configured(services_on())
    alice = irc(net, 0, "alice")
    bob = irc(net, 1, "bob")
    carol = irc(net, 1, "carol")
    for c in (alice, bob, carol):
        c.send("JOIN #c")
        c.expect_numeric("366", timeout=WAIT)
    wait_names(bob, "#c", {"alice", "bob", "carol"})

    # ` NICK x`: a nick change on every node; the nick is taken on the other node too
    alice.send(b" NICK xavier\r\n")
    seen = bob.expect(lambda s: command_of(s) == "NICK", timeout=WAIT)
    assert untagged(seen) == f":alice!alice@{H} NICK :xavier", seen
    carol.send("NICK xavier")
    assert carol.expect_numeric("433", timeout=WAIT).startswith(":n2.test 433 carol xavier ")
    assert "311" in whois(bob, "xavier") and "401" in whois(bob, "alice")

    # ` MODE #c +o u`: an op on every node
    alice.send(b"  MODE #c +o bob\r\n")
    seen = carol.expect(lambda s: command_of(s) == "MODE", timeout=WAIT)
    assert untagged(seen) == f":xavier!alice@{H} MODE #c +o bob", seen
    assert "@bob" in names(carol, "#c")
    assert "@bob" in names(alice, "#c")
    bob.send("KICK #c carol :ops on n2 too")   # bob is op on his own node as well
    assert carol.expect(lambda s: command_of(s) == "KICK", timeout=WAIT).endswith(
        "KICK #c carol :ops on n2 too")
    assert "482" not in bob.sync()

    # `PRIV\0MSG`: the message reaches the users of the other node
    alice.send(b"PRIV\x00MSG #c :through the nul\r\n")
    seen = bob.expect(lambda s: command_of(s) == "PRIVMSG", timeout=WAIT)
    assert untagged(seen) == f":xavier!alice@{H} PRIVMSG #c :through the nul", seen

    alice.send("PRIVMSG #c :still here")
    assert bob.expect(lambda s: command_of(s) == "PRIVMSG", timeout=WAIT).endswith(":still here")
    assert all(node.alive() for node in net.nodes)


def test_nickserv_passwords_stay_out_of_redis_and_of_both_nodes_logs(
        configured, redis):  # noqa: F811 - fixtures
    net = configured(services_on())
    alice = irc(net, 0, "alice")
    bob = irc(net, 1, "bob")
    for c in (alice, bob):
        c.send("JOIN #c")
        c.expect_numeric("366", timeout=WAIT)
    wait_names(bob, "#c", {"alice", "bob"})
    # NickServ: REGISTER on n1, IDENTIFY on n2 (in several spellings), PASSWORD, a NOTICE
    dave = irc(net, 0, "dave")
    dave.send(f"PRIVMSG NickServ :REGISTER {PASSWORD}")
    dave.expect_numeric("900", timeout=WAIT)
    assert_logged_in(bob, "dave", "dave")
    dave.send(f"NOTICE NickServ :IDENTIFY {PASSWORD}")
    dave.send(f"NS PASSWORD {PASSWORD} {NEW_PASSWORD}")
    changed = dave.expect(lambda s: s.startswith(":NickServ!") and "changed" in s, timeout=WAIT)
    assert "Password of dave changed" in changed
    for i, line in enumerate([f" PRIVMSG NickServ :IDENTIFY dave {NEW_PASSWORD}",
                              f"privmsg nickserv :IDENTIFY dave {NEW_PASSWORD}",
                              f"NICKSERV IDENTIFY dave {NEW_PASSWORD}"]):
        other = irc(net, 1, f"eve{i}")
        other.send(line.encode() + b"\r\n")
        other.expect_numeric("900", timeout=WAIT)
        assert_logged_in(alice, f"eve{i}", "dave")
    # A status prefix on a nick means nothing (401), and the line stays out of the log too.
    other = irc(net, 1, "eve9")
    other.send(f"@label=x PRIVMSG @NickServ :IDENTIFY dave {NEW_PASSWORD}")
    assert " 401 eve9 @NickServ " in other.expect_numeric("401", timeout=WAIT)
    wrong = irc(net, 1, "mallory")
    wrong.send(f"PRIVMSG NickServ :IDENTIFY dave wrong-{PASSWORD}")
    assert "Invalid account credentials" in wrong.expect(lambda s: s.startswith(":NickServ!"),
                                                        timeout=WAIT)
    wrong.send(f"CS IDENTIFY {PASSWORD}")     # to the wrong service: "Unknown command"
    assert "Unknown command" in wrong.expect(lambda s: s.startswith(":ChanServ!"), timeout=WAIT)
    wrong.send(f"OPER admin {PASSWORD}")
    assert command_of(wrong.expect(lambda s: command_of(s) in ("464", "491"), timeout=WAIT))
    wrong.send(b"PRIVMSG NickServ :IDENTIFY dave " + PASSWORD.encode() + b"\xff\r\n")
    assert "INVALID_UTF8" in wrong.expect(lambda s: command_of(s) == "FAIL", timeout=WAIT)
    # every one of these lines was answered; the others chat on
    alice.send("PRIVMSG #c :still here")
    assert bob.expect(lambda s: command_of(s) == "PRIVMSG", timeout=WAIT).endswith(":still here")
    for c in (alice, bob, dave, wrong):
        c.sync()

    data = stream_bytes(redis.url)
    assert b"PRIVMSG #c :still here" in data   # (the stream was read)
    assert b'"k":"acct"' in data and b'"account":"dave"' in data
    for secret in (PASSWORD, NEW_PASSWORD, "SECRET"):
        assert secret.encode() not in data
        for node in net.nodes:
            assert secret not in node.log(), node.stderr_path
