"""Host cloaking (``[server] cloak_hosts``, ``ircd/cloak.py``; docs/protocol.md "Hosts").

Unit tests of the pure cloak function, then the real server: with
``cloak_exempt = []`` users from 127.0.0.2/127.0.0.3 (standing in for other
machines) see each other's cloaks, never the addresses; the user itself and
operators see the address; bans on the address still hold; the key survives a
restart.
"""

from __future__ import annotations

import re
import stat

import pytest

from ircd.cloak import CLOAK_KEY_FILE, cloak_host, load_or_create_key
from tests.opersupport import become_oper, opers_config
from tests.support import RawClient, command_of

pytestmark = pytest.mark.timeout(60)

KEY = b"k" * 32
HOSTNAME = re.compile(r"^[a-z2-7]{16}\.irc$")


def test_cloak_is_stable_keyed_and_hides_the_address():
    a = cloak_host("203.0.113.7", KEY)
    assert a == cloak_host("203.0.113.7", KEY)
    assert HOSTNAME.match(a), a
    assert a != cloak_host("203.0.113.8", KEY)
    assert a != cloak_host("203.0.113.7", b"another key of enough length")
    assert "203" not in a and "113" not in a
    assert cloak_host("::ffff:203.0.113.7", KEY) == a  # an IPv4-mapped address is that address
    assert cloak_host("203.0.113.7", KEY, suffix="example.net").endswith(".example.net")


def test_ipv6_addresses_of_one_64_share_a_cloak():
    one = cloak_host("2001:db8:1:2::1", KEY)
    assert one == cloak_host("2001:db8:1:2:ffff::9", KEY)
    assert one != cloak_host("2001:db8:1:3::1", KEY)
    assert cloak_host("2001:db8:1:2::1", KEY, ipv6_prefix=128) != cloak_host(
        "2001:db8:1:2::2", KEY, ipv6_prefix=128)
    assert HOSTNAME.match(cloak_host("unknown", KEY))


def test_key_is_made_once_kept_private_and_a_configured_secret_wins(tmp_path):
    key = load_or_create_key(tmp_path)
    assert len(key) == 32
    assert load_or_create_key(tmp_path) == key
    mode = stat.S_IMODE((tmp_path / CLOAK_KEY_FILE).stat().st_mode)
    assert mode == 0o600
    assert load_or_create_key(tmp_path, "shared by the nodes") == b"shared by the nodes"


CLOAKED = opers_config(server={"cloak_exempt": []})


def user(port: int, nick: str, source: str) -> RawClient:
    client = RawClient(port, source=source)
    client.register(nick)
    client.drain(0.1)
    return client


def until(client: RawClient, command: str) -> list[str]:
    lines = []
    while True:
        line = client.readline()
        assert line is not None, lines
        lines.append(line)
        if command_of(line) == command:
            return lines


def test_others_see_the_cloak_the_user_and_opers_see_the_address(server_factory):
    srv = server_factory(config_text=CLOAKED)
    alice = user(srv.port, "alice", "127.0.0.2")
    bob = user(srv.port, "bob", "127.0.0.3")
    alice_cloak = cloak_host("127.0.0.2", (srv.data_dir / CLOAK_KEY_FILE).read_bytes())

    # The JOIN bob sees (autojoin #general happened before; join another channel).
    alice.send("JOIN #cloaks")
    bob.send("JOIN #cloaks")
    bob.expect(" 366 ")
    alice.send("PRIVMSG #cloaks :hello")
    line = bob.expect("PRIVMSG #cloaks")
    assert line == f":alice!alice@{alice_cloak} PRIVMSG #cloaks :hello"

    bob.send("WHOIS alice")
    lines = until(bob, "318")
    assert any(f" 311 bob alice alice {alice_cloak} " in x for x in lines), lines
    assert not any("127.0.0.2" in x for x in lines), lines
    bob.send("WHO #cloaks")
    bob.send("WHO #cloaks %tuhin,7")
    bob.send("WHO *127.0.0.2*")  # probing for the address finds nobody
    lines = until(bob, "315") + until(bob, "315") + until(bob, "315")
    assert not any("127.0.0.2" in x for x in lines if command_of(x) != "315"), lines
    assert any(" 354 bob 7 alice 255.255.255.255 " in x for x in lines), lines
    assert sum(1 for x in lines if command_of(x) in ("352", "354")) == 4, lines  # 2 + 2 + 0

    alice.send("WHOIS alice")
    lines = until(alice, "318")
    assert any(" 378 alice alice :is connecting from *@127.0.0.2 127.0.0.2" in x
               for x in lines), lines

    become_oper(bob)
    bob.send("WHOIS alice")
    lines = until(bob, "318")
    assert any(" 378 bob alice :is connecting from *@127.0.0.2 127.0.0.2" in x
               for x in lines), lines

    # A K-line on the real address still finds her behind the cloak.
    bob.send("KLINE *@127.0.0.2 :by address")
    assert alice.closed_by_server(5)
    bob.send("UNKLINE *@127.0.0.2")
    bob.close()


def test_the_cloak_survives_a_restart_and_loopback_is_exempt_by_default(server_factory, tmp_path):
    srv = server_factory(config_text=CLOAKED, data_dir=tmp_path / "d")
    watcher = user(srv.port, "watch", "127.0.0.3")
    first = user(srv.port, "carol", "127.0.0.2")
    host1 = watcher.expect("JOIN").split("@", 1)[1].split(" ", 1)[0]
    assert HOSTNAME.match(host1), host1
    first.close()
    watcher.close()
    srv.stop()
    srv.start()
    watcher = user(srv.port, "watch", "127.0.0.3")
    user(srv.port, "carol", "127.0.0.2")
    assert watcher.expect("JOIN").split("@", 1)[1].split(" ", 1)[0] == host1

    plain = server_factory()  # the suite's default config: loopback is exempt
    dave = user(plain.port, "dave", "127.0.0.2")
    dave.send("WHOIS dave")
    assert any(" 311 dave dave dave 127.0.0.2 " in x for x in until(dave, "318"))
