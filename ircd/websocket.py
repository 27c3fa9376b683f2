"""The WebSocket edge: IRC over WebSocket, and the bundled web client over HTTP.

Implements the IRCv3 "WebSocket" extension (ircv3.net/specs/extensions/websocket)
on its own listener (``[websocket]``). One TCP connection is one
:class:`WebSocketConnection`, a subclass of :class:`ircd.net.Connection`, so a
WebSocket user gets exactly what a TCP user gets: the same connection limits
and classes, flood control (token bucket and backlog), bounded sendq, password
checks off the loop and the same core client.

Theory of operation. The WebSocket protocol itself is the sans-I/O
:class:`websockets.server.ServerProtocol` (bytes in with ``receive_data``,
events out, bytes to write from ``data_to_send``); this module only routes:

- The first event is the HTTP request. A request without ``Upgrade:
  websocket`` is plain HTTP: ``GET /`` (and the files next to it) gets the web
  client from ``ircd/webclient/``, any other path 404, any other method 405,
  and the connection closes after the response. An upgrade on any path is
  checked against ``allowed_origins`` (403 when refused), the subprotocol is
  chosen in the *client's* order of preference among ``text.ircv3.net`` and
  ``binary.ircv3.net`` (none offered, or none known: no subprotocol, text
  frames), and the 101 response is sent; then the connection gets a core
  client. A connection is counted against the limits (after the D-line
  check) from the moment it is accepted, HTTP or not, like an IRC one; a
  refused one gets an HTTP ``403`` (D-line) or ``503`` and is closed. After
  an upgrade from a trusted proxy it is counted under the real client address
  (``X-Forwarded-For`` only from ``trusted_proxies``) instead.
- The request head must arrive within :data:`HANDSHAKE_TIMEOUT` seconds
  (``408`` and close) and fit in :data:`MAX_REQUEST_HEAD` bytes and
  :data:`MAX_HEAD_LINES` lines (``431`` and close).
- Each complete WebSocket message is one IRC line: it is fed to the
  connection's :class:`~ircd.protocol.framing.LineDecoder` with a line end,
  so a message is handled exactly as that line on TCP (a trailing CR LF is
  tolerated; an over-long line gets 417). A text message that is not valid
  UTF-8 fails the connection with close code 1007 (RFC 6455 section 8.1); a
  binary-frame client's bytes go to the core unchanged, as on TCP. A message
  over ``max_message`` bytes fails the connection with close code 1009.
  Each PING or PONG frame costs one token of the flood budget, as a line does
  (:meth:`~ircd.limits.TokenBucket.charge`).
- Output: the core writes CR LF-terminated lines; :class:`WebSocketTransport`
  sends each as one message without CR LF, as a text frame (invalid UTF-8
  replaced by U+FFFD) or, for ``binary.ircv3.net``, a binary frame. The real
  transport's write buffer is what the sendq limit measures, and it is
  checked after every write to it: lines, and what the protocol queued by
  itself (PONGs, close frames).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from websockets.datastructures import Headers
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from ircd.net import Connection, Node
from ircd.protocol.masks import Glob

log = logging.getLogger("ircd.websocket")
_protocol_log = logging.getLogger("ircd.websocket.protocol")
_protocol_log.setLevel(logging.WARNING)  # the library logs every open and close at INFO

TEXT = "text.ircv3.net"
BINARY = "binary.ircv3.net"
SUBPROTOCOLS = (TEXT, BINARY)
"""The IRCv3 WebSocket subprotocols this server speaks."""

HANDSHAKE_TIMEOUT = 5.0
"""Seconds a new connection has, from the accept (after the TLS handshake, which
has its own 10 s), to send its whole HTTP request head; then ``408`` and close."""

MAX_REQUEST_HEAD = 8192
"""Bytes of HTTP request head (request line, headers, the empty line) read at most;
a longer head gets ``431 Request Header Fields Too Large`` and the connection closes."""

RECEIVE_SLICE = 16384
"""Bytes handed to the WebSocket protocol at once; the sendq is checked after each."""

MAX_HEAD_LINES = 64
"""Lines of HTTP request head (the request line, each header, the empty line) at
most; more get ``431`` and the connection closes."""

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}

SECURITY_HEADERS = (
    ("Content-Security-Policy",
     "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
     "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-cache"),
)


def choose_subprotocol(offered: Sequence[str]) -> Subprotocol | None:
    """The first of ``offered`` (the client's order of preference) that is one of
    :data:`SUBPROTOCOLS`, or ``None`` (no subprotocol: text frames).

    IRCv3 WebSocket extension: the client lists subprotocols by preference;
    a client that offers none (gamja) is accepted.
    """
    for name in offered:
        if name in SUBPROTOCOLS:
            return Subprotocol(name)
    return None


def _select_subprotocol(_protocol: ServerProtocol,
                        offered: Sequence[Subprotocol]) -> Subprotocol | None:
    return choose_subprotocol(offered)


def origin_allowed(origin: str | None, allowed: Sequence[str]) -> bool:
    """Whether a handshake with ``Origin: origin`` (``None``: no header) may connect.

    ``allowed`` holds origins or globs (``"https://*.example.org"``: ``*`` and
    ``?`` only, :class:`ircd.protocol.masks.Glob`, linear time; ``[`` is an
    ordinary character, as in ``http://[::1]:8080``), compared
    case-insensitively. Empty: every origin, and no origin, is allowed;
    otherwise a missing or unlisted origin is refused (as Ergo does).
    """
    if not allowed:
        return True
    if origin is None:
        return False
    origin = origin.lower()
    return any(Glob(pattern.lower()).match(origin) for pattern in allowed)


def client_address(peer_ip: str, forwarded_for: str | None, proxies: Sequence[str]) -> str:
    """The client's address: ``peer_ip``, or, when ``peer_ip`` is in one of the
    ``proxies`` networks, the address an ``X-Forwarded-For`` header names.

    The header is read right to left, skipping addresses that are trusted
    proxies themselves; the first other valid address is the client. Invalid
    entries stop the walk (the last trusted hop is used then).
    """
    if not forwarded_for or not proxies:
        return peer_ip
    nets = [ipaddress.ip_network(n, strict=False) for n in proxies]

    def trusted(ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in nets)

    if not trusted(peer_ip):
        return peer_ip
    client = peer_ip
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break
        client = hop
        if not trusted(hop):
            break
    return client


def split_lines(data: bytes) -> list[bytes]:
    """The lines in ``data`` (the core's output, each ending in LF or CR LF), without
    their line ends; empty lines are dropped."""
    return [line[:-1] if line.endswith(b"\r") else line
            for line in data.split(b"\n") if line and line != b"\r"]


@dataclass(frozen=True)
class StaticFile:
    """One file of the web client: its body (bytes) and ``Content-Type``."""

    body: bytes
    content_type: str


class WebClientFiles:
    """The web client's files (``ircd/webclient/``), read once from the package.

    ``response(method, path)`` is the HTTP answer for a plain (non-upgrade)
    request: 200 with the file, 404 for an unknown path, 405 for a method
    other than GET or HEAD.
    """

    def __init__(self, files: dict[str, StaticFile]) -> None:
        self.files = files

    @classmethod
    def load(cls) -> WebClientFiles:
        """Read every file of ``ircd/webclient``; ``/`` is ``index.html``."""
        files: dict[str, StaticFile] = {}
        root = resources.files("ircd") / "webclient"
        for entry in root.iterdir():
            suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
            if entry.is_file() and suffix in CONTENT_TYPES:
                files["/" + entry.name] = StaticFile(entry.read_bytes(), CONTENT_TYPES[suffix])
        if "/index.html" in files:
            files["/"] = files["/index.html"]
        return cls(files)

    def response(self, method: str, path: str) -> Response:
        path = path.split("?", 1)[0].split("#", 1)[0]
        if method not in ("GET", "HEAD"):
            return _plain(405, "Method Not Allowed", "Only GET is supported here.\n",
                          [("Allow", "GET, HEAD")])
        found = self.files.get(path)
        if found is None:
            return _plain(404, "Not Found", "Not found. The web client is at /.\n")
        headers = Headers([("Content-Type", found.content_type),
                           ("Content-Length", str(len(found.body))),
                           ("Connection", "close"), *SECURITY_HEADERS])
        return Response(200, "OK", headers, b"" if method == "HEAD" else found.body)


def head_problem(head: bytes) -> tuple[int, bool]:
    """Check the start of an HTTP request (``head``: the bytes received so far).

    Returns ``(size, too_big)``: ``size`` is the length of the complete head
    (up to and including the empty line, CR LF CR LF) or ``-1`` while it is
    incomplete; ``too_big`` is true when the head is, or already must be, over
    :data:`MAX_REQUEST_HEAD` bytes or :data:`MAX_HEAD_LINES` lines (RFC 9110
    section 15.5.20 / RFC 6585 section 5: ``431``).
    """
    end = head.find(b"\r\n\r\n")
    size = len(head) if end < 0 else end + 4
    too_big = size > MAX_REQUEST_HEAD or head.count(b"\n", 0, size) > MAX_HEAD_LINES
    return (-1 if end < 0 else size), too_big


def _plain(status: int, phrase: str, text: str,
           extra: Sequence[tuple[str, str]] = ()) -> Response:
    body = text.encode()
    headers = Headers([("Content-Type", "text/plain; charset=utf-8"),
                       ("Content-Length", str(len(body))), ("Connection", "close"), *extra])
    return Response(status, phrase, headers, body)


class WebSocketTransport:
    """What :class:`~ircd.net.Connection` sees as its transport after the upgrade.

    ``write(bytes)`` takes the core's CR LF-terminated lines and sends each as
    one WebSocket message; ``close()`` sends a close frame (1000) and closes
    the TCP connection once the output is written. The write buffer size,
    reading pauses and ``abort`` are the real transport's.
    """

    def __init__(self, raw: asyncio.Transport, ws: ServerProtocol, binary: bool) -> None:
        self.raw = raw
        self.ws = ws
        self.binary = binary

    def write(self, data: bytes) -> None:
        ws = self.ws
        if ws.state is not State.OPEN:
            return
        for line in split_lines(data):
            if self.binary:
                ws.send_binary(line)
            else:
                ws.send_text(line.decode("utf-8", "replace").encode())
        self.send_pending()

    def send_pending(self) -> None:
        """Write what the protocol has queued (frames, HTTP responses) to the socket."""
        for chunk in self.ws.data_to_send():
            if chunk:
                self.raw.write(chunk)

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        if self.ws.state is State.OPEN:
            self.ws.send_close(code, reason)
        self.send_pending()
        self.raw.close()

    def abort(self) -> None:
        self.raw.abort()

    def get_write_buffer_size(self) -> int:
        return self.raw.get_write_buffer_size()

    def pause_reading(self) -> None:
        self.raw.pause_reading()

    def resume_reading(self) -> None:
        self.raw.resume_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.raw.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self.raw.is_closing()


class WebSocketConnection(Connection):
    """One connection to the WebSocket port: HTTP first, then IRC over WebSocket.

    It is counted against the limits from the accept (``admitted``), and
    released once when it closes. Before the upgrade it has no client; after
    it, it is an IRC :class:`~ircd.net.Connection` whose transport is a
    :class:`WebSocketTransport`.
    """

    def __init__(self, node: Node, files: WebClientFiles) -> None:
        super().__init__(node, dialect="irc")
        self.files = files
        cfg = node.core.config.websocket
        self.ws = ServerProtocol(select_subprotocol=_select_subprotocol,
                                 max_size=cfg.max_message, logger=_protocol_log)
        self.raw: asyncio.Transport | None = None
        self.upgraded = False
        self.fragments: list[bytes] = []
        self.fragment_opcode: Opcode | None = None
        self.handshake_timer: asyncio.TimerHandle | None = None
        self.ws_error = ""  # why we failed the WebSocket connection, if we did
        self.head: bytes | None = b""  # the request head so far; None once complete

    # -- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.raw = transport
        self.note_peer(transport)
        refused = self.admission_refusal()
        if refused is not None:
            status, phrase = ((403, "Forbidden") if refused.startswith("D-Lined")
                              else (503, "Service Unavailable"))
            self._http_error(status, phrase, f"Closing Link: {self.ip} ({refused})\n")
            return
        self.handshake_timer = self.node.loop.call_later(HANDSHAKE_TIMEOUT, self._handshake_expired)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if self.head is not None:  # still reading the request head: bound it
            size, too_big = head_problem(self.head + data)
            if too_big:
                log.info("http %s: request head over %d bytes or %d lines", self.peer,
                         MAX_REQUEST_HEAD, MAX_HEAD_LINES)
                self._http_error(431, "Request Header Fields Too Large",
                                 f"The request head may have at most {MAX_REQUEST_HEAD} "
                                 f"bytes and {MAX_HEAD_LINES} lines.\n")
                return
            self.head = None if size >= 0 else self.head + data
        ws = self.ws
        # In slices, so that what the protocol answers by itself (a PONG per PING)
        # is checked against the sendq every RECEIVE_SLICE bytes, not per 256 KiB read.
        for start in range(0, len(data), RECEIVE_SLICE):
            ws.receive_data(data[start:start + RECEIVE_SLICE])
            for event in ws.events_received():
                if self.closed:
                    break
                if isinstance(event, Request):
                    self._on_request(event)
                elif isinstance(event, Frame):
                    self._on_frame(event)
            self._after_events()
            if self.closed:
                break

    def connection_lost(self, exc: Exception | None) -> None:
        if self.handshake_timer is not None:
            self.handshake_timer.cancel()
            self.handshake_timer = None
        if not self.upgraded:
            self.closed = True
            self.release_admission()
            return
        super().connection_lost(exc)

    def _http_error(self, status: int, phrase: str, text: str) -> None:
        """Answer with a plain-text HTTP error response and close (before the upgrade)."""
        assert self.raw is not None
        self.closed = True
        self.raw.write(_plain(status, phrase, text).serialize())
        self.raw.close()

    # -- the HTTP request ------------------------------------------------------

    def _on_request(self, request: Request) -> None:
        ws = self.ws
        assert self.raw is not None
        cfg = self.core.config.websocket
        headers = request.headers
        if "websocket" not in headers.get("Upgrade", "").lower():
            response = self.files.response(request.method, request.path)
            log.debug("http %s %s %s -> %d", self.peer, request.method, request.path,
                      response.status_code)
            ws.send_response(response)
            return
        origin = headers.get("Origin")
        if not origin_allowed(origin, cfg.allowed_origins):
            log.warning("websocket from %s refused: origin %r not allowed", self.peer, origin)
            ws.send_response(ws.reject(403, "Origin not allowed.\n"))
            return
        response = ws.accept(request)
        if response.status_code != 101:
            log.info("websocket handshake from %s refused: %s", self.peer, ws.handshake_exc)
            ws.send_response(response)
            return
        ws.send_response(response)
        if self.handshake_timer is not None:
            self.handshake_timer.cancel()
            self.handshake_timer = None
        self.upgraded = True
        ip = client_address(self.ip, headers.get("X-Forwarded-For"), cfg.trusted_proxies)
        self.transport = WebSocketTransport(self.raw, ws, binary=ws.subprotocol == BINARY)
        self.transport.send_pending()
        log.info("websocket %s as %s (subprotocol %s, path %s)", self.peer, ip,
                 ws.subprotocol or "none", request.path)
        if ip == self.ip:
            self.start_session()  # counted since the accept
            return
        # From a trusted proxy: counted under the proxy's address so far, now the client's.
        self.node.limiter.release(self.ip)
        self.admitted = False
        self.ip = ip
        self.admit()

    # -- messages --------------------------------------------------------------

    def _on_frame(self, frame: Frame) -> None:
        if not self.upgraded or not self.admitted or self.ws.state is not State.OPEN:
            return
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            self.fragment_opcode = frame.opcode
            self.fragments = [bytes(frame.data)]
        elif frame.opcode is Opcode.CONT:
            self.fragments.append(bytes(frame.data))
        else:
            if frame.opcode in (Opcode.PING, Opcode.PONG):
                self._control_frame()
            return  # PING is answered by the protocol; CLOSE is handled after the events
        if not frame.fin:
            return
        message = b"".join(self.fragments)
        self.fragments = []
        if self.fragment_opcode is Opcode.TEXT:
            try:
                message.decode("utf-8")
            except UnicodeDecodeError:
                self.ws_error = "invalid UTF-8 in a text message"
                self.ws.fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text message")
                return
        self.lines_received(self.decoder.push(message + b"\n"))

    def _control_frame(self) -> None:
        """A PING or PONG frame: it costs one token of the flood budget, like a line.

        The protocol has already queued the PONG, so the cost cannot be waited
        for: it is charged (the bucket may go into debt, and the lines after it
        wait); when the debt and the waiting lines together exceed
        ``flood_backlog``, the client is disconnected for ``Excess Flood``.
        """
        if self.closed:
            return
        tokens = self.bucket.charge(self.node.loop.time())
        if len(self.backlog or ()) + max(0.0, -tokens) > self.flood_backlog:
            self.excess_flood()

    def _after_events(self) -> None:
        """Write what the protocol queued; enforce the sendq on it; end the connection
        if the protocol ended it."""
        ws = self.ws
        raw = self.raw
        assert raw is not None
        eof = False
        for chunk in ws.data_to_send():
            if chunk:
                raw.write(chunk)
            else:
                eof = True
        if not self.upgraded:
            if eof:  # an HTTP answer (or a bad request): done
                self.closed = True
                raw.close()
            return
        if self.admitted:
            self.enforce_sendq()  # PONGs and close frames count like lines
        if ws.state is State.OPEN or self.closed:
            return
        # The client closed, or the protocol failed the connection (1007, 1009, 1002).
        if self.ws_error:
            reason = f"WebSocket error: {self.ws_error}"
        elif ws.parser_exc is not None:
            reason = f"WebSocket error: {ws.parser_exc}"
        else:
            reason = "Remote host closed the connection"
        if self.client is not None and not self.client.quitting:
            self.core.quit(self.client, reason)
        else:
            self.close(reason)

    def _handshake_expired(self) -> None:
        self.handshake_timer = None
        if not self.upgraded and not self.closed and self.raw is not None:
            log.info("http %s: no request within %.0f s", self.peer, HANDSHAKE_TIMEOUT)
            self._http_error(408, "Request Timeout",
                             f"No complete request within {HANDSHAKE_TIMEOUT:.0f} seconds.\n")


async def listen_websocket(node: Node, host: str, port: int,
                           tls: ssl.SSLContext | None = None) -> None:
    """Open the WebSocket listener on ``host:port`` (``tls``: ``wss://``/``https://``).

    Raises ``OSError`` (e.g. address in use). The listener is added to
    ``node.listeners`` so that shutdown closes it.
    """
    files = WebClientFiles.load()
    srv = await node.serve(host, port, lambda: WebSocketConnection(node, files), tls)
    kind = "IRC over WebSocket and the web client" + (", TLS" if tls else "")
    for sock in srv.sockets:
        log.info("listening on %s:%s (%s)", *sock.getsockname()[:2], kind)
