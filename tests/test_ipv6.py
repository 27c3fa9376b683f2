"""K-lines, D-lines and connection limits for clients on IPv6 (``::1``).

The server listens on ``::1`` (``--host ::1``) and every client connects
from ``::1``. An IPv6 address starting with ``:`` cannot be an IRC middle
parameter, so the server shows a registered client's host as ``0::1``
(prefix, WHO, ERROR); a connection refused before registering is named by
its address as is (``ERROR :Closing Link: ::1 ...``). Bans may name either form. Skipped, saying why, only when this
machine has no IPv6 loopback.
"""

from __future__ import annotations

import socket
import time

import pytest

from tests.opersupport import become_oper, opers_config
from tests.support import RawClient, command_of, config_with

pytestmark = pytest.mark.timeout(60)

SERVER = "irc.chatserver.local"
V6 = "::1"


def _ipv6_loopback() -> str | None:
    """None if a socket can bind ::1; else why not."""
    if not socket.has_ipv6:
        return "Python was built without IPv6 (socket.has_ipv6 is false)"
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind((V6, 0))
    except OSError as exc:
        return f"this machine has no IPv6 loopback (binding ::1: {exc})"
    return None


@pytest.fixture
def v6_server(server_factory):
    """``server_factory`` for servers listening on ::1 (skips without IPv6 loopback)."""
    why = _ipv6_loopback()
    if why is not None:
        pytest.skip(why)

    def make(config_text: str):
        return server_factory(config_text=config_text, host=V6)

    return make


def user(port: int, nick: str, user_name: str | None = None) -> RawClient:
    """A client registered from ::1, past its #general autojoin."""
    c = RawClient(port, host=V6)
    c.register(nick, user=user_name)
    c.expect(lambda line: command_of(line) == "366")
    return c


def registration_outcome(port: int, nick: str, user_name: str) -> list[str]:
    """Register from ::1; the lines up to 001 or the closing of the connection."""
    c = RawClient(port, host=V6)
    try:
        c.send(f"NICK {nick}")
        c.send(f"USER {user_name} 0 * :{nick}")
        while True:
            line = c.readline(10)
            if line is None or command_of(line) == "001":
                return c.lines
    finally:
        c.close()


def chats(a: RawClient, b: RawClient, b_nick: str, text: str) -> None:
    """``a`` -> ``b`` private message arrives (nobody else was disturbed)."""
    a.send(f"PRIVMSG {b_nick} :{text}")
    b.expect(lambda line: line.endswith(f" PRIVMSG {b_nick} :{text}"))


def wait_until_probes_released(srv, timeout: float = 5.0) -> None:
    """Wait until the server has logged a disconnect for every connect so far
    (``wait_for_port``'s probe connections count until closed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = srv.log()
        connects = log.count("INFO ircd.net: connect ")
        if 1 <= connects <= log.count("INFO ircd.net: disconnect "):
            return
        time.sleep(0.02)
    raise AssertionError("probe connections still open:\n" + srv.log()[-2000:])


def test_a_client_on_ipv6_is_shown_as_0_colon_colon_1(v6_server):
    srv = v6_server(config_with())
    alice = user(srv.port, "alice")
    bob = user(srv.port, "bob")
    alice.expect(":bob!bob@0::1 JOIN #general")
    alice.send("WHO bob")
    alice.expect_only(f":{SERVER} 352 alice * bob 0::1 {SERVER} bob H :0 bob's real name",
                      f":{SERVER} 315 alice bob :End of WHO list")
    chats(alice, bob, "bob", "over ipv6")
    assert bob.lines[-1] == ":alice!alice@0::1 PRIVMSG bob :over ipv6"


def test_kline_on_the_ipv6_address_and_on_its_shown_form(v6_server):
    srv = v6_server(opers_config())
    boss = user(srv.port, "boss")
    become_oper(boss)
    victim = user(srv.port, "victim", "vuser")
    bystander = user(srv.port, "bystander")
    # The IP form (user@::1) matches, although the host is shown as 0::1.
    boss.send("KLINE vuser@::1 :ipv6 abuse")
    assert victim.expect_numeric("465") == (
        f":{SERVER} 465 victim :You are banned from this server: ipv6 abuse")
    assert victim.expect_next("ERROR :Closing Link: 0::1 (K-Lined (ipv6 abuse))")
    assert victim.closed_by_server()
    assert bystander.expect("QUIT") == ":victim!vuser@0::1 QUIT :K-Lined (ipv6 abuse)"
    lines = registration_outcome(srv.port, "again", "vuser")
    assert lines[-2:] == [f":{SERVER} 465 again :You are banned from this server: ipv6 abuse",
                          "ERROR :Closing Link: 0::1 (K-Lined (ipv6 abuse))"], lines
    # Another user name from ::1 still comes in; the shown form (0::1) matches too.
    assert command_of(registration_outcome(srv.port, "fine", "fine")[-1]) == "001"
    boss.send("KLINE other@0::1 :shown form")
    boss.expect("Added K-line on *!other@0::1")
    lines = registration_outcome(srv.port, "other", "other")
    assert lines[-1] == "ERROR :Closing Link: 0::1 (K-Lined (shown form))", lines
    chats(bystander, boss, "boss", "still here")


def test_dline_of_an_ipv6_address_and_network(v6_server):
    srv = v6_server(opers_config())
    boss = user(srv.port, "boss")            # an oper: not disconnected by D-lines
    become_oper(boss)
    bad = user(srv.port, "bad")
    # A D-line on another IPv6 network hits nobody here.
    boss.send("DLINE 2001:db8::/32 :documentation network")
    boss.expect("Added D-line on 2001:db8::/32")
    chats(bad, boss, "boss", "not hit")
    boss.send("DLINE 0::1 :ipv6 abuse")     # ::1 cannot be written as a middle parameter
    boss.expect("Added D-line on ")
    assert bad.expect(lambda x: command_of(x) == "ERROR") == (
        "ERROR :Closing Link: 0::1 (D-Lined (ipv6 abuse))")
    assert bad.closed_by_server()
    fresh = RawClient(srv.port, host=V6)   # refused before registering: the address as is
    assert fresh.readline(5) == "ERROR :Closing Link: ::1 (D-Lined (ipv6 abuse))"
    assert fresh.readline(5) is None
    boss.send("UNDLINE 0::1")
    boss.expect("Removed D-line")
    # A network form (0::/64 holds ::1) works the same way.
    boss.send("DLINE 0::/64 :the whole network")
    boss.expect("Added D-line on ")
    fresh = RawClient(srv.port, host=V6)
    assert fresh.readline(5) == "ERROR :Closing Link: ::1 (D-Lined (the whole network))"
    boss.send("PING :alive")
    boss.expect_only(f":{SERVER} PONG {SERVER} :alive")


def test_connection_limit_per_ip_counts_ipv6_clients(v6_server):
    srv = v6_server(config_with(limits={"exempt": [], "max_per_ip": 2}))
    wait_until_probes_released(srv)
    held = [user(srv.port, "one"), user(srv.port, "two")]
    third = RawClient(srv.port, host=V6)
    assert third.readline(5) == "ERROR :Closing Link: ::1 (Too many connections from your IP)"
    assert third.readline(5) is None
    chats(held[0], held[1], "two", "both still here")
    held.pop().close()
    time.sleep(0.3)
    held.append(user(srv.port, "again"))
    chats(held[1], held[0], "one", "room again")


def test_ipv6_loopback_is_exempt_by_default_and_a_class_can_name_it(v6_server):
    srv = v6_server(config_with(limits={"max_per_ip": 1}))   # exempt: 127.0.0.1/8 and ::1
    wait_until_probes_released(srv)
    held = [user(srv.port, f"ex{i}") for i in range(3)]
    chats(held[0], held[2], "ex2", "exempt")
    srv2 = v6_server(config_with(limits={"exempt": []}) + (
        '\n[[limits.classes]]\nname = "v6"\nnetworks = ["::1/128"]\nmax_per_ip = 1\n'))
    wait_until_probes_released(srv2)
    only = user(srv2.port, "only")
    second = RawClient(srv2.port, host=V6)
    assert second.readline(5) == "ERROR :Closing Link: ::1 (Too many connections from your IP)"
    only.send("PING :ok")
    only.expect_only(f":{SERVER} PONG {SERVER} :ok")
