"""The real server with ``--database postgresql://...`` (a real PostgreSQL, tests/engines.py).

Accounts, history, server bans and registered channels survive a restart in a
different data directory (so nothing came from SQLite); two servers sharing one
database race registrations of one name and create one account; an account made
through one logs in through the other; a PostgreSQL restart under a running server
gives error replies, never a crash or a hang, and the server recovers by itself.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import time

import psycopg
import pytest

from tests.engines import pg_url, postgres  # noqa: F401 - fixtures
from tests.ircv3util import Client, connect
from tests.opersupport import OPER_PASSWORD, become_oper, oper_block
from tests.support import (
    FAST_HASH_TOML,
    ROOT,
    SERVICES_TOML,
    RawClient,
    ServerProcess,
    command_of,
    config_with,
    free_port,
    outcome,
    start_login,
)

pytestmark = pytest.mark.timeout(60)

SERVER = "irc.chatserver.local"


def pg_server(tmp_path, url: str, name: str, config_text: str = FAST_HASH_TOML) -> ServerProcess:
    """A server on database ``url`` with its own data directory ``tmp_path/name``."""
    return ServerProcess(tmp_path / name, config_text=config_text,
                         extra_args=["--database", url]).start()


def chats(a: Client, b: Client, text: str) -> None:
    """``a`` messages ``b`` and ``b`` receives it: the server still serves."""
    a.send(f"PRIVMSG {b.nick} :{text}")
    b.expect(lambda line: line.endswith(f"PRIVMSG {b.nick} :{text}"))


def account_rows(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT name_cf, name FROM accounts ORDER BY 1").fetchall()


def history_texts(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [t for (t,) in conn.execute("SELECT text FROM history ORDER BY id")]


# -- start-up errors ---------------------------------------------------------------------------

def run_cli(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ircd", str(free_port()), "--data-dir",
                           str(tmp_path / "data"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)


def test_malformed_database_url_is_a_one_line_error_with_exit_code_2(tmp_path):
    done = run_cli(tmp_path, "--database", "mysql://me:hunter2@localhost/chat")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "chatserver: command line: 'database.url' must start with postgresql:// "
        "(got 'mysql://me:***@localhost/chat')"]


def test_unreachable_database_is_a_one_line_error_with_exit_code_1(tmp_path):
    port = free_port()
    done = run_cli(tmp_path, "--database", f"postgresql://me:hunter2@127.0.0.1:{port}/chat")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "hunter2" not in lines[0], done.stderr
    assert lines[0].startswith(
        f"chatserver: cannot use the database postgresql://me:***@127.0.0.1:{port}/chat: "), lines


def test_missing_database_on_a_running_postgresql_is_exit_code_1(tmp_path, postgres):  # noqa: F811
    done = run_cli(tmp_path, "--database", postgres.url("no_such_db"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(
        f"chatserver: cannot use the database {postgres.url('no_such_db')}: "), done.stderr
    assert 'database "no_such_db" does not exist' in done.stderr


# -- across restarts ---------------------------------------------------------------------------

def test_account_registered_before_a_restart_logs_in_after_it(tmp_path, pg_url):  # noqa: F811
    first = pg_server(tmp_path, pg_url, "one")
    try:
        c = start_login(first.port, "Alice", "s3cret")
        assert outcome(c) == "001"
        c.expect_numeric("900")
    finally:
        assert first.stop() == 0
    assert account_rows(pg_url) == [("alice", "Alice")]
    assert not (tmp_path / "one" / "chatserver.sqlite3").exists()
    second = pg_server(tmp_path, pg_url, "two")  # a fresh data directory: only PostgreSQL knows
    try:
        wrong = start_login(second.port, "alice", "guess")
        assert outcome(wrong) == "464"
        assert wrong.closed_by_server()
        guest = start_login(second.port, "alice", None)  # a registered name: no guest
        assert outcome(guest) == "464"
        right = start_login(second.port, "alice", "s3cret")
        assert outcome(right) == "001"
        assert "You are now logged in as Alice" in right.expect_numeric("900")
    finally:
        assert second.stop() == 0


def test_history_written_before_a_restart_is_served_by_chathistory_after_it(tmp_path, pg_url):  # noqa: F811
    caps = ["draft/chathistory", "batch", "server-time", "message-tags"]
    # A registered channel keeps its history (an unregistered one's goes with it).
    kept = config_with(server={"registered_channels": ["#general"]})
    first = pg_server(tmp_path, pg_url, "one", kept)
    try:
        alice = connect(first.port, "alice", password="apw")
        bob = connect(first.port, "bob", password="bpw")
        for i in range(3):
            alice.send(f"PRIVMSG #general :before restart {i}")
        alice.send("PRIVMSG bob :a direct one")
        bob.expect("before restart 2")
        bob.expect("a direct one")
    finally:
        assert first.stop() == 0  # SIGTERM writes what is pending
    second = pg_server(tmp_path, pg_url, "two", kept)
    try:
        bob = connect(second.port, "bob", caps=caps, password="bpw")
        bob.send("CHATHISTORY LATEST #general * 10")
        texts = [x.split(" PRIVMSG #general :", 1)[1] for x in bob.sync()
                 if " PRIVMSG #general :" in x]
        assert texts == ["before restart 0", "before restart 1", "before restart 2"]
        bob.send("CHATHISTORY LATEST alice * 10")
        assert [x.split(" PRIVMSG bob :", 1)[1] for x in bob.sync() if " PRIVMSG bob :" in x] == [
            "a direct one"]
    finally:
        assert second.stop() == 0


def test_kline_and_registered_channel_survive_a_restart(tmp_path, pg_url):  # noqa: F811
    toml = SERVICES_TOML + oper_block("ops", OPER_PASSWORD)
    first = pg_server(tmp_path, pg_url, "one", toml)
    try:
        boss = connect(first.port, "boss")
        become_oper(boss)
        boss.send("KLINE baduser@127.0.0.1 :go away")
        boss.expect("Added K-line on *!baduser@127.0.0.1")
        fay = connect(first.port, "fay", password="faypw")
        fay.send("JOIN #keep")
        fay.sync()
        fay.send("PRIVMSG ChanServ :REGISTER #keep")
        fay.expect("#keep is now registered to fay.")
        fay.send("TOPIC #keep :kept in postgres")
        fay.sync()
    finally:
        assert first.stop() == 0
    second = pg_server(tmp_path, pg_url, "two", toml)
    try:
        banned = RawClient(second.port)
        banned.send("NICK whoever")
        banned.send("USER baduser 0 * :x")
        assert "You are banned from this server: go away" in banned.expect_numeric("465")
        assert banned.closed_by_server()
        guest = connect(second.port, "gus")
        guest.send("TOPIC #keep")
        assert f":{SERVER} 332 gus #keep :kept in postgres" in guest.sync()
        fay = connect(second.port, "fay", password="faypw")
        fay.send("JOIN #keep")
        assert any(line.endswith("MODE #keep +o fay") for line in fay.sync())
        chats(guest, fay, "still served")
    finally:
        assert second.stop() == 0


# -- two servers on one database ---------------------------------------------------------------

def test_two_servers_racing_one_new_name_create_exactly_one_account(tmp_path, pg_url):  # noqa: F811
    a = pg_server(tmp_path, pg_url, "a")
    b = pg_server(tmp_path, pg_url, "b")
    try:
        racers = [start_login((a, b)[i % 2].port, "racer", f"pw{i}") for i in range(20)]
        results = [outcome(c) for c in racers]
        winners = [i for i, r in enumerate(results) if r == "001"]
        assert len(winners) == 1, results
        assert set(results) <= {"001", "433", "464"}
        assert account_rows(pg_url) == [("racer", "racer")]
        # The winner's password is the account's, on the other server too (from
        # another address: the losers' 464s have throttled 127.0.0.1 for "racer").
        other = (b, a)[winners[0] % 2]
        again = start_login(other.port, "racer", f"pw{winners[0]}", source="127.0.0.2")
        assert outcome(again) == "001"
        loser = start_login(other.port, "racer", f"pw{(winners[0] + 1) % 20}", source="127.0.0.3")
        assert outcome(loser) == "433"  # the nick is held now
    finally:
        a.stop()
        b.stop()


def test_account_registered_through_one_server_logs_in_through_the_other(tmp_path, pg_url):  # noqa: F811
    a = pg_server(tmp_path, pg_url, "a")
    b = pg_server(tmp_path, pg_url, "b")
    try:
        connect(a.port, "dora", password="dorapw").quit()
        # SASL PLAIN on B: B's cache of account names predates dora; it asks the database.
        c = Client(b.port)
        c.send("CAP LS 302")
        c.send("CAP REQ :sasl")
        c.send("NICK dora")
        c.send("USER dora 0 * :dora")
        c.expect(lambda line: " ACK :sasl" in line)
        c.send("AUTHENTICATE PLAIN")
        c.expect("AUTHENTICATE +")
        c.send("AUTHENTICATE " + base64.b64encode(b"\0dora\0wrong").decode())
        c.expect_numeric("904")
        c.send("AUTHENTICATE PLAIN")
        c.expect("AUTHENTICATE +")
        c.send("AUTHENTICATE " + base64.b64encode(b"\0dora\0dorapw").decode())
        assert "You are now logged in as dora" in c.expect_numeric("900")
        c.expect_numeric("903")
        c.send("CAP END")
        c.expect_numeric("001")
        # A name registered on B is refused to A's second registration.
        assert outcome(start_login(b.port, "eve", "evepw")) == "001"
        assert outcome(start_login(a.port, "eve", "notevepw")) == "464"
        assert account_rows(pg_url) == [("dora", "dora"), ("eve", "eve")]
    finally:
        a.stop()
        b.stop()


# -- PostgreSQL restarted under a running server -----------------------------------------------

def test_postgresql_restart_gives_error_replies_then_the_server_recovers(tmp_path, postgres, pg_url):  # noqa: F811
    srv = pg_server(tmp_path, pg_url, "one")
    try:
        alice = connect(srv.port, "alice", password="apw")
        bob = connect(srv.port, "bob")
        postgres.stop()
        try:
            alice.send("PRIVMSG #general :kept in memory")
            bob.expect("kept in memory")
            c = start_login(srv.port, "carol", "cpw")
            line = c.expect(lambda x: command_of(x) in ("400", "001"), timeout=20)
            assert line == (f":{SERVER} 400 carol PASS :Account database unavailable, "
                            "try again later")
            assert c.expect(lambda x: command_of(x) == "ERROR") == (
                "ERROR :Account database error")
            assert c.closed_by_server()
            # Users already online keep chatting; the server is alive.
            chats(bob, alice, "during the outage")
            assert srv.alive()
            deadline = time.monotonic() + 15  # the history batch failed and is kept
            while "kept for a retry" not in srv.log():
                assert time.monotonic() < deadline, srv.log()[-2000:]
                time.sleep(0.2)
        finally:
            postgres.start()
        deadline = time.monotonic() + 20
        while True:  # the pool reconnects by itself: no restart of the server
            c = start_login(srv.port, "carol", "cpw")
            line = c.expect(lambda x: command_of(x) in ("400", "001"), timeout=20)
            if command_of(line) == "001":
                break
            assert time.monotonic() < deadline, "no login within 20 s of PostgreSQL's restart"
            c.close()
            time.sleep(0.5)
        assert ("carol", "carol") in account_rows(pg_url)
        chats(alice, bob, "after the outage")
        # The history written during the outage was kept and written once PostgreSQL returned.
        deadline = time.monotonic() + 20
        while history_texts(pg_url).count("kept in memory") != 1:
            assert time.monotonic() < deadline, history_texts(pg_url)
            time.sleep(0.2)
        assert srv.alive()
    finally:
        assert srv.stop() == 0
    assert "Traceback" not in srv.log()


def test_a_channel_dropped_while_postgresql_is_down_stays_dropped_after_a_restart(
        tmp_path, postgres, pg_url):  # noqa: F811
    first = pg_server(tmp_path, pg_url, "one", SERVICES_TOML)
    try:
        fay = connect(first.port, "fay", password="faypw")
        fay.send("JOIN #gone")
        fay.sync()
        fay.send("PRIVMSG ChanServ :REGISTER #gone")
        fay.expect("#gone is now registered to fay.")
        time.sleep(1.5)  # the registration is saved within a second
        postgres.stop()
        try:
            fay.send("PRIVMSG ChanServ :DROP #gone")
            # ChanServ answers once the write has failed: within the next save (a
            # second) plus [database] timeout (5 s) and the watchdog's grace.
            answer = fay.expect("#gone", timeout=20)
            assert "could not be saved" in answer, answer
            deadline = time.monotonic() + 15  # the save of the drop fails once at least
            while "registered channels failed" not in first.log():
                assert time.monotonic() < deadline, first.log()[-2000:]
                time.sleep(0.2)
        finally:
            postgres.start()
        deadline = time.monotonic() + 20  # retried until PostgreSQL is back
        while True:
            with psycopg.connect(pg_url) as db:
                rows = db.execute("SELECT count(*) FROM registered_channels").fetchone()
            if rows is not None and rows[0] == 0:
                break
            assert time.monotonic() < deadline, "the drop was never written"
            time.sleep(0.3)
    finally:
        assert first.stop() == 0
    second = pg_server(tmp_path, pg_url, "two", SERVICES_TOML)
    try:
        gus = connect(second.port, "gus")
        gus.send("PRIVMSG ChanServ :INFO #gone")
        assert any("not registered" in line for line in gus.sync()), gus.lines
    finally:
        assert second.stop() == 0
