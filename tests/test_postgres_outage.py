"""A PostgreSQL that stops answering (SIGSTOP: its TCP connections stay up) never hangs the server.

The test PostgreSQL (tests/engines.py) is frozen with SIGSTOP, the postmaster
and every backend (the postmaster's pid from the data dir's ``postmaster.pid``,
its children from ``pgrep -P``), under a running ``python -m ircd --database``.
Logins (PASS for a new and an existing account, SASL) get ``400 ... Account
database unavailable`` within the documented bound while users online chat
on; a login still waiting when ``registration_timeout`` passes gets
``ERROR :Registration timeout``; jobs beyond ``[accounts] max_queued_jobs``
get the 400 at once; history and K-line writes fail, are retried, and land
once PostgreSQL is back (SIGCONT), when logins work again.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.engines import PostgresServer, pg_url, postgres  # noqa: F401 - fixtures
from tests.ircv3util import Client, connect
from tests.opersupport import OPER_PASSWORD, become_oper, oper_block
from tests.support import RawClient, ServerProcess, command_of, config_with

pytestmark = pytest.mark.timeout(120)

SERVER = "irc.chatserver.local"
UNAVAILABLE = "Account database unavailable, try again later"
TIMEOUT = 2.0
"""``[database] timeout`` of these tests (seconds)."""
ANSWER_WITHIN = 4 * (TIMEOUT + 0.5)
"""A login's answer during the outage: the timeout plus the grace, waiting for a
worker behind at most three other such operations (two workers here)."""


def _postgres_pids(pg: PostgresServer) -> list[int]:
    """The postmaster (first line of ``postmaster.pid``) and all its children."""
    postmaster = int((pg.data / "postmaster.pid").read_text().splitlines()[0])
    children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True,
                              text=True).stdout.split()
    return [postmaster, *map(int, children)]


@contextlib.contextmanager
def frozen(pg: PostgresServer) -> Iterator[None]:
    """SIGSTOP the whole PostgreSQL for the ``with`` block; SIGCONT after, also on failure."""
    postmaster = _postgres_pids(pg)[0]
    os.kill(postmaster, signal.SIGSTOP)  # first: it forks no new backend while stopped
    pids = _postgres_pids(pg)
    for pid in pids[1:]:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in reversed(pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def pg_server(tmp_path, url: str, name: str = "one", **sections) -> ServerProcess:
    sections.setdefault("database", {}).setdefault("timeout", TIMEOUT)
    return ServerProcess(tmp_path / name, config_text=config_with(**sections),
                         extra_args=["--database", url]).start()


def start_pass_login(port: int, nick: str, password: str) -> RawClient:
    c = RawClient(port, timeout=30)
    c.send(f"PASS {password}")
    c.send(f"NICK {nick}")
    c.send(f"USER {nick} 0 * :{nick}")
    return c


def start_sasl_login(port: int, nick: str, password: str) -> RawClient:
    c = RawClient(port, timeout=30)
    c.send("CAP LS 302")
    c.send("CAP REQ :sasl")
    c.send(f"NICK {nick}")
    c.send(f"USER {nick} 0 * :{nick}")
    c.expect(lambda line: " ACK :sasl" in line)
    c.send("AUTHENTICATE PLAIN")
    c.expect("AUTHENTICATE +")
    c.send("AUTHENTICATE " + base64.b64encode(f"\0{nick}\0{password}".encode()).decode())
    return c


def chats(a: Client, b: Client, text: str) -> None:
    a.send(f"PRIVMSG {b.nick} :{text}")
    b.expect(lambda line: line.endswith(f"PRIVMSG {b.nick} :{text}"))


def wait_for_log(srv: ServerProcess, needle: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while needle not in srv.log():
        assert time.monotonic() < deadline, f"no {needle!r} in the log: {srv.log()[-3000:]}"
        time.sleep(0.2)


def login_works_again(port: int, nick: str, password: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        c = start_pass_login(port, nick, password)
        line = c.expect(lambda x: command_of(x) in ("400", "001"))
        c.close()
        if command_of(line) == "001":
            return
        assert time.monotonic() < deadline, "no login after PostgreSQL came back"
        time.sleep(0.5)


def test_logins_answer_400_within_seconds_while_postgresql_is_stopped(tmp_path, postgres, pg_url):  # noqa: F811
    srv = pg_server(tmp_path, pg_url)
    try:
        connect(srv.port, "dora", password="dorapw").quit()  # an existing account
        alice = connect(srv.port, "alice", password="apw")
        bob = connect(srv.port, "bob")
        with frozen(postgres):
            alice.send("PRIVMSG #general :while frozen")  # a history batch that cannot be written
            bob.expect("while frozen")
            t0 = time.monotonic()
            new = start_pass_login(srv.port, "carol", "cpw")
            old = start_pass_login(srv.port, "dora", "dorapw")
            sasl = start_sasl_login(srv.port, "dora", "dorapw")
            for c, nick, cmd in ((new, "carol", "PASS"), (old, "dora", "PASS"),
                                 (sasl, "dora", "AUTHENTICATE")):
                line = c.expect(lambda x: command_of(x) in ("400", "001", "900", "904"),
                                timeout=ANSWER_WITHIN + 1)
                assert line == f":{SERVER} 400 {nick} {cmd} :{UNAVAILABLE}", line
                assert time.monotonic() - t0 < ANSWER_WITHIN
            assert new.expect(lambda x: command_of(x) == "ERROR") == "ERROR :Account database error"
            assert new.closed_by_server()
            assert old.closed_by_server()
            # SASL ends with 904 (not counted as a wrong password); the client may go on.
            sasl.expect_numeric("904")
            sasl.send("PING :still")
            sasl.expect("still")
            # Users online chat on; the server never waited on the database.
            chats(bob, alice, "during the outage")
            chats(alice, bob, "still during the outage")
            wait_for_log(srv, "kept for a retry", ANSWER_WITHIN)
            assert srv.alive()
        login_works_again(srv.port, "carol", "cpw")
        sasl = start_sasl_login(srv.port, "dora", "dorapw")
        sasl.expect_numeric("903")
        with psycopg.connect(pg_url) as db:
            names = {n for (n,) in db.execute("SELECT name FROM accounts")}
        assert names == {"alice", "carol", "dora"}
        chats(alice, bob, "after the outage")
        deadline = time.monotonic() + 20  # the batch that failed was written once, later
        while True:
            with psycopg.connect(pg_url) as db:
                texts = [t for (t,) in db.execute("SELECT text FROM history")]
            if texts.count("while frozen") == 1:
                break
            assert texts.count("while frozen") == 0 and time.monotonic() < deadline, texts
            time.sleep(0.3)
    finally:
        assert srv.stop() == 0
    assert "Traceback" not in srv.log()


def test_registration_timeout_ends_a_login_whose_check_waits_on_the_database(
        tmp_path, postgres, pg_url):  # noqa: F811
    srv = pg_server(tmp_path, pg_url, server={"registration_timeout": 2.0},
                    database={"timeout": 60.0})
    try:
        alice = connect(srv.port, "alice")
        bob = connect(srv.port, "bob")
        with frozen(postgres):
            t0 = time.monotonic()
            c = start_pass_login(srv.port, "carol", "cpw")
            line = c.expect(lambda x: command_of(x) in ("ERROR", "400", "001"), timeout=8)
            assert line == "ERROR :Registration timeout"
            assert time.monotonic() - t0 < 8  # (the database's own bound is 60 s here)
            assert c.closed_by_server()
            chats(alice, bob, "unaffected")
        login_works_again(srv.port, "carol", "cpw", timeout=90)
    finally:
        assert srv.stop() == 0


def test_logins_beyond_the_queue_bound_get_400_at_once(tmp_path, postgres, pg_url):  # noqa: F811
    srv = pg_server(tmp_path, pg_url, accounts={"hash_workers": 1, "max_queued_jobs": 2},
                    database={"timeout": 5.0})
    try:
        alice = connect(srv.port, "alice")
        bob = connect(srv.port, "bob")
        with frozen(postgres):
            t0 = time.monotonic()
            clients = [start_pass_login(srv.port, f"user{i}", "pw") for i in range(10)]
            refused = 0
            for i, c in enumerate(clients):
                try:
                    line = c.expect(lambda x: command_of(x) in ("400", "001"), timeout=max(
                        0.1, 2.0 - (time.monotonic() - t0)))
                except TimeoutError:
                    continue  # one of the (at most 1 + 2) jobs taken: answered later
                assert line == f":{SERVER} 400 user{i} PASS :{UNAVAILABLE}"
                refused += 1
            # One job runs (5 s against the frozen database), two wait; the rest
            # are refused at once rather than waiting 5 s each behind them.
            assert refused >= 7, refused
            assert time.monotonic() - t0 < 4
            chats(alice, bob, "unaffected")
            assert "jobs wait for a worker thread: refusing more" in srv.log()
        login_works_again(srv.port, "zed", "zpw")
    finally:
        assert srv.stop() == 0


def test_a_kline_set_while_postgresql_is_stopped_is_saved_once_it_is_back(
        tmp_path, postgres, pg_url):  # noqa: F811
    srv = ServerProcess(tmp_path / "one",
                        config_text=config_with(database={"timeout": TIMEOUT})
                        + oper_block("ops", OPER_PASSWORD),
                        extra_args=["--database", pg_url]).start()
    try:
        boss = connect(srv.port, "boss")
        become_oper(boss)
        with frozen(postgres):
            boss.send("KLINE baduser@127.0.0.1 :go away")
            boss.expect("Added K-line on *!baduser@127.0.0.1")
            wait_for_log(srv, "failed (retried later)", ANSWER_WITHIN)
            bob = connect(srv.port, "bob")
            chats(boss, bob, "the server serves")
        deadline = time.monotonic() + 30  # retried every 10 s
        while True:
            with psycopg.connect(pg_url) as db:
                rows = db.execute("SELECT mask FROM server_bans").fetchall()
            if rows:
                break
            assert time.monotonic() < deadline, srv.log()[-3000:]
            time.sleep(0.5)
        assert rows == [("*!baduser@127.0.0.1",)]
    finally:
        assert srv.stop() == 0
