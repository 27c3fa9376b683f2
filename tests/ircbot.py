"""A small synchronous IRC client for the tests, built on the ``irc`` library.

:class:`Bot` connects with ``irc.client.Reactor`` (PASS, NICK, USER are sent
by the library), records every event it receives, and lets a test block until
an event matching a predicate arrives (``wait_for``), always with a deadline.
Each bot has its own reactor; only the bot being waited on is polled, the
others keep their input in the kernel until their turn.

``sync()`` is the barrier used for "did NOT receive" assertions: it sends
``PING <token>`` and waits for the matching ``PONG``. The server handles one
connection's lines in order and writes each client's output in order, so
once the PONG is back every line the server queued for this client before
the PING was handled has been received too.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import struct
import time
from collections.abc import Callable

import irc.client
import irc.events
from jaraco.stream import buffer

HOST = "127.0.0.1"

_tokens = itertools.count(1)


class _ReplaceBuffer(buffer.DecodingLineBuffer):
    """UTF-8 decoding that never raises (invalid bytes become U+FFFD)."""

    errors = "replace"


class _Connection(irc.client.ServerConnection):
    buffer_class = _ReplaceBuffer


class _Reactor(irc.client.Reactor):
    connection_class = _Connection


Predicate = Callable[[irc.client.Event], bool]


def event_is(etype: str, **where) -> Predicate:
    """A predicate on the event type and optionally ``nick`` (source nick),
    ``target``, ``arg0`` (first argument) and ``args`` (argument list)."""

    def pred(ev: irc.client.Event) -> bool:
        if ev.type != etype:
            return False
        if "nick" in where and (ev.source is None or ev.source.nick != where["nick"]):
            return False
        if "target" in where and ev.target != where["target"]:
            return False
        if "arg0" in where and (not ev.arguments or ev.arguments[0] != where["arg0"]):
            return False
        return not ("args" in where and list(ev.arguments) != list(where["args"]))

    return pred


def numeric_errors(bot: Bot, since: int = 0) -> list[str]:
    """The error numerics (400-599) ``bot`` received since ``since``, as raw-ish strings."""
    codes = {name: code for code, name in irc.events.numeric.items()}
    out = []
    for ev in bot.events[since:]:
        code = codes.get(ev.type, ev.type)
        if code.isdigit() and 400 <= int(code) < 600:
            out.append(f"{code} {ev.target} {' '.join(ev.arguments)}")
    return out


class Bot:
    """One IRC connection driven synchronously.

    ``Bot(port, nick, password=None)`` connects and, unless ``wait=False``,
    waits until registration is complete and the autojoin of ``#general`` has
    been answered (366), so that the bot sees everything that follows.
    """

    def __init__(self, port: int, nick: str, password: str | None = None, *,
                 wait: bool = True, timeout: float = 10.0, autojoin: str | None = "#general") -> None:
        self.nick = nick
        self.timeout = timeout
        self.events: list[irc.client.Event] = []
        self.raw: list[str] = []
        self.disconnected = False
        self.reactor = _Reactor()
        self.reactor.add_global_handler("all_events", self._record, -100)
        self.conn = self.reactor.server()
        self.conn.connect(HOST, port, nick, password=password, ircname=f"{nick} real name")
        if wait:
            self.wait_for(event_is("welcome"))
            if autojoin:
                self.wait_for(lambda ev: ev.type == "endofnames" and ev.arguments
                              and ev.arguments[0] == autojoin)
            else:
                self.wait_for(lambda ev: ev.type in ("endofmotd", "nomotd"))

    # -- recording and waiting -----------------------------------------------

    def _record(self, conn, event: irc.client.Event) -> None:
        if event.type == "all_raw_messages":
            self.raw.append(event.arguments[0])
            return
        if event.type == "disconnect":
            self.disconnected = True
        self.events.append(event)

    def mark(self) -> int:
        """The current position in :attr:`events`, for ``wait_for(..., since=mark)``."""
        return len(self.events)

    def poll(self, seconds: float) -> None:
        """Process incoming data for ``seconds``."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.disconnected:
                return
            self.reactor.process_once(min(0.05, left))

    def wait_for(self, pred: Predicate, timeout: float | None = None,
                 since: int = 0) -> irc.client.Event:
        """Return the first event at index >= ``since`` matching ``pred``.

        Raises ``TimeoutError`` (listing what arrived) after ``timeout`` seconds.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        checked = since
        while True:
            while checked < len(self.events):
                ev = self.events[checked]
                checked += 1
                if pred(ev):
                    return ev
            left = deadline - time.monotonic()
            if left <= 0 or (self.disconnected and checked >= len(self.events)):
                seen = [f"{e.type} {e.source} {e.target} {e.arguments}" for e in self.events[since:]]
                why = "disconnected" if self.disconnected else "timeout"
                raise TimeoutError(f"{self.nick}: no matching event ({why}); saw: {seen!r}")
            if not self.disconnected:
                self.reactor.process_once(min(0.05, left))

    def matching(self, pred: Predicate, since: int = 0) -> list[irc.client.Event]:
        """Every recorded event at index >= ``since`` matching ``pred`` (no waiting)."""
        return [ev for ev in self.events[since:] if pred(ev)]

    def sync(self, timeout: float | None = None) -> None:
        """Round trip PING/PONG: everything sent to us before is now recorded."""
        token = f"sync{next(_tokens)}"
        start = self.mark()
        self.conn.ping(token)
        self.wait_for(lambda ev: ev.type == "pong" and token in ev.arguments, timeout, since=start)

    # -- actions ----------------------------------------------------------------

    def send(self, line: str) -> None:
        """Send a raw line (the library appends CR LF)."""
        self.conn.send_raw(line)

    def quit(self, reason: str = "") -> None:
        """Send QUIT and wait for the server to close the connection."""
        if self.disconnected:
            return
        self.conn.send_raw(f"QUIT :{reason}" if reason else "QUIT")
        try:
            self.wait_for(lambda ev: ev.type == "disconnect", timeout=5)
        except TimeoutError:
            self.close()

    def drop(self, reset: bool = False) -> None:
        """Vanish without QUIT: close the socket (FIN), or with ``reset`` abort it (RST)."""
        if reset:
            self.conn.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        struct.pack("ii", 1, 0))
        self.close()

    def close(self) -> None:
        """Close the socket (no QUIT); safe to call twice."""
        if self.disconnected:
            return
        sock = getattr(self.conn, "socket", None)
        with self.reactor.mutex:
            if self.conn in self.reactor.connections:
                self.reactor.connections.remove(self.conn)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        self.disconnected = True
