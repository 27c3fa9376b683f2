"""Cluster mode under faults (issue 10, docs/cluster.md "Failures", "Liveness", "The epoch").

Real ``python -m ircd --cluster ...`` nodes over a real redis-server and a real,
empty PostgreSQL database of each test's own (fixtures ``cluster`` and ``redis``
in tests/cluster_support.py, ``pg_url`` in tests/engines.py), driven over
loopback sockets with raw IRC. Nothing is mocked: a node dies by SIGKILL, is
frozen by SIGSTOP or stops by SIGTERM; Redis is frozen by SIGSTOP, killed and
started again, or restarted without its data.

What is checked, each against what docs/cluster.md promises:

- start-up errors: a malformed ``--cluster`` URL, an unreachable Redis and
  ``--cluster`` without ``--database`` stop the node with a one-line error and
  the documented exit code, and nothing listens;
- a node killed: its users quit everywhere with ``node <name> lost`` within
  ``node_timeout`` + 5 s, their nicks are free, the other node keeps serving,
  and the node restarted rejoins by itself;
- a node stopped cleanly: its users quit at once (not after ``node_timeout``);
- Redis paused briefly: read-only commands still answer, every acknowledged
  (echoed) message is delivered on the other node, no user is dropped;
- Redis unreachable for longer than ``node_timeout``: new registrations and
  then every user get ``ERROR :Cluster unavailable``; once Redis is back the
  network is founded again without any operator action;
- Redis restarted empty: users stay connected and the network carries on;
- a node frozen for longer than ``node_timeout``: declared lost, and on waking
  it drops its users and rejoins as a new node;
- the stream trimmed past entries a frozen node had not read: on waking it
  notices the jump in offsets, drops its users and rejoins from a snapshot;
- accounts and channel history survive restarting every node (PostgreSQL);
- a node lost under load: every acknowledged message reaches a receiver on
  every surviving node, in per-sender order;
- never two users with one nick, across every outage above (433 from the other
  node, and WHOIS from every node naming the same server).

Normal (fault-free) semantics across nodes are tests/test_cluster.py's subject.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis import Redis as RedisClient

from tests.cluster_support import Cluster, cluster, redis, wait_until  # noqa: F401
from tests.engines import pg_url, postgres  # noqa: F401 - fixtures
from tests.ircv3util import Client, command_of, tags_of, untagged
from tests.ircv3util import connect as ircv3_connect
from tests.support import ROOT, config_with, free_port

pytestmark = pytest.mark.timeout(120)

LIMITS = {
    # bursts of messages and deliberate wrong passwords; flood control is per node anyway
    "flood_burst": 100000, "flood_rate": 100000.0, "flood_backlog": 100000,
    "login_failures_per_ip": 100000, "login_failures_per_account": 100000,
    "login_delay_max": 0.0,
}
QUIET: dict[str, dict[str, object]] = {"limits": LIMITS, "server": {"autojoin": []}}
UNAVAILABLE = "Cluster unavailable"
BACK_WITHIN = 15.0
"""Seconds after Redis is back within which the network must serve again (docs: ~15 s)."""


# -- helpers ---------------------------------------------------------------------------------


def irc(net: Cluster, i: int, nick: str, caps: Iterable[str] = (),
        password: str | None = None) -> Client:
    """A registered :class:`~tests.ircv3util.Client` on node ``i`` (closed with the cluster)."""
    c = ircv3_connect(net.port(i), nick, caps, password=password)
    net.clients.append(c)
    return c


def is_online(c: Client, nick: str) -> bool:
    """Whether ``c``'s node says ``nick`` is online (ISON, 303)."""
    c.send(f"ISON {nick}")
    line = c.expect(lambda s: command_of(s) == "303")
    return nick in untagged(line).split(" :", 1)[1].split()


def text_of(line: str) -> str:
    return untagged(line).split(" :", 1)[1]


def nick_of(line: str) -> str:
    return untagged(line)[1:].split("!", 1)[0]


def alice_on_n1_and_bob_on_n2(net: Cluster, channel: str) -> tuple[Client, Client]:
    """``alice`` on node 0 and ``bob`` on node 1, both in ``channel`` as alice's node sees it."""
    alice = irc(net, 0, "alice")
    bob = irc(net, 1, "bob")
    join(channel, alice, bob)
    wait_names(alice, channel, {"alice", "bob"})
    alice.sync()
    return alice, bob


def freeze(net: Cluster, i: int) -> subprocess.Popen[bytes]:
    """SIGSTOP node ``i``; the caller sends SIGCONT (in a ``finally``)."""
    proc = net.nodes[i].proc
    assert proc is not None
    proc.send_signal(signal.SIGSTOP)
    return proc


def try_register(net: Cluster, i: int, nick: str, caps: Iterable[str] = (),
                 timeout: float = 5.0) -> tuple[str, Client | None]:
    """Try to register ``nick`` on node ``i``: ``("001", client)``, or ``(what happened, None)``:
    ``"refused"`` (nothing listens), the ``ERROR`` line, ``"closed"`` or ``"timeout"``."""
    try:
        c = Client(net.port(i))
    except OSError:
        return "refused", None
    net.clients.append(c)
    caps = list(caps)
    if caps:
        c.send("CAP LS 302")
        c.send("CAP REQ :" + " ".join(caps))
        c.send("CAP END")
    c.send(f"NICK {nick}")
    c.send(f"USER {nick} 0 * :{nick} real")
    try:
        line = c.expect(lambda s: command_of(s) in ("001", "433", "ERROR"), timeout)
    except TimeoutError:
        c.close()
        return "timeout", None
    except ConnectionError:
        return "closed", None
    if command_of(line) != "001":
        c.close()
        return line, None
    c.nick = nick
    c.expect(lambda s: command_of(s) in ("376", "422"))
    c.sync()
    return "001", c


def wait_serving(net: Cluster, i: int, nick: str, timeout: float = BACK_WITHIN,
                 caps: Iterable[str] = ()) -> Client:
    """Register ``nick`` on node ``i`` as soon as the node accepts it (polling), or fail."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        what, c = try_register(net, i, nick, caps, timeout=max(0.5, deadline - time.monotonic()))
        if c is not None:
            return c
        seen.append(what)
        if time.monotonic() > deadline:
            raise AssertionError(f"node n{i + 1} did not accept {nick} within {timeout} s: "
                                 f"{seen[-5:]}\n{net.logs()}")
        time.sleep(0.3)


def names(c: Client, channel: str) -> set[str]:
    """The members of ``channel`` as ``c``'s node sees them (NAMES, 353 until 366)."""
    c.send(f"NAMES {channel}")
    out: set[str] = set()
    while True:
        line = c.expect(lambda s: command_of(s) in ("353", "366"))
        if command_of(line) == "366":
            return out
        out.update(n.lstrip("~&@%+") for n in text_of(line).split())


def wait_names(c: Client, channel: str, want: set[str], timeout: float = 8.0) -> None:
    got: set[str] = set()

    def same() -> bool:
        nonlocal got
        got = names(c, channel)
        return got == want

    assert wait_until(same, timeout, step=0.1), f"NAMES {channel}: {got}, wanted {want}"


def join(channel: str, *clients: Client) -> None:
    for c in clients:
        c.send(f"JOIN {channel}")
        c.expect_numeric("366")


def whois_server(c: Client, nick: str) -> str | None:
    """The server (312) ``c``'s node names for ``nick``, or None for 401 (no such nick)."""
    c.send(f"WHOIS {nick}")
    server = None
    while True:
        line = c.expect(lambda s: command_of(s) in ("312", "401", "318"))
        if command_of(line) == "312":
            server = untagged(line).split(" ")[4]
        if command_of(line) == "318":
            return server


def nick_change_refused(c: Client, nick: str) -> str:
    """``c`` (registered) asks for ``nick``: the command of the answer (433, NICK or 400)."""
    c.send(f"NICK {nick}")
    line = c.expect(lambda s: command_of(s) in ("433", "400", "432")
                    or (command_of(s) == "NICK" and nick_of(s) == c.nick))
    return command_of(line)


def assert_one_holder(net: Cluster, nick: str, holder: str, others: dict[int, Client]) -> None:
    """Nobody else can take ``nick``, held on server ``holder``: a user on each node in
    ``others`` gets 433 asking for it, and WHOIS on each node names ``holder``."""
    for i, c in others.items():
        assert nick_change_refused(c, nick) == "433", \
            f"{c.nick} on n{i + 1} could take {nick}, held on {holder}: {c.lines[-5:]}"
        assert whois_server(c, nick) == holder, f"WHOIS {nick} from n{i + 1}"
        what, other = try_register(net, i, nick)
        assert other is None and command_of(what) == "433", \
            f"registering {nick} on n{i + 1}, held on {holder}: {what}"


def message_from(nick: str, channel: str) -> Callable[[str], bool]:
    def pred(line: str) -> bool:
        return command_of(line) == "PRIVMSG" and nick_of(line) == nick and \
            untagged(line).split(" ")[2] == channel
    return pred


def round_trip(a: Client, b: Client, channel: str, text: str, timeout: float = 8.0) -> None:
    """``a`` says ``text`` in ``channel``; ``b`` must get it."""
    a.send(f"PRIVMSG {channel} :{text}")
    line = b.expect(lambda s: command_of(s) == "PRIVMSG" and s.endswith(f" :{text}"), timeout)
    assert nick_of(line) == a.nick


def wait_flow(a: Client, b: Client, channel: str, deadline: float, net: Cluster) -> None:
    """Until ``deadline`` (monotonic): ``a`` (with echo-message) says a fresh probe in
    ``channel`` every 0.3 s until one is acknowledged, which ``b`` must then get."""
    k = 0
    while True:
        assert time.monotonic() < deadline, \
            f"{a.nick} could not send to {b.nick}: {a.lines[-3:]}\n{net.logs()}"
        text = f"probe {a.nick} {k}"
        a.send(f"PRIVMSG {channel} :{text}")
        reply = answers(a, 1, 5.0)[0]
        if command_of(reply) == "PRIVMSG":
            assert text_of(reply) == text, reply
            b.expect(lambda s, t=text: message_from(a.nick, channel)(s) and text_of(s) == t, 5.0)
            return
        k += 1
        time.sleep(0.3)


def quits(c: Client, count: int, timeout: float) -> dict[str, str]:
    """Read until ``count`` QUITs came; nick -> reason (each line checked whole: the
    source ``nick!nick@127.0.0.1``, no further parameters, one QUIT per user)."""
    out: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while len(out) < count:
        line = c.expect(lambda s: command_of(s) == "QUIT", max(0.01, deadline - time.monotonic()))
        nick = nick_of(line)
        assert nick not in out, f"{nick} quit twice: {line}"
        assert untagged(line) == f":{nick}!{nick}@127.0.0.1 QUIT :{text_of(line)}", line
        out[nick] = text_of(line)
    return out


def wait_dropped(c: Client, timeout: float) -> str:
    """Read until the server closes ``c``; return its ERROR line ("" if none came)."""
    deadline = time.monotonic() + timeout
    error = ""
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"{c.nick} not disconnected within {timeout} s: {c.lines[-5:]}"
        try:
            line = c.readline(left)
        except TimeoutError:
            continue
        except OSError:
            return error
        if line is None:
            return error
        if command_of(line) == "ERROR":
            error = line


def still_connected(c: Client) -> None:
    """``c`` answers a PING and was never sent ERROR."""
    c.sync()
    errors = [x for x in c.lines if command_of(x) == "ERROR"]
    assert not errors, f"{c.nick} was sent {errors}"


# -- 1. start-up errors ---------------------------------------------------------------------


def run_node(tmp_path: Path, *args: str, config: str | None = None) -> tuple[int, str, int]:
    """Start ``python -m ircd`` as a node would be started; (exit code, stderr, port)."""
    port = free_port()
    data = tmp_path / f"data-{port}"
    argv = [sys.executable, "-m", "ircd", str(port), "--host", "127.0.0.1",
            "--data-dir", str(data), *args]
    if config is not None:
        path = tmp_path / f"config-{port}.toml"
        path.write_text(config)
        argv += ["--config", str(path)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=30)
    return done.returncode, done.stderr, port


def nothing_listens(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) != 0


def error_lines(stderr: str) -> list[str]:
    """The lines the command printed as its own error (``chatserver: ...``), not log lines."""
    return [x for x in stderr.splitlines() if x.startswith("chatserver:")]


def test_startup_errors_bad_url_unreachable_redis_and_no_database(tmp_path, pg_url):  # noqa: F811
    bad = {
        "http://x": "must start with redis://",
        "redis://127.0.0.1:notaport/0": "notaport",
        "redis://127.0.0.1:99999/0": "99999",
        "redis://127.0.0.1:6379/abc": "'abc'",
        "redis:///0": "no host",
    }
    for url, why in bad.items():
        code, err, port = run_node(tmp_path, "--cluster", url, "--database", pg_url)
        lines = error_lines(err)
        assert code == 2, (url, code, err)
        assert len(lines) == 1 and len(err.strip().splitlines()) == 1, (url, err)
        assert "'cluster.url'" in lines[0] and why in lines[0], (url, lines)
        assert nothing_listens(port)
    # the same in the config file: the key is named too; a password in the URL is hidden
    code, err, port = run_node(tmp_path, "--database", pg_url, config=config_with(
        cluster={"url": "redis://:hunter2@127.0.0.1/x"}))
    assert code == 2, err
    assert len(error_lines(err)) == 1 and "'cluster.url'" in err and "'x'" in err, err
    assert "hunter2" not in err, err
    assert nothing_listens(port)

    # nothing listening on the Redis port: exit 1, one line naming Redis and the URL (no password)
    dead = free_port()
    url = f"redis://:s3cret@127.0.0.1:{dead}/0"
    started = time.monotonic()
    code, err, port = run_node(tmp_path, "--cluster", url, "--database", pg_url)
    lines = error_lines(err)
    assert code == 1, (code, err)
    assert len(lines) == 1, err
    assert "Redis" in lines[0] and f"127.0.0.1:{dead}" in lines[0], lines
    assert "s3cret" not in err, err
    assert time.monotonic() - started < 20
    assert nothing_listens(port)

    # --cluster without --database: exit 2, naming both keys
    redis_url = f"redis://127.0.0.1:{dead}/0"
    code, err, port = run_node(tmp_path, "--cluster", redis_url)
    lines = error_lines(err)
    assert code == 2, (code, err)
    assert len(lines) == 1 and len(err.strip().splitlines()) == 1, err
    assert "'cluster.url' needs a shared 'database.url'" in lines[0], lines
    assert nothing_listens(port)


# -- 2. a node killed -------------------------------------------------------------------------


def test_killed_node_users_quit_everywhere_their_nicks_free_and_restarted_node_rejoins(cluster):  # noqa: F811
    net = cluster(2, **QUIET)
    alice, amy = irc(net, 0, "alice"), irc(net, 0, "amy")
    bob, bea = irc(net, 1, "bob"), irc(net, 1, "bea")
    join("#room", alice, amy, bob, bea)
    for c in (alice, amy):
        wait_names(c, "#room", {"alice", "amy", "bob", "bea"})
        c.sync()

    round_trip(alice, bob, "#room", "routed to both nodes' inboxes")
    round_trip(bob, alice, "#room", "and back")
    redis_client = RedisClient.from_url(net.redis_url)
    inboxes = lambda: {k.decode() for k in redis_client.keys("chatserver:inbox:*")}  # noqa: E731
    offsets = lambda: {k.decode() for k in redis_client.hkeys("chatserver:inbox_offsets")}  # noqa: E731
    assert len(inboxes()) == 2 and offsets() == inboxes(), (inboxes(), offsets())

    killed = time.monotonic()
    net.kill(1)
    seen = quits(alice, 2, net.node_timeout + 5)
    took = time.monotonic() - killed
    assert seen == {"bob": "node n2 lost", "bea": "node n2 lost"}, seen
    assert took <= net.node_timeout + 5, took
    assert quits(amy, 2, 2.0) == seen
    # the node that declared n2 lost deleted its inbox (a crashed node cannot)
    assert wait_until(lambda: len(inboxes()) == 1 and offsets() == inboxes(), 5.0), (
        inboxes(), offsets())
    redis_client.close()
    # the nicks are free right away; the channel keeps the other members
    bob2 = irc(net, 0, "bob")
    assert names(alice, "#room") == {"alice", "amy"}
    assert whois_server(alice, "bea") is None
    # n1 keeps serving
    round_trip(alice, amy, "#room", "n1 still serves")
    join("#room", bob2)
    round_trip(bob2, alice, "#room", "the new bob speaks")

    # restarted on its port, n2 rejoins by itself as a new node
    net.restart(1)
    carol = irc(net, 1, "carol")
    join("#room", carol)
    assert names(carol, "#room") == {"alice", "amy", "bob", "carol"}
    assert whois_server(carol, "alice") == "n1.test"
    assert whois_server(carol, "bob") == "n1.test"
    assert whois_server(alice, "carol") == "n2.test"
    round_trip(carol, alice, "#room", "hello from the restarted n2")
    round_trip(amy, carol, "#room", "hello back from n1")
    assert_one_holder(net, "bob", "n1.test", {1: carol})
    assert_one_holder(net, "carol", "n2.test", {0: amy})


# -- 3. a node stopped cleanly -------------------------------------------------------------


def test_node_stopped_cleanly_quits_its_users_at_once(cluster):  # noqa: F811
    # a long node_timeout: the quits must come from the node's own shutdown, not its key's expiry
    net = cluster(2, node_timeout=10, **QUIET)
    alice = irc(net, 0, "alice")
    bob, bea = irc(net, 1, "bob"), irc(net, 1, "bea")
    join("#room", alice, bob, bea)
    wait_names(alice, "#room", {"alice", "bob", "bea"})
    alice.sync()

    stopped = time.monotonic()
    code = net.nodes[1].stop(signal.SIGTERM)
    assert code == 0, net.logs()
    seen = quits(alice, 2, 5.0)
    took = time.monotonic() - stopped
    assert took < net.node_timeout / 2, f"quits after {took:.1f} s: like a key expiry"
    # the reason is the one its own users were given (docs: "sends its users' quits")
    assert seen == {"bob": "Server shutting down", "bea": "Server shutting down"}, seen
    assert wait_dropped(bob, 3.0) == "ERROR :Server shutting down", bob.lines[-5:]
    # no second quit (e.g. a late "node n2 lost") and the nicks are free
    assert names(alice, "#room") == {"alice"}
    bob2 = irc(net, 0, "bob")
    assert whois_server(alice, "bob") == "n1.test"
    join("#room", bob2)
    round_trip(bob2, alice, "#room", "n1 serves on")


# -- 4. Redis paused briefly ------------------------------------------------------------------


def answers(c: Client, count: int, timeout: float) -> list[str]:
    """The next ``count`` answers to ``c``'s PRIVMSGs: its echo-message or a 400."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"{len(out)} of {count} answers within {timeout} s: {out[-3:]}"
        out.append(c.expect(lambda s: command_of(s) == "400" or (
            command_of(s) == "PRIVMSG" and nick_of(s) == c.nick), left))
    return out


def acknowledged(sent: list[str], replies: list[str], command: str = "PRIVMSG") -> list[str]:
    """The texts of ``sent`` that were acknowledged (echoed); the answers come in the order
    sent, so the k-th answer is for the k-th line; a refusal is a 400 saying why."""
    assert len(replies) == len(sent)
    acked = []
    for text, reply in zip(sent, replies, strict=True):
        if command_of(reply) == "400":
            assert untagged(reply).split(" ")[3] == command and UNAVAILABLE in reply, reply
        else:
            assert text_of(reply) == text, f"answers out of order: {text!r} got {reply!r}"
            acked.append(text)
    return acked


def received(c: Client, sender: str, channel: str, want: Iterable[str],
             timeout: float) -> list[str]:
    """The texts ``c`` got from ``sender`` in ``channel``, read until all of ``want`` came
    (or ``timeout``), then until quiet."""
    want = set(want)
    got: list[str] = []
    is_msg = message_from(sender, channel)
    deadline = time.monotonic() + timeout
    while not want <= set(got) and time.monotonic() < deadline:
        try:
            line = c.expect(is_msg, max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            break
        got.append(text_of(line))
    got += [text_of(x) for x in c.drain(0.5) if is_msg(x)]
    return got


class Recorder(threading.Thread):
    """Reads every line ``client`` gets, with its arrival time (monotonic), until stopped
    (meanwhile only this thread reads from ``client``)."""

    def __init__(self, client: Client) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.got: list[tuple[float, str]] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            try:
                line = self.client.readline(0.1)
            except TimeoutError:
                continue
            except OSError:
                return
            if line is None:
                return
            self.got.append((time.monotonic(), line))

    def lines(self, pred: Callable[[str], bool]) -> list[tuple[float, str]]:
        return [(t, x) for t, x in list(self.got) if pred(x)]

    def stop(self) -> None:
        self._done.set()
        self.join(5.0)


def test_redis_paused_briefly_loses_no_acknowledged_message_and_drops_no_one(cluster, redis):  # noqa: F811
    net = cluster(2, **QUIET)
    sender = irc(net, 0, "sender", caps=["echo-message"])
    looker1 = irc(net, 0, "looker1")
    receiver = irc(net, 1, "receiver", caps=["echo-message"])
    looker2 = irc(net, 1, "looker2")
    join("#p", sender, receiver)
    wait_names(looker1, "#p", {"sender", "receiver"})
    wait_names(looker2, "#p", {"sender", "receiver"})
    receiver.sync()
    from_sender = message_from("sender", "#p")

    def is_answer(line: str) -> bool:
        return command_of(line) == "400" or from_sender(line)

    to_sender, to_receiver = Recorder(sender), Recorder(receiver)
    to_sender.start()
    to_receiver.start()
    try:
        sent = [f"before {k}" for k in range(3)]
        for text in sent:
            sender.send(f"PRIVMSG #p :{text}")
        assert wait_until(lambda: len(to_sender.lines(is_answer)) == 3, 5.0)

        redis.pause()
        paused = time.monotonic()
        try:
            # read-only commands answer from the replica while Redis does not
            assert whois_server(looker2, "sender") == "n1.test"
            assert whois_server(looker1, "receiver") == "n2.test"
            looker1.sync()
            looker2.sync()
            assert time.monotonic() - paused < 1.0, "WHOIS/PING waited for Redis"
            # a registration begun during the pause
            latecomer = Client(net.port(1))
            net.clients.append(latecomer)
            latecomer.send("NICK latecomer")
            latecomer.send("USER latecomer 0 * :late")
            # state changes during the pause: each is either refused (400) or delivered later
            k = 0
            while time.monotonic() - paused < 1.5:
                sent.append(f"paused {k}")
                sender.send(f"PRIVMSG #p :paused {k}")
                k += 1
                time.sleep(0.05)
        finally:
            resuming = time.monotonic()
            redis.resume()
        resumed = time.monotonic()
        for k in range(5):
            sent.append(f"after {k}")
            sender.send(f"PRIVMSG #p :after {k}")

        assert wait_until(lambda: len(to_sender.lines(is_answer)) >= len(sent), BACK_WITHIN), \
            f"answers: {to_sender.lines(is_answer)[-3:]}\n{net.logs()}"
        replies = to_sender.lines(is_answer)
        acked = acknowledged(sent, [x for _, x in replies])
        assert wait_until(lambda: set(acked) <= {text_of(x) for _, x in to_receiver.lines(from_sender)},
                          BACK_WITHIN)
        time.sleep(0.5)   # anything delivered twice would come now
    finally:
        to_sender.stop()
        to_receiver.stop()
    delivered = to_receiver.lines(from_sender)
    got = [text_of(x) for _, x in delivered]
    missing = [t for t in acked if t not in got]
    assert not missing, f"acknowledged but not delivered: {missing}\n{net.logs()}"
    assert len(got) == len(set(got)), f"delivered twice: {got}"
    assert set(got) <= set(sent), got
    assert got == [t for t in sent if t in got], f"out of order: {got}"
    assert acked[:3] == sent[:3] and acked[-5:] == sent[-5:], \
        f"lines before the pause or after it were refused: {replies}"
    # nothing sent during the pause was echoed or delivered before Redis ran again
    early = [(t - resuming, x) for t, x in replies + delivered
             if " :paused " in x and t < resuming]
    assert not early, f"acknowledged or delivered while Redis was paused: {early}"
    # the registration begun in the pause: welcomed after it, or refused (never two answers)
    line = latecomer.expect(lambda s: command_of(s) in ("001", "433", "ERROR"), BACK_WITHIN)
    assert command_of(line) == "001" or line == f"ERROR :{UNAVAILABLE}", line
    if command_of(line) == "001":
        latecomer.nick = "latecomer"
        assert whois_server(looker1, "latecomer") == "n2.test"

    # no one was dropped by a short pause; the network serves within 15 s of the resume
    for c in (sender, looker1, receiver, looker2):
        still_connected(c)
    assert names(looker2, "#p") == {"sender", "receiver"}
    assert names(looker1, "#p") == {"sender", "receiver"}
    wait_flow(receiver, sender, "#p", resumed + BACK_WITHIN, net)
    wait_flow(sender, receiver, "#p", resumed + BACK_WITHIN, net)
    newcomer = wait_serving(net, 1, "newcomer", BACK_WITHIN - (time.monotonic() - resumed))
    join("#p", newcomer)
    round_trip(sender, newcomer, "#p", "from n1 after the pause")
    assert_one_holder(net, "sender", "n1.test", {1: looker2})
    assert_one_holder(net, "receiver", "n2.test", {0: looker1})


# -- 5. Redis unreachable for longer than node_timeout ----------------------------------------


def test_redis_down_longer_than_node_timeout_drops_users_then_network_refounds(cluster, redis):  # noqa: F811
    net = cluster(2, **QUIET)
    alice, bob = alice_on_n1_and_bob_on_n2(net, "#k")
    bob.sync()

    redis.kill()
    down = time.monotonic()
    # a state-changing command is refused, and nothing of it reaches the other node
    alice.send("PRIVMSG #k :while redis is down")
    line = alice.expect(lambda s: command_of(s) in ("400", "PRIVMSG"), 5.0)
    assert command_of(line) == "400" and "PRIVMSG" in line and UNAVAILABLE in line, line
    # a new registration is refused with ERROR :Cluster unavailable
    what, c = try_register(net, 0, "newbie", timeout=5.0)
    assert c is None and what == f"ERROR :{UNAVAILABLE}", what
    # read-only commands still answer; a nick change is refused, not made
    assert whois_server(bob, "alice") == "n1.test"
    assert nick_change_refused(bob, "alice") == "400"
    assert nick_change_refused(bob, "robert") == "400"
    assert whois_server(alice, "robert") is None and whois_server(alice, "bob") == "n2.test"
    # after node_timeout, every user is disconnected with ERROR :Cluster unavailable
    for user in (alice, bob):
        error = wait_dropped(user, net.node_timeout + 4 - (time.monotonic() - down))
        assert error == f"ERROR :{UNAVAILABLE}", (user.nick, user.lines[-5:])
    assert not any("while redis is down" in x for x in bob.lines), bob.lines
    assert time.monotonic() - down > net.node_timeout - 0.5, "users dropped before node_timeout"
    # refused while Redis stays away (a node still up must not found a network of its own)
    what, c = try_register(net, 1, "eager", timeout=5.0)
    assert c is None and what in (f"ERROR :{UNAVAILABLE}", "refused", "closed"), what

    redis.start()
    back = time.monotonic()
    alice2 = wait_serving(net, 0, "alice2", BACK_WITHIN, caps=["echo-message"])
    bob2 = wait_serving(net, 1, "bob2", BACK_WITHIN - (time.monotonic() - back),
                        caps=["echo-message"])
    assert time.monotonic() - back < BACK_WITHIN
    assert all(node.alive() for node in net.nodes), "a node exited"
    join("#k", alice2, bob2)
    wait_names(alice2, "#k", {"alice2", "bob2"})
    wait_names(bob2, "#k", {"alice2", "bob2"})
    wait_flow(alice2, bob2, "#k", back + BACK_WITHIN, net)
    wait_flow(bob2, alice2, "#k", back + BACK_WITHIN, net)
    # the old users are gone everywhere; one nick table again
    assert whois_server(alice2, "bob") is None and whois_server(bob2, "alice") is None
    assert_one_holder(net, "alice2", "n1.test", {1: bob2})
    assert_one_holder(net, "bob2", "n2.test", {0: alice2})


# -- 6. Redis restarted empty -------------------------------------------------------------------


def test_redis_restarted_empty_keeps_users_and_the_network_carries_on(cluster, redis):  # noqa: F811
    net = cluster(2, **QUIET)
    alice = irc(net, 0, "alice", caps=["echo-message"])
    bob = irc(net, 1, "bob", caps=["echo-message"])
    join("#e", alice, bob)
    wait_names(alice, "#e", {"alice", "bob"})
    wait_names(bob, "#e", {"alice", "bob"})
    bob.sync()

    redis.restart_empty()
    restarted = time.monotonic()
    # within 15 s messages are acknowledged again, both ways, and delivered on the other node
    wait_flow(alice, bob, "#e", restarted + BACK_WITHIN, net)
    wait_flow(bob, alice, "#e", restarted + BACK_WITHIN, net)
    # nobody was disconnected; the channel is as it was on both nodes
    for c in (alice, bob):
        still_connected(c)
    assert names(alice, "#e") == {"alice", "bob"} and names(bob, "#e") == {"alice", "bob"}
    assert_one_holder(net, "alice", "n1.test", {1: bob})
    assert_one_holder(net, "bob", "n2.test", {0: alice})
    # a new node can join the network afterwards and sees it whole
    net.add_node()
    carol = irc(net, 2, "carol")
    join("#e", carol)
    assert names(carol, "#e") == {"alice", "bob", "carol"}
    assert whois_server(carol, "alice") == "n1.test" and whois_server(carol, "bob") == "n2.test"
    round_trip(carol, alice, "#e", "n3 to n1")
    round_trip(bob, carol, "#e", "n2 to n3")
    assert_one_holder(net, "bob", "n2.test", {2: carol})
    # once the grace of node_timeout is over, still no node is declared lost
    time.sleep(max(0.0, restarted + net.node_timeout + 2 - time.monotonic()))
    for c in (alice, bob, carol):
        still_connected(c)
        assert not [x for x in c.lines if command_of(x) == "QUIT"], c.lines
    assert names(carol, "#e") == {"alice", "bob", "carol"}
    round_trip(alice, bob, "#e", "still one network")


# -- 8. a node frozen for longer than node_timeout ----------------------------------------------


def test_node_frozen_longer_than_node_timeout_is_lost_then_drops_its_users_and_rejoins(cluster):  # noqa: F811
    net = cluster(2, **QUIET)
    alice, bob = alice_on_n1_and_bob_on_n2(net, "#s")
    frozen = freeze(net, 1)
    stopped = time.monotonic()
    try:
        assert quits(alice, 1, net.node_timeout + 5) == {"bob": "node n2 lost"}
        # bob's nick is free while n2 sleeps: another bob takes it on n1
        bob2 = irc(net, 0, "bob")
        join("#s", bob2)
        time.sleep(max(0.0, stopped + net.node_timeout + 2 - time.monotonic()))
        # the old bob speaks as n2 wakes (the line waits in its socket): no one may hear it
        bob.send("PRIVMSG #s :zombie bob speaks")
    finally:
        frozen.send_signal(signal.SIGCONT)
    # awake, n2 reads that it was declared lost: its users get ERROR :Cluster unavailable
    error = wait_dropped(bob, 10.0)
    assert error == f"ERROR :{UNAVAILABLE}", bob.lines[-5:]
    # and it rejoins as a new node
    carol = wait_serving(net, 1, "carol")
    join("#s", carol)
    assert names(carol, "#s") == {"alice", "bob", "carol"}
    assert whois_server(carol, "bob") == "n1.test", "the old bob of n2 came back"
    assert whois_server(alice, "carol") == "n2.test"
    round_trip(carol, alice, "#s", "n2 is back")
    round_trip(bob2, carol, "#s", "welcome back")
    assert_one_holder(net, "bob", "n1.test", {1: carol})
    assert_one_holder(net, "carol", "n2.test", {0: alice})
    assert names(alice, "#s") == {"alice", "bob", "carol"}
    for c in (alice, bob2, carol):
        c.drain(0.3)
        assert not [x for x in c.lines if "zombie" in x], f"{c.nick} heard the old bob"


def test_stream_trimmed_past_a_frozen_node_is_noticed_and_the_node_rejoins(cluster, redis):  # noqa: F811
    """A node that sleeps while the stream is trimmed past entries it has not read
    (``MAXLEN``, or here an operator's XTRIM) sees the offsets jump, drops its
    users and rejoins from a snapshot, instead of serving a replica that missed
    changes (docs/cluster.md "A node falls far behind")."""
    net = cluster(2, node_timeout=5, **QUIET)
    alice, bob = alice_on_n1_and_bob_on_n2(net, "#s")
    frozen = freeze(net, 1)
    try:
        # n2's blocked XREAD is answered with the first entry (it waits in n2's socket);
        # the second is trimmed before n2 reads it
        alice.send("TOPIC #s :read by n2")
        alice.expect(lambda s: command_of(s) == "TOPIC")
        alice.send("MODE #s +m")
        alice.expect(lambda s: command_of(s) == "MODE")
        with RedisClient.from_url(redis.url) as r:
            r.xtrim("chatserver:log", maxlen=0)
    finally:
        frozen.send_signal(signal.SIGCONT)
    alice.send("TOPIC #s :after the gap")  # the next entry n2 reads shows the jump
    alice.expect(lambda s: command_of(s) == "TOPIC")
    error = wait_dropped(bob, 10.0)
    assert error == f"ERROR :{UNAVAILABLE}", bob.lines[-5:]
    # the other nodes see n2's old node id lost (its key is no longer refreshed)
    assert quits(alice, 1, net.node_timeout + 5) == {"bob": "node n2 lost"}
    carol = wait_serving(net, 1, "carol")
    carol.send("MODE #s")
    modes = carol.expect_numeric("324")
    assert "m" in modes.split(" ")[4], modes  # the change n2 had missed, from the snapshot
    carol.send("TOPIC #s")
    assert carol.expect_numeric("332").endswith(":after the gap")
    join("#s", carol)
    assert names(carol, "#s") == {"alice", "carol"}
    alice.send("MODE #s +v carol")  # #s is moderated: carol needs a voice to speak
    alice.expect(lambda s: command_of(s) == "MODE")
    round_trip(carol, alice, "#s", "n2 is whole again")
    round_trip(alice, carol, "#s", "welcome back")
    assert whois_server(alice, "carol") == "n2.test"


# -- 9. nothing lost across restarts ------------------------------------------------------------

READER = ["batch", "server-time", "message-tags", "draft/chathistory"]


def chathistory(c: Client, target: str) -> list[tuple[str, str]]:
    """``CHATHISTORY LATEST target * 50``: (sender, text) of each message, oldest first."""
    c.send(f"CHATHISTORY LATEST {target} * 50")
    c.expect(lambda s: command_of(s) == "BATCH" and untagged(s).split(" ")[2].startswith("+"))
    out = []
    while True:
        line = c.expect(lambda s: True)
        if command_of(line) == "BATCH":
            return out
        if command_of(line) == "PRIVMSG":
            out.append((nick_of(line), text_of(line)))


def test_accounts_and_history_survive_restarting_every_node(cluster, redis):  # noqa: F811
    # (#hist is registered: an unregistered channel's history ends with the channel)
    net = cluster(2, limits=LIMITS, server={"autojoin": [], "registered_channels": ["#hist"]})
    alice = irc(net, 0, "alice", password="alice-pw")
    assert any(command_of(x) == "900" for x in alice.lines), alice.lines
    bob = irc(net, 1, "bob")
    join("#hist", alice, bob)
    wait_names(alice, "#hist", {"alice", "bob"})
    wait_names(bob, "#hist", {"alice", "bob"})
    said = [("alice", "a one"), ("bob", "b one"), ("alice", "a two"), ("bob", "b two"),
            ("alice", "a three")]
    for who, text in said:
        (alice if who == "alice" else bob).send(f"PRIVMSG #hist :{text}")
        (bob if who == "alice" else alice).expect(f" :{text}", 8.0)

    for node in net.nodes:
        assert node.stop(signal.SIGTERM) == 0
    redis.restart_empty()   # what survives is in PostgreSQL, not in Redis
    net.restart(0)
    net.restart(1)

    # the account: the right password logs in (on the other node), a wrong one fails
    again = irc(net, 1, "alice", password="alice-pw")
    assert any(command_of(x) == "900" for x in again.lines), again.lines
    assert not any("Registered new account" in x for x in again.lines), again.lines
    again.send("QUIT")
    assert wait_dropped(again, 5.0)
    # node 0 must have applied that QUIT too, or the intruder gets 433 (nick in use)
    watcher = irc(net, 0, "watcher")
    assert wait_until(lambda: not is_online(watcher, "alice"), 10.0), net.logs()
    intruder = Client(net.port(0))
    net.clients.append(intruder)
    intruder.send("PASS wrong-pw")
    intruder.send("NICK alice")
    intruder.send("USER alice 0 * :alice")
    line = intruder.expect(lambda s: command_of(s) in ("464", "001"))
    assert command_of(line) == "464", line
    assert wait_dropped(intruder, 5.0).startswith("ERROR")
    # the history, on both nodes
    for i in (0, 1):
        reader = irc(net, i, f"reader{i + 1}", caps=READER)
        join("#hist", reader)
        assert chathistory(reader, "#hist") == said, f"n{i + 1}\n{net.logs()}"


# -- 10. bounded load across a node loss --------------------------------------------------------


def server_time(line: str) -> float:
    value = tags_of(line)["time"]
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def answers_until_closed(c: Client) -> list[str]:
    """``c``'s echoes and 400s until its (killed) node's connection is gone."""
    out = []
    while True:
        try:
            line = c.readline(5.0)
        except OSError:   # (TimeoutError included: the kernel reports a dead peer at once)
            return out
        if line is None:
            return out
        if command_of(line) == "400" or (command_of(line) == "PRIVMSG" and nick_of(line) == c.nick):
            out.append(line)


def test_load_across_a_node_loss_delivers_every_acknowledged_message_in_order(cluster):  # noqa: F811
    rounds, per_node, kill_at = 50, 5, 10
    net = cluster(3, **QUIET)
    senders = [irc(net, i, f"s{i + 1}x{j}", caps=["echo-message"])
               for i in (0, 1, 2) for j in range(per_node)]
    survivors, victims = senders[:2 * per_node], senders[2 * per_node:]
    r1, r2 = irc(net, 0, "r1", caps=["server-time"]), irc(net, 1, "r2", caps=["server-time"])
    everyone = [*senders, r1, r2]
    join("#load", *everyone)
    members = {c.nick for c in everyone}
    wait_names(r1, "#load", members)
    wait_names(r2, "#load", members)
    for c in everyone:
        c.drain(0.05)

    def text(s: Client, k: int) -> str:
        return f"{s.nick} {k}"

    started = time.monotonic()
    killed = 0.0
    for k in range(rounds):
        for s in (senders if k <= kill_at else survivors):
            s.send(f"PRIVMSG #load :{text(s, k)}")
        if k == kill_at:
            net.kill(2)   # right after a burst: some of n3's lines are still on their way
            killed = time.time()
        time.sleep(0.1)
    acked = {}
    for s in survivors:
        replies = answers(s, rounds, 20.0)
        acked[s.nick] = acknowledged([text(s, k) for k in range(rounds)], replies)
        # Redis never went away: nothing may be refused
        assert len(acked[s.nick]) == rounds, f"{s.nick}: {replies}"
    for s in victims:
        replies = answers_until_closed(s)
        acked[s.nick] = [text_of(x) for x in replies if command_of(x) == "PRIVMSG"]
        assert acked[s.nick] == [text(s, k) for k in range(len(acked[s.nick]))], replies

    want = {t for texts in acked.values() for t in texts}
    seen: dict[str, list[str]] = {}
    lost_after: list[float] = []
    for r in (r1, r2):
        got: list[str] = []
        deadline = time.monotonic() + 20.0
        quit_seen = set()
        while (not want <= set(got) or len(quit_seen) < per_node) and time.monotonic() < deadline:
            try:
                line = r.expect(lambda s: command_of(s) in ("PRIVMSG", "QUIT"), 1.0)
            except TimeoutError:
                continue
            if command_of(line) == "QUIT":
                assert text_of(line) == "node n3 lost", line
                quit_seen.add(nick_of(line))
                lost_after.append(server_time(line) - killed)
            else:
                got.append(text_of(line))
        got += [text_of(x) for x in r.drain(0.3) if command_of(x) == "PRIVMSG"]
        missing = want - set(got)
        assert not missing, f"{r.nick} lacks {len(missing)} acknowledged: {sorted(missing)[:5]}"
        assert quit_seen == {s.nick for s in victims}, quit_seen
        assert len(got) == len(set(got)), f"{r.nick} got duplicates"
        for s in senders:
            mine = [t for t in got if t.split(" ")[0] == s.nick]
            # in the order sent, without gaps; n3's last lines may be in the log unacknowledged
            assert mine == [text(s, k) for k in range(len(mine))], \
                f"{r.nick} saw {s.nick}'s messages out of order or with gaps: {mine}"
            assert len(mine) == (rounds if s in survivors else len(mine)) >= len(acked[s.nick])
        seen[r.nick] = got
    assert seen["r1"] == seen["r2"], "the two surviving nodes delivered different orders"
    assert time.monotonic() - started < 40
    # the QUITs were read after the load; their server-time is when n3 was declared lost
    assert lost_after and all(0 < t <= net.node_timeout + 5 for t in lost_after), lost_after
    assert all(node.alive() for node in net.nodes[:2])
