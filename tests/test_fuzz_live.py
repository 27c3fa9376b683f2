"""A live fuzz: garbage and mutated IRC lines on several connections at once,
while two ordinary users keep talking.

Eight fuzzing connections (from 127.0.1.x, a connection class with a large
flood budget so that their input reaches the parser instead of being cut by
flood control) each send 400 lines drawn from a seeded ``random.Random``:
random bytes, and valid IRC lines mutated by flipping, inserting, deleting,
repeating and splicing bytes, with long parameters, tags, NULs, stray CRs
and invalid UTF-8. A fuzzer whose connection is closed (QUIT, ERROR ...)
reconnects and carries on. Meanwhile alice and bob, ordinary clients on
127.0.0.1 with the default limits, exchange numbered messages in #general
and privately.

Afterwards: the server process is alive, logged no traceback, a fresh client
registers and chats, and alice and bob each received every numbered message
of the other exactly once and in order. Every input sent is written to
``fuzz-inputs-N.txt`` in the test's temporary directory for reproduction.
"""

from __future__ import annotations

import os
import random
import re
import socket
import threading
import time

import pytest

from tests.support import FAST_HASH_TOML, SERVICES_TOML, RawClient, command_of

pytestmark = pytest.mark.timeout(90)

SERVER = "irc.chatserver.local"

SEED = 0x1DC
FUZZERS = 8
LINES_PER_FUZZER = 400
NUMBERED = 20

CONFIG = FAST_HASH_TOML + """
[limits]
[[limits.classes]]
name = "fuzzers"
networks = ["127.0.1.0/24"]
flood_burst = 100000
flood_rate = 100000.0
flood_backlog = 100000
"""

CORPUS = [
    "PRIVMSG #general :hello there",
    "PRIVMSG alice,bob,#general,#fuzz :multi target",
    "NOTICE bob :a notice",
    "PRIVMSG bob :\x01VERSION\x01",
    "PRIVMSG #general :\x01ACTION waves\x01",
    "JOIN #fuzz",
    "JOIN #fuzz,#other key1,key2",
    "JOIN 0",
    "PART #fuzz :leaving",
    "PART #general",
    "MODE #fuzz +kl secret 10",
    "MODE #fuzz +b *!*@*",
    "MODE #fuzz +o alice",
    "MODE #fuzz -o+v+v-b alice bob x y",
    "MODE #general",
    "MODE alice +i",
    "TOPIC #fuzz :a topic",
    "TOPIC #general",
    "KICK #fuzz alice :out",
    "KICK #general bob",
    "INVITE bob #fuzz",
    "WHO #general",
    "WHO *",
    "WHOIS alice",
    "WHOIS bob,alice",
    "NAMES #general",
    "NAMES",
    "LIST",
    "LIST >0",
    "LUSERS",
    "MOTD",
    "VERSION",
    "TIME",
    "ISON alice bob",
    "USERHOST alice bob",
    "AWAY :gone fishing",
    "AWAY",
    "CAP LS 302",
    "CAP REQ :multi-prefix userhost-in-names",
    "CAP REQ :-cap-notify bogus",
    "CAP LIST",
    "CAP END",
    "PING :token",
    "PONG :token",
    "NICK fuzzy",
    "USER u 0 * :real name",
    "PASS secret",
    "AUTHENTICATE PLAIN",
    "AUTHENTICATE AGFsaWNlAHB3",
    "@time=2020-01-01T00:00:00Z;+draft/x=y :nick!u@h PRIVMSG #general :tagged",
    ":alice!a@b PRIVMSG bob :spoofed source",
    "HELLO-FROM fuzzer",
    "SEND bob hello",
    "WHO",
    "QUIT :bye",
]

ALPHABET = [b"\x00", b"\r", b"\x01", b"\xff", b"\xc3", b" ", b":", b",", b"@", b"!", b"#",
            b"*", b"\x7f", b"\t", b"=", b";", b"\\", b"+", b"-", b"\xe2\x80\xae"]


def mutate(rng: random.Random, line: bytes) -> bytes:
    data = bytearray(line)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        pos = rng.randint(0, len(data))
        if op == 0 and data:                                   # flip a byte
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1:                                          # insert a special byte
            data[pos:pos] = rng.choice(ALPHABET)
        elif op == 2 and data:                                 # delete a range
            end = min(len(data), pos + rng.randint(1, 8))
            del data[pos:end]
        elif op == 3 and data:                                 # repeat a slice
            start = rng.randrange(len(data))
            piece = data[start:start + rng.randint(1, 10)]
            data[pos:pos] = piece * rng.randint(2, 60)
        elif op == 4:                                          # a long parameter
            data += b" " + bytes(rng.choice(b"abc#,:*") for _ in range(rng.choice([50, 300, 600])))
        elif op == 5:                                          # splice another line
            other = rng.choice(CORPUS).encode()
            data[pos:] = other[rng.randrange(len(other) + 1):]
        elif op == 6:                                          # many targets / params
            data += b" " + b",".join(b"#c%d" % i for i in range(rng.randint(5, 80)))
        elif op == 7:                                          # tags, sometimes huge
            data[0:0] = b"@" + b"k=" + b"v" * rng.choice([1, 100, 5000]) + b" "
        else:                                                  # truncate
            del data[pos:]
    return bytes(data)


def random_bytes(rng: random.Random) -> bytes:
    n = rng.choice([0, 1, 5, 50, 510, 600, 9000])
    return bytes(rng.randrange(256) for _ in range(n)).replace(b"\n", b"")


def fuzz_lines(rng: random.Random, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.25:
            out.append(random_bytes(rng))
        elif r < 0.35:
            out.append(rng.choice(CORPUS).encode())            # valid, to reach deeper states
        else:
            out.append(mutate(rng, rng.choice(CORPUS).encode()))
    return out


class Fuzzer(threading.Thread):
    def __init__(self, index: int, port: int, seed: int, record_path) -> None:
        super().__init__(daemon=True)
        self.index = index
        self.port = port
        self.rng = random.Random(seed)
        self.source = f"127.0.1.{index + 1}"
        self.record_path = record_path
        self.sent = 0
        self.connections = 0
        self.error: BaseException | None = None

    def connect(self) -> socket.socket:
        self.connections += 1
        sock = socket.socket()
        sock.bind((self.source, 0))
        sock.settimeout(5)
        sock.connect(("127.0.0.1", self.port))
        if self.rng.random() < 0.7:   # usually register first, to reach the commands of users
            nick = f"fz{self.index}x{self.connections}"
            sock.sendall(f"NICK {nick}\r\nUSER {nick} 0 * :fuzz\r\nJOIN #general,#fuzz\r\n".encode())
        sock.setblocking(False)
        return sock

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _run(self) -> None:
        lines = fuzz_lines(self.rng, LINES_PER_FUZZER)
        with open(self.record_path, "w") as record:
            sock = self.connect()
            i = 0
            while i < len(lines):
                batch = lines[i:i + self.rng.randint(1, 25)]
                for line in batch:
                    record.write(f"{self.connections} {line!r}\n")
                payload = b"".join(line + rng_ending(self.rng) for line in batch)
                alive = self._send(sock, payload)
                i += len(batch)
                self.sent += len(batch)
                time.sleep(0.1)
                alive = alive and self._drain(sock)
                if not alive:
                    sock.close()
                    sock = self.connect()
            sock.close()

    def _send(self, sock: socket.socket, payload: bytes) -> bool:
        deadline = time.monotonic() + 5
        while payload and time.monotonic() < deadline:
            try:
                n = sock.send(payload)
                payload = payload[n:]
            except BlockingIOError:
                if not self._drain(sock):
                    return False
                time.sleep(0.01)
            except OSError:
                return False
        return not payload

    def _drain(self, sock: socket.socket) -> bool:
        while True:
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not data:
                return False


def rng_ending(rng: random.Random) -> bytes:
    return rng.choice([b"\r\n", b"\r\n", b"\n", b"\r\r\n"])


class Reader(threading.Thread):
    """Reads every line of a registered client until stopped."""

    def __init__(self, client: RawClient) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.stop = threading.Event()
        self.closed = False

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                if self.client.readline(0.2) is None:
                    self.closed = True
                    return
            except TimeoutError:
                continue
            except OSError:
                self.closed = True
                return


def numbered(lines: list[str], sender: str, target: str, tag: str) -> list[int]:
    pattern = re.compile(rf"(?:@\S+ )?:{sender}!\S+ PRIVMSG {re.escape(target)} :{tag} (\d+)$")
    return [int(m.group(1)) for line in lines if (m := pattern.match(line))]


def register(port: int, nick: str, caps: str = "") -> RawClient:
    """Register ``nick`` (negotiating ``caps`` first, if any) and wait for the autojoin."""
    c = RawClient(port)
    if caps:
        c.send("CAP LS 302")
        c.send(f"CAP REQ :{caps}")
        c.expect(lambda line: command_of(line) == "CAP" and " ACK " in line)
        c.send("CAP END")
    c.register(nick)
    c.expect(lambda line: command_of(line) == "366")
    return c


def control_chars(lines: list[str]) -> list[str]:
    """Received lines with a CR or NUL inside (RFC 2812 2.3.1 forbids them; a bare CR
    ends a line for some clients, so it lets a sender forge lines)."""
    return [line for line in lines if "\r" in line or "\x00" in line]


def assert_ordinary_users_lost_nothing(srv, alice, bob, readers) -> None:
    """alice and bob got every numbered channel message and DM of the other, once and
    in order (flood control may delay, never drop), stayed connected and saw no ERROR
    and no control character; the server is alive. Stops their ``readers``."""
    deadline = time.monotonic() + 15
    expected = list(range(NUMBERED))

    def got() -> list[list[int]]:
        return [numbered(bob.lines, "alice", "#general", "from-alice"),
                numbered(alice.lines, "bob", "#general", "from-bob"),
                numbered(bob.lines, "alice", "bob", "dm-alice"),
                numbered(alice.lines, "bob", "alice", "dm-bob")]

    while time.monotonic() < deadline and got() != [expected] * 4:
        time.sleep(0.1)
    for r in readers:
        r.stop.set()
        r.join(2)
    assert not any(r.closed for r in readers), "an ordinary client was disconnected"
    assert srv.alive(), "the server died under fuzzing"
    assert got() == [expected] * 4
    assert not any(command_of(line) == "ERROR" for line in alice.lines + bob.lines)
    assert control_chars(alice.lines + bob.lines) == []


def test_live_fuzz_loses_nothing_for_ordinary_clients(server_factory, tmp_path):
    srv = server_factory(config_text=CONFIG)
    alice = register(srv.port, "alice")
    bob = register(srv.port, "bob", caps="message-tags")   # also sees client tags
    readers = [Reader(alice), Reader(bob)]
    for r in readers:
        r.start()

    fuzzers = [Fuzzer(i, srv.port, SEED + i, tmp_path / f"fuzz-inputs-{i}.txt")
               for i in range(FUZZERS)]
    for f in fuzzers:
        f.start()
    # The ordinary users talk during the fuzz, within their (default) flood budget.
    for i in range(NUMBERED):
        alice.send(f"PRIVMSG #general :from-alice {i}")
        bob.send(f"PRIVMSG #general :from-bob {i}")
        alice.send(f"PRIVMSG bob :dm-alice {i}")
        bob.send(f"PRIVMSG alice :dm-bob {i}")
        time.sleep(0.15)
    for f in fuzzers:
        f.join(40)
    assert not any(f.is_alive() for f in fuzzers), "a fuzzer did not finish"
    errors = [(f.index, f.error) for f in fuzzers if f.error]
    assert not errors, errors
    tried = sum(f.sent for f in fuzzers)
    assert tried == FUZZERS * LINES_PER_FUZZER

    # Wait for the last numbered messages (flood control may delay, never drop).
    assert_ordinary_users_lost_nothing(srv, alice, bob, readers)

    # The server still works for a newcomer.
    fresh = register(srv.port, "fresh")
    fresh.send("PRIVMSG #general :after the fuzz")
    alice.expect("after the fuzz", timeout=5)
    bob.send("PRIVMSG fresh :welcome")
    fresh.expect("welcome", timeout=5)
    print(f"fuzz: {tried} inputs on {sum(f.connections for f in fuzzers)} connections")
    # No input may make a command handler raise (the dispatcher answers those with 400).
    assert handler_failures(srv.log()) == []


def handler_failures(log: str) -> list[str]:
    """``"<command>: <exception>"`` for every handler exception in the server log."""
    out = []
    lines = log.splitlines()
    for i, line in enumerate(lines):
        m = re.search(r"handler for (\S+) failed", line)
        if m:
            exc = next((x for x in lines[i + 1:i + 40] if re.match(r"^\w+(Error|Exception)\b", x)), "?")
            out.append(f"{m.group(1)}: {exc}")
    return sorted(set(out))


# -- what the fuzz found, pinned as deterministic cases ---------------------------------------

CRASHERS = [
    b"PING :token\r",                  # a stray CR before CR LF stays in the parameter
    b"PING tok\x00en",
    b"CAP EN\x00D",
    b"NAMES #gen\x00eral",
    b"WHOIS bo\x00b",
    b"PRIVMSG #gen\x00eral :x",
    b"MODE #general +:",               # an unknown mode char ':' echoed as a middle parameter
    b"MODE #general +l :",             # an empty mode argument
    b"MODE #general +o :",
    b"MODE #general +v :",
    b"NAMES ,:x",                      # list items that are empty or start with ':'
    b"WHOIS ,:x",
    b"JOIN ,:x",
    b"PART #nowhere,:x",
    b"PRIVMSG #nowhere,:x :hi",
    b"PRIVMSG bob,,bob :x",            # empty items in a target list (the command fuzz)
    b"PRIVMSG ,bob :x",
    b"NOTICE bob, :x",
    b"@+x=y TAGMSG ,bob",
]


@pytest.fixture
def chat(server_factory):
    srv = server_factory()
    alice = register(srv.port, "alice")
    bob = register(srv.port, "bob")
    alice.drain(0.1)
    return srv, alice, bob


def test_fuzz_findings_no_input_makes_a_handler_fail(chat):
    srv, alice, _ = chat
    answers = {}
    for i, line in enumerate(CRASHERS):
        alice.send(line + b"\r\n")
        alice.send(f"PING :done{i}")
        answers[line] = []
        while True:
            got = alice.readline(5)
            assert got is not None, "closed by the server"
            if got.endswith(f"PONG {SERVER} :done{i}"):
                break
            answers[line].append(got)
    failed = {line: got for line, got in answers.items()
              if any(command_of(x) == "400" for x in got)}
    assert failed == {}, "\n".join(f"{k!r} -> {v}" for k, v in failed.items())
    assert handler_failures(srv.log()) == []


def test_fuzz_findings_a_sasl_payload_that_is_not_ascii_gets_904(chat):
    """Found by the command fuzz: base64 of a str with non-ASCII characters raised
    ValueError in the handler (400) instead of failing the exchange (IRCv3 SASL 3.1)."""
    srv, alice, bob = chat
    c = RawClient(srv.port)
    c.send("CAP LS 302")
    c.send("CAP REQ :sasl")
    c.expect(lambda line: command_of(line) == "CAP" and " ACK " in line)
    c.send("AUTHENTICATE PLAIN")
    c.expect_only(f":{SERVER} AUTHENTICATE +")
    c.send("AUTHENTICATE caf\u00e9")
    c.expect_only(f":{SERVER} 904 * :SASL authentication failed")
    c.send("AUTHENTICATE PLAIN")                   # a new exchange may start
    c.expect_only(f":{SERVER} AUTHENTICATE +")
    c.send("AUTHENTICATE *")
    c.expect_only(f":{SERVER} 906 * :SASL authentication aborted")
    c.send("CAP END")
    c.register("carol")
    c.send("PRIVMSG bob :after sasl")
    bob.expect("after sasl")
    assert handler_failures(srv.log()) == []


def test_fuzz_findings_cr_and_nul_are_never_relayed_to_other_clients(chat):
    srv, alice, bob = chat
    carol = register(srv.port, "carol", caps="message-tags")
    alice.send(b"PRIVMSG bob :x\r:evil!e@example PRIVMSG bob :forged\r\n")
    alice.send(b"PRIVMSG #general :nul\x00byte\r\n")
    alice.send(b"NOTICE bob :cr\rin notice\r\n")
    alice.send(b"@+a\rb=c PRIVMSG #general :cr in a client tag key\r\n")
    alice.send(b"@+k\x00=v PRIVMSG carol :nul in a client tag key\r\n")
    alice.send(b"@+x=1\r:evil!e@example PRIVMSG carol :cr in a client tag value\r\n")
    alice.send(b"PART #general :bye\rnow\r\n")
    alice.send("PING :sync")
    alice.expect("sync")
    for c in (bob, carol):
        c.send("PING :sync")
        c.expect("sync")
    assert control_chars(bob.lines) == []
    assert control_chars(carol.lines) == []


def test_fuzz_findings_a_topic_or_away_with_cr_breaks_nobody_else(chat):
    srv, alice, bob = chat
    alice.send(b"TOPIC #general :t\ropic\r\n")
    alice.send(b"AWAY :gone\rfishing\r\n")
    alice.send("PING :sync")
    alice.expect("sync")
    carol = RawClient(srv.port)
    carol.register("carol")
    carol.expect(lambda line: command_of(line) in ("366", "400"))
    carol.send("PRIVMSG alice :hi")
    carol.send("WHOIS alice")
    carol.send("TOPIC #general")
    carol.send("PING :sync")
    carol.expect("sync")
    errors = [line for line in carol.lines if command_of(line) == "400"]
    assert errors == [], errors
    assert any(command_of(line) == "366" for line in carol.lines)
    assert any(command_of(line) == "318" for line in carol.lines)   # WHOIS completed


# -- every command handler -------------------------------------------------------------------
#
# The fuzz above mutates a small corpus; this one walks the command table
# (ircd/commands/table.py, COMMANDS) so that every handler gets random and
# adversarial parameters, from registered and unregistered connections.
# CHATSERVER_FUZZ_SEED=<int> changes the seed (the default run is fixed);
# CHATSERVER_FUZZ_KNOWN=1 adds inputs that trigger known bugs being fixed
# elsewhere (see KNOWN_FREEZERS), which are kept out of the default run.

COMMAND_FUZZ_SEED = int(os.environ.get("CHATSERVER_FUZZ_SEED", "0xC0FFEE"), 0)
COMMAND_FUZZERS = 6
ROUNDS = 100                # each fuzzer sends every command this many times (shuffled)
FUZZ_BUDGET = 25.0         # seconds of fuzzing at most; coverage is asserted afterwards
PONG_BOUND = 5.0           # seconds the observer's PING may take to be answered

# Glob masks that make ircd/protocol/masks.py (a regex with one ``.*`` per ``*``)
# backtrack exponentially against long names: the server freezes. Known; fixed
# by another change. Only with CHATSERVER_FUZZ_KNOWN=1.
KNOWN_FREEZERS = [b"*a*a*a*a*a*a*a*a*a*a*a*a*b", b"*!*a*a*a*a*a*a*a*a*a*a*a*@*b"]

COMMAND_CONFIG = SERVICES_TOML + """
[limits]
[[limits.classes]]
name = "fuzzers"
networks = ["127.0.1.0/24"]
flood_burst = 100000
flood_rate = 100000.0
flood_backlog = 100000
"""

NICKS = [b"alice", b"bob", b"observer", b"NickServ", b"ChanServ", b"fz0x1", b"nobody", b"*",
         b"a" * 30, b"a" * 40]
CHANNELS = [b"#general", b"#fuzz", b"#", b"&local", b"#" + b"c" * 70, b"#f\xc3\xa9", b"0"]
GENERIC = [
    b"", b":", b"*", b"0", b"-1", b"99999999999999999999", b"1e309", b"nan", b"+", b"-",
    b"x" * 400, b"y" * 510, b"a" * 300, b"\xff\xfe\xc3(", b"a\x00b", b"\x01ACTION x\x01", b"@", b"!", b"%",
    b"*!*@*", b"a*b?c", b"*!*@127.0.1.*", b"*@*", b"nick!user@host", b"\xe2\x80\xae",
    b"timestamp=2020-01-01T00:00:00.000Z", b"timestamp=x", b"msgid=abc", b"AGFsaWNlAHB3",
    b"%tuhnfar,42", b"1h", b"2d", b"*.*", b"ooo", b"+bbbbbbbbbbbbbbbbbbbbbbbbb",
]
WORDS: dict[str, list[bytes]] = {
    "CAP": [b"LS", b"LS 302", b"REQ", b"END", b"LIST", b"ACK", b"CLEAR", b"NAK", b"302",
            b":multi-prefix sasl echo-message -batch =x"],
    "CHATHISTORY": [b"LATEST", b"BEFORE", b"AFTER", b"AROUND", b"BETWEEN", b"TARGETS",
                    b"timestamp=2030-01-01T00:00:00.000Z", b"100", b"1000000"],
    "MONITOR": [b"+", b"-", b"C", b"L", b"S", b"+ " + b",".join(NICKS)],
    "STATS": [b"k", b"d", b"u", b"m", b"o", b"l", b"?", b"K"],
    "MODE": [b"+b", b"+ovk", b"-o+v+l", b"+kl", b"+I", b"+e", b"+imnpst", b"+lllll", b"+",
             b"+b-b+b-b+b-b", b"+k", b"+l", b"+o", b"+v", b"+wio", b"-w"],
    "AUTHENTICATE": [b"PLAIN", b"*", b"+", b"EXTERNAL", b"A" * 400, b"AGFsaWNlAHB3"],
    "REGISTER": [b"*", b"a@b.c", b"pw"],
    "VERIFY": [b"*", b"code"],
    "WHO": [b"o", b"%tuhnfar,42", b"%"],
    "HELP": [b"privmsg", b"*", b"MODE"],
    "HELPOP": [b"privmsg", b"*"],
    "NICKSERV": [b"REGISTER", b"IDENTIFY", b"LOGIN", b"PASSWORD", b"INFO", b"DROP", b"HELP"],
    "CHANSERV": [b"REGISTER", b"INFO", b"OP", b"DEOP", b"VOICE", b"DEVOICE", b"ACCESS",
                 b"AMODE", b"SET", b"DROP", b"HELP"],
}
WORDS["NS"] = WORDS["NICKSERV"]
WORDS["CS"] = WORDS["CHANSERV"]


def command_table() -> list[str]:
    """Every command name in the server's command table, sorted."""
    import ircd.core  # noqa: F401 - imports ircd.commands, whose table fills COMMANDS
    from ircd.commands.registry import COMMANDS

    return sorted(COMMANDS)


def fuzz_param(rng: random.Random, command: str, known: bool) -> bytes:
    r = rng.random()
    if r < 0.25 and command in WORDS:
        return rng.choice(WORDS[command])
    if r < 0.40:
        return rng.choice(NICKS)
    if r < 0.55:
        return rng.choice(CHANNELS)
    if r < 0.62:                                       # many comma targets
        pool = NICKS + CHANNELS
        return b",".join(rng.choice(pool) for _ in range(rng.choice([5, 20, 80])))
    if r < 0.66 and known:
        return rng.choice(KNOWN_FREEZERS)
    return rng.choice(GENERIC)


def odd_case(rng: random.Random, word: str) -> bytes:
    r = rng.random()
    if r < 0.6:
        return word.encode()
    if r < 0.8:
        return word.lower().encode()
    return "".join(c.lower() if rng.random() < 0.5 else c for c in word).encode()


def command_line(rng: random.Random, command: str, known: bool) -> bytes:
    """One fuzzed line (bytes, no line ending) for ``command``."""
    params = [fuzz_param(rng, command, known) for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 4, 6, 16]))]
    sep = b"  " if rng.random() < 0.1 else b" "
    line = odd_case(rng, command)
    if params:
        if rng.random() < 0.6:                        # a trailing parameter with spaces
            params[-1] = b":" + params[-1] + b" " + rng.choice(GENERIC)
        line += sep + sep.join(params)
    if rng.random() < 0.1:
        line = b"   " + line                          # leading spaces
    if rng.random() < 0.1:
        line = rng.choice([b"@label=fz;+draft/reply=x ", b"@" + b"k=v;" * 50 + b" ",
                           b":fake!u@h "]) + line
    if rng.random() < 0.15:
        line = mutate(rng, line)
    return line.replace(b"\n", b"").replace(b"\r", b"")


class CommandFuzzer(threading.Thread):
    """Sends every command of the table ``ROUNDS`` times, in batches each followed by a
    PING whose PONG it waits for, so the server is known to have handled the batch.

    Outcome per connection (``outcomes``: (local port, how it ended)): ``open`` at the
    end; ``error`` when the server sent ``ERROR`` and closed; ``closed-without-error``
    (a bug); ``reset`` when the connection was reset, which happens when the server
    closes it while lines sent after the closing command are still unread (checked in
    the server log instead). ``numeric_400`` collects every 400 ERR_UNKNOWNERROR;
    ``unanswered`` every PING not answered within ``PONG_BOUND`` s on an open connection.
    """

    def __init__(self, index: int, port: int, seed: int, commands: list[str], record_path,
                 deadline: float, known: bool) -> None:
        super().__init__(daemon=True)
        self.index = index
        self.port = port
        self.rng = random.Random(seed)
        self.commands = commands
        self.record_path = record_path
        self.deadline = deadline
        self.known = known
        self.source = f"127.0.1.{100 + index}"
        self.sent: dict[str, int] = dict.fromkeys(commands, 0)
        self.outcomes: list[tuple[int, str]] = []
        self.numeric_400: list[str] = []
        self.unanswered: list[str] = []
        self.error: BaseException | None = None
        self.pings = 0

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _connect(self) -> tuple[socket.socket, int]:
        sock = socket.socket()
        sock.bind((self.source, 0))
        sock.settimeout(PONG_BOUND)
        sock.connect(("127.0.0.1", self.port))
        if self.rng.random() < 0.7:   # usually register first, to reach the commands of users
            nick = f"fz{self.index}x{len(self.outcomes)}"
            real = "a" * 200 if self.known else "fuzz"   # a long name for the known freezers
            sock.sendall(f"NICK {nick}\r\nUSER {nick} 0 * :{real}\r\nJOIN #general,#fuzz\r\n"
                         .encode())
        return sock, sock.getsockname()[1]

    def _run(self) -> None:
        plan = []
        for _ in range(ROUNDS):
            order = list(self.commands)
            self.rng.shuffle(order)
            plan.extend(order)
        with open(self.record_path, "w") as record:
            sock, port = self._connect()
            i = 0
            while i < len(plan) and time.monotonic() < self.deadline:
                batch = plan[i:i + self.rng.randint(1, 12)]
                i += len(batch)
                lines = [command_line(self.rng, c, self.known) for c in batch]
                for c, line in zip(batch, lines, strict=True):
                    self.sent[c] += 1
                    record.write(f"{port} {line!r}\n")
                self.pings += 1
                token = f"fz{self.index}-{self.pings}"
                payload = b"".join(x + b"\r\n" for x in lines) + f"PING :{token}\r\n".encode()
                ended = self._exchange(sock, payload, token)
                if ended is not None:
                    self.outcomes.append((port, ended))
                    sock.close()
                    sock, port = self._connect()
            self.outcomes.append((port, "open"))
            sock.close()

    def _exchange(self, sock: socket.socket, payload: bytes, token: str) -> str | None:
        """Send; read up to the PONG. None if the connection is still open, else how it ended."""
        last = ""
        buf = b""
        try:
            sock.sendall(payload)
            deadline = time.monotonic() + PONG_BOUND
            while True:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    data = sock.recv(1 << 16)
                except TimeoutError:
                    self.unanswered.append(token)
                    return None
                if not data:
                    return "error" if last.startswith("ERROR ") else "closed-without-error"
                buf += data
                *complete, buf = buf.split(b"\n")
                for raw in complete:
                    line = raw.rstrip(b"\r").decode("utf-8", "replace")
                    last = line
                    if command_of(line) == "400":
                        self.numeric_400.append(line)
                    if command_of(line) == "PONG" and line.endswith(f":{token}"):
                        return None
                    if line.startswith("PING "):
                        sock.sendall(b"PONG " + raw[5:] + b"\n")
        except (ConnectionResetError, BrokenPipeError):
            return "error" if last.startswith("ERROR ") else "reset"


class Observer(threading.Thread):
    """A registered client that PINGs every 0.2 s and records each round trip (seconds)."""

    def __init__(self, client: RawClient) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.stop = threading.Event()
        self.rtts: list[float] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                start = time.monotonic()
                self.client.send(f"PING :obs{n}")
                self.client.expect(f"PONG {SERVER} :obs{n}", timeout=PONG_BOUND)
                self.rtts.append(time.monotonic() - start)
                self.stop.wait(0.2)
        except BaseException as exc:  # reported by the test
            self.error = exc


def test_live_fuzz_of_every_command_handler(server_factory, tmp_path):
    commands = command_table()
    assert len(commands) >= 50 and "PRIVMSG" in commands and "CHATHISTORY" in commands
    known = os.environ.get("CHATSERVER_FUZZ_KNOWN") == "1"
    srv = server_factory(config_text=COMMAND_CONFIG)
    alice = register(srv.port, "alice")
    bob = register(srv.port, "bob", caps="message-tags")
    observer = Observer(register(srv.port, "observer"))
    readers = [Reader(alice), Reader(bob)]
    for r in readers:
        r.start()
    observer.start()

    deadline = time.monotonic() + FUZZ_BUDGET
    fuzzers = [CommandFuzzer(i, srv.port, COMMAND_FUZZ_SEED + i, commands,
                             tmp_path / f"command-fuzz-{i}.txt", deadline, known)
               for i in range(COMMAND_FUZZERS)]
    for f in fuzzers:
        f.start()
    for i in range(NUMBERED):
        alice.send(f"PRIVMSG #general :from-alice {i}")
        bob.send(f"PRIVMSG #general :from-bob {i}")
        alice.send(f"PRIVMSG bob :dm-alice {i}")
        bob.send(f"PRIVMSG alice :dm-bob {i}")
        time.sleep(0.15)
    for f in fuzzers:
        f.join(FUZZ_BUDGET + 3 * PONG_BOUND)
    observer.stop.set()
    observer.join(PONG_BOUND + 1)
    where = f"(seed {COMMAND_FUZZ_SEED:#x}; inputs in {tmp_path})"
    assert not any(f.is_alive() for f in fuzzers), f"a fuzzer did not finish {where}"
    errors = [(f.index, f.error) for f in fuzzers if f.error]
    assert not errors, (errors, where)

    # Every handler was reached: each command was sent on each fuzzer at least once.
    short = {c: min(f.sent[c] for f in fuzzers) for c in commands}
    assert all(n >= 1 for n in short.values()), (short, where)
    # The server stayed responsive and answered every PING of every open connection.
    assert observer.error is None, (observer.error, where)
    assert observer.rtts and max(observer.rtts) < PONG_BOUND, (max(observer.rtts), where)
    assert [u for f in fuzzers for u in f.unanswered] == [], where
    # No handler raised: no 400 reply, no traceback in the log.
    assert [x for f in fuzzers for x in f.numeric_400] == [], where
    log = srv.log()
    assert handler_failures(log) == [], where
    assert "Traceback" not in log, (log[log.index("Traceback") - 500:][:3000], where)
    # Every fuzzing connection that ended got ERROR first; a reset one (closed by the
    # server with lines still unread) was closed with a reason in the log.
    outcomes = [(f.source, port, how) for f in fuzzers for port, how in f.outcomes]
    assert not [o for o in outcomes if o[2] == "closed-without-error"], (outcomes, where)
    for source, port, how in outcomes:
        if how == "reset":
            m = re.search(rf"disconnect {re.escape(source)}:{port} \((.*)\)$", log, re.M)
            assert m and m.group(1) not in ("reset", "closed by peer"), (source, port, where)

    # The ordinary users lost nothing.
    assert_ordinary_users_lost_nothing(srv, alice, bob, readers)
    sent = sum(sum(f.sent.values()) for f in fuzzers)
    print(f"command fuzz: {sent} lines over {len(commands)} commands on "
          f"{len(outcomes)} connections; max PING round trip {max(observer.rtts):.3f} s")
