"""IRC over WebSocket (``[websocket]``, ``--websocket-port``), with the real ``websockets`` client.

The IRCv3 WebSocket transport as docs/protocol.md describes it: the
subprotocols in the client's order of preference, no subprotocol (text
frames), one line per message without CR/LF, invalid UTF-8, message size,
the Origin check, SASL, chatting with TCP users, flood control, the sendq, per-IP limits
behind a trusted proxy, ``wss://``, and the HTTP side (the web client at ``/``,
404 elsewhere).
"""

from __future__ import annotations

import base64
import contextlib
import re
import socket
import ssl
import time
import urllib.error
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from ircd.cloak import CLOAK_KEY_FILE, cloak_host
from tests.support import RawClient, command_of, config_with, free_port, wait_for_port
from tests.test_tls import make_cert

pytestmark = pytest.mark.timeout(60)


class WS:
    """A WebSocket IRC client: ``send(str | bytes)``, ``expect(pred)`` over received messages."""

    def __init__(self, port: int, path: str = "/socket", scheme: str = "ws", **kwargs) -> None:
        kwargs.setdefault("open_timeout", 5)
        kwargs.setdefault("close_timeout", 2)
        self.conn: ClientConnection = connect(f"{scheme}://127.0.0.1:{port}{path}",
                                                 **kwargs).__enter__()
        self.messages: list[str | bytes] = []

    @property
    def subprotocol(self):
        return self.conn.subprotocol

    def send(self, data: str | bytes, text: bool | None = None) -> None:
        self.conn.send(data, text=text)

    def recv(self, timeout: float = 5.0) -> str | bytes:
        msg = self.conn.recv(timeout=timeout)
        self.messages.append(msg)
        return msg

    def expect(self, pred, timeout: float = 5.0) -> str:
        if isinstance(pred, str):
            needle = pred
            pred = lambda line: needle in line  # noqa: E731
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching message; saw {seen!r}")
            try:
                msg = self.recv(left)
            except TimeoutError:
                raise TimeoutError(f"no matching message; saw {seen!r}") from None
            line = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else msg
            seen.append(line)
            if pred(line):
                return line

    def register(self, nick: str, password: str | None = None) -> None:
        if password is not None:
            self.send(f"PASS {password}")
        self.send(f"NICK {nick}")
        self.send(f"USER {nick} 0 * :{nick}")
        self.expect(lambda line: command_of(line) == "001")
        self.expect(lambda line: command_of(line) in ("376", "422"))

    def closed(self, timeout: float = 5.0) -> ConnectionClosed:
        """Read until the server closes; return the close exception (code, reason)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.recv(max(0.01, deadline - time.monotonic()))
            except ConnectionClosed as exc:
                return exc
        raise TimeoutError("the server did not close the connection")

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def ws_server(server_factory):
    """A server with the WebSocket listener on (``srv.ws_port``)."""

    def make(config_text: str | None = None, extra_args: tuple[str, ...] = ()):
        ws_port = free_port()
        kwargs = {} if config_text is None else {"config_text": config_text}
        srv = server_factory(extra_args=["--websocket-port", str(ws_port), *extra_args], **kwargs)
        wait_for_port(ws_port, srv.proc)
        srv.ws_port = ws_port
        return srv

    return make


def tcp_user(port: int, nick: str) -> RawClient:
    c = RawClient(port)
    c.register(nick)
    c.drain(0.2)
    return c


def still_chats(srv, ws_port: int) -> None:
    """The server still works: a new WebSocket user and a TCP user exchange a message."""
    tcp = tcp_user(srv.port, "checker")
    ws = WS(ws_port)
    ws.register("checkerws")
    ws.send("PRIVMSG checker :still fine")
    tcp.expect(":checkerws!checkerws@127.0.0.1 PRIVMSG checker :still fine")
    ws.close()
    tcp.close()
    assert srv.alive()


# -- subprotocols ----------------------------------------------------------------


def test_text_subprotocol_gives_text_frames(ws_server):
    srv = ws_server()
    ws = WS(srv.ws_port, subprotocols=["text.ircv3.net"])
    assert ws.subprotocol == "text.ircv3.net"
    ws.register("texty")
    assert ws.messages and all(isinstance(m, str) for m in ws.messages)


def test_binary_subprotocol_gives_binary_frames(ws_server):
    srv = ws_server()
    ws = WS(srv.ws_port, subprotocols=["binary.ircv3.net"])
    assert ws.subprotocol == "binary.ircv3.net"
    ws.register("binny")
    assert ws.messages and all(isinstance(m, bytes) for m in ws.messages)


@pytest.mark.parametrize("offered, chosen", [
    (["binary.ircv3.net", "text.ircv3.net"], "binary.ircv3.net"),
    (["text.ircv3.net", "binary.ircv3.net"], "text.ircv3.net"),
    (["x-unknown", "binary.ircv3.net", "text.ircv3.net"], "binary.ircv3.net"),
])
def test_subprotocol_is_chosen_in_the_clients_order_of_preference(ws_server, offered, chosen):
    srv = ws_server()
    ws = WS(srv.ws_port, subprotocols=offered)
    assert ws.subprotocol == chosen
    ws.register("prefs")
    kind = bytes if chosen.startswith("binary") else str
    assert all(isinstance(m, kind) for m in ws.messages)


def test_client_offering_no_subprotocol_is_accepted_with_text_frames(ws_server):
    srv = ws_server()
    ws = WS(srv.ws_port)  # as gamja does
    assert ws.subprotocol is None
    ws.register("gamjalike")
    assert all(isinstance(m, str) for m in ws.messages)


def test_upgrade_on_any_path_is_accepted(ws_server):
    srv = ws_server()
    for path in ("/", "/socket", "/webirc/some/where?x=1"):
        ws = WS(srv.ws_port, path=path)
        ws.register("pathy")
        ws.send("QUIT")
        ws.closed()


# -- framing ----------------------------------------------------------------------


def test_every_message_is_one_line_without_cr_or_lf(ws_server):
    srv = ws_server()
    ws = WS(srv.ws_port, subprotocols=["text.ircv3.net"])
    ws.register("framer")
    ws.send("MOTD")
    ws.expect(lambda line: command_of(line) == "376")
    assert len(ws.messages) > 20
    for m in ws.messages:
        assert "\r" not in m and "\n" not in m, repr(m)
        assert m.startswith(":"), repr(m)


def test_client_messages_with_trailing_crlf_or_none_both_work(ws_server):
    srv = ws_server()
    tcp = tcp_user(srv.port, "reader")
    ws = WS(srv.ws_port)
    ws.register("writer")
    ws.send("PRIVMSG reader :no line end")
    ws.send("PRIVMSG reader :with line end\r\n")
    tcp.expect("PRIVMSG reader :no line end")
    tcp.expect("PRIVMSG reader :with line end")


def test_invalid_utf8_from_a_binary_client_is_handled_as_on_tcp_and_it_stays(ws_server):
    srv = ws_server()
    tcp = tcp_user(srv.port, "peer")
    ws = WS(srv.ws_port, subprotocols=["binary.ircv3.net"])
    ws.register("rawbytes")
    ws.send(b"PRIVMSG peer :caf\xe9 \xff ok")
    # UTF8ONLY, as on TCP: FAIL INVALID_UTF8, nothing relayed, still connected.
    ws.expect(lambda line: " FAIL PRIVMSG INVALID_UTF8 " in line)
    ws.send(b"PRIVMSG peer :after")
    tcp.expect("PRIVMSG peer :after")
    assert not [line for line in tcp.lines if "caf" in line]


def test_invalid_utf8_from_a_tcp_user_never_reaches_a_text_client(ws_server):
    srv = ws_server()
    sender = tcp_user(srv.port, "sender")
    ws = WS(srv.ws_port, subprotocols=["text.ircv3.net"])
    ws.register("texter")
    sender.send(b"PRIVMSG texter :bad \xff\xfe bytes\r\n")
    sender.expect(lambda line: " FAIL PRIVMSG INVALID_UTF8 " in line)
    sender.send("PRIVMSG texter :good bytes\r\n")
    ws.expect("PRIVMSG texter :good bytes")
    assert not [m for m in ws.messages if ":bad" in str(m)]


def test_invalid_utf8_in_a_text_frame_closes_with_1007_and_others_are_unaffected(ws_server):
    srv = ws_server()
    ws = WS(srv.ws_port)
    ws.register("badtext")
    ws.send(b"PRIVMSG #general :\xff\xfe", text=True)
    closed = ws.closed()
    assert closed.rcvd is not None and closed.rcvd.code == 1007
    still_chats(srv, srv.ws_port)


def test_oversize_message_closes_with_1009_and_others_are_unaffected(ws_server):
    srv = ws_server()
    watcher = tcp_user(srv.port, "watcher")
    ws = WS(srv.ws_port)
    ws.register("bigmouth")
    ws.send("PRIVMSG #general :" + "x" * 9000)
    closed = ws.closed()
    assert closed.rcvd is not None and closed.rcvd.code == 1009
    watcher.expect(lambda line: line.startswith(":bigmouth!") and " QUIT " in line)
    assert not [line for line in watcher.lines if "xxxx" in line]
    still_chats(srv, srv.ws_port)


def test_line_over_the_irc_limit_but_within_max_message_gets_417(ws_server):
    srv = ws_server(config_with(websocket={"max_message": 20000}))
    ws = WS(srv.ws_port)
    ws.register("longline")
    ws.send("PRIVMSG #general :" + "y" * 9000)
    ws.expect(lambda line: command_of(line) == "417")
    ws.send("PING :alive")
    ws.expect("PONG")


# -- origins ----------------------------------------------------------------------


def test_unlisted_or_missing_origin_is_refused_with_403(ws_server):
    srv = ws_server(config_with(websocket={"allowed_origins": ["https://chat.example.org",
                                                               "http://*.example.net"]}))
    for origin in ("https://evil.example.com", None):
        with pytest.raises(InvalidStatus) as info:
            WS(srv.ws_port, origin=origin)
        assert info.value.response.status_code == 403
    for origin in ("https://chat.example.org", "http://web.example.net"):
        ws = WS(srv.ws_port, origin=origin)
        ws.register("origin" + str(len(origin)))
        ws.close()
    # The refusals harmed no one: an allowed page and a TCP user still chat.
    tcp = tcp_user(srv.port, "stillhere")
    ws = WS(srv.ws_port, origin="https://chat.example.org")
    ws.register("allowedpage")
    ws.send("PRIVMSG stillhere :fine")
    tcp.expect("PRIVMSG stillhere :fine")


def test_any_origin_and_no_origin_are_accepted_by_default(ws_server):
    srv = ws_server()
    for i, origin in enumerate(("https://anything.example", None)):
        ws = WS(srv.ws_port, origin=origin)
        ws.register(f"anyorigin{i}")
        ws.close()


# -- accounts and chatting ------------------------------------------------------------


def test_sasl_plain_over_websocket(ws_server):
    srv = ws_server()
    first = RawClient(srv.port)
    first.register("saslacct", "s3cret")  # registers the account
    first.send("QUIT")
    first.closed_by_server()
    ws = WS(srv.ws_port)
    ws.send("CAP LS 302")
    ws.expect(lambda line: " CAP " in line and " LS " in line and "sasl" in line)
    ws.send("CAP REQ :sasl")
    ws.expect(lambda line: " ACK " in line)
    ws.send("AUTHENTICATE PLAIN")
    ws.expect("AUTHENTICATE +")
    ws.send("AUTHENTICATE " + base64.b64encode(b"\0saslacct\0s3cret").decode())
    ws.expect(lambda line: command_of(line) == "903")
    ws.send("NICK saslacct")
    ws.send("USER saslacct 0 * :x")
    ws.send("CAP END")
    ws.expect(lambda line: command_of(line) == "001")


def test_wrong_password_over_websocket_gets_464_and_a_close(ws_server):
    srv = ws_server()
    first = RawClient(srv.port)
    first.register("owner", "right")
    first.send("QUIT")
    first.closed_by_server()
    ws = WS(srv.ws_port)
    ws.send("PASS wrong")
    ws.send("NICK owner")
    ws.send("USER owner 0 * :x")
    ws.expect(lambda line: command_of(line) == "464")
    ws.expect(lambda line: line.startswith("ERROR"))
    closed = ws.closed()
    assert closed.rcvd is not None and closed.rcvd.code == 1000


def test_websocket_and_tcp_users_chat_both_ways(ws_server):
    srv = ws_server()
    tcp = tcp_user(srv.port, "tcpuser")
    ws = WS(srv.ws_port)
    ws.register("webuser")
    tcp.expect(":webuser!webuser@127.0.0.1 JOIN #general")
    ws.send("PRIVMSG #general :hello from the web")
    tcp.expect(":webuser!webuser@127.0.0.1 PRIVMSG #general :hello from the web")
    tcp.send("PRIVMSG #general :hello from tcp")
    ws.expect(":tcpuser!tcpuser@127.0.0.1 PRIVMSG #general :hello from tcp")
    tcp.send("PRIVMSG webuser :a dm")
    ws.expect("PRIVMSG webuser :a dm")
    ws.send("PRIVMSG tcpuser :a dm back")
    tcp.expect("PRIVMSG tcpuser :a dm back")
    ws.send("QUIT :bye")
    tcp.expect(":webuser!webuser@127.0.0.1 QUIT :Quit: bye")


def test_flood_from_a_websocket_client_gets_excess_flood(ws_server):
    srv = ws_server()
    watcher = tcp_user(srv.port, "floodwatch")
    ws = WS(srv.ws_port)
    ws.register("wsflooder")
    with contextlib.suppress(ConnectionClosed):
        for i in range(300):
            ws.send(f"PRIVMSG #general :flood {i:03d}")
    # The server closes while the client is still sending, so the kernel may reset the
    # connection before the client reads "ERROR :Excess Flood"; the peers see the reason.
    with contextlib.suppress(ConnectionClosed, TimeoutError):
        ws.expect("ERROR :Excess Flood")
    watcher.expect(lambda line: line.startswith(":wsflooder!") and "QUIT :Excess Flood" in line)
    got = [line for line in watcher.lines if "PRIVMSG #general :flood" in line]
    assert 15 <= len(got) <= 30, len(got)
    still_chats(srv, srv.ws_port)


def test_x_forwarded_for_is_used_only_from_a_trusted_proxy(ws_server):
    srv = ws_server(config_with(websocket={"trusted_proxies": ["127.0.0.1/32"]},
                                limits={"max_per_ip": 1}))
    tcp = tcp_user(srv.port, "observer")
    proxied = WS(srv.ws_port, additional_headers={"X-Forwarded-For": "198.51.100.7, 127.0.0.1"})
    proxied.register("proxied")
    # Others see the forwarded address's cloak (ircd/cloak.py), the user itself the address.
    cloak = cloak_host("198.51.100.7", (srv.data_dir / CLOAK_KEY_FILE).read_bytes())
    tcp.expect(f":proxied!proxied@{cloak} JOIN #general")
    proxied.send("WHOIS proxied")
    proxied.expect("378 proxied proxied :is connecting from *@198.51.100.7 198.51.100.7")
    # The per-IP limit sees the forwarded address (198.51.100.7 is not exempt).
    second = WS(srv.ws_port, additional_headers={"X-Forwarded-For": "198.51.100.7"})
    second.expect("ERROR :Closing Link: 198.51.100.7 (Too many connections from your IP)")
    second.closed()
    proxied.send("PING :ok")
    proxied.expect("PONG")


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(ws_server):
    srv = ws_server()
    tcp = tcp_user(srv.port, "observer2")
    ws = WS(srv.ws_port, additional_headers={"X-Forwarded-For": "198.51.100.9"})
    ws.register("spoofer")
    tcp.expect(":spoofer!spoofer@127.0.0.1 JOIN #general")


def test_wss_with_the_tls_certificate(ws_server, tmp_path):
    cert, key = make_cert(tmp_path)
    text = config_with(websocket={"tls": True})
    srv = ws_server(text, extra_args=("--tls-cert", str(cert), "--tls-key", str(key),
                                      "--tls-port", str(free_port())))
    ctx = ssl.create_default_context(cafile=str(cert))
    ws = WS(srv.ws_port, scheme="wss", ssl=ctx)
    ws.register("secureweb")
    page = urllib.request.urlopen(f"https://127.0.0.1:{srv.ws_port}/", context=ctx, timeout=5)
    assert b'aria-label="Conversations"' in page.read()


# -- HTTP ------------------------------------------------------------------------------


def test_get_root_serves_the_web_client_and_its_files(ws_server):
    srv = ws_server()
    base = f"http://127.0.0.1:{srv.ws_port}"
    page = urllib.request.urlopen(base + "/", timeout=5)
    assert page.headers["Content-Type"].startswith("text/html")
    body = page.read().decode()
    assert "app.js" in body and "style.css" in body
    assert "http://" not in body.replace("http://127.0.0.1", "") and "https://" not in body
    script = urllib.request.urlopen(base + "/app.js", timeout=5)
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert "text.ircv3.net" in script.read().decode()
    style = urllib.request.urlopen(base + "/style.css", timeout=5)
    assert style.headers["Content-Type"].startswith("text/css")


@pytest.mark.parametrize("path", ["/nope", "/socket", "/../config.toml", "/ircd/websocket.py"])
def test_other_paths_get_404(ws_server, path):
    srv = ws_server()
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"http://127.0.0.1:{srv.ws_port}{path}", timeout=5)
    assert info.value.code == 404
    still_chats(srv, srv.ws_port)


def test_websocket_tls_without_a_certificate_is_a_config_error(tmp_path):
    import subprocess
    import sys

    cfg = tmp_path / "c.toml"
    cfg.write_text("[websocket]\nenabled = true\ntls = true\n")
    proc = subprocess.run([sys.executable, "-m", "ircd", "--config", str(cfg),
                           "--data-dir", str(tmp_path / "d")],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "websocket.tls" in proc.stderr


# -- the pure helpers ------------------------------------------------------------------


def test_choose_subprotocol_takes_the_first_known_in_the_clients_order():
    from ircd.websocket import choose_subprotocol

    assert choose_subprotocol(["binary.ircv3.net", "text.ircv3.net"]) == "binary.ircv3.net"
    assert choose_subprotocol(["foo", "text.ircv3.net"]) == "text.ircv3.net"
    assert choose_subprotocol([]) is None
    assert choose_subprotocol(["foo"]) is None


def test_origin_allowed_matches_exact_origins_and_globs_case_insensitively():
    from ircd.websocket import origin_allowed

    assert origin_allowed(None, []) and origin_allowed("https://x.example", [])
    allowed = ["https://chat.example.org", "https://*.example.net"]
    assert origin_allowed("HTTPS://Chat.Example.org", allowed)
    assert origin_allowed("https://a.example.net", allowed)
    assert not origin_allowed("https://example.net.evil.com", allowed)
    assert not origin_allowed("http://chat.example.org", allowed)
    assert not origin_allowed(None, allowed)


def test_client_address_trusts_x_forwarded_for_only_from_proxies():
    from ircd.websocket import client_address

    proxies = ["10.0.0.0/8"]
    assert client_address("10.1.1.1", "203.0.113.5", proxies) == "203.0.113.5"
    assert client_address("10.1.1.1", "198.51.100.1, 203.0.113.5, 10.2.2.2", proxies) == "203.0.113.5"
    assert client_address("192.0.2.1", "203.0.113.5", proxies) == "192.0.2.1"
    assert client_address("10.1.1.1", "203.0.113.5", []) == "10.1.1.1"
    assert client_address("10.1.1.1", "not-an-ip", proxies) == "10.1.1.1"
    assert client_address("10.1.1.1", None, proxies) == "10.1.1.1"


def test_split_lines_drops_line_ends_and_empty_lines():
    from ircd.websocket import split_lines

    assert split_lines(b":a PING x\r\n:b PONG y\r\n") == [b":a PING x", b":b PONG y"]
    assert split_lines(b"one\ntwo\r\n\r\n") == [b"one", b"two"]
    assert split_lines(b"") == []


def test_websocket_config_is_checked_strictly(tmp_path):
    from ircd.config import ConfigError, load_config

    cases = {
        "[websocket]\ntrusted_proxies = ['not a network']\n": "websocket.trusted_proxies[0]",
        "[websocket]\nmax_message = 10\n": "websocket.max_message",
        "[websocket]\nport = 70000\n": "websocket.port",
        "[websocket]\nallowed_origin = []\n": "websocket.allowed_origin",
    }
    for text, key in cases.items():
        path = tmp_path / "c.toml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=re.escape(key)):
            load_config(path)
    path.write_text("[websocket]\nenabled = true\nallowed_origins = ['https://*.example.org']\n")
    assert load_config(path).websocket.allowed_origins == ["https://*.example.org"]


def test_slow_websocket_reader_is_disconnected_for_sendq_and_others_are_unaffected(ws_server):
    srv = ws_server(config_with(
        server={"sendq": 65536},
        limits={"flood_burst": 100_000, "flood_rate": 100_000.0, "flood_backlog": 100_000},
    ))
    fast = tcp_user(srv.port, "fast")
    # A WebSocket client on a raw socket with a small receive buffer that never reads.
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", srv.ws_port))
    key = base64.b64encode(b"0123456789abcdef").decode()
    slow.sendall(f"GET /socket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 f"Sec-WebSocket-Version: 13\r\n\r\n".encode())

    def frame(text: bytes) -> bytes:  # a masked text frame (mask 0: the payload as is)
        return bytes([0x81, 0x80 | len(text)]) + b"\0\0\0\0" + text

    slow.sendall(frame(b"NICK slow") + frame(b"USER slow 0 * :slow"))
    fast.expect(":slow!slow@127.0.0.1 JOIN #general")
    flood = tcp_user(srv.port, "flood")
    slow_quit = ":slow!slow@127.0.0.1 QUIT :SendQ exceeded"
    filler = "f" * 480
    sent = 0
    try:
        while sent < 40_000 and slow_quit not in fast.lines:
            flood.send("".join(f"PRIVMSG #general :{i:05d} {filler}\r\n"
                               for i in range(sent, sent + 100)).encode())
            sent += 100
            fast.expect(f":flood!flood@127.0.0.1 PRIVMSG #general :{sent - 1:05d} {filler}")
        assert slow_quit in fast.lines, f"slow was never dropped after {sent} messages"
        assert "SendQ exceeded" in srv.log()
        fast.send("ISON slow flood")
        assert fast.expect(lambda line: command_of(line) == "303").endswith(":flood")
    finally:
        slow.close()
    still_chats(srv, srv.ws_port)
