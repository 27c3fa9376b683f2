"""The Prometheus endpoint (``--metrics-port``, ``[metrics]``; ``ircd/metrics.py``).

Real HTTP GETs to a real server subprocess, before and after real IRC
traffic over sockets: each value moves exactly as the traffic says.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import ROOT, RawClient, command_of, config_with, free_port, wait_for_port

pytestmark = pytest.mark.timeout(60)

NAMES = [
    "chatserver_connections", "chatserver_registered_users", "chatserver_channels",
    "chatserver_messages_relayed_total", "chatserver_sendq_drops_total",
    "chatserver_flood_disconnects_total", "chatserver_login_failures_total",
    "chatserver_event_loop_lag_seconds", "chatserver_history_write_backlog",
]


def scrape(port: int) -> dict[str, float]:
    """GET /metrics; every sample by name (the exposition format parsed by prometheus_client)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        text = resp.read().decode()
    return {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples}


def poll(port: int, name: str, want: float, timeout: float = 10.0) -> dict[str, float]:
    """Scrape until ``name`` equals ``want`` (a bounded loop); return the last scrape."""
    deadline = time.monotonic() + timeout
    while True:
        got = scrape(port)
        if got[name] == want or time.monotonic() > deadline:
            assert got[name] == want, (name, got)
            return got
        time.sleep(0.05)


def start(server_factory, config_text: str | None = None):
    mport = free_port()
    kwargs = {"extra_args": ["--metrics-port", str(mport)]}
    if config_text is not None:
        kwargs["config_text"] = config_text
    srv = server_factory(**kwargs)
    wait_for_port(mport, srv.proc)
    return srv, mport


def user(port: int, nick: str, source: str = "127.0.0.1", rcvbuf: int | None = None,
         password: str | None = None) -> RawClient:
    c = RawClient.__new__(RawClient)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    c.sock, c.timeout, c.buf, c.lines = sock, 10.0, b"", []
    c.register(nick, password)
    return c


def roundtrip(c: RawClient, token: str) -> list[str]:
    c.send(f"PING {token}")
    start = len(c.lines)
    c.expect(lambda line: command_of(line) == "PONG" and line.endswith(":" + token))
    return c.lines[start:-1]


def test_metrics_follow_connections_users_channels_and_messages(server_factory):
    srv, mport = start(server_factory)
    before = scrape(mport)
    assert set(NAMES) <= set(before), sorted(before)
    assert [before[n] for n in NAMES[:7]] == [0, 0, 0, 0, 0, 0, 0]
    assert before["chatserver_event_loop_lag_seconds"] >= 0

    alice = user(srv.port, "alice")
    bob = user(srv.port, "bob")     # both autojoin #general
    alice.send("JOIN #dev")
    roundtrip(alice, "joined")
    got = scrape(mport)
    assert got["chatserver_connections"] == 2
    assert got["chatserver_registered_users"] == 2
    assert got["chatserver_channels"] == 2

    for i in range(3):
        alice.send(f"PRIVMSG #general :hello {i}")
    alice.send("PRIVMSG bob :direct one")       # the direct fast path
    alice.send("PRIVMSG bob :direct two")
    alice.send("NOTICE bob :a notice")
    alice.send("PRIVMSG #general,bob :two targets")
    alice.send("PRIVMSG nobody :offline")       # 401: not relayed
    alice.send("PRIVMSG #nowhere :no channel")  # 403: not relayed
    assert [command_of(x) for x in roundtrip(alice, "sent")] == ["401", "403"]
    got_bob = roundtrip(bob, "received")
    assert len([x for x in got_bob if " PRIVMSG " in x or " NOTICE " in x]) == 8
    got = scrape(mport)
    assert got["chatserver_messages_relayed_total"] == 8

    # The channel messages are recorded in the history, written off the loop: the
    # backlog drains to zero.
    poll(mport, "chatserver_history_write_backlog", 0)

    bob.send("QUIT :bye")
    assert bob.closed_by_server()
    got = poll(mport, "chatserver_connections", 1)
    assert got["chatserver_registered_users"] == 1
    alice.send("PART #dev")
    roundtrip(alice, "parted")
    assert scrape(mport)["chatserver_channels"] == 1
    # Unaffected: alice still chats, the counter goes on.
    alice.send("PRIVMSG alice :to myself")
    assert any("to myself" in x for x in roundtrip(alice, "self"))
    assert scrape(mport)["chatserver_messages_relayed_total"] == 9
    # A metrics client never stops the IRC side, and a scrape changes nothing.
    assert scrape(mport)["chatserver_messages_relayed_total"] == 9


def test_login_failures_and_flood_disconnects_are_counted(server_factory):
    srv, mport = start(server_factory, config_with(limits={
        "flood_burst": 5, "flood_rate": 1.0, "flood_backlog": 10,
        "login_delay_max": 0.0}))
    alice = user(srv.port, "alice", password="right-pw")  # creates the account
    alice.send("QUIT")
    assert alice.closed_by_server()
    for attempt in range(2):
        c = RawClient(srv.port)
        c.send("PASS wrong-pw")
        c.send("NICK alice")
        c.send("USER alice 0 * :a")
        c.expect_numeric("464")
        assert c.closed_by_server()
        assert scrape(mport)["chatserver_login_failures_total"] == attempt + 1

    flooder = user(srv.port, "flooder")
    bystander = user(srv.port, "bystander")
    flooder.send("".join(f"PRIVMSG #general :flood {i}\r\n" for i in range(100)).encode())
    flooder.expect(lambda line: line.startswith("ERROR :Excess Flood"))
    got = poll(mport, "chatserver_flood_disconnects_total", 1)
    assert got["chatserver_login_failures_total"] == 2
    assert got["chatserver_sendq_drops_total"] == 0
    # The bystander is unaffected and the right password still logs in.
    bystander.send("PRIVMSG #general :still fine")
    roundtrip(bystander, "fine")
    user(srv.port, "alice", password="right-pw")   # waits for 001
    assert scrape(mport)["chatserver_login_failures_total"] == 2


def test_sendq_drop_is_counted_once(server_factory):
    srv, mport = start(server_factory, config_with(server={"sendq": 8192}) + (
        "\n[[limits.classes]]\nname = \"writer\"\nnetworks = [\"127.0.0.2/32\"]\n"
        "flood_burst = 100000\nflood_rate = 100000.0\nflood_backlog = 100000\n"
        "sendq = 1048576\n"))
    slow = user(srv.port, "slow", rcvbuf=4096)
    writer = user(srv.port, "writer", source="127.0.0.2")
    batch = b"".join(f"PRIVMSG slow :{i:05d} {'x' * 400}\r\n".encode() for i in range(1000))
    for _ in range(40):                      # at most ~16 MB, until the sendq is exceeded
        writer.send(batch)
        roundtrip(writer, "batch")
        if scrape(mport)["chatserver_sendq_drops_total"]:
            break
    got = scrape(mport)
    assert got["chatserver_sendq_drops_total"] == 1
    assert got["chatserver_flood_disconnects_total"] == 0
    writer.send("PRIVMSG slow :gone?")
    writer.expect_numeric("401")
    assert poll(mport, "chatserver_registered_users", 1)["chatserver_sendq_drops_total"] == 1
    slow.close()


def test_other_paths_and_methods_are_refused(server_factory):
    srv, mport = start(server_factory)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{mport}/", timeout=5)
    assert err.value.code == 404
    req = urllib.request.Request(f"http://127.0.0.1:{mport}/metrics", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 405
    # A client that sends garbage without a request end, then hangs up, harms nothing.
    with socket.create_connection(("127.0.0.1", mport), timeout=5) as s:
        s.sendall(b"\xff" * 10000)
        s.settimeout(5)
        # The head is over 8 KiB: closed at once (a reset, as our bytes were left unread).
        with contextlib.suppress(ConnectionResetError):
            assert s.recv(100) == b""
    c = user(srv.port, "after")
    assert scrape(mport)["chatserver_connections"] == 1
    c.close()


def test_metrics_port_in_use_exits_1_with_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        mport = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "ircd", str(free_port()), "--data-dir", str(tmp_path / "d"),
             "--metrics-port", str(mport)],
            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    lines = [x for x in proc.stderr.splitlines() if x.startswith("chatserver:")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"chatserver: cannot listen on 127.0.0.1:{mport}: ")
    assert "address already in use" in lines[0].lower()


def test_metrics_are_off_by_default_and_the_log_names_the_endpoint(server_factory):
    plain = server_factory()
    user(plain.port, "plain").close()
    assert "metrics on" not in plain.log()
    srv, mport = start(server_factory)
    assert f"metrics on http://127.0.0.1:{mport}/metrics" in srv.log()


def test_bad_metrics_port_in_the_config_is_a_config_error_naming_the_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[metrics]\nenabled = true\nport = 70000\n")
    proc = subprocess.run([sys.executable, "-m", "ircd", "--config", str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"chatserver: {path}: 'metrics.port' must be 0..65535 (got 70000)"
