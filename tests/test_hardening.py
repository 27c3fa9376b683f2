"""Hardening against misbehaving clients, on a real ``python -m ircd`` subprocess.

Each test starts its own server on a free loopback port (``server_factory``)
with the limits it needs, attacks it the way a hostile or broken client
would, and checks two things: the offender gets the documented answer
(``ERROR :Excess Flood``, ``ERROR :Registration timeout`` ...), and the
well-behaved clients next to it are not harmed. Other loopback addresses
(127.0.0.2, 127.0.0.3 ...) stand in for other hosts.
"""

from __future__ import annotations

import asyncio
import re
import selectors
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support import FAST_HASH_TOML, RawClient, ServerProcess, command_of, wait_for_port

pytestmark = pytest.mark.timeout(60)

SERVER = "irc.chatserver.local"


def config(*sections: str) -> str:
    """FAST_HASH_TOML followed by the given TOML text (new tables only)."""
    return FAST_HASH_TOML + "\n" + "\n".join(sections)


class Client(RawClient):
    """A :class:`RawClient` that can connect from another loopback address and
    shrink its receive buffer before connecting (a slow reader)."""

    def __init__(self, port: int, source: str = "127.0.0.1", timeout: float = 10.0,
                 rcvbuf: int | None = None) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        self.sock = sock
        self.timeout = timeout
        self.buf = b""
        self.lines = []

    def roundtrip(self, token: str = "rt", timeout: float = 5.0) -> None:
        """PING the server and wait for the PONG: everything sent before was handled."""
        self.send(f"PING :{token}")
        self.expect(lambda line: command_of(line) == "PONG" and line.endswith(token), timeout)


def registered(port: int, nick: str, source: str = "127.0.0.1", password: str | None = None,
               **kw) -> Client:
    c = Client(port, source, **kw)
    c.register(nick, password)
    c.expect(lambda line: command_of(line) == "366")   # end of the #general autojoin
    return c


def privmsgs(lines: list[str], sender: str, prefix: str) -> list[str]:
    """The texts of PRIVMSGs from ``sender`` whose text starts with ``prefix``."""
    out = []
    for line in lines:
        m = re.match(rf":{re.escape(sender)}!\S+ PRIVMSG \S+ :(.*)$", line)
        if m and m.group(1).startswith(prefix):
            out.append(m.group(1))
    return out


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process: its resident memory now and at its peak, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def read_until_closed(socks: list[socket.socket], timeout: float) -> dict[socket.socket, bytes]:
    """Read every socket until the server closes it (or ``timeout``); return what each got."""
    got = {s: b"" for s in socks}
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    open_count = len(socks)
    deadline = time.monotonic() + timeout
    while open_count and time.monotonic() < deadline:
        for key, _ in sel.select(0.2):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                got[s] += data
            else:
                sel.unregister(s)
                open_count -= 1
    sel.close()
    return got


def wait_for_log(srv: ServerProcess, needle: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = srv.log()
        if needle in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not in server log:\n{srv.log()[-3000:]}")


# -- slowloris -------------------------------------------------------------------------


def test_slowloris_connections_are_held_then_timed_out_while_others_chat(server_factory):
    srv = server_factory(config_text=config("[server]\nregistration_timeout = 2.0\n"))
    slow: list[socket.socket] = []
    started = time.monotonic()
    for i in range(200):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        if i % 4 == 1:
            s.sendall(f"NICK slow{i}".encode())                # a partial line, no newline
        elif i % 4 == 2:
            s.sendall(f"NICK slow{i}\r\nUSER slow 0 * :sl".encode())  # NICK, then half a USER
        elif i % 4 == 3:
            s.sendall(b"CAP LS 302\r\n")                        # negotiation never ended
        slow.append(s)

    # Meanwhile ordinary users register and chat without delay.
    t0 = time.monotonic()
    alice = registered(srv.port, "alice")
    bob = registered(srv.port, "bob")
    assert time.monotonic() - t0 < 2.0, "registration was slowed down by the idle connections"
    t0 = time.monotonic()
    alice.send("PRIVMSG #general :hello while 200 sockets idle")
    bob.expect("hello while 200 sockets idle", timeout=2)
    assert time.monotonic() - t0 < 1.5
    alice.send("LUSERS")
    unknown = alice.expect(lambda line: command_of(line) == "253")
    assert int(unknown.split()[3]) >= 200, unknown          # all 200 are held at once

    got = read_until_closed(slow, timeout=10)
    elapsed = time.monotonic() - started
    still_open = [s for s, data in got.items() if not data.endswith(b"\n")]
    timed_out = [s for s, data in got.items() if b"ERROR :Registration timeout\r\n" in data]
    for s in slow:
        s.close()
    assert not still_open and len(timed_out) == 200, (len(still_open), len(timed_out))
    assert elapsed < 8, f"the idle connections lasted {elapsed:.1f}s with registration_timeout = 2"
    # The registered users are untouched.
    bob.send("PRIVMSG #general :still here")
    alice.expect("still here", timeout=2)
    alice.roundtrip()
    assert srv.alive()


# -- flood control -----------------------------------------------------------------------


def test_flood_of_500_lines_gets_excess_flood_and_the_channel_survives(server_factory):
    srv = server_factory()
    flooder = registered(srv.port, "flooder")
    watcher = registered(srv.port, "watcher")
    flooder.drain(0.2)
    time.sleep(0.6)   # the budget refills after NICK/USER: a full burst of 20 is available
    flooder.send(b"".join(f"PRIVMSG #general :flood {i:03d}\r\n".encode() for i in range(500)))
    error = flooder.expect(lambda line: command_of(line) == "ERROR", timeout=5)
    assert error == "ERROR :Excess Flood"
    assert flooder.closed_by_server(timeout=5)

    watcher.expect(lambda line: " QUIT " in line and line.startswith(":flooder!"), timeout=5)
    got = privmsgs(watcher.lines, "flooder", "flood ")
    # The burst went through, in order, and nothing after the disconnection.
    assert got == [f"flood {i:03d}" for i in range(len(got))]
    assert 15 <= len(got) <= 25, len(got)
    assert watcher.lines[-1].endswith(":Excess Flood"), watcher.lines[-1]

    # Nothing is broken: the channel and the server work for everyone else.
    other = registered(srv.port, "other")
    other.send("PRIVMSG #general :after the flood")
    watcher.expect("after the flood", timeout=2)
    watcher.send("NAMES #general")
    names = watcher.expect(lambda line: command_of(line) == "353")
    assert "flooder" not in names and "watcher" in names and "other" in names
    assert srv.alive() and "excess flood from 127.0.0.1" in srv.log()


def test_moderately_fast_client_is_delayed_not_disconnected(server_factory):
    srv = server_factory()
    sender = registered(srv.port, "quick")
    watcher = registered(srv.port, "watcher")
    time.sleep(0.6)
    t0 = time.monotonic()
    sender.send(b"".join(f"PRIVMSG #general :line {i:02d}\r\n".encode() for i in range(30)))
    watcher.expect("line 29", timeout=10)
    elapsed = time.monotonic() - t0
    got = privmsgs(watcher.lines, "quick", "line ")
    assert got == [f"line {i:02d}" for i in range(30)]       # all, once, in order
    # 20 at once, then 10 more at 4/s: delayed by about 2.5 s.
    assert 1.8 <= elapsed <= 6.0, elapsed
    sender.roundtrip()                                        # still connected
    assert not any(command_of(line) == "ERROR" for line in sender.lines)


def test_connection_class_with_big_flood_budget_lets_500_lines_through(server_factory):
    srv = server_factory(config_text=config(
        "[limits]\n[[limits.classes]]\nname = \"bots\"\nnetworks = [\"127.0.0.0/8\"]\n"
        "flood_burst = 1000\nflood_rate = 1000.0\nflood_backlog = 5000\n"))
    bot = registered(srv.port, "bot")
    watcher = registered(srv.port, "watcher")
    bot.send(b"".join(f"PRIVMSG #general :bulk {i:03d}\r\n".encode() for i in range(500)))
    watcher.expect("bulk 499", timeout=10)
    assert privmsgs(watcher.lines, "bot", "bulk ") == [f"bulk {i:03d}" for i in range(500)]
    bot.roundtrip()
    assert not any(command_of(line) == "ERROR" for line in bot.lines)


# -- slow reader -------------------------------------------------------------------------


def test_slow_reader_is_disconnected_for_sendq_and_others_are_unaffected(server_factory):
    srv = server_factory(config_text=config(
        "[server]\nsendq = 8192\n"
        "[limits]\n[[limits.classes]]\nname = \"writer\"\nnetworks = [\"127.0.0.2/32\"]\n"
        "flood_burst = 100000\nflood_rate = 100000.0\nflood_backlog = 100000\n"
        "sendq = 1048576\n"))
    slow = registered(srv.port, "slow", rcvbuf=4096)
    other = registered(srv.port, "other")
    writer = registered(srv.port, "writer", source="127.0.0.2")
    text = "x" * 400
    # Direct messages to the reader that never reads: only it is sent this data.
    batch = b"".join(f"PRIVMSG slow :{i:05d} {text}\r\n".encode() for i in range(1000))
    for _ in range(40):                    # at most ~16 MB
        writer.send(batch)
        writer.roundtrip()
        if "sendq exceeded for" in srv.log():
            break
    wait_for_log(srv, "sendq exceeded for 127.0.0.1", timeout=5)

    # Others saw it leave; the writer is told the nick is gone; everyone else still chats.
    other.expect(lambda line: line.startswith(":slow!") and line.endswith("QUIT :SendQ exceeded"))
    writer.drain(0.2)
    writer.send("PRIVMSG slow :anyone there?")
    writer.expect(lambda line: command_of(line) == "401", timeout=5)
    writer.send("PRIVMSG other :fine here")
    other.expect("fine here", timeout=5)
    other.roundtrip()

    # When the reader finally reads, it gets what was queued, then the ERROR, then EOF.
    slow.sock.settimeout(10)
    tail = b""
    while True:
        chunk = slow.sock.recv(1 << 20)
        if not chunk:
            break
        tail = (tail + chunk)[-200:]
    assert tail.endswith(b"ERROR :SendQ exceeded\r\n"), tail[-100:]
    assert srv.alive()
    # One slow reader, one event: logged once.
    log = srv.log()
    assert log.count("sendq exceeded for") == 1, [
        line for line in log.splitlines() if "sendq" in line.lower()]


# -- connection limits ---------------------------------------------------------------------


def test_connection_limits_per_ip_server_full_and_busy(server_factory):
    simple_port = _free_port_other_than()
    srv = server_factory(
        config_text=config("[limits]\nexempt = []\nmax_per_ip = 3\nmax_clients = 5\n"),
        extra_args=["--simple-port", str(simple_port)])
    wait_for_port(simple_port, srv.proc)
    _wait_until_probes_released(srv)   # wait_for_port's probe connections count until closed
    held = []
    for _ in range(3):
        c = Client(srv.port)
        c.roundtrip()
        held.append(c)
    fourth = Client(srv.port)
    assert fourth.readline(5) == (
        "ERROR :Closing Link: 127.0.0.1 (Too many connections from your IP)")
    assert fourth.readline(5) is None

    # Another address may still connect, up to max_clients in all.
    for _ in range(2):
        c = Client(srv.port, source="127.0.0.2")
        c.roundtrip()
        held.append(c)
    sixth = Client(srv.port, source="127.0.0.3")
    assert sixth.readline(5) == "ERROR :Closing Link: 127.0.0.3 (Server full)"
    assert sixth.readline(5) is None

    # The SEND-dialect listener answers BUSY when the server is full.
    s = socket.create_connection(("127.0.0.1", simple_port), timeout=5, source_address=("127.0.0.4", 0))
    assert s.recv(100) == b"BUSY\n"
    assert s.recv(100) == b""
    s.close()

    # Releasing one connection makes room again (the counts are released on close).
    held.pop(0).close()
    time.sleep(0.3)
    again = registered(srv.port, "again")
    again.roundtrip()
    for c in held:
        c.roundtrip()                            # nobody held was disturbed
    assert "Too many connections from your IP" in srv.log() and "Server full" in srv.log()


def _wait_until_probes_released(srv, timeout: float = 5.0) -> None:
    """Wait until the server has logged a disconnect for every connect so far."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = srv.log()
        if log.count("INFO ircd.net: connect ") <= log.count("INFO ircd.net: disconnect "):
            return
        time.sleep(0.02)
    raise AssertionError("probe connections still open:\n" + srv.log()[-2000:])


def _free_port_other_than() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- ping timeout ----------------------------------------------------------------------------


def test_ping_timeout_disconnects_the_silent_client_and_keeps_the_one_that_answers(server_factory):
    srv = server_factory(config_text=config("[server]\nping_interval = 1.0\nping_timeout = 1.0\n"))
    silent = registered(srv.port, "silent")
    lively = registered(srv.port, "lively")
    stop = threading.Event()
    pings_answered = []

    def answer_pings() -> None:
        while not stop.is_set():
            try:
                line = lively.readline(0.2)
            except TimeoutError:
                continue
            if line is None:
                return
            if command_of(line) == "PING":
                lively.send("PONG " + line.split(" ", 1)[1])
                pings_answered.append(line)

    thread = threading.Thread(target=answer_pings, daemon=True)
    thread.start()
    try:
        ping = silent.expect(lambda line: command_of(line) == "PING", timeout=5)
        assert ping == f"PING :{SERVER}"
        error = silent.expect(lambda line: command_of(line) == "ERROR", timeout=5)
        m = re.fullmatch(r"ERROR :Ping timeout: (\d+) seconds", error)
        assert m and 2 <= int(m.group(1)) <= 5, error
        assert silent.closed_by_server(3)
        time.sleep(1.5)    # more PING rounds for the client that answers
    finally:
        stop.set()
        thread.join(2)
    assert len(pings_answered) >= 2, pings_answered
    assert any(line.startswith(":silent!") and "QUIT :Ping timeout:" in line for line in lively.lines)
    lively.roundtrip()
    assert srv.alive()


# -- receive buffer bound ----------------------------------------------------------------------


def test_a_megabyte_without_newline_gets_one_417_and_bounded_memory(server_factory):
    srv = server_factory()
    c = registered(srv.port, "longline")
    c.roundtrip()
    rss_before, peak_before = memory_kib(srv.proc.pid)
    chunk = b"A" * 65536
    for _ in range(16):                     # 1 MiB, no newline
        c.send(chunk)
    time.sleep(0.3)
    rss_during, _ = memory_kib(srv.proc.pid)
    c.send(b"\r\n")
    c.roundtrip("after-newline")
    rss_after, peak_after = memory_kib(srv.proc.pid)
    too_long = [line for line in c.lines if command_of(line) == "417"]
    assert too_long == [f":{SERVER} 417 longline :Input line was too long"]
    grown = max(rss_during, rss_after) - rss_before
    assert grown < 4096, f"RSS grew by {grown} KiB"
    assert peak_after - peak_before < 4096, f"peak RSS grew by {peak_after - peak_before} KiB"
    # The connection works normally afterwards.
    other = registered(srv.port, "other")
    c.send("PRIVMSG #general :back to normal")
    other.expect("back to normal", timeout=2)


# -- login throttling -----------------------------------------------------------------------------


def test_wrong_passwords_lock_out_that_address_but_not_others(server_factory):
    srv = server_factory(config_text=config(
        "[limits]\nlogin_failures_per_account = 3\nlogin_delay_max = 0.5\n"))
    alice = registered(srv.port, "alice", password="right-pw")
    alice.send("QUIT :bye")
    assert alice.closed_by_server()

    for attempt in range(3):
        c = Client(srv.port)
        c.send("PASS wrong-pw")
        c.send("NICK alice")
        c.send("USER alice 0 * :a")
        line = c.expect(lambda line: command_of(line) in ("001", "464"))
        assert line == f":{SERVER} 464 alice :Password incorrect", (attempt, line)
        assert c.expect(lambda line: command_of(line) == "ERROR") == (
            "ERROR :Closing Link: 127.0.0.1 (Bad password)")
        assert c.closed_by_server()

    # The fourth attempt from this address is refused even with the right password.
    c = Client(srv.port)
    c.send("PASS right-pw")
    c.send("NICK alice")
    c.send("USER alice 0 * :a")
    line = c.expect(lambda line: command_of(line) in ("001", "464"))
    m = re.fullmatch(rf":{SERVER} 464 alice :Too many failed login attempts; "
                     r"try again in (\d+) seconds", line)
    assert m and 290 <= int(m.group(1)) <= 301, line
    assert c.closed_by_server()

    # The right password from another address works; so does another account from this one.
    other = registered(srv.port, "alice", source="127.0.0.2", password="right-pw")
    assert any(command_of(line) == "900" for line in other.lines)
    bob = registered(srv.port, "bob", password="bob-pw")
    bob.roundtrip()


# -- concurrent registrations ----------------------------------------------------------------------


async def _login(port: int, nick: str, password: str, source: str = "127.0.0.1",
                 timeout: float = 20.0) -> tuple[str, list[str]]:
    """Register over asyncio streams; return the first of 001/433/464 and the lines read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(f"PASS {password}\r\nNICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n".encode())
    lines: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                raw = await reader.readline()
                if not raw:
                    return "closed", lines
                line = raw.decode(errors="replace").rstrip("\r\n")
                lines.append(line)
                if command_of(line) in ("001", "433", "464"):
                    return command_of(line), lines
    finally:
        writer.close()


def test_200_concurrent_registrations_all_succeed(server_factory):
    srv = server_factory()

    async def storm():
        return await asyncio.gather(*(_login(srv.port, f"user{i:03d}", f"pw-{i}")
                                      for i in range(200)))

    t0 = time.monotonic()
    results = asyncio.run(storm())
    elapsed = time.monotonic() - t0
    outcomes = [r[0] for r in results]
    assert outcomes == ["001"] * 200, {o: outcomes.count(o) for o in set(outcomes)}
    assert elapsed < 20
    # Every account exists: a wrong password for one of them is refused.
    c = Client(srv.port, source="127.0.0.2")
    c.send("PASS nope\r\nNICK user123\r\nUSER u 0 * :u")
    assert command_of(c.expect(lambda line: command_of(line) in ("001", "464"))) == "464"


def test_50_clients_racing_for_one_new_name_exactly_one_wins(server_factory):
    srv = server_factory(config_text=config("[limits]\nlogin_delay_max = 0.5\n"))

    async def race():
        return await asyncio.gather(*(_login(srv.port, "prize", f"pw-{i}") for i in range(50)))

    results = asyncio.run(race())
    outcomes = [r[0] for r in results]
    assert outcomes.count("001") == 1, {o: outcomes.count(o) for o in set(outcomes)}
    assert set(outcomes) <= {"001", "433", "464"}, outcomes
    winner = outcomes.index("001")
    # The account belongs to the winner's password (checked from a fresh address).
    c = registered(srv.port, "prize", source="127.0.0.3", password=f"pw-{winner}")
    assert any(command_of(line) == "900" for line in c.lines)


# -- SIGHUP reload ------------------------------------------------------------------------------------


class PortInConfigServer(ServerProcess):
    """A server whose port and host come from the config file, not the command line,
    so that a changed ``server.port`` in the file is visible to the reload."""

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", "ircd", "--data-dir", str(self.data_dir),
                "--config", str(self.config_path)]


def _sighup_config(port: int, motd: str, max_per_ip: int) -> str:
    return config(f'[server]\nport = {port}\nhost = "127.0.0.1"\nmotd = "{motd}"\n',
                  f"[limits]\nexempt = []\nmax_per_ip = {max_per_ip}\n")


def test_sighup_reloads_motd_and_limits_keeps_connections_and_ignores_port(tmp_path):
    port = _free_port_other_than()
    srv = PortInConfigServer(tmp_path / "data", config_text=_sighup_config(port, "first motd", 3),
                             port=port)
    srv.start()
    try:
        alice = registered(port, "alice")
        bob = registered(port, "bob")
        assert any(line.endswith(":- first motd") for line in alice.lines)
        third = Client(port)
        third.roundtrip()
        refused = Client(port)
        assert refused.readline(5) == (
            "ERROR :Closing Link: 127.0.0.1 (Too many connections from your IP)")

        srv.config_path.write_text(_sighup_config(port + 1 if port < 65535 else port - 1,
                                                  "second motd", 5))
        srv.proc.send_signal(signal.SIGHUP)
        log = wait_for_log(srv, "SIGHUP: configuration reloaded")
        wait_for_log(srv, "need a restart and were ignored")
        assert re.search(r"need a restart and were ignored: server\.port$", log, re.M), log[-500:]

        carol = registered(port, "carol")                 # the 4th connection: now allowed
        motd = [line for line in carol.lines if command_of(line) == "372"]
        assert motd == [f":{SERVER} 372 carol :- second motd"]
        fifth = Client(port)
        fifth.roundtrip()
        sixth = Client(port)
        assert sixth.readline(5) == (
            "ERROR :Closing Link: 127.0.0.1 (Too many connections from your IP)")

        # Existing connections were not dropped.
        alice.send("PRIVMSG bob :still connected after SIGHUP")
        bob.expect("still connected after SIGHUP", timeout=2)
        third.roundtrip()
        assert srv.alive()
    finally:
        srv.stop()
