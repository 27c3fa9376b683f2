"""Byte-level robustness of the IRC front end, over raw sockets.

Framing (split and merged TCP segments, bare LF, empty lines), the size limits
(510-byte body, 4096-byte tag section, unterminated floods), encoding (invalid
UTF-8, bare CR, NUL), the pre-registration rules, and the bounded send queue
with a reader that never reads.

After every bad input the test also checks, with :meth:`Room.check`, that the
server is alive and that two bystanders (alice and bob, in #general) still
chat both ways, with every earlier message delivered once and in order.
"""

from __future__ import annotations

import socket
import time

import pytest

from tests.support import RawClient, command_of, config_with

pytestmark = pytest.mark.timeout(60)

SERVER = "irc.chatserver.local"
HOST = "127.0.0.1"


class ByteClient(RawClient):
    """A :class:`RawClient` that also keeps every received line as raw bytes.

    ``rcvbuf`` sets SO_RCVBUF before connecting (a small window makes a slow
    reader's backlog pile up on the server instead of in the kernel).
    """

    def __init__(self, port: int, rcvbuf: int | None = None, timeout: float = 10.0) -> None:
        if rcvbuf is None:
            super().__init__(port, HOST, timeout)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(timeout)
            sock.connect((HOST, port))
            self.sock = sock
            self.timeout = timeout
            self.buf = b""
            self.lines = []
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.raw_lines: list[bytes] = []

    def readline(self, timeout: float | None = None) -> str | None:
        self.sock.settimeout(timeout if timeout is not None else self.timeout)
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\n", 1)
        self.raw_lines.append(raw + b"\n")
        line = raw.rstrip(b"\r").decode("utf-8", "replace")
        self.lines.append(line)
        return line

    def join_burst(self, channel: str = "#general") -> None:
        """Wait for the end of NAMES for ``channel`` (the autojoin after registration)."""
        self.expect(lambda line: command_of(line) == "366" and f" {channel} " in line)

    def roundtrip(self, token: str) -> list[str]:
        """PING/PONG barrier: return the lines received before the PONG for ``token``."""
        start = len(self.lines)
        self.send(f"PING :{token}")
        self.expect(f":{SERVER} PONG {SERVER} :{token}")
        return self.lines[start:-1]


def guest(port: int, nick: str, **kwargs) -> ByteClient:
    c = ByteClient(port, **kwargs)
    c.register(nick)
    c.join_burst()
    return c


class Room:
    """alice and bob, guests in #general, who keep checking that chat still works."""

    def __init__(self, srv) -> None:
        self.srv = srv
        self.alice = guest(srv.port, "alice")
        self.bob = guest(srv.port, "bob")
        self.alice.expect(":bob!bob@127.0.0.1 JOIN #general")
        self.sent: list[str] = []     # alice -> #general, in order
        self.acks: list[str] = []     # bob -> alice, in order
        self.n = 0

    def join(self, nick: str) -> ByteClient:
        """A third client; alice and bob have seen it join."""
        c = guest(self.srv.port, nick)
        for peer in (self.alice, self.bob):
            peer.expect(f":{nick}!{nick}@127.0.0.1 JOIN #general")
        return c

    def check(self) -> None:
        """The server is alive and alice and bob still chat, nothing lost or duplicated."""
        assert self.srv.alive(), "server process died"
        self.n += 1
        a_start, b_start = len(self.alice.lines), len(self.bob.lines)
        text = f"still chatting {self.n}"
        self.sent.append(text)
        self.alice.send(f"PRIVMSG #general :{text}")
        self.bob.expect(f":alice!alice@127.0.0.1 PRIVMSG #general :{text}")
        got = [line.split(" :", 1)[1] for line in self.bob.lines
               if line.startswith(":alice!alice@127.0.0.1 PRIVMSG #general :")]
        assert got == self.sent
        ack = f"ack {self.n}"
        self.acks.append(ack)
        self.bob.send(f"PRIVMSG alice :{ack}")
        self.alice.expect(f":bob!bob@127.0.0.1 PRIVMSG alice :{ack}")
        got = [line.split(" :", 1)[1] for line in self.alice.lines
               if line.startswith(":bob!bob@127.0.0.1 PRIVMSG alice :")]
        assert got == self.acks
        # Neither got an error numeric for their messages.
        self.alice.roundtrip(f"check-a-{self.n}")
        self.bob.roundtrip(f"check-b-{self.n}")
        assert numerics_in(self.alice.lines[a_start:]) == [], self.alice.lines[a_start:]
        assert numerics_in(self.bob.lines[b_start:]) == [], self.bob.lines[b_start:]

    def bob_lines_from(self, nick: str) -> list[str]:
        """Every line bob received from ``nick`` (after a barrier)."""
        self.bob.roundtrip(f"sync-{self.n}-{nick}")
        return [line for line in self.bob.lines if line.startswith(f":{nick}!")]

    def close(self) -> None:
        self.alice.close()
        self.bob.close()


@pytest.fixture
def room(server):
    r = Room(server)
    r.check()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def x(room):
    """A third registered client, the one that sends the odd input."""
    c = room.join("xavier")
    try:
        yield c
    finally:
        c.close()


def numerics_in(lines: list[str]) -> list[str]:
    return [command_of(line) for line in lines if command_of(line).isdigit()]


# -- framing -------------------------------------------------------------------


def test_command_split_across_tcp_segments_is_reassembled(room):
    c = ByteClient(room.srv.port)
    try:
        data = (b"NICK split\r\nUSER split 0 * :Split Up\r\n"
                b"PRIVMSG #general :arrived in pieces\r\n")
        for i in range(len(data)):
            c.send(data[i : i + 1])
            time.sleep(0.003)
        c.expect_numeric("001")
        room.bob.expect(":split!split@127.0.0.1 PRIVMSG #general :arrived in pieces")
        # A line split in the middle of its CR LF.
        c.send(b"PRIVMSG #general :cr and lf apart\r")
        time.sleep(0.05)
        c.send(b"\n")
        room.bob.expect(":split!split@127.0.0.1 PRIVMSG #general :cr and lf apart")
        assert [line for line in room.bob_lines_from("split") if "PRIVMSG" in line] == [
            ":split!split@127.0.0.1 PRIVMSG #general :arrived in pieces",
            ":split!split@127.0.0.1 PRIVMSG #general :cr and lf apart",
        ]
    finally:
        c.close()
    room.check()


def test_several_commands_in_one_segment_are_all_handled_in_order(room):
    c = ByteClient(room.srv.port)
    try:
        c.send(b"PASS batch-pw\r\nNICK batch\r\nUSER batch 0 * :Batch\r\n"
               b"JOIN #side\r\nPRIVMSG #general :one\r\nPRIVMSG #general :two\r\n"
               b"PRIVMSG bob :three\r\nPING :done\r\n")
        c.expect(f":{SERVER} PONG {SERVER} :done")
        assert ":batch!batch@127.0.0.1 JOIN #side" in c.lines
        assert [command_of(x) for x in c.lines].count("001") == 1
        assert room.bob_lines_from("batch") == [
            ":batch!batch@127.0.0.1 JOIN #general",
            ":batch!batch@127.0.0.1 PRIVMSG #general :one",
            ":batch!batch@127.0.0.1 PRIVMSG #general :two",
            ":batch!batch@127.0.0.1 PRIVMSG bob :three",
        ]
    finally:
        c.close()
    room.check()


def test_bare_lf_line_endings_are_accepted(room):
    c = ByteClient(room.srv.port)
    try:
        c.send(b"NICK lfonly\nUSER lfonly 0 * :LF Only\n")
        c.expect_numeric("001")
        c.send(b"PRIVMSG #general :lf works\nPRIVMSG #general :mixed works\r\n")
        room.bob.expect(":lfonly!lfonly@127.0.0.1 PRIVMSG #general :lf works")
        room.bob.expect(":lfonly!lfonly@127.0.0.1 PRIVMSG #general :mixed works")
    finally:
        c.close()
    room.check()


def test_empty_lines_are_ignored(room, x):
    x.drain(0.1)
    x.send(b"\r\n\n\r\n\r\n\n")
    before = x.roundtrip("after-empty")
    assert before == [], before
    # Also before registration: empty lines, then a normal registration.
    c = ByteClient(room.srv.port)
    try:
        c.send(b"\r\n\n\r\nNICK empty\r\n\r\nUSER empty 0 * :E\r\n\n")
        line = c.expect(lambda line: command_of(line).isdigit())
        assert command_of(line) == "001", line
    finally:
        c.close()
    room.check()


def test_abrupt_close_in_the_middle_of_a_line_is_a_quit(room, x):
    x.send(b"PRIVMSG #general :this line never ends")
    time.sleep(0.05)
    x.close()
    for peer in (room.alice, room.bob):
        line = peer.expect(lambda line: line.startswith(":xavier!") and " QUIT " in line)
        assert line.startswith(":xavier!xavier@127.0.0.1 QUIT :")
    assert not [line for line in room.bob.lines if "never ends" in line]
    room.check()


# -- size limits -----------------------------------------------------------------


def test_body_limit_is_510_bytes_without_crlf(room, x):
    prefix = "PRIVMSG #general :"
    ok_text = "a" * (510 - len(prefix))
    x.send(prefix + ok_text)          # 510 bytes + CR LF: the maximum
    room.bob.expect(f":xavier!xavier@127.0.0.1 PRIVMSG #general :{ok_text}")
    x.send(prefix + "b" * (511 - len(prefix)))   # one byte too many
    line = x.expect(lambda line: command_of(line).isdigit())
    assert line == f":{SERVER} 417 xavier :Input line was too long"
    assert not [line for line in room.bob_lines_from("xavier") if "bbbb" in line]
    room.check()


def test_600_byte_line_gets_417_and_the_next_command_still_works(room, x):
    x.send("PRIVMSG #general :" + "c" * (600 - 18))
    x.send("PRIVMSG #general :short and fine")
    line = x.expect(lambda line: command_of(line).isdigit())
    assert line == f":{SERVER} 417 xavier :Input line was too long"
    room.bob.expect(":xavier!xavier@127.0.0.1 PRIVMSG #general :short and fine")
    assert [line for line in room.bob_lines_from("xavier") if "PRIVMSG" in line] == [
        ":xavier!xavier@127.0.0.1 PRIVMSG #general :short and fine"
    ]
    assert x.roundtrip("after-600") == []
    room.check()


def test_10000_byte_line_without_newline_gets_one_417_and_stays_usable(room, x):
    x.send(b"PRIVMSG #general :" + b"d" * (10_000 - 18))
    line = x.expect(lambda line: command_of(line).isdigit())   # answered before the newline
    assert line == f":{SERVER} 417 xavier :Input line was too long"
    time.sleep(0.1)
    x.send(b"\r\n")
    x.send("PRIVMSG #general :after the flood")
    assert x.roundtrip("after-10000") == []   # exactly one 417, nothing else
    room.bob.expect(":xavier!xavier@127.0.0.1 PRIVMSG #general :after the flood")
    assert [line for line in room.bob_lines_from("xavier") if "PRIVMSG" in line] == [
        ":xavier!xavier@127.0.0.1 PRIVMSG #general :after the flood"
    ]
    room.check()


def test_tags_up_to_4096_bytes_are_accepted_and_longer_get_417(room, x):
    # The tag section counts the '@' and the space after it (IRCv3 message-tags).
    ok_tags = "@a=" + "t" * (4096 - 4) + " "
    assert len(ok_tags) == 4096
    x.send(ok_tags + "PRIVMSG #general :tagged and fine")
    room.bob.expect(":xavier!xavier@127.0.0.1 PRIVMSG #general :tagged and fine")
    # Both limits at once: 4096 bytes of tags and a 510-byte body.
    body = "PRIVMSG #general :" + "m" * (510 - 18)
    x.send(ok_tags + body)
    room.bob.expect(f":xavier!xavier@127.0.0.1 PRIVMSG #general :{'m' * (510 - 18)}")
    long_tags = "@a=" + "t" * (4097 - 4) + " "
    x.send(long_tags + "PRIVMSG #general :tagged too much")
    line = x.expect(lambda line: command_of(line).isdigit())
    assert line == f":{SERVER} 417 xavier :Input line was too long"
    x.send("PRIVMSG #general :untagged after")
    room.bob.expect(":xavier!xavier@127.0.0.1 PRIVMSG #general :untagged after")
    assert [line for line in room.bob_lines_from("xavier") if "PRIVMSG" in line] == [
        ":xavier!xavier@127.0.0.1 PRIVMSG #general :tagged and fine",
        f":xavier!xavier@127.0.0.1 PRIVMSG #general :{'m' * (510 - 18)}",
        ":xavier!xavier@127.0.0.1 PRIVMSG #general :untagged after",
    ]
    room.check()


# -- encoding --------------------------------------------------------------------


def test_invalid_utf8_in_privmsg_gets_fail_and_is_not_relayed(room, x):
    # UTF8ONLY (IRCv3 utf8-only): refused, not relayed with U+FFFD (tests/test_utf8only.py).
    x.send(b"PRIVMSG #general :caf\xe9 \xff\xfe ok\r\n")
    assert x.roundtrip("after-invalid") == [
        f":{SERVER} FAIL PRIVMSG INVALID_UTF8 :Message rejected, contains invalid UTF-8"]
    room.bob.roundtrip("sync-invalid")
    assert not [raw for raw in room.bob.raw_lines if b"caf" in raw]
    # Valid multi-byte UTF-8 passes unchanged.
    x.send("PRIVMSG #general :héllo ✓ 日本\r\n".encode())
    room.bob.expect(lambda line: line.startswith(":xavier!") and "PRIVMSG" in line)
    assert room.bob.raw_lines[-1] == ":xavier!xavier@127.0.0.1 PRIVMSG #general :héllo ✓ 日本\r\n".encode()
    # The sender got no error for it.
    assert x.roundtrip("after-utf8") == []
    room.check()


def test_510_byte_line_with_invalid_utf8_is_not_rejected_as_too_long(room, x):
    # 510 bytes on the wire: the limit is on the bytes received, so the answer
    # is the UTF8ONLY refusal, not 417.
    line = b"PRIVMSG #general :" + b"e" * 480 + b"\xff" * 12
    assert len(line) == 510
    x.send(line + b"\r\n")
    lines = x.roundtrip("after-invalid-510")
    assert lines == [
        f":{SERVER} FAIL PRIVMSG INVALID_UTF8 :Message rejected, contains invalid UTF-8"], lines
    room.bob.roundtrip("sync-invalid-510")
    assert not [raw for raw in room.bob.raw_lines if b"e" * 480 in raw]
    room.check()


def test_bare_cr_inside_a_message_is_never_relayed(room, x):
    # A lone CR is a line break for many clients: relayed as is, it would let
    # xavier forge a line from someone else in bob's client.
    x.send(b"PRIVMSG #general :hi\r:alice!alice@127.0.0.1 PRIVMSG #general :forged\r\n")
    x.roundtrip("after-cr")
    room.bob.roundtrip("sync-cr")
    for raw in room.bob.raw_lines:
        assert b"\r" not in raw[:-2], raw
    assert not [line for line in room.bob.lines if "forged" in line and line.startswith(":alice!")]
    room.check()


def test_nul_inside_a_message_is_never_relayed(room, x):
    # RFC 2812 section 2.3.1: NUL is not allowed anywhere in a message.
    x.send(b"PRIVMSG #general :before\x00after\r\n")
    x.roundtrip("after-nul")
    room.bob.roundtrip("sync-nul")
    assert not [raw for raw in room.bob.raw_lines if b"\x00" in raw]
    room.check()


# -- registration rules ----------------------------------------------------------


def test_commands_before_registration_get_451(room):
    c = ByteClient(room.srv.port)
    try:
        for line in ("PRIVMSG #general :sneaky", "JOIN #general", "JOIN :", "WHO #general",
                     "NAMES #general", "FROBNICATE x"):
            c.send(line)
            c.expect_only(f":{SERVER} 451 * :You have not registered")
        # It may still register afterwards.
        c.register("latecomer")
        c.join_burst()
    finally:
        c.close()
    assert not [line for line in room.bob_lines_from("latecomer") if "sneaky" in line]
    room.check()


def test_unknown_command_gets_421(room, x):
    x.send("FROBNICATE the widget")
    x.expect_only(f":{SERVER} 421 xavier FROBNICATE :Unknown command")
    x.send("frobnicate lower case")
    x.expect_only(f":{SERVER} 421 xavier FROBNICATE :Unknown command")
    room.check()


def test_user_twice_gets_462(room, x):
    x.send("USER again 0 * :Again")
    x.expect_only(f":{SERVER} 462 xavier :You may not reregister")
    x.send("PASS again")
    x.expect_only(f":{SERVER} 462 xavier :You may not reregister")
    # Before registration too: the second USER is refused, the first one stands.
    c = ByteClient(room.srv.port)
    try:
        c.send("USER first 0 * :First")
        c.send("USER second 0 * :Second")
        c.expect_only(f":{SERVER} 462 * :You may not reregister")
        c.send("NICK twice")
        c.expect_numeric("001")
        c.join_burst()
        assert ":twice!first@127.0.0.1 JOIN #general" in c.lines
    finally:
        c.close()
    room.check()


def test_ping_gets_pong_with_the_token(room, x):
    x.send("PING :token-123")
    assert x.expect(lambda line: "PONG" in line) == f":{SERVER} PONG {SERVER} :token-123"
    x.send("PING :two words")
    assert x.expect(lambda line: "PONG" in line) == f":{SERVER} PONG {SERVER} :two words"
    x.send("PING bare")
    assert x.expect(lambda line: "PONG" in line) == f":{SERVER} PONG {SERVER} :bare"
    x.send("PING")
    x.expect_only(f":{SERVER} 409 xavier :No origin specified")
    c = ByteClient(room.srv.port)
    try:  # PING works before registration (clients use it to measure lag)
        c.send("PING :early")
        assert c.expect(lambda line: True) == f":{SERVER} PONG {SERVER} :early"
    finally:
        c.close()
    room.check()


# -- timeouts -----------------------------------------------------------------------


def test_unregistered_connection_is_closed_after_registration_timeout(server_factory):
    srv = server_factory(config_text=config_with(server={"registration_timeout": 1.0}))
    room = Room(srv)
    c = ByteClient(srv.port)
    try:
        c.send("NICK dawdler")
        line = c.expect(lambda line: line.startswith("ERROR"), timeout=5)
        assert line == "ERROR :Registration timeout"
        assert c.closed_by_server(timeout=3)
        room.check()   # registered users are not affected
    finally:
        c.close()
        room.close()


def test_silent_client_is_pinged_then_disconnected(server_factory):
    srv = server_factory(config_text=config_with(server={"ping_interval": 1.0, "ping_timeout": 1.0}))
    silent = guest(srv.port, "silent")
    watcher = guest(srv.port, "watcher")
    try:
        start = time.monotonic()
        deadline = start + 8
        while time.monotonic() < deadline:   # watcher answers every PING
            try:
                line = watcher.readline(0.2)
            except TimeoutError:
                continue
            assert line is not None, "watcher was disconnected"
            if line.startswith("PING "):
                watcher.send("PONG " + line.split(" ", 1)[1])
            if line.startswith(":silent!") and " QUIT " in line:
                assert line.startswith(":silent!silent@127.0.0.1 QUIT :Ping timeout: ")
                break
        else:
            raise AssertionError(f"silent was never dropped; watcher saw {watcher.lines!r}")
        assert f"PING :{SERVER}" in silent.drain(0.5) + silent.lines
        assert any(line.startswith("ERROR :Ping timeout") for line in silent.lines)
        watcher.send("PING :alive")
        watcher.expect(f":{SERVER} PONG {SERVER} :alive")
    finally:
        silent.close()
        watcher.close()


# -- send queue ---------------------------------------------------------------------


def test_slow_reader_is_disconnected_for_sendq_and_others_are_unaffected(server_factory):
    srv = server_factory(config_text=config_with(
        server={"sendq": 65536},
        # The flooder must not be held back or dropped by flood control.
        limits={"flood_burst": 100_000, "flood_rate": 100_000.0, "flood_backlog": 100_000},
    ))
    fast = guest(srv.port, "fast")
    slow = guest(srv.port, "slow", rcvbuf=4096)   # registers, then never reads again
    flood = guest(srv.port, "flood")
    fast.expect(":flood!flood@127.0.0.1 JOIN #general")
    # The kernel buffers a few MB for slow before the server's own queue grows
    # (Linux grows the send buffer up to net.ipv4.tcp_wmem's maximum), so the
    # flood goes on, in batches the fast reader keeps up with, until slow is
    # dropped; then one more batch.
    slow_quit = ":slow!slow@127.0.0.1 QUIT :SendQ exceeded"
    batch, limit = 100, 40_000        # at most ~20 MB
    filler = "f" * 480
    sent = 0
    extra = None
    try:
        while sent < limit and (extra is None or sent < extra):
            flood.send("".join(f"PRIVMSG #general :{i:05d} {filler}\r\n"
                               for i in range(sent, sent + batch)).encode())
            sent += batch
            last = f":flood!flood@127.0.0.1 PRIVMSG #general :{sent - 1:05d} {filler}"
            fast.expect(last)   # the fast reader keeps up, batch by batch
            if extra is None and slow_quit in fast.lines:
                extra = sent + batch
        assert extra is not None, f"slow was never dropped after {sent} messages"
        got = [int(line.split(" :", 1)[1][:5]) for line in fast.lines
               if line.startswith(":flood!flood@127.0.0.1 PRIVMSG #general :")]
        assert got == list(range(sent)), "the fast reader lost or reordered messages"
        quits = [line for line in fast.lines if line.startswith(":slow!") and " QUIT " in line]
        assert quits == [slow_quit], quits
        assert "SendQ exceeded" in srv.log()
        # slow is gone from the server's point of view, at once.
        fast.send("ISON slow flood")
        assert fast.expect_numeric("303") == f":{SERVER} 303 fast :flood"
        # slow's socket: what it had buffered (an in-order prefix), ERROR, then closed.
        rest = slow.drain(2.0)
        relayed = [int(line.split(" :", 1)[1][:5]) for line in rest
                   if line.startswith(":flood!flood@127.0.0.1 PRIVMSG #general :")]
        assert relayed == list(range(len(relayed))) and len(relayed) < sent
        assert rest and rest[-1] == "ERROR :SendQ exceeded", rest[-3:]
        assert slow.closed_by_server(timeout=5)
        # The flooder and a newcomer are served normally.
        assert flood.roundtrip("flood-still-here") == [slow_quit]
        fresh = guest(srv.port, "fresh")
        try:
            fresh.send("PRIVMSG #general :hello after the storm")
            fast.expect(":fresh!fresh@127.0.0.1 PRIVMSG #general :hello after the storm")
        finally:
            fresh.close()
    finally:
        for c in (fast, slow, flood):
            c.close()
    assert srv.alive()


def _kernel_send_buffer_max() -> int:
    """Linux's largest TCP send buffer (``net.ipv4.tcp_wmem``'s maximum), bytes; 4 MiB if unknown."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            return int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 * 1024 * 1024


def test_slow_reader_is_dropped_when_its_sendq_is_full_not_later(server_factory):
    """Quantitative: the bytes the server produced for a reader that never reads,
    up to its ``SendQ exceeded``, are at least its sendq and at most sendq plus
    what the kernel can hold (the server's send buffer, at most tcp_wmem's
    maximum, and the reader's small receive buffer) plus one batch of input."""
    sendq, rcvbuf, batch = 65536, 4096, 20
    srv = server_factory(config_text=config_with(
        server={"sendq": sendq},
        limits={"flood_burst": 100_000, "flood_rate": 100_000.0, "flood_backlog": 100_000},
    ))
    fast = guest(srv.port, "fast")
    slow = guest(srv.port, "slow", rcvbuf=rcvbuf)   # registers, then never reads again
    flood = guest(srv.port, "flood")
    fast.expect(":flood!flood@127.0.0.1 JOIN #general")
    slow_quit = ":slow!slow@127.0.0.1 QUIT :SendQ exceeded"
    filler = "f" * 480
    prefix = ":flood!flood@127.0.0.1 PRIVMSG #general :"
    line_bytes = len(f"{prefix}00000 {filler}\r\n")
    kernel = _kernel_send_buffer_max() + 4 * rcvbuf    # the kernel doubles SO_RCVBUF
    ceiling = sendq + kernel + batch * line_bytes
    sent = 0
    try:
        # Small batches, each relayed to fast before the next, so the server's
        # queue for slow grows by at most one batch between two checks.
        while slow_quit not in fast.lines and sent * line_bytes < 2 * ceiling:
            flood.send("".join(f"PRIVMSG #general :{i:05d} {filler}\r\n"
                               for i in range(sent, sent + batch)).encode())
            sent += batch
            fast.expect(f"{prefix}{sent - 1:05d} {filler}")
        assert slow_quit in fast.lines, f"slow was not dropped after {sent * line_bytes} bytes"
        before = fast.lines[:fast.lines.index(slow_quit)]
        produced = sum(1 for line in before if line.startswith(prefix)) * line_bytes
        assert sendq <= produced <= ceiling, (produced, sendq, kernel)
        # slow gets what was queued (an in-order prefix), then the ERROR.
        rest = slow.drain(2.0)
        assert rest and rest[-1] == "ERROR :SendQ exceeded", rest[-3:]
        fast.send("ISON slow flood")
        fast.expect_only(f":{SERVER} 303 fast :flood")
    finally:
        for c in (fast, slow, flood):
            c.close()
    assert srv.alive()
