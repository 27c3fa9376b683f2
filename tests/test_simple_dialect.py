"""The SEND/SEND-OK dialect through the real server, over loopback sockets.

Every test starts its own ``python -m ircd`` with a dedicated dialect listener
(``--simple-port``) and talks raw bytes to it: :class:`SimpleClient` for the
dialect, :class:`tests.support.RawClient` for IRC users. Echobot is off unless a
test turns it on. "Nothing else arrived" assertions use a barrier instead of a
sleep: a dialect client sends ``LIST`` and reads up to its ``LIST-OK``; an IRC
client sends ``PING`` and reads up to its ``PONG``. The server handles each
connection's lines in order and writes each client's output in order, so every
line queued before the barrier has been read by then.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import time
from dataclasses import dataclass, field

import pytest

from tests.support import RawClient, ServerProcess, command_of, free_port, wait_for_port

pytestmark = pytest.mark.timeout(60)

TIMEOUT = 5.0
HOST = "127.0.0.1"
MAX_LINE = 8192

_tokens = itertools.count(1)


def config_text(*, echobot: bool = False, deliver_channel_messages: bool = False,
                max_clients: int | None = None, max_line: int | None = None) -> str:
    text = (
        "[accounts]\nargon2_time_cost = 1\nargon2_memory_cost = 1024\n\n"
        f"[simple]\nechobot = {str(echobot).lower()}\n"
        f"deliver_channel_messages = {str(deliver_channel_messages).lower()}\n"
    )
    services = "[services]\nenabled = false\n"  # no NickServ/ChanServ in LIST-OK
    if max_clients is not None:
        text += f"max_clients = {max_clients}\n"
    if max_line is not None:
        text += f"max_line = {max_line}\n"
    return text + "\n" + services


# -- clients ---------------------------------------------------------------------


class SimpleClient:
    """A raw-socket client of the dialect; lines are read as bytes up to a bare LF."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.raw_lines: list[bytes] = []  # every line received, without the final LF
        self.name: str | None = None  # set by a successful login()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, line: str) -> None:
        self.send_raw(line.encode() + b"\n")

    def read_line(self, timeout: float = TIMEOUT) -> str:
        """The next line, without its LF (a CR would be kept, so that it shows)."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no complete line within {timeout}s; pending {self.buf[:200]!r}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise AssertionError(f"connection closed by the server; pending {self.buf[:200]!r}")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\n", 1)
        self.raw_lines.append(raw)
        return raw.decode("utf-8")

    def expect(self, line: str) -> None:
        got = self.read_line()
        assert got == line, f"expected {line[:200]!r}, got {got[:200]!r}"

    def login(self, name: str) -> SimpleClient:
        self.send(f"HELLO-FROM {name}")
        self.expect(f"HELLO {name}")
        self.name = name
        return self

    def names(self) -> list[str]:
        """``LIST`` and return the names of the ``LIST-OK`` (the next line must be it)."""
        self.send("LIST")
        line = self.read_line()
        assert line.startswith("LIST-OK "), line
        return line[len("LIST-OK "):].split(",")

    def sync(self) -> list[str]:
        """Barrier for a logged-in client: the lines that arrived before the LIST-OK."""
        self.send("LIST")
        before = []
        while True:
            line = self.read_line()
            if line.startswith("LIST-OK "):
                return before
            before.append(line)

    def is_closed(self, timeout: float = 0.5) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1, socket.MSG_PEEK) == b""
        except TimeoutError:
            return False
        except OSError:
            return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def read_raw(irc: RawClient, timeout: float = TIMEOUT) -> bytes:
    """The next line from an IRC client as raw bytes, including its CR LF."""
    deadline = time.monotonic() + timeout
    while b"\n" not in irc.buf:
        left = deadline - time.monotonic()
        assert left > 0, f"no complete IRC line within {timeout}s; pending {irc.buf[:200]!r}"
        irc.sock.settimeout(left)
        try:
            chunk = irc.sock.recv(65536)
        except TimeoutError:
            continue
        assert chunk, "IRC connection closed by the server"
        irc.buf += chunk
    raw, irc.buf = irc.buf.split(b"\n", 1)
    return raw + b"\n"


def irc_sync(irc: RawClient) -> list[str]:
    """Barrier for an IRC client: the lines that arrived before the PONG."""
    token = f"sync{next(_tokens)}"
    irc.send(f"PING :{token}")
    before = []
    while True:
        line = read_raw(irc).decode("utf-8", "replace").rstrip("\r\n")
        if command_of(line) == "PONG" and line.endswith(token):
            return before
        before.append(line)


def irc_names(irc: RawClient, channel: str = "#general") -> list[str]:
    """The nicks (prefixes removed) of ``NAMES channel``."""
    irc.send(f"NAMES {channel}")
    nicks: list[str] = []
    while True:
        line = irc.expect(lambda ln: command_of(ln) in ("353", "366"), TIMEOUT)
        if command_of(line) == "366":
            return nicks
        nicks.extend(n.lstrip("@+") for n in line.split(" :", 1)[1].split())


@dataclass
class Chat:
    """A running server with its IRC port and dialect port, and the clients opened on it."""

    server: ServerProcess
    simple_port: int
    clients: list = field(default_factory=list)

    @property
    def irc_port(self) -> int:
        return self.server.port

    def simple(self, name: str | None = None, *, irc_port: bool = False) -> SimpleClient:
        """A new dialect connection (logged in as ``name`` if given)."""
        c = SimpleClient(self.irc_port if irc_port else self.simple_port)
        self.clients.append(c)
        return c.login(name) if name is not None else c

    def irc(self, nick: str, password: str | None = None) -> RawClient:
        """A registered IRC client that has finished its autojoin of #general."""
        c = RawClient(self.irc_port, timeout=TIMEOUT)
        self.clients.append(c)
        c.register(nick, password=password)
        c.expect(lambda ln: command_of(ln) == "366" and " #general " in ln, TIMEOUT)
        return c

    def close_all(self) -> None:
        for c in self.clients:
            c.close()


@pytest.fixture
def make_chat(tmp_path):
    """``make_chat(**config)`` starts a server with a dedicated dialect listener."""
    chats: list[Chat] = []

    def make(**config) -> Chat:
        simple_port = free_port()
        srv = ServerProcess(tmp_path / f"data{len(chats)}", config_text=config_text(**config),
                            extra_args=["--simple-port", str(simple_port)])
        chat = Chat(srv, simple_port)
        chats.append(chat)
        srv.start()
        wait_for_port(simple_port, srv.proc)
        return chat

    yield make
    for chat in chats:
        chat.close_all()
        if chat.server.alive():
            chat.server.stop()


@pytest.fixture
def chat(make_chat) -> Chat:
    return make_chat()


def assert_works(sender: SimpleClient, receiver: SimpleClient, text: str = "still working") -> None:
    """``sender`` can still SEND to ``receiver``, which gets exactly that DELIVERY."""
    sender.send(f"SEND {receiver.name} {text}")
    sender.expect("SEND-OK")
    assert receiver.sync() == [f"DELIVERY {sender.name} {text}"]


# -- handshake -----------------------------------------------------------------------


def test_hello_from_on_dedicated_port_is_answered_with_a_bare_lf_line(chat):
    c = chat.simple()
    c.send_raw(b"HELLO-FROM alice\n")
    c.expect("HELLO alice")
    assert c.names() == ["alice"]
    assert c.raw_lines == [b"HELLO alice", b"LIST-OK alice"]  # no CR anywhere


def test_hello_from_as_first_line_on_irc_port_switches_to_the_dialect(chat):
    bob = chat.irc("bob")
    alice = chat.simple(irc_port=True)
    alice.send("HELLO-FROM alice")
    alice.expect("HELLO alice")  # no IRC welcome burst before it
    assert alice.names() == ["alice", "bob"]
    alice.send("SEND bob hi")
    alice.expect("SEND-OK")
    assert bob.expect(" PRIVMSG bob :", TIMEOUT) == ":alice!alice@127.0.0.1 PRIVMSG bob :hi"
    assert alice.raw_lines == [b"HELLO alice", b"LIST-OK alice,bob", b"SEND-OK"]


def test_irc_port_still_speaks_irc_when_the_first_line_is_not_hello_from(chat):
    bob = chat.irc("bob")
    assert "bob" in irc_names(bob)


@pytest.mark.parametrize("line", ["SEND bob hi", "LIST", "WHO"])
def test_send_or_list_as_first_line_on_dedicated_port_is_a_bad_header(chat, line):
    bob = chat.simple("bob")
    c = chat.simple()
    c.send(line)
    c.expect("BAD-RQST-HDR")
    assert bob.sync() == []
    c.login("alice")
    assert_works(c, bob)


def test_second_hello_from_after_login_is_a_bad_header_and_keeps_the_name(chat):
    bob = chat.simple("bob")
    alice = chat.simple("alice")
    alice.send("HELLO-FROM carol")
    alice.expect("BAD-RQST-HDR")
    alice.send("HELLO-FROM alice")
    alice.expect("BAD-RQST-HDR")
    assert alice.names() == ["alice", "bob"]
    assert_works(alice, bob)


@pytest.mark.parametrize("name", ["", "a b", "a,b", "a\\b", "a!b", "a@b", "a#b", "a$b", "a%b",
                                  "a^b", "a&b", "a*b", "9lives", "-dash", "bébé", "n" * 31])
def test_hello_from_with_an_invalid_name_is_a_bad_header_and_the_connection_still_works(chat, name):
    bob = chat.simple("bob")
    c = chat.simple()
    c.send(f"HELLO-FROM {name}")
    c.expect("BAD-RQST-HDR")
    assert bob.names() == ["bob"]
    c.login("alice")
    assert_works(c, bob)


def test_hello_from_without_a_name_is_a_bad_header(chat):
    c = chat.simple()
    c.send("HELLO-FROM")
    c.expect("BAD-RQST-HDR")
    c.login("alice")


@pytest.mark.parametrize("line", ["FOO", "FOO bar", "list", "send bob hi", "PRIVMSG bob :hi",
                                  "NICK carol", "LIST extra"])
def test_unknown_command_is_a_bad_header_before_and_after_login(chat, line):
    bob = chat.simple("bob")
    c = chat.simple()
    c.send(line)
    c.expect("BAD-RQST-HDR")
    c.login("alice")
    c.send(line)
    c.expect("BAD-RQST-HDR")
    assert bob.sync() == []
    assert_works(c, bob)


def test_name_of_an_online_simple_user_is_in_use_and_the_connection_stays_open(chat):
    alice = chat.simple("alice")
    c = chat.simple()
    c.send("HELLO-FROM alice")
    c.expect("IN-USE")
    c.send("HELLO-FROM ALICE")
    c.expect("IN-USE")
    assert not c.is_closed()
    c.login("alice2")
    assert_works(c, alice)
    assert alice.names() == ["alice", "alice2"]


def test_name_of_an_online_irc_user_is_in_use(chat):
    chat.irc("bob")
    c = chat.simple()
    c.send("HELLO-FROM bob")
    c.expect("IN-USE")
    c.login("bobby")
    assert c.names() == ["bob", "bobby"]


def test_name_of_an_online_simple_user_from_the_irc_port_is_in_use(chat):
    chat.simple("alice", irc_port=True)
    c = chat.simple()
    c.send("HELLO-FROM alice")
    c.expect("IN-USE")


def test_name_of_a_registered_account_is_in_use_online_and_offline(chat):
    dave = chat.irc("dave", password="dave-secret-1")
    c = chat.simple()
    c.send("HELLO-FROM dave")
    c.expect("IN-USE")
    dave.send("QUIT :bye")
    assert dave.closed_by_server(TIMEOUT)
    carol = chat.simple("carol")
    deadline = time.monotonic() + TIMEOUT
    while "dave" in carol.names():
        assert time.monotonic() < deadline, "dave never left"
        time.sleep(0.02)
    c.send("HELLO-FROM dave")
    c.expect("IN-USE")
    c.send("HELLO-FROM Dave")
    c.expect("IN-USE")
    c.login("dave2")


def test_seventeenth_client_on_dedicated_port_is_busy_until_one_leaves(make_chat):
    chat = make_chat(echobot=True)
    users = [chat.simple(f"user{i}") for i in range(16)]
    watcher = chat.irc("watcher")  # IRC users and echobot do not count
    late = chat.simple()
    late.send("HELLO-FROM user16")
    late.expect("BUSY")
    assert not late.is_closed()
    late.send("HELLO-FROM user16")
    late.expect("BUSY")
    late.send("LIST")
    late.expect("BAD-RQST-HDR")  # BUSY did not log it in
    assert "user16" not in users[1].names()
    irc_sync(watcher)
    users[0].close()
    watcher.expect(lambda ln: ln.startswith(":user0!") and command_of(ln) == "QUIT", TIMEOUT)
    late.login("user16")
    assert_works(late, users[1])
    assert sorted(users[1].names()) == sorted(
        ["echobot", "watcher", *(f"user{i}" for i in range(1, 17))])


# -- SEND between dialect users -------------------------------------------------------


def test_send_to_a_simple_user_gives_send_ok_and_one_delivery(chat):
    alice, bob = chat.simple("alice"), chat.simple("bob")
    alice.send("SEND bob hello bob")
    alice.expect("SEND-OK")
    bob.expect("DELIVERY alice hello bob")
    assert bob.sync() == []
    assert alice.sync() == []


@pytest.mark.parametrize("size", [512, 8000])
def test_long_message_between_simple_users_is_delivered_whole_in_one_line(chat, size):
    alice, bob = chat.simple("alice"), chat.simple("bob")
    text = ("The quick brown fox é 😀 " * 400).encode()[:size].decode("utf-8", "ignore")
    alice.send(f"SEND bob {text}")
    alice.expect("SEND-OK")
    assert bob.sync() == [f"DELIVERY alice {text}"]


def test_line_of_exactly_max_line_bytes_is_delivered(chat):
    alice, bob = chat.simple("alice"), chat.simple("bob")
    text = "x" * (MAX_LINE - len("SEND bob "))
    alice.send(f"SEND bob {text}")
    alice.expect("SEND-OK")
    assert bob.sync() == [f"DELIVERY alice {text}"]


def test_line_of_max_line_bytes_with_crlf_split_between_cr_and_lf_is_delivered(chat):
    alice, bob = chat.simple("alice"), chat.simple("bob")
    text = "y" * (MAX_LINE - len("SEND bob "))
    alice.send_raw(f"SEND bob {text}\r".encode())
    time.sleep(0.2)  # let the server read the line up to its CR first
    alice.send_raw(b"\n")
    alice.expect("SEND-OK")
    assert bob.sync() == [f"DELIVERY alice {text}"]


def test_line_over_max_line_is_a_bad_body_and_the_connection_still_works(chat):
    alice, bob = chat.simple("alice"), chat.simple("bob")
    text = "z" * (MAX_LINE + 1 - len("SEND bob "))
    alice.send(f"SEND bob {text}")
    alice.expect("BAD-RQST-BODY")
    assert bob.sync() == []
    assert alice.sync() == []
    assert_works(alice, bob)


def test_very_long_line_in_many_segments_gets_one_bad_body_and_its_tail_is_ignored(chat):
    alice, bob = chat.simple("alice"), chat.simple("bob")
    alice.send_raw(b"SEND bob " + b"w" * 20000)
    time.sleep(0.1)
    alice.send_raw(b"w" * 20000)
    time.sleep(0.1)
    alice.send_raw(b"SEND bob tail\nLIST\n")
    alice.expect("BAD-RQST-BODY")
    alice.expect("LIST-OK alice,bob")
    assert bob.sync() == []
    assert_works(alice, bob)


@pytest.mark.parametrize("line", ["SEND", "SEND ", "SEND bob", "SEND bob ", "SEND bob     ",
                                  "SEND bob \t", "SEND  hello"])
def test_send_without_target_or_message_is_a_bad_body(chat, line):
    alice, bob = chat.simple("alice"), chat.simple("bob")
    alice.send(line)
    alice.expect("BAD-RQST-BODY")
    assert bob.sync() == []
    assert_works(alice, bob)


def test_send_to_a_list_of_names_with_an_unknown_one_is_bad_dest_user_and_not_delivered(chat):
    alice, bob = chat.simple("alice"), chat.simple("bob")
    alice.send("SEND bob,nobody hi")
    alice.expect("BAD-DEST-USER")
    assert bob.sync() == [], "bob got a message whose SEND was answered BAD-DEST-USER"
    assert_works(alice, bob)


def test_send_to_an_unknown_user_is_bad_dest_user(chat):
    alice, bob = chat.simple("alice"), chat.simple("bob")
    alice.send("SEND nobody hi")
    alice.expect("BAD-DEST-USER")
    assert bob.sync() == []
    assert_works(alice, bob)


def test_list_ok_shows_users_of_both_dialects_sorted_without_spaces(chat):
    chat.irc("carol")
    chat.irc("dave")
    chat.simple("bob", irc_port=True)
    alice = chat.simple("alice")
    alice.send("LIST")
    alice.expect("LIST-OK alice,bob,carol,dave")
    alice.send("WHO")
    alice.expect("LIST-OK alice,bob,carol,dave")


# -- echobot -------------------------------------------------------------------------


def test_echobot_answers_send_after_send_ok(make_chat):
    chat = make_chat(echobot=True)
    alice = chat.simple("alice")
    alice.send("SEND echobot hi")
    alice.expect("SEND-OK")
    alice.expect("DELIVERY echobot hi")
    assert alice.sync() == []


def test_echobot_echoes_an_8000_byte_message_whole(make_chat):
    chat = make_chat(echobot=True)
    alice = chat.simple("alice")
    text = ("echo é 😀 " * 1000).encode()[:8000].decode("utf-8", "ignore")
    alice.send(f"SEND echobot {text}")
    alice.expect("SEND-OK")
    alice.expect(f"DELIVERY echobot {text}")


def test_echobot_is_listed_and_in_irc_names_of_general(make_chat):
    chat = make_chat(echobot=True)
    bob = chat.irc("bob")
    alice = chat.simple("alice")
    assert alice.names() == ["alice", "bob", "echobot"]
    assert "echobot" in irc_names(bob)
    c = chat.simple()
    c.send("HELLO-FROM echobot")
    c.expect("IN-USE")


# -- bridging with IRC ---------------------------------------------------------------


def test_simple_user_is_seen_by_irc_names_whois_and_ison(chat):
    bob = chat.irc("bob")
    chat.simple("alice")
    assert sorted(irc_names(bob)) == ["alice", "bob"]
    bob.send("WHOIS alice")
    line = bob.expect(lambda ln: command_of(ln) in ("311", "401"), TIMEOUT)
    assert line.split()[1:6] == ["311", "bob", "alice", "alice", "127.0.0.1"]
    bob.expect_numeric("318", TIMEOUT)
    bob.send("ISON alice nobody")
    assert bob.expect_numeric("303", TIMEOUT).endswith(" 303 bob :alice")


def test_send_to_an_irc_user_arrives_as_privmsg_from_the_simple_user(chat):
    bob = chat.irc("bob")
    alice = chat.simple("alice")
    irc_sync(bob)
    alice.send("SEND bob hi")
    alice.expect("SEND-OK")
    assert read_raw(bob) == b":alice!alice@127.0.0.1 PRIVMSG bob :hi\r\n"


@pytest.mark.parametrize("verb", ["PRIVMSG", "NOTICE"])
def test_irc_privmsg_or_notice_to_a_simple_user_arrives_as_delivery(chat, verb):
    bob = chat.irc("bob")
    alice = chat.simple("alice")
    bob.send(f"{verb} alice :hi there")
    irc_sync(bob)
    assert alice.sync() == ["DELIVERY bob hi there"]


def test_irc_channel_messages_are_not_delivered_to_simple_users_by_default(chat):
    bob, carol = chat.irc("bob"), chat.irc("carol")
    alice = chat.simple("alice")
    irc_sync(carol)
    bob.send("PRIVMSG #general :hello channel")
    bob.send("NOTICE #general :channel notice")
    irc_sync(bob)
    assert irc_sync(carol) == [":bob!bob@127.0.0.1 PRIVMSG #general :hello channel",
                               ":bob!bob@127.0.0.1 NOTICE #general :channel notice"]
    assert alice.sync() == []


def test_irc_channel_messages_are_delivered_with_deliver_channel_messages(make_chat):
    chat = make_chat(deliver_channel_messages=True)
    bob = chat.irc("bob")
    alice = chat.simple("alice")
    bob.send("PRIVMSG #general :hello channel")
    irc_sync(bob)
    assert alice.sync() == ["DELIVERY bob hello channel"]


def test_long_utf8_message_to_an_irc_user_is_split_into_ordered_irc_lines(chat):
    bob = chat.irc("bob")
    alice = chat.simple("alice")
    irc_sync(bob)
    text = "aé€😀 " * 182  # 2002 bytes of 1-, 2-, 3- and 4-byte characters
    assert len(text.encode()) > 2000
    alice.send(f"SEND bob {text}")
    alice.expect("SEND-OK")
    prefix = b":alice!alice@127.0.0.1 PRIVMSG bob :"
    pieces: list[str] = []
    while len("".join(pieces)) < len(text):
        raw = read_raw(bob)
        assert raw.startswith(prefix) and raw.endswith(b"\r\n"), raw[:100]
        assert len(raw) <= 512, f"IRC line of {len(raw)} bytes"
        pieces.append(raw[len(prefix):-2].decode("utf-8"))  # strict: no broken character
    assert len(pieces) >= 5
    assert "".join(pieces) == text
    assert irc_sync(bob) == []
    assert alice.sync() == []


def test_simple_user_closing_its_socket_is_a_quit_for_irc_users(chat):
    bob = chat.irc("bob")
    alice = chat.simple("alice")
    carol = chat.simple("carol")
    irc_sync(bob)
    alice.close()
    line = bob.expect(lambda ln: command_of(ln) == "QUIT", TIMEOUT)
    assert line.startswith(":alice!alice@127.0.0.1 QUIT :")
    assert carol.names() == ["bob", "carol"]
    chat.simple("alice")  # the name is free again


def test_send_to_an_irc_user_who_quit_is_bad_dest_user(chat):
    bob = chat.irc("bob")
    alice = chat.simple("alice")
    carol = chat.simple("carol")
    bob.send("QUIT :bye")
    assert bob.closed_by_server(TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    while "bob" in carol.names():
        assert time.monotonic() < deadline, "bob never left"
        time.sleep(0.02)
    alice.send("SEND bob hi")
    alice.expect("BAD-DEST-USER")
    assert_works(alice, carol)


# -- TCP segmentation -----------------------------------------------------------------


@pytest.mark.parametrize("irc_port", [False, True], ids=["dedicated-port", "irc-port"])
def test_hello_from_sent_byte_by_byte_logs_in(chat, irc_port):
    c = chat.simple(irc_port=irc_port)
    for byte in b"HELLO-FROM alice\n":
        c.send_raw(bytes([byte]))
        time.sleep(0.005)
    c.expect("HELLO alice")
    assert c.names() == ["alice"]


@pytest.mark.parametrize("irc_port", [False, True], ids=["dedicated-port", "irc-port"])
def test_several_commands_in_one_segment_are_answered_in_order(chat, irc_port):
    bob = chat.simple("bob")
    c = chat.simple(irc_port=irc_port)
    c.send_raw(b"HELLO-FROM alice\nLIST\nSEND bob one\nSEND nobody x\nFOO\nSEND bob two\n")
    for line in ["HELLO alice", "LIST-OK alice,bob", "SEND-OK", "BAD-DEST-USER",
                 "BAD-RQST-HDR", "SEND-OK"]:
        c.expect(line)
    assert bob.sync() == ["DELIVERY alice one", "DELIVERY alice two"]


@pytest.mark.parametrize("irc_port", [False, True], ids=["dedicated-port", "irc-port"])
def test_crlf_line_endings_are_accepted_and_not_passed_on(chat, irc_port):
    bob = chat.simple("bob")
    c = chat.simple(irc_port=irc_port)
    c.send_raw(b"HELLO-FROM alice\r\nLIST\r\nSEND bob hi there\r\n")
    c.expect("HELLO alice")
    c.expect("LIST-OK alice,bob")
    c.expect("SEND-OK")
    assert bob.sync() == ["DELIVERY alice hi there"]


def test_command_split_across_segments_is_reassembled(chat):
    bob = chat.simple("bob")
    alice = chat.simple("alice")
    for part in (b"SE", b"ND b", b"ob split ", b"message\nLI", b"ST\n"):
        alice.send_raw(part)
        time.sleep(0.02)
    alice.expect("SEND-OK")
    alice.expect("LIST-OK alice,bob")
    assert bob.sync() == ["DELIVERY alice split message"]


def test_max_line_message_in_the_same_segment_as_hello_from_on_irc_port_is_delivered(chat):
    bob = chat.simple("bob")
    c = chat.simple(irc_port=True)
    text = "v" * (MAX_LINE - len("SEND bob "))
    c.send_raw(f"HELLO-FROM alice\nSEND bob {text}\n".encode())
    c.expect("HELLO alice")
    c.expect("SEND-OK")
    assert bob.sync() == [f"DELIVERY alice {text}"]


@pytest.mark.parametrize("irc_port", [False, True], ids=["dedicated-port", "irc-port"])
def test_configured_max_line_message_in_the_same_segment_as_hello_from_is_delivered(
        make_chat, irc_port):
    chat = make_chat(max_line=16384)
    bob = chat.simple("bob")
    c = chat.simple(irc_port=irc_port)
    text = "u" * 12000
    c.send_raw(f"HELLO-FROM alice\nSEND bob {text}\n".encode())
    c.expect("HELLO alice")
    c.expect("SEND-OK")
    assert bob.sync() == [f"DELIVERY alice {text}"]


# -- robustness ------------------------------------------------------------------------


def test_bad_inputs_leave_the_connection_and_other_clients_working(chat):
    bob = chat.simple("bob")
    irc = chat.irc("carol")
    alice = chat.simple()
    for line, answer in [("SEND bob x", "BAD-RQST-HDR"), ("HELLO-FROM a,b", "BAD-RQST-HDR"),
                         ("HELLO-FROM bob", "IN-USE"), ("HELLO-FROM alice", "HELLO alice"),
                         ("HELLO-FROM alice", "BAD-RQST-HDR"), ("SEND bob", "BAD-RQST-BODY"),
                         ("SEND nobody hi", "BAD-DEST-USER"), ("XYZZY", "BAD-RQST-HDR")]:
        alice.send(line)
        alice.expect(answer)
    alice.name = "alice"
    alice.send_raw(b"\xff\xfe garbage \x00\n")
    alice.expect("BAD-RQST-HDR")
    assert bob.sync() == []
    assert irc_sync(irc) == [":alice!alice@127.0.0.1 JOIN #general"]  # nothing else
    assert_works(alice, bob)
    assert_works(bob, alice)
    alice.send("SEND carol hello irc")
    alice.expect("SEND-OK")
    assert irc.expect(" PRIVMSG carol ", TIMEOUT) == ":alice!alice@127.0.0.1 PRIVMSG carol :hello irc"
