"""Accounts over raw IRC: ``PASS <password>`` + ``NICK <name>`` logs in to
account ``<name>``, creating it on first use; a registered name needs its
password; without PASS an unregistered name is a guest.

Every test talks to a real ``python -m ircd`` subprocess through raw sockets
so that the exact numerics and the closing of the connection are visible.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.support import RawClient, command_of, config_with, outcome, start_login

pytestmark = pytest.mark.timeout(60)

SERVER = "irc.chatserver.local"
def login(port: int, nick: str, password: str | None) -> tuple[RawClient, str]:
    c = start_login(port, nick, password)
    return c, outcome(c)


def finish_burst(c: RawClient) -> list[str]:
    """Read up to the end of the autojoin (366 for #general); return the lines read."""
    start = len(c.lines)
    c.expect(lambda line: command_of(line) == "366" and " #general " in line)
    return c.lines[start:]


def assert_refused(c: RawClient) -> None:
    """After a 464: the server sends ERROR and closes the connection."""
    line = c.expect(lambda line: command_of(line) == "ERROR", timeout=5)
    assert line.startswith("ERROR :"), line
    assert c.closed_by_server(timeout=5), "connection still open after ERROR"
    assert not any(command_of(x) == "001" for x in c.lines), c.lines


def register(port: int, nick: str, password: str) -> None:
    """Create account ``nick`` and log out again."""
    c, result = login(port, nick, password)
    try:
        assert result == "001", c.lines
        burst = finish_burst(c)
        assert f":{SERVER} NOTICE {nick} :Registered new account {nick}" in burst
        c.send("QUIT :done")
        assert c.closed_by_server()
    finally:
        c.close()


def quit_and_close(c: RawClient) -> None:
    try:
        c.send("QUIT")
        c.closed_by_server(timeout=5)
    except OSError:
        pass
    c.close()


# -- login and registration -------------------------------------------------


def test_first_login_with_password_registers_the_account(server):
    c, result = login(server.port, "alice", "s3cret-alice")
    try:
        assert result == "001"
        assert c.lines[-1].startswith(f":{SERVER} 001 alice :Welcome")
        burst = finish_burst(c)
        assert f":{SERVER} NOTICE alice :Registered new account alice" in burst
        logged_in = [x for x in burst if command_of(x) == "900"]
        assert len(logged_in) == 1
        assert logged_in[0].startswith(f":{SERVER} 900 alice alice!alice@127.0.0.1 alice :")
        assert ":alice!alice@127.0.0.1 JOIN #general" in burst
    finally:
        quit_and_close(c)
    assert "account alice registered" in server.log()


def test_second_login_with_the_right_password_logs_in(server):
    register(server.port, "alice", "s3cret-alice")
    c, result = login(server.port, "alice", "s3cret-alice")
    try:
        assert result == "001"
        burst = finish_burst(c)
        assert [x for x in burst if command_of(x) == "900"], burst
        assert not [x for x in burst if "Registered new account" in x], burst
    finally:
        quit_and_close(c)


def test_account_names_are_case_insensitive(server):
    register(server.port, "alice", "s3cret-alice")
    c, result = login(server.port, "ALICE", "not-her-password")
    try:
        assert result == "464"
        assert_refused(c)
    finally:
        c.close()
    c, result = login(server.port, "Alice", "s3cret-alice")
    try:
        assert result == "001"
    finally:
        quit_and_close(c)


def test_wrong_password_gets_464_then_error_and_close(server):
    register(server.port, "alice", "s3cret-alice")
    c, result = login(server.port, "alice", "wrong-password")
    try:
        assert result == "464"
        assert c.lines[-1].startswith(f":{SERVER} 464 alice :"), c.lines[-1]
        assert_refused(c)
    finally:
        c.close()
    assert server.alive()


def test_registered_name_without_password_gets_464(server):
    register(server.port, "alice", "s3cret-alice")
    c, result = login(server.port, "alice", None)
    try:
        assert result == "464"
        assert_refused(c)
    finally:
        c.close()


def test_guest_without_pass_works_when_the_name_is_not_registered(server):
    c, result = login(server.port, "guesty", None)
    try:
        assert result == "001"
        burst = finish_burst(c)
        assert ":guesty!guesty@127.0.0.1 JOIN #general" in burst
        assert not [x for x in burst if command_of(x) == "900"], burst
        assert not [x for x in burst if "Registered new account" in x], burst
        # A guest is not an account: WHOIS has no 330.
        start = len(c.lines)
        c.send("WHOIS guesty")
        c.expect_numeric("318")
        assert not [x for x in c.lines[start:] if command_of(x) == "330"]
    finally:
        quit_and_close(c)
    # and the name stays unregistered: another guest may use it after.
    c, result = login(server.port, "guesty", None)
    try:
        assert result == "001"
    finally:
        quit_and_close(c)


def test_guests_refused_with_464_when_allow_guests_is_false(server_factory):
    srv = server_factory(config_text=config_with(accounts={"allow_guests": False}))
    c, result = login(srv.port, "guesty", None)
    try:
        assert result == "464"
        assert_refused(c)
    finally:
        c.close()
    # Logging in with a password still works on that server.
    c, result = login(srv.port, "member", "member-pw")
    try:
        assert result == "001"
    finally:
        quit_and_close(c)


def test_cap_negotiation_then_pass_logs_in(server):
    c = RawClient(server.port)
    try:
        c.send("CAP LS 302")
        c.send("PASS capped-pw")
        c.send("NICK capper")
        c.send("USER capper 0 * :Cap Per")
        c.expect(lambda line: command_of(line) == "CAP" and " LS " in line)
        c.send("CAP REQ :multi-prefix")
        c.expect(lambda line: command_of(line) == "CAP" and " ACK " in line)
        assert not any(command_of(x) == "001" for x in c.lines), "registered before CAP END"
        c.send("CAP END")
        assert outcome(c) == "001"
        burst = finish_burst(c)
        assert f":{SERVER} NOTICE capper :Registered new account capper" in burst
    finally:
        quit_and_close(c)


# -- persistence -------------------------------------------------------------


def test_account_survives_a_server_restart(server_factory):
    first = server_factory()
    register(first.port, "alice", "s3cret-alice")
    assert first.stop(signal.SIGTERM) == 0
    assert "database closed" in first.log()

    second = server_factory(data_dir=first.data_dir)
    c, result = login(second.port, "alice", "wrong-password")
    try:
        assert result == "464"
        assert_refused(c)
    finally:
        c.close()
    c, result = login(second.port, "alice", None)
    try:
        assert result == "464"
        assert_refused(c)
    finally:
        c.close()
    c, result = login(second.port, "alice", "s3cret-alice")
    try:
        assert result == "001"
        burst = finish_burst(c)
        assert [x for x in burst if command_of(x) == "900"], burst
        assert not [x for x in burst if "Registered new account" in x], burst
    finally:
        quit_and_close(c)


def _files_containing(root, needles: list[bytes]) -> list[str]:
    hits = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            hits.extend(f"{path.name}: {n!r}" for n in needles if n in data)
    return hits


def test_passwords_are_not_stored_or_logged_in_clear(server_factory):
    srv = server_factory(extra_args=["--log-level", "debug"])
    secret = "Zebra-Quokka-8713-secret"
    wrong = "Wrong-Pangolin-5521-guess"
    register(srv.port, "alice", secret)
    c, result = login(srv.port, "alice", wrong)
    try:
        assert result == "464"
        assert_refused(c)
    finally:
        c.close()
    c, result = login(srv.port, "alice", secret)
    try:
        assert result == "001"
    finally:
        quit_and_close(c)
    needles = [p.encode() for p in (secret, wrong)]
    needles += [p.encode("utf-16-le") for p in (secret, wrong)]
    # While running (the WAL may hold the newest pages) ...
    assert (srv.data_dir / "chatserver.sqlite3").exists()
    assert _files_containing(srv.data_dir, needles) == []
    # ... and after a clean shutdown (WAL checkpointed into the main file).
    assert srv.stop() == 0
    assert _files_containing(srv.data_dir, needles) == []
    log = srv.stderr_path.read_bytes()
    assert log, "empty server log"
    for needle in needles:
        assert needle not in log


# -- concurrency -------------------------------------------------------------


def test_twenty_concurrent_registrations_of_distinct_names_all_succeed(server):
    nicks = [f"user{i:02d}" for i in range(20)]
    clients = [start_login(server.port, n, f"pw-{n}") for n in nicks]
    try:
        for nick, c in zip(nicks, clients, strict=True):
            assert outcome(c) == "001", (nick, c.lines)
            burst = finish_burst(c)
            assert f":{SERVER} NOTICE {nick} :Registered new account {nick}" in burst
        last = clients[-1]
        start = len(last.lines)
        last.send("NAMES #general")
        last.expect_numeric("366")
        names = set()
        for line in last.lines[start:]:
            if command_of(line) == "353":
                names.update(n.lstrip("@+") for n in line.split(" :", 1)[1].split())
        assert names == set(nicks)
    finally:
        for c in clients:
            quit_and_close(c)
    # Every account exists: each name now needs its password (464 without PASS).
    checks = [start_login(server.port, n, None) for n in nicks]
    try:
        assert [outcome(c) for c in checks] == ["464"] * len(nicks)
    finally:
        for c in checks:
            c.close()


# Nine wrong passwords from one address would trip the login throttle
# ([limits] login_*), which is not what the race test is about.
NO_THROTTLE = {"login_failures_per_ip": 1000, "login_failures_per_account": 1000,
               "login_delay_max": 0.0}


def test_racing_for_one_new_name_exactly_one_wins(server_factory):
    server = server_factory(config_text=config_with(limits=NO_THROTTLE))
    passwords = [f"racer-pw-{i}" for i in range(10)]
    clients = [start_login(server.port, "racer", pw) for pw in passwords]
    try:
        results = [outcome(c) for c in clients]
        assert results.count("001") == 1, results
        assert set(results) <= {"001", "433", "464"}, results
        winner = passwords[results.index("001")]
    finally:
        for c in clients:
            c.close()
    # The account belongs to the winner's password, and only to it.
    deadline = time.monotonic() + 5
    while True:  # wait until the winner's abrupt close has freed the nick
        c, result = login(server.port, "racer", winner)
        if result != "433" or time.monotonic() > deadline:
            break
        c.close()
        time.sleep(0.05)
    try:
        assert result == "001", c.lines
    finally:
        quit_and_close(c)
    loser = next(pw for pw in passwords if pw != winner)
    c, result = login(server.port, "racer", loser)
    try:
        assert result == "464"
    finally:
        c.close()


def test_second_connection_with_an_online_nick_gets_433(server):
    first, result = login(server.port, "alice", "s3cret-alice")
    assert result == "001"
    guest, result = login(server.port, "guesty", None)
    assert result == "001"
    try:
        for nick, password in (("alice", "s3cret-alice"), ("guesty", None)):
            c, result = login(server.port, nick, password)
            try:
                assert result == "433", c.lines
                assert c.lines[-1].startswith(f":{SERVER} 433 * {nick} :"), c.lines[-1]
                # The connection stays open and may pick another nick.
                c.send("NICK spare_" + nick)
                if password is None:
                    assert outcome(c) == "001"
                else:
                    # With a password, the new nick is a new account.
                    assert outcome(c) == "001"
                    burst = finish_burst(c)
                    assert any("Registered new account spare_alice" in x for x in burst)
            finally:
                quit_and_close(c)
        # The first holders were not disturbed.
        first.send("PING :still-here")
        first.expect(f":{SERVER} PONG {SERVER} :still-here")
    finally:
        quit_and_close(first)
        quit_and_close(guest)


def test_nick_change_to_another_accounts_name_is_refused(server):
    register(server.port, "owner", "owner-pw")
    c, result = login(server.port, "visitor", None)
    try:
        assert result == "001"
        finish_burst(c)
        c.send("NICK Owner")
        line = c.expect_numeric("433")
        assert line.startswith(f":{SERVER} 433 visitor Owner :")
        c.send("WHOIS owner")
        assert c.expect(lambda x: command_of(x) in ("401", "311")).split(" ")[1] == "401"
    finally:
        quit_and_close(c)


def test_account_is_shown_with_its_registered_spelling(server):
    first = RawClient(server.port)
    first.register("Zed[1]", password="pw-zed")
    first.send("QUIT")
    first.closed_by_server()
    again = RawClient(server.port)
    again.send("PASS pw-zed")
    again.send("NICK zed{1}")  # the same account under rfc1459 casemapping
    again.send("USER z 0 * :z")
    loggedin = again.expect_numeric("900")
    assert loggedin.endswith(" Zed[1] :You are now logged in as Zed[1]"), loggedin
    again.close()
