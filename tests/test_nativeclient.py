"""The native terminal client (``nativeclient``).

Three layers of tests:

* pure unit tests: input parsing, DM target choice, text splitting, rendering
  (the pure session state has its own file, ``tests/test_nativeclient_state.py``);
* session tests against a scripted fake server on a ``socketpair`` (no
  network): the I/O link and the state together -- registration, login
  outcomes, echo-message / labeled-response / PING confirmations, 401 "not
  online", the reader task ending;
* end-to-end tests against the real server subprocess: the client runs in a
  pseudo-terminal (pexpect) or with a stdin pipe, next to a bot built on the
  ``irc`` library and raw-socket clients.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import irc.client
import pexpect
import pytest

from nativeclient import session as session_mod
from nativeclient.commands import (
    Action,
    Empty,
    Help,
    Invalid,
    Join,
    Msg,
    Operation,
    Part,
    Quit,
    Rooms,
    Say,
    TopicCmd,
    Who,
    numbered,
    parse_input,
    resolve_dm_target,
    split_text,
)
from nativeclient.events import (
    ConnectionLost,
    Disconnected,
    LoginInfo,
    LoginRefused,
    Message,
    Presence,
    SendResult,
    UnreachableError,
)
from nativeclient.render import Renderer, clean
from nativeclient.session import ChatSession
from tests.support import ROOT, RawClient, free_port, wait_for_port

# --------------------------------------------------------------------------- unit: parsing


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("hello world", Say("hello world")),
        ("  spaced  ", Say("spaced")),
        ("", Empty()),
        ("   ", Empty()),
        ("PM", Operation("PM")),
        ("dm", Operation("DM")),
        (" EX ", Operation("EX")),
        ("PM me later", Say("PM me later")),
        ("@bob hi there", Msg("bob", "hi there")),
        ("@bob", Invalid("usage: @bob TEXT")),
        ("/msg bob hi  there", Msg("bob", "hi  there")),
        ("/MSG bob hi", Msg("bob", "hi")),
        ("/msg bob", Invalid("usage: /msg NICK TEXT")),
        ("/join #dev", Join("#dev")),
        ("/join dev", Join("#dev")),
        ("/join", Invalid("usage: /join #ROOM")),
        ("/part", Part(None)),
        ("/part #dev", Part("#dev")),
        ("/part #dev see you", Part("#dev", "see you")),
        ("/part bye all", Part(None, "bye all")),
        ("/who", Who(None)),
        ("/who #dev", Who("#dev")),
        ("!who", Who(None)),
        ("/rooms", Rooms()),
        ("/me waves", Action("waves")),
        ("/me", Invalid("usage: /me ACTION")),
        ("/topic", TopicCmd(None)),
        ("/topic new topic", TopicCmd("new topic")),
        ("/help", Help()),
        ("/quit", Quit(None)),
        ("/quit gone fishing", Quit("gone fishing")),
        ("!quit", Quit(None)),
        ("!important news", Say("!important news")),
        ("//etc/passwd", Say("/etc/passwd")),
        ("/say /who", Say("/who")),
    ],
)
def test_parse_input(line: str, expected: object) -> None:
    assert parse_input(line) == expected


def test_parse_unknown_command_is_invalid() -> None:
    cmd = parse_input("/frobnicate now")
    assert isinstance(cmd, Invalid)
    assert "/frobnicate" in cmd.error and "/help" in cmd.error


def test_parse_rejects_bad_names() -> None:
    assert isinstance(parse_input("/msg #general hi"), Msg)  # a room is a valid /msg target
    assert isinstance(parse_input("@bo,b hi"), Invalid)
    assert isinstance(parse_input("/join #a,#b"), Invalid)


def test_resolve_dm_target_by_number_and_name() -> None:
    users = ["bob", "carol", "echobot"]
    assert resolve_dm_target("1", users) == "bob"
    assert resolve_dm_target(" 3 ", users) == "echobot"
    assert resolve_dm_target("carol", users) == "carol"
    assert resolve_dm_target("@dave", users) == "dave"  # not listed: the server decides
    for bad in ("", "0", "4", "#general", "a b"):
        with pytest.raises(ValueError):
            resolve_dm_target(bad, users)
    with pytest.raises(ValueError, match="nobody"):
        resolve_dm_target("1", [])


def test_numbered_list() -> None:
    assert numbered(["bob", "carol"]) == ["  1. bob", "  2. carol"]
    assert numbered([f"u{i}" for i in range(10)])[0] == "   1. u0"


def test_split_text_respects_utf8_and_words() -> None:
    assert split_text("") == []
    assert split_text("short") == ["short"]
    assert split_text("aaa bbb ccc", 7) == ["aaa bbb", "ccc"]
    assert split_text("line\r\nbreak") == ["line  break"]
    pieces = split_text("é" * 300, 101)  # 2 bytes each: never split inside a character
    assert all(len(p.encode()) <= 101 for p in pieces)
    assert "".join(pieces) == "é" * 300
    long_word = "x" * 1000
    assert "".join(split_text(long_word, 400)) == long_word


# --------------------------------------------------------------------------- unit: rendering


def test_render_formats() -> None:
    r = Renderer(color=False)

    def one(ev: object, room: str | None = "#general") -> str:
        (line,) = r.render(ev, me="alice", current_room=room)  # type: ignore[arg-type]
        return line

    assert one(Message("room", "bob", "#general", "hi")) == "bob: hi"
    assert one(Message("room", "bob", "#dev", "hi")) == "[#dev] bob: hi"
    assert one(Message("dm", "bob", "alice", "psst")) == "[DM] bob: psst"
    assert one(Message("dm", "alice", "bob", "psst", own=True)) == "[DM to bob] alice: psst"
    assert one(Message("room", "bob", "#general", "waves", action=True)) == "* bob waves"
    assert one(Presence("join", "alice", room="#general")) == "* alice joined #general"
    assert one(Presence("quit", "bob", reason="Quit: bye")) == "* bob left (Quit: bye)"
    assert one(Presence("part", "bob", room="#dev")) == "* bob left #dev"
    assert one(SendResult("#general", "x", True, operation="PM", via="ping")) == (
        "* PM to #general delivered (confirmed by the server)"
    )
    assert one(SendResult("bob", "x", False, operation="DM", reason="bob is not online", not_online=True)) == (
        "! bob is not online"
    )
    assert r.render(Disconnected("gone"), me="alice", current_room=None) == []
    assert Renderer(show_own=False).render(Message("room", "alice", "#general", "x", own=True), me="alice", current_room="#general") == []


def test_render_colour_and_cleaning() -> None:
    coloured = Renderer(color=True).render(Message("room", "bob", "#general", "hi"), me="a", current_room="#general")
    assert "\x1b[" in coloured[0]
    plain = Renderer(color=False).render(Message("room", "bob", "#general", "\x1b[2Jevil\x02bold\x0304red"), me="a", current_room="#general")
    assert plain == ["bob: evilboldred"]
    assert clean("a\tb\x07c") == "a bc"


def test_login_lines() -> None:
    r = Renderer()
    new = r.login_lines(LoginInfo("alice", "alice", True, "#general", ("alice", "bob")), "alice")
    assert new[0] == "* new account alice registered"
    assert "* you are in #general" in new
    assert "* online now (2): alice, bob" in new
    back = r.login_lines(LoginInfo("alice", "alice", False, "#general", ("alice",)), "alice")
    assert back[0] == "* logged in as alice"


# --------------------------------------------------------------------------- session vs. a scripted fake server


class FakeServer:
    """The server end of a socketpair that ``ChatSession`` believes is the network."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.client_end, self.sock = socket.socketpair()
        self.sock.settimeout(5)
        self.buf = b""
        self.received: list[str] = []

        async def open_stream(*args: object, **kwargs: object):
            return await asyncio.open_connection(sock=self.client_end)

        monkeypatch.setattr(session_mod, "open_stream", open_stream)

    def send(self, *lines: str) -> None:
        self.sock.sendall("".join(line + "\r\n" for line in lines).encode())

    def _expect(self, prefix: str) -> str:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            while b"\n" in self.buf:
                raw, self.buf = self.buf.split(b"\n", 1)
                line = raw.rstrip(b"\r").decode()
                self.received.append(line)
                if line.startswith(prefix):
                    return line
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            self.buf += chunk
        raise AssertionError(f"client never sent {prefix!r}; got {self.received!r}")

    async def expect(self, prefix: str) -> str:
        """Read client lines until one starts with ``prefix``; return it (the loop keeps running)."""
        return await asyncio.to_thread(self._expect, prefix)

    def close(self) -> None:
        self.sock.close()


def _login_task(sess: ChatSession) -> asyncio.Task:
    return asyncio.create_task(sess.login(timeout=5))


async def _serve_login(srv: FakeServer, caps: str = "", new_account: bool = False) -> None:
    assert await srv.expect("CAP LS") == "CAP LS 302"
    assert await srv.expect("PASS") == "PASS :s3cret pw"
    await srv.expect("NICK alice")
    await srv.expect("USER alice")
    srv.send(f":srv CAP * LS :{caps}")
    if caps:
        req = await srv.expect("CAP REQ")
        srv.send(f":srv CAP alice ACK :{req.split(':', 1)[1]}")
    await srv.expect("CAP END")
    srv.send(":srv 001 alice :Welcome", ":srv 376 alice :End of MOTD")
    if new_account:
        srv.send(":srv NOTICE alice :Registered new account alice")
    srv.send(
        ":srv 900 alice alice!alice@h alice :You are now logged in as alice",
        ":alice!alice@h JOIN #general",
        ":srv 353 alice = #general :@bob alice +carol",
        ":srv 366 alice #general :End of NAMES",
    )
    token = (await srv.expect("PING")).split(":", 1)[1]
    srv.send(f":srv PONG srv :{token}")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch):
    srv = FakeServer(monkeypatch)
    yield srv
    srv.close()


def _session() -> ChatSession:
    return ChatSession("fake", 6667, "alice", "s3cret pw")


def test_session_login_new_account(fake: FakeServer) -> None:
    async def scenario() -> None:
        sess = _session()
        login = _login_task(sess)
        await _serve_login(fake, new_account=True)
        info = await asyncio.wait_for(login, 5)
        assert info.new_account and info.account == "alice" and info.room == "#general"
        assert info.online == ("alice", "bob", "carol")
        assert sess.online_users() == ("bob", "carol")
        await sess.close()
        assert not sess.reader_alive

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ([":srv 464 alice :Password incorrect", "ERROR :Closing Link: (Bad password)"], "wrong password for alice"),
        ([":srv 433 * alice :Nickname is already in use"], "alice is already online"),
    ],
)
def test_session_login_refused(fake: FakeServer, reply: list[str], expected: str) -> None:
    async def scenario() -> None:
        sess = _session()
        login = _login_task(sess)
        await fake.expect("CAP LS")
        fake.send(":srv CAP * LS :")
        await fake.expect("CAP END")
        fake.send(*reply)
        with pytest.raises(LoginRefused) as refused:
            await asyncio.wait_for(login, 5)
        assert refused.value.message == expected
        assert refused.value.exit_code == 2
        assert not sess.reader_alive

    asyncio.run(scenario())


def test_session_closed_during_login_is_unreachable(fake: FakeServer) -> None:
    async def scenario() -> None:
        sess = _session()
        login = _login_task(sess)
        await fake.expect("USER")
        fake.sock.close()
        with pytest.raises(UnreachableError) as unreachable:
            await asyncio.wait_for(login, 5)
        assert unreachable.value.exit_code == 1

    asyncio.run(scenario())


async def _logged_in(fake: FakeServer, caps: str = "") -> tuple[ChatSession, list]:
    sess = _session()
    login = _login_task(sess)
    await _serve_login(fake, caps=caps)
    await asyncio.wait_for(login, 5)
    events: list = []
    sess.attach(events.append)
    return sess, events


async def _wait_for(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def test_confirmation_by_ping_and_not_online(fake: FakeServer) -> None:
    async def scenario() -> None:
        sess, events = await _logged_in(fake)
        assert not sess.echo
        (pm,) = sess.send_message("#general", "hello all", operation="PM", confirm=True)
        assert await fake.expect("PRIVMSG") == "PRIVMSG #general :hello all"
        token = (await fake.expect("PING")).split(":", 1)[1]
        assert not pm.future.done()
        fake.send(f":srv PONG srv :{token}")
        result = await asyncio.wait_for(pm.future, 5)
        assert result.ok and result.via == "ping" and result.operation == "PM"

        (dm,) = sess.send_message("dave", "are you there?", operation="DM", confirm=True)
        await fake.expect("PRIVMSG dave")
        token = (await fake.expect("PING")).split(":", 1)[1]
        fake.send(":srv 401 alice dave :No such nick/channel", f":srv PONG srv :{token}")
        result = await asyncio.wait_for(dm.future, 5)
        assert not result.ok and result.not_online and result.reason == "dave is not online"
        await _wait_for(lambda: any(isinstance(e, SendResult) and not e.ok for e in events))
        # without echo-message our own lines are shown locally
        assert Message("room", "alice", "#general", "hello all", own=True) in [
            Message(e.kind, e.sender, e.target, e.text, own=e.own) for e in events if isinstance(e, Message)
        ]
        await sess.close()

    asyncio.run(scenario())


def test_confirmation_by_echo_message(fake: FakeServer) -> None:
    async def scenario() -> None:
        sess, events = await _logged_in(fake, caps="echo-message multi-prefix")
        assert sess.echo
        (p,) = sess.send_message("bob", "psst", operation="DM", confirm=True)
        assert await fake.expect("PRIVMSG") == "PRIVMSG bob :psst"
        fake.send(":alice!alice@h PRIVMSG bob :psst")
        result = await asyncio.wait_for(p.future, 5)
        assert result.ok and result.via == "echo"
        await _wait_for(lambda: any(isinstance(e, Message) and e.own for e in events))
        own = [e for e in events if isinstance(e, Message) and e.own]
        assert own[0].kind == "dm" and own[0].target == "bob"  # the echo, not a local copy
        await sess.close()

    asyncio.run(scenario())


def test_confirmation_by_label(fake: FakeServer) -> None:
    async def scenario() -> None:
        sess, _ = await _logged_in(fake, caps="echo-message labeled-response batch")
        (p,) = sess.send_message("#general", "labelled", operation="PM", confirm=True)
        line = await fake.expect("@label=")
        label = line.split(" ", 1)[0].split("=", 1)[1]
        assert line.endswith("PRIVMSG #general :labelled")
        fake.send(f"@label={label} :alice!alice@h PRIVMSG #general :labelled")
        assert (await asyncio.wait_for(p.future, 5)).via == "label"
        (q,) = sess.send_message("nobody", "hi", operation="DM", confirm=True)
        label = (await fake.expect("@label=")).split(" ", 1)[0].split("=", 1)[1]
        fake.send(f"@label={label} :srv 401 alice nobody :No such nick/channel")
        assert (await asyncio.wait_for(q.future, 5)).not_online
        await sess.close()

    asyncio.run(scenario())


def test_incoming_events_and_room_state(fake: FakeServer) -> None:
    async def scenario() -> None:
        sess, events = await _logged_in(fake)
        fake.send(
            ":dave!d@h JOIN #general",
            ":bob!b@h PRIVMSG #general :hi all",
            ":bob!b@h PRIVMSG alice :just you",
            ":carol!c@h QUIT :Quit: bye",
            ":bob!b@h PRIVMSG #general :\x01ACTION waves\x01",
        )
        await _wait_for(lambda: len([e for e in events if isinstance(e, Message)]) == 3)
        assert sess.online_users() == ("bob", "dave")
        kinds = [(type(e).__name__, getattr(e, "kind", "")) for e in events]
        assert kinds == [("Presence", "join"), ("Message", "room"), ("Message", "dm"), ("Presence", "quit"), ("Message", "room")]
        assert events[4].action and events[4].text == "waves"
        fake.sock.close()
        await _wait_for(lambda: any(isinstance(e, Disconnected) for e in events))
        assert await asyncio.wait_for(sess.disconnected, 5)
        await sess.close()
        assert not sess.reader_alive

    asyncio.run(scenario())


def test_quit_sends_quit_waits_for_the_close_and_ends_the_reader(fake: FakeServer) -> None:
    async def scenario() -> None:
        sess, events = await _logged_in(fake)
        quitting = asyncio.create_task(sess.quit("see you"))
        assert await fake.expect("QUIT") == "QUIT :see you"
        assert not quitting.done()  # waits for the server to close the connection
        fake.send("ERROR :Closing Link: alice (Quit: see you)")
        fake.sock.close()
        await asyncio.wait_for(quitting, 5)
        assert sess.disconnected.result() == "Closing Link: alice (Quit: see you)"
        assert not sess.reader_alive and not sess.connected
        assert not any(isinstance(e, Disconnected) for e in events)  # the user asked: nothing to report
        with pytest.raises(ConnectionLost):
            sess.send_message("#general", "too late")

    asyncio.run(scenario())


# --------------------------------------------------------------------------- end to end: helpers

ANSI = re.compile(r"\x1b\[[0-9;?<=>]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>NOM78c]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
STEP = 10.0  # seconds any single expectation may take


def client_env(password: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "CHAT_PASSWORD", "CHATCLIENT_DEBUG_LOG")}
    env.update(PYTHONUNBUFFERED="1", PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm", CHATCLIENT_DEBUG_THREADS="1")
    if password is not None:
        env["CHAT_PASSWORD"] = password
    env.update(extra)
    return env


class Term:
    """The client in a pseudo-terminal; ``expect`` matches regexes on the text with ANSI codes removed."""

    def __init__(self, port: int, name: str, password: str | None, *args: str,
                 color: bool = False, **env: str) -> None:
        argv = ["-m", "nativeclient", "127.0.0.1", str(port), name, *args]
        if not color:
            argv.append("--no-color")
        self.child = pexpect.spawn(
            sys.executable, argv, env=client_env(password, **env), cwd=str(ROOT),
            encoding="utf-8", codec_errors="replace", timeout=STEP, dimensions=(50, 160),
        )
        self.raw = ""
        self.text = ""
        self.pos = 0
        self.eof = False

    def _feed(self, timeout: float) -> None:
        try:
            chunk = self.child.read_nonblocking(65536, timeout=timeout)
        except pexpect.TIMEOUT:
            return
        except pexpect.EOF:
            self.eof = True
            return
        self.raw += chunk
        self.text = ANSI.sub("", self.raw).replace("\r", "")

    def expect(self, pattern: str, timeout: float = STEP) -> re.Match:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.text, self.pos)
            if m:
                self.pos = m.end()
                return m
            if self.eof or time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not seen; screen tail:\n{self.text[-1500:]}")
            self._feed(min(0.3, max(0.01, deadline - time.monotonic())))

    def seen(self, needle: str) -> bool:
        self._feed(0.05)
        return needle in self.text

    def prompt(self, room: str = "#general") -> None:
        self.expect(re.escape(room) + ">")

    def send(self, text: str) -> None:
        self.child.send(text)

    def sendline(self, text: str = "") -> None:
        self.child.sendline(text)

    def wait_exit(self, timeout: float = STEP) -> int:
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self._feed(0.2)
        if not self.eof:
            self.child.terminate(force=True)
            raise AssertionError(f"client did not exit; screen tail:\n{self.text[-1500:]}")
        self.child.close()
        assert "Traceback" not in self.text
        return self.child.exitstatus if self.child.exitstatus is not None else -(self.child.signalstatus or 0)

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


class IrcBot:
    """A bot built on ``irc.client`` (reactor in a thread) that records what it receives."""

    def __init__(self, port: int, nick: str, password: str) -> None:
        self.nick = nick
        self.lines: list[str] = []
        self.events: list[irc.client.Event] = []
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.reactor = irc.client.Reactor()
        self.conn = self.reactor.server()
        self.reactor.add_global_handler("all_events", self._on, -100)
        self.conn.connect("127.0.0.1", port, nick, password=password)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(STEP), f"bot never got into #general: {self.lines}"

    def _run(self) -> None:
        while not self.stop.is_set() and self.conn.is_connected():
            self.reactor.process_once(0.1)

    def _on(self, conn: irc.client.ServerConnection, event: irc.client.Event) -> None:
        if event.type == "all_raw_messages":
            self.lines.append(event.arguments[0])
            return
        self.events.append(event)
        if event.type == "endofnames" and event.arguments[0] == "#general":
            self.ready.set()

    def texts(self, kind: str) -> list[tuple[str, str, str]]:
        """(sender, target, text) of received events of type ``kind`` (``pubmsg``/``privmsg``)."""
        return [(e.source.nick, e.target, e.arguments[0]) for e in list(self.events) if e.type == kind]

    def wait_for(self, pred: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + STEP
        while not pred():
            if time.monotonic() > deadline:
                raise AssertionError(f"bot never saw {what}; lines: {self.lines[-20:]}")
            time.sleep(0.02)

    def close(self) -> None:
        if self.conn.is_connected():
            self.conn.quit("bot done")
        self.stop.set()
        self.thread.join(5)
        self.conn.close()


@pytest.fixture
def terms():
    started: list[Term] = []

    def make(*args, **kwargs) -> Term:
        t = Term(*args, **kwargs)
        started.append(t)
        return t

    yield make
    for t in started:
        t.close()


THREADS_OK = r"debug: live threads: MainThread\n"


# --------------------------------------------------------------------------- end to end


def test_pm_dm_ex_between_two_clients_and_a_bot(server, terms) -> None:
    alice = terms(server.port, "alice", "alice-pw")
    alice.expect(r"new account alice registered")
    alice.expect(r"you are in #general")
    alice.prompt()
    bot = IrcBot(server.port, "carol", "carol-pw")
    try:
        bob = terms(server.port, "bob", "bob-pw")
        bob.expect(r"online now \(\d+\): .*alice.*bob.*carol")
        bob.prompt()
        alice.expect(r"\* bob joined #general")

        # PM: asks for the message, broadcasts it, prints the server's confirmation
        alice.sendline("PM")
        alice.expect(r"message to #general:")
        alice.sendline("hello everyone")
        alice.expect(r"PM to #general delivered \(confirmed by the server\)")
        bob.expect(r"alice: hello everyone")
        bot.wait_for(lambda: ("alice", "#general", "hello everyone") in bot.texts("pubmsg"), "the PM")

        # DM by number: only the target gets it
        alice.sendline("DM")
        alice.expect(r"users online now")
        number = alice.expect(r"(\d+)\. bob").group(1)
        alice.expect(r"to \(name or number\):")
        alice.sendline(number)
        alice.expect(r"message to bob:")
        alice.sendline("just for bob")
        alice.expect(r"DM to bob delivered \(confirmed by the server\)")
        bob.expect(r"\[DM\] alice: just for bob")

        # DM to a name that is not online
        alice.sendline("DM")
        alice.expect(r"to \(name or number\):")
        alice.sendline("dave")
        alice.expect(r"message to dave:")
        alice.sendline("anyone?")
        alice.expect(r"dave is not online")

        # the bot (irc library) talks to the native client; slash short form back
        bot.conn.privmsg("alice", "hi from the bot")
        alice.expect(r"\[DM\] carol: hi from the bot")
        alice.sendline("@carol hi bot")
        bot.wait_for(lambda: ("alice", "carol", "hi bot") in bot.texts("privmsg"), "the @carol message")
        assert not any("just for bob" in line for line in bot.lines)

        # EX: QUIT, reader thread joined, exit code 0
        alice.sendline("EX")
        alice.expect(THREADS_OK)
        assert alice.wait_exit() == 0
        bob.expect(r"\* alice left")
        bot.wait_for(lambda: any(e.type == "quit" and e.source.nick == "alice" for e in bot.events), "alice's QUIT")
        bob.sendline("/quit")
        bob.expect(THREADS_OK)
        assert bob.wait_exit() == 0
    finally:
        bot.close()


def test_incoming_dm_is_shown_while_pm_prompt_waits(server, terms) -> None:
    alice = terms(server.port, "alice", "pw-a")
    alice.prompt()
    bob = terms(server.port, "bob", "pw-b")
    bob.prompt()
    alice.expect(r"bob joined #general")

    alice.sendline("PM")
    alice.expect(r"message to #general:")
    alice.send("half of my ")  # typed, not yet sent
    time.sleep(0.3)
    bob.sendline("@alice are you there?")
    alice.expect(r"\[DM\] bob: are you there\?")  # printed at once, above the question
    alice.expect(r"message to #general: half of my")  # the typed text is redrawn intact
    alice.sendline("message")
    alice.expect(r"PM to #general delivered")
    bob.expect(r"alice: half of my message")

    # Ctrl-C at a question cancels the operation only
    alice.sendline("PM")
    alice.expect(r"message to #general:")
    alice.child.sendcontrol("c")
    alice.expect(r"PM cancelled")
    alice.prompt()

    # Ctrl-C at the main prompt leaves cleanly
    alice.child.sendcontrol("c")
    alice.expect(THREADS_OK)
    assert alice.wait_exit() == 0
    bob.child.sendcontrol("d")
    assert bob.wait_exit() == 0


def test_login_again_and_room_commands(server, terms) -> None:
    first = terms(server.port, "alice", "pw")
    first.expect(r"new account alice registered")
    first.prompt()
    first.sendline("EX")
    assert first.wait_exit() == 0

    alice = terms(server.port, "alice", "pw", "--room", "dev")
    alice.expect(r"logged in as alice")
    alice.expect(r"you joined #dev")
    alice.prompt("#dev")
    alice.sendline("/topic about dev")
    alice.expect(r"alice set the topic of #dev: about dev")
    alice.sendline("/who")
    alice.expect(r"users in #dev \(1\): alice")
    alice.sendline("/rooms")
    alice.expect(r"#dev\s+1 user")
    alice.sendline("/part")
    alice.expect(r"you left #dev")
    alice.expect(r"now talking in #general")
    alice.prompt("#general")
    alice.sendline("/help")
    alice.expect(r"/msg NICK TEXT")
    alice.sendline("/bogus")
    alice.expect(r"unknown command /bogus")
    alice.sendline("/quit see you")
    assert alice.wait_exit() == 0


def test_wrong_password_exits_2(server, terms) -> None:
    owner = RawClient(server.port)
    owner.register("alice", password="right-pw")
    owner.send("QUIT")
    owner.close()
    time.sleep(0.2)
    # no CHAT_PASSWORD: the client asks without echo
    alice = terms(server.port, "alice", None)
    alice.expect(r"Password for alice:")
    alice.sendline("wrong-pw")
    alice.expect(r"chatclient: wrong password for alice")
    assert "wrong-pw" not in alice.text  # not echoed
    alice.expect(THREADS_OK)
    assert alice.wait_exit() == 2


def test_name_already_online_exits_2(server, terms) -> None:
    first = terms(server.port, "alice", "pw")
    first.prompt()
    second = terms(server.port, "alice", "pw")
    second.expect(r"chatclient: alice is already online")
    assert second.wait_exit() == 2
    first.sendline("EX")
    assert first.wait_exit() == 0


def test_server_killed_exits_3(server, terms) -> None:
    alice = terms(server.port, "alice", "pw")
    alice.prompt()
    alice.send("half typed")
    server.stop(signal.SIGKILL)
    alice.expect(r"disconnected: \S")
    alice.expect(THREADS_OK)
    assert alice.wait_exit() == 3


def test_unreachable_exits_1(terms) -> None:
    port = free_port()
    client = terms(port, "alice", "pw")
    client.expect(rf"chatclient: cannot reach 127\.0\.0\.1:{port}: connection refused")
    assert client.wait_exit() == 1


def run_piped(port: int, name: str, password: str, stdin: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nativeclient", "127.0.0.1", str(port), name, *args],
        input=stdin, capture_output=True, text=True, timeout=15, cwd=ROOT, env=client_env(password),
    )


def test_pipe_mode_end_to_end(server) -> None:
    bob = RawClient(server.port)
    bob.register("bob", password="bob-pw")
    bob.expect(lambda line: " 366 " in line)
    bulk = [f"bulk {i}" for i in range(25)]  # with the rest, more than the flood burst (20)
    script = "\n".join([
        "first line",
        "PM",
        "via PM",
        "DM",
        "bob",
        "secret",
        "DM",
        "nobody",
        "lost words",
        *bulk,
        "/join #dev",
        "in dev",
        "/who",
    ]) + "\n"
    proc = run_piped(server.port, "alice", "alice-pw", script)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    out = proc.stdout
    assert "new account alice registered" in out
    assert "PM to #general delivered (confirmed by the server)" in out
    assert "DM to bob delivered (confirmed by the server)" in out
    assert "nobody is not online" in out
    assert "users in #dev (1): alice" in out
    assert "\x1b[" not in out  # no colours when not a terminal
    assert re.search(r"^debug: live threads: MainThread$", proc.stderr, re.M)
    # the client exited only after the server had everything: bob already has it all
    got = [line for line in bob.drain(0.5)]
    texts = [line.split(" :", 1)[1] for line in got if " PRIVMSG " in line]
    assert texts == ["first line", "via PM", "secret", *bulk]
    assert not any("lost words" in line or "in dev" in line for line in got)
    bob.close()


def test_pipe_mode_wrong_password_and_empty_input(server) -> None:
    proc = run_piped(server.port, "alice", "pw", "")
    assert proc.returncode == 0 and "new account alice registered" in proc.stdout
    proc = run_piped(server.port, "alice", "not-pw", "hello\n")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == "chatclient: wrong password for alice"
    assert "Traceback" not in proc.stderr


def test_bad_command_line_is_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "nativeclient", "127.0.0.1", "notaport", "alice"],
        capture_output=True, text=True, timeout=15, cwd=ROOT, env=client_env("x", CHATCLIENT_DEBUG_THREADS="0"),
    )
    assert proc.returncode == 64
    assert proc.stderr.count("\n") == 1 and "not a port number" in proc.stderr


def _make_ca_and_server_cert(d) -> tuple[str, str, str]:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost (openssl CLI)."""

    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=30)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ossl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=chatclient test CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ossl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return str(d / "ca.pem"), str(d / "server.pem"), str(d / "server.key")


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
def test_tls_with_ca_file(server_factory, tmp_path) -> None:
    ca, cert, key = _make_ca_and_server_cert(tmp_path)
    tls_port = free_port()
    server_factory(extra_args=["--tls-cert", cert, "--tls-key", key, "--tls-port", str(tls_port)])
    wait_for_port(tls_port)
    proc = run_piped(tls_port, "alice", "pw", "over tls\n", "--tls", "--ca-file", ca)
    assert proc.returncode == 0, proc.stderr
    assert "new account alice registered" in proc.stdout
    # without trusting the test CA the certificate is refused: one line, exit 1
    proc = run_piped(tls_port, "alice", "pw", "", "--tls")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0].startswith(f"chatclient: TLS certificate of 127.0.0.1:{tls_port} not trusted")
    assert "Traceback" not in proc.stderr


def test_colours_only_when_wanted(server, terms) -> None:
    coloured = terms(server.port, "alice", "pw", color=True)
    coloured.expect(r"new account alice registered")
    assert "\x1b[32m* new account alice registered" in coloured.raw
    coloured.sendline("EX")
    assert coloured.wait_exit() == 0
    no_color = terms(server.port, "alice", "pw", color=True, NO_COLOR="1")
    no_color.expect(r"logged in as alice")
    assert "\x1b[32m" not in no_color.raw
    no_color.sendline("EX")
    assert no_color.wait_exit() == 0


def test_pipe_mode_timestamps_and_incoming(server) -> None:
    bob = RawClient(server.port)
    bob.register("bob", password="bob-pw")
    bob.expect(lambda line: " 366 " in line)

    def chat() -> None:  # bob talks while alice's script runs
        bob.expect(lambda line: "JOIN" in line and "alice" in line)
        bob.send("PRIVMSG #general :welcome alice")
        bob.send("PRIVMSG alice :psst")

    t = threading.Thread(target=chat)
    t.start()
    with subprocess.Popen(
        [sys.executable, "-m", "nativeclient", "127.0.0.1", str(server.port), "alice", "--timestamps"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env=client_env("pw"),
    ) as p:
        t.join(STEP)
        time.sleep(0.5)  # let the messages arrive before the end of input
        out, err = p.communicate("/who\n", timeout=15)
    assert p.returncode == 0, err
    assert re.search(r"^\[\d\d:\d\d\] bob: welcome alice$", out, re.M), out
    assert re.search(r"^\[\d\d:\d\d\] \[DM\] bob: psst$", out, re.M), out
    assert re.search(r"^\[\d\d:\d\d\] \* users in #general \(2\): alice, bob$", out, re.M), out
    bob.close()
