"""Every listener counts every connection, every connection state times out,
every byte queued for a client is bounded (issue 19, the edge part).

Against a real ``python -m ircd`` subprocess, with raw sockets and the
``websockets`` client: the WebSocket port (connections that never upgrade,
over-long request heads, slow heads, D-lines before the upgrade, PING floods,
PONGs in the sendq), SEND-dialect connections that never log in, and the
metrics listener. Each limit test runs over 127.0.0.1 and over ::1 (the
listeners that take a host: ``websocket.host``, ``metrics.host``, and
``--host`` for the IRC port and the SEND-dialect listener).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
from websockets.sync.client import connect

from ircd.limits import TokenBucket
from ircd.websocket import MAX_HEAD_LINES, MAX_REQUEST_HEAD, head_problem
from tests.opersupport import become_oper, opers_config
from tests.support import RawClient, ServerProcess, config_with, free_port, wait_for_port
from tests.test_hardening import memory_kib, read_until_closed, wait_for_log
from tests.test_websocket import WS

pytestmark = pytest.mark.timeout(120)


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


FAMILIES = [
    pytest.param("127.0.0.1", id="ipv4"),
    pytest.param("::1", id="ipv6", marks=pytest.mark.skipif(
        not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")),
]


def wait_for(host: str, port: int, proc: subprocess.Popen | None, timeout: float = 15.0) -> None:
    """Block until ``host:port`` accepts a connection (:func:`tests.support.wait_for_port`)."""
    wait_for_port(port, proc, timeout, host=host)


class HostServer(ServerProcess):
    """A :class:`ServerProcess` whose IRC port (and SEND-dialect listener) listen on ``host``."""

    def __init__(self, data_dir: Path, host: str, **kwargs) -> None:
        super().__init__(data_dir, **kwargs)
        self.host = host

    @property
    def argv(self) -> list[str]:
        argv = super().argv
        argv[argv.index("--host") + 1] = self.host
        return argv

    def start(self) -> HostServer:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._log = open(self.stderr_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.argv, cwd=Path(__file__).resolve().parent.parent,
                                     stdout=self._log, stderr=self._log, env=env)
        wait_for(self.host, self.port, self.proc)
        return self


@pytest.fixture
def edge_server(tmp_path):
    """``edge_server(host, config_text, websocket=False, simple=False, metrics=False)``:
    a server whose WebSocket listener, metrics endpoint and (with ``irc_on_host``) IRC
    port and SEND-dialect listener listen on ``host``; its IRC port is on 127.0.0.1
    otherwise. Sets ``ws_port``, ``simple_port``, ``metrics_port``."""
    started: list[ServerProcess] = []

    def make(host: str, config_text: str, *, websocket: bool = False, simple: bool = False,
             metrics: bool = False, irc_on_host: bool = False) -> ServerProcess:
        args: list[str] = []
        ports = {}
        for name, on in (("websocket", websocket), ("simple", simple), ("metrics", metrics)):
            if on:
                ports[name] = free_port()
                args += [f"--{name}-port", str(ports[name])]
        if websocket:
            config_text += f'\n[websocket]\nhost = "{host}"\n'
        if metrics:
            config_text += f'\n[metrics]\nhost = "{host}"\n'
        data_dir = tmp_path / f"data{len(started)}"
        srv: ServerProcess
        if irc_on_host:
            srv = HostServer(data_dir, host, config_text=config_text, extra_args=args)
        else:
            srv = ServerProcess(data_dir, config_text=config_text, extra_args=args)
        srv.start()
        started.append(srv)
        for name, port in ports.items():
            wait_for(host if (name != "simple" or irc_on_host) else "127.0.0.1", port, srv.proc)
        srv.ws_port = ports.get("websocket")  # type: ignore[attr-defined]
        srv.simple_port = ports.get("simple")  # type: ignore[attr-defined]
        srv.metrics_port = ports.get("metrics")  # type: ignore[attr-defined]
        srv.host = host  # type: ignore[attr-defined]
        wait_until_released(srv)
        return srv

    yield make
    for srv in started:
        if srv.alive():
            srv.stop()


def wait_until_released(srv: ServerProcess) -> None:
    """Give the start-up probe connections (``wait_for``) time to be closed and released."""
    time.sleep(0.3)


def tcp_user(port: int, nick: str, host: str = "127.0.0.1", source: str | None = None) -> RawClient:
    c = RawClient(port, host=host, source=source)
    c.register(nick)
    c.drain(0.2)
    return c


def chat_check(a: RawClient, b: RawClient, b_nick: str, text: str) -> None:
    """``a`` sends ``text`` to ``b``; ``b`` receives it (both still served)."""
    a.send(f"PRIVMSG {b_nick} :{text}")
    b.expect(lambda line: line.endswith(f"PRIVMSG {b_nick} :{text}"))


def raw_ws_socket(host: str, port: int, rcvbuf: int | None = None) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect((host, port))
    return s


def upgrade(s: socket.socket) -> None:
    """Send a WebSocket upgrade request on ``s`` and read the 101 response."""
    key = base64.b64encode(b"0123456789abcdef").decode()
    s.sendall(f"GET /socket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
              f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
              f"Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head


def frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (mask 0: the payload as is), ``len(payload) <= 125``."""
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


def text(line: str) -> bytes:
    return frame(0x1, line.encode())


def http_status(s: socket.socket, timeout: float = 5.0) -> bytes:
    """The status line the server answered on ``s`` (b"" if it closed without one)."""
    s.settimeout(timeout)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n", 1)[0]


def ws_url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class HostWS(WS):
    """The suite's ``websockets`` IRC client (:class:`tests.test_websocket.WS`) on any host."""

    def __init__(self, host: str, port: int) -> None:  # noqa: D107 - WS takes only a port
        self.conn = connect(f"ws://{ws_url_host(host)}:{port}/socket", open_timeout=5,
                            close_timeout=2).__enter__()
        self.messages = []


def ws_client(host: str, port: int) -> WS:
    return HostWS(host, port)


# -- 1. the WebSocket port counts every connection ------------------------------------


@pytest.mark.parametrize("host", FAMILIES)
def test_200_never_upgrading_websocket_connections_are_limited_and_memory_stays_bounded(
        edge_server, host):
    # (No autojoin: 20 WebSocket users who never read would fill their client's queue
    # with each other's JOINs, and each close would then wait out its close_timeout.)
    srv = edge_server(host, config_with(limits={"exempt": [], "max_per_ip": 20,
                                                "max_clients": 100},
                                        server={"autojoin": []}), websocket=True)
    # Users on the IRC port from another address are not affected.
    other = "127.0.0.2" if host == "127.0.0.1" else "127.0.0.1"
    alice = tcp_user(srv.port, "alice", source=other)
    bob = tcp_user(srv.port, "bob", source=other)
    rss_before, _ = memory_kib(srv.proc.pid)
    socks = []
    for _ in range(200):
        s = raw_ws_socket(host, srv.ws_port)
        s.sendall(b"GET /socket HTTP/1.1\r\nHost: x\r\n")  # a head that never ends
        socks.append(s)
    got = read_until_closed(socks, timeout=3.0)
    refused = [s for s, data in got.items()
               if data.startswith(b"HTTP/1.1 503 Service Unavailable")]
    held = [s for s, data in got.items() if data == b""]
    assert len(refused) == 180 and len(held) == 20, {len(d) for d in got.values()}
    assert all(b"Too many connections from your IP" in got[s] for s in refused)
    rss_after, _ = memory_kib(srv.proc.pid)
    assert rss_after - rss_before < 16 * 1024, (rss_before, rss_after)
    chat_check(alice, bob, "bob", "the WebSocket port is full, we are not")
    for s in socks:
        s.close()
    time.sleep(0.5)
    # The counts were released; an upgraded connection is counted once (not twice):
    # 20 WebSocket users fit, the 21st is refused before its upgrade.
    users = []
    for i in range(20):
        ws = ws_client(host, srv.ws_port)
        ws.register(f"ws{i}")
        users.append(ws)
    # (Read on a raw socket: the refusal is sent at the accept, and a client library
    # still writing its request may see the close as a broken pipe instead.)
    extra = raw_ws_socket(host, srv.ws_port)
    refusal = b""
    while b"\r\n" not in refusal:
        chunk = extra.recv(4096)
        if not chunk:
            break
        refusal += chunk
    extra.close()
    assert refusal.startswith(b"HTTP/1.1 503 Service Unavailable"), refusal
    users[0].send("PRIVMSG alice :counted once")
    alice.expect("PRIVMSG alice :counted once")
    for ws in users:
        ws.close()
    assert srv.alive()


@pytest.mark.parametrize("host", FAMILIES)
def test_request_head_over_8_kib_or_64_lines_gets_431_and_memory_stays_bounded(edge_server, host):
    srv = edge_server(host, config_with(limits={"exempt": [], "max_per_ip": 100}), websocket=True)
    other = "127.0.0.2" if host == "127.0.0.1" else "127.0.0.1"
    alice = tcp_user(srv.port, "alice", source=other)
    bob = tcp_user(srv.port, "bob", source=other)
    rss_before, _ = memory_kib(srv.proc.pid)
    # 50 connections, each sending 100 header lines of 8000 bytes (800 kB, which
    # the HTTP parser alone would accept and keep), without the final empty line.
    socks = [raw_ws_socket(host, srv.ws_port) for _ in range(50)]
    big = b"".join(b"X-Filler-%d: " % i + b"a" * 7980 + b"\r\n" for i in range(100))
    for s in socks:
        s.sendall(b"GET /socket HTTP/1.1\r\nHost: x\r\n")
        with contextlib.suppress(OSError):
            s.sendall(big)
    statuses = [http_status(s) for s in socks]
    assert statuses == [b"HTTP/1.1 431 Request Header Fields Too Large"] * 50, set(statuses)
    rss_after, _ = memory_kib(srv.proc.pid)
    assert rss_after - rss_before < 16 * 1024, (rss_before, rss_after)
    # 65 short lines are too many lines, 64 are fine (a plain GET of the page).
    many = raw_ws_socket(host, srv.ws_port)
    many.sendall(b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(63)) + b"\r\n")
    assert http_status(many) == b"HTTP/1.1 431 Request Header Fields Too Large"
    ok = raw_ws_socket(host, srv.ws_port)
    ok.sendall(b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(62)) + b"\r\n")
    assert http_status(ok) == b"HTTP/1.1 200 OK"
    for s in [*socks, many, ok]:
        s.close()
    chat_check(alice, bob, "bob", "still here")
    assert srv.alive()


@pytest.mark.parametrize("host", FAMILIES)
def test_slow_request_head_is_closed_with_408_after_the_handshake_timeout(edge_server, host):
    srv = edge_server(host, config_with(), websocket=True)
    slow = raw_ws_socket(host, srv.ws_port)
    start = time.monotonic()
    head = b"GET /socket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
    answer = b""
    slow.settimeout(0.5)
    for byte in head * 10:  # one byte every 0.5 s: would take minutes
        try:
            slow.sendall(bytes([byte]))
            answer += slow.recv(4096)
            if answer:
                break
        except TimeoutError:
            continue
        except OSError:
            break
    waited = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout"), answer
    assert 4.0 <= waited <= 8.0, waited
    # A WebSocket user is not affected.
    ws = ws_client(host, srv.ws_port)
    ws.register("fine")
    ws.close()


@pytest.mark.parametrize("host", FAMILIES)
def test_dlined_address_is_refused_on_the_websocket_port_before_the_upgrade(edge_server, host):
    srv = edge_server(host, opers_config(), websocket=True)
    boss = tcp_user(srv.port, "boss", source="127.0.0.5")
    become_oper(boss)
    victim = "127.0.0.2" if host == "127.0.0.1" else "::1"
    # (a parameter may not start with ":", so ::1 is written out in full)
    boss.send(f"DLINE {victim if victim != '::1' else '0:0:0:0:0:0:0:1'} :no web for you")
    boss.expect("Added D-line")
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.settimeout(5)
    if host == "127.0.0.1":
        s.bind((victim, 0))
    s.connect((host, srv.ws_port))
    # Refused at the accept: the answer comes before any request was sent.
    s.settimeout(5)
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    assert data.startswith(b"HTTP/1.1 403 Forbidden"), data
    assert b"D-Lined (no web for you)" in data
    s.close()
    assert "refused" in srv.log() and "D-lined" in srv.log()
    # The oper on the IRC port is not affected.
    boss.send("PING :still")
    boss.expect("PONG")


# -- 2. the SEND dialect times out before HELLO --------------------------------------


@pytest.mark.parametrize("host", FAMILIES)
def test_dialect_connections_without_a_login_are_closed_after_the_registration_timeout(
        edge_server, host):
    srv = edge_server(host, config_with(server={"registration_timeout": 2.0},
                                        limits={"exempt": [], "max_per_ip": 50}),
                      simple=True, irc_on_host=True)

    def conn(port: int) -> socket.socket:
        return socket.create_connection((host, port), timeout=10)

    good = conn(srv.simple_port)
    good.sendall(b"HELLO-FROM goodie\n")
    assert good.recv(100) == b"HELLO goodie\n"
    irc = tcp_user(srv.port, "ircuser", host=host)
    idle = []
    for port in (srv.port, srv.simple_port):
        for _ in range(5):
            s = conn(port)
            s.sendall(b"HELLO-FROM bad name!\n")       # invalid: BAD-RQST-HDR, not logged in
            idle.append(s)
        s = conn(port)
        s.sendall(b"HELLO-FROM \n")                     # empty name
        idle.append(s)
    s = conn(srv.simple_port)                           # nothing at all on the dedicated port
    idle.append(s)
    start = time.monotonic()
    # Meanwhile the logged-in users chat, in both directions.
    good.sendall(b"SEND ircuser hello from the course client\n")
    irc.expect(":goodie!goodie@")
    irc.send("PRIVMSG goodie :hello back")
    got = read_until_closed(idle, timeout=6.0)
    waited = time.monotonic() - start
    for data in got.values():
        assert data in (b"", b"BAD-RQST-HDR\n"), data
    assert waited < 5.5, waited          # all closed by about 2 s (+ 1 s of timer slack)
    assert srv.log().count("did not log in within 2 s") == len(idle)
    rest = b""
    good.settimeout(5)
    while b"SEND-OK\n" not in rest or b"DELIVERY ircuser hello back\n" not in rest:
        rest += good.recv(4096)
    irc.send("PING :alive")
    irc.expect("PONG")
    good.sendall(b"LIST\n")
    assert good.recv(200).startswith(b"LIST-OK ")
    for sock in idle:
        sock.close()


# -- 3. PING frames: flood budget and sendq ------------------------------------------


@pytest.mark.parametrize("host", FAMILIES)
def test_10000_websocket_pings_without_reading_end_in_excess_flood(edge_server, host):
    srv = edge_server(host, config_with(), websocket=True)
    watcher = tcp_user(srv.port, "watcher")
    s = raw_ws_socket(host, srv.ws_port, rcvbuf=4096)
    upgrade(s)
    s.sendall(text("NICK pinger") + text("USER pinger 0 * :p"))
    watcher.expect(lambda line: line.startswith(":pinger!") and "JOIN" in line)
    rss_before, _ = memory_kib(srv.proc.pid)
    ping = frame(0x9, b"p" * 125)
    with contextlib.suppress(OSError):
        for _ in range(100):
            s.sendall(ping * 100)
    watcher.expect(lambda line: line.startswith(":pinger!") and "QUIT :Excess Flood" in line)
    wait_for_log(srv, "excess flood from")
    rss_after, _ = memory_kib(srv.proc.pid)
    assert rss_after - rss_before < 8 * 1024, (rss_before, rss_after)
    s.close()
    ws = ws_client(host, srv.ws_port)
    ws.register("after")
    ws.send("PRIVMSG watcher :fine")
    watcher.expect("PRIVMSG watcher :fine")
    ws.close()


def socket_queues(sport: int, dport: int) -> tuple[int, int, int]:
    """``(Recv-Q, Send-Q, send buffer size)`` in bytes of the loopback TCP socket from
    ``sport`` to ``dport``, as ``ss`` shows them (``tb`` of ``skmem``)."""
    out = subprocess.run(["ss", "-tnmH", "state", "established",
                          f"( sport = :{sport} and dport = :{dport} )"],
                         capture_output=True, text=True, check=True).stdout
    fields = out.split()
    m = re.search(r"tb(\d+)", out)
    assert m and len(fields) >= 2, out
    return int(fields[0]), int(fields[1]), int(m.group(1))


@pytest.mark.parametrize("host", FAMILIES)
def test_pongs_for_a_client_that_never_reads_are_bounded_by_the_sendq(edge_server, host):
    sendq = 65536
    srv = edge_server(host, config_with(
        server={"sendq": sendq},
        limits={"flood_burst": 1_000_000, "flood_rate": 1_000_000.0,
                "flood_backlog": 1_000_000}), websocket=True)
    watcher = tcp_user(srv.port, "watcher")
    s = raw_ws_socket(host, srv.ws_port, rcvbuf=4096)
    upgrade(s)
    rcvbuf = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    s.sendall(text("NICK pinger") + text("USER pinger 0 * :p"))
    watcher.expect(lambda line: line.startswith(":pinger!") and "JOIN" in line)
    rss_before, _ = memory_kib(srv.proc.pid)
    ping = frame(0x9, b"p" * 125)
    sent = 0
    s.settimeout(1.0)
    try:
        while sent < 80_000 and "sendq exceeded for" not in srv.log():
            s.sendall(ping * 500)
            sent += 500
    except OSError:
        pass
    log = wait_for_log(srv, "sendq exceeded for")
    watcher.expect(lambda line: line.startswith(":pinger!") and "QUIT :SendQ exceeded" in line)
    rss_after, _ = memory_kib(srv.proc.pid)
    # What the server queued for the client when it gave up: its own buffer (logged),
    # its socket's send queue and the client socket's receive queue (nothing was read).
    buffered = int(re.search(r"sendq exceeded for \S+ \((\d+) bytes queued\)", log).group(1))
    port = s.getsockname()[1]
    _, server_sendq, server_sndbuf = socket_queues(srv.ws_port, port)
    client_recvq, _, _ = socket_queues(port, srv.ws_port)
    queued = buffered + server_sendq + client_recvq
    kernel = rcvbuf + server_sndbuf
    assert sendq < buffered <= sendq + 2 * 16384, buffered   # one slice of PONGs over at most
    assert queued <= 2 * (sendq + kernel), (buffered, server_sendq, client_recvq, kernel)
    # The client still gets the PONGs when it reads (until the close, which resets the
    # connection because of its unread PINGs).
    s.settimeout(10)
    received = 0
    with contextlib.suppress(ConnectionResetError):
        while received < sendq:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            received += len(chunk)
    assert received >= sendq
    assert rss_after - rss_before < 16 * 1024, (rss_before, rss_after)
    watcher.send("PING :ok")
    watcher.expect("PONG")
    s.close()


# -- 5. the metrics listener ------------------------------------------------------------


@pytest.mark.parametrize("host", FAMILIES)
def test_metrics_connections_are_bounded_and_scrapes_work_again_after(edge_server, host):
    srv = edge_server(host, config_with(), metrics=True)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    held = []
    for _ in range(16):
        s = socket.socket(family)
        s.settimeout(5)
        s.connect((host, srv.metrics_port))
        held.append(s)
    time.sleep(0.3)
    extra = socket.socket(family)
    extra.settimeout(5)
    extra.connect((host, srv.metrics_port))
    assert http_status(extra, timeout=2) == b"HTTP/1.1 503 Service Unavailable"
    extra.close()
    user = tcp_user(srv.port, "user")          # the IRC port is not affected
    for s in held:
        s.close()
    time.sleep(0.3)
    scrape = socket.socket(family)
    scrape.settimeout(5)
    scrape.connect((host, srv.metrics_port))
    scrape.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    body = b""
    while True:
        chunk = scrape.recv(65536)
        if not chunk:
            break
        body += chunk
    assert body.startswith(b"HTTP/1.1 200 OK") and b"chatserver_connections" in body
    user.send("PING :x")
    user.expect("PONG")


# -- sans-I/O pieces --------------------------------------------------------------------


def test_charge_puts_the_bucket_in_debt_and_take_upto_then_allows_nothing():
    bucket = TokenBucket(burst=2, rate=1.0, now=0.0)
    assert bucket.charge(0.0) == 1.0
    assert bucket.charge(0.0, 3) == -2.0                # two lines' worth of debt
    assert bucket.take_upto(0.0, 5) == 0               # never a negative count
    assert bucket.wait() == pytest.approx(3.0)         # from -2 to 1 token at 1/s
    assert bucket.take_upto(3.0, 5) == 1


def test_head_problem_bounds_bytes_and_lines():
    assert head_problem(b"GET / HTTP/1.1\r\nHost: x\r\n") == (-1, False)
    assert head_problem(b"GET / HTTP/1.1\r\n\r\nrest") == (18, False)
    assert head_problem(b"a" * (MAX_REQUEST_HEAD + 1)) == (-1, True)
    lines = b"GET / HTTP/1.1\r\n" + b"X: 1\r\n" * (MAX_HEAD_LINES - 2)
    assert head_problem(lines + b"\r\n")[1] is False
    assert head_problem(lines + b"X: 1\r\n\r\n")[1] is True
    # Bytes after the head (frames) do not count.
    assert head_problem(b"GET / HTTP/1.1\r\n\r\n" + b"\n" * 100_000) == (18, False)
