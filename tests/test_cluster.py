"""Cluster mode (issue 10, docs/cluster.md): several real nodes behave as one IRC network.

Every test starts 2 (sometimes 3) real ``python -m ircd --cluster ...`` nodes
over a real redis-server and a real, empty PostgreSQL database of its own
(fixtures ``cluster``, ``redis`` in tests/cluster_support.py, ``pg_url`` in
tests/engines.py) and talks raw IRC (and the SEND dialect) to them over
loopback sockets. Nothing is mocked. Node faults (deaths, Redis outages,
startup errors) are tests/test_cluster_faults.py's subject, not this file's.

What is checked, as issue 10 asks, on a network instead of one server: the
nick table is one (a race for a nick gives one 001), a channel race founds
one channel with one operator, every receiver on every node sees one order
(docs/cluster.md "Orders guaranteed"), presence and channel state read the
same from every node, DMs, accounts and CHATHISTORY work across nodes, the
SEND dialect bridges nodes, pseudo-users exist once, bad input is answered
and harms no one, and the PostgreSQL schema is migrated.

Waiting: a node answers its own client's lines in order (a PING waits behind
the client's lines still in the log), so ``Client.sync()`` is a barrier for
what the client's own node did; what another node's client sees is awaited
with ``expect`` (timeouts) or :func:`wait_until`, never with a fixed sleep
(except before ``add_node`` for the history flush, which docs say takes ~1 s).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest

from ircd.storage.migrations import MIGRATIONS
from tests.cluster_support import (  # noqa: F401 - fixtures
    DEFAULT_NODE_TIMEOUT,
    Cluster,
    FaultyRedis,
    cluster,
    redis,
    wait_until,
)
from tests.engines import pg_url, postgres  # noqa: F401 - fixtures
from tests.ircv3util import (
    Client,
    check_msgid,
    check_time,
    command_of,
    split_tags,
    tags_of,
    untagged,
)
from tests.ircv3util import connect as ircv3_connect
from tests.opersupport import become_oper, opers_config
from tests.support import RawClient, config_with

pytestmark = pytest.mark.timeout(120)

H = "127.0.0.1"
WAIT = 8.0
"""Seconds to wait for something another node must do (a few log round trips)."""

LIMITS: dict[str, object] = {
    # The tests send bursts of hundreds of lines and many deliberate wrong passwords;
    # flood control and login throttling are per node anyway (docs/cluster.md).
    "flood_burst": 100000, "flood_rate": 100000.0, "flood_backlog": 100000,
    "login_failures_per_ip": 100000, "login_failures_per_account": 100000,
    "login_delay_max": 0.0,
}
T = TypeVar("T")
READER = ["batch", "server-time", "message-tags", "draft/chathistory"]


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def configured(tmp_path: Path, redis: FaultyRedis, pg_url: str):  # noqa: F811 - fixtures
    """Like ``cluster``, for a whole config text: ``configured(text, n=2)``.

    ``config_with`` cannot turn on what FAST_HASH_TOML turns off (``[simple]
    echobot``, ``[services] enabled``: a TOML key may not be given twice), so the
    tests of the pseudo-users edit the text and start the nodes themselves.
    """
    made: list[Cluster] = []

    def make(text: str, n: int = 2) -> Cluster:
        net = Cluster(tmp_path, redis.url, pg_url, text, DEFAULT_NODE_TIMEOUT)
        made.append(net)
        for _ in range(n):
            net.add_node()
        return net

    yield make
    for net in made:
        net.close()


def config_text(**sections: dict[str, object]) -> str:
    """The ``cluster`` fixture's config (node_timeout, LIMITS) plus ``sections``."""
    return config_with(cluster={"node_timeout": DEFAULT_NODE_TIMEOUT}, limits=LIMITS, **sections)


def irc(net: Cluster, i: int, nick: str, caps: Iterable[str] = (),
        password: str | None = None) -> Client:
    """A registered :class:`~tests.ircv3util.Client` on node ``i`` (closed with the cluster)."""
    c = ircv3_connect(net.port(i), nick, caps, password=password)
    net.clients.append(c)
    return c


def raw(net: Cluster, i: int) -> Client:
    """An unregistered :class:`~tests.ircv3util.Client` on node ``i``."""
    c = Client(net.port(i))
    net.clients.append(c)
    return c


def text_of(line: str) -> str:
    """The trailing parameter of a line (after the first `` :``), tags removed."""
    return untagged(line).split(" :", 1)[1]


def params_of(line: str) -> list[str]:
    """The middle parameters of a line (source and command removed, trailing excluded)."""
    rest = untagged(line)
    if rest.startswith(":"):
        rest = rest.split(" ", 1)[1]
    head = rest.split(" :", 1)[0]
    return head.split(" ")[1:]


def args_of(line: str) -> list[str]:
    """Every parameter of a line, the trailing one included."""
    trailing = text_of_or_none(line)
    return params_of(line) + ([trailing] if trailing is not None else [])


def ison(c: Client, nicks: Sequence[str]) -> set[str]:
    """The nicks of ``nicks`` that ``c``'s node says are online (ISON, 303)."""
    c.send("ISON " + " ".join(nicks))
    line = c.expect_numeric("303")
    return set(text_of(line).split())


def wait_online(c: Client, nicks: Sequence[str], online: bool = True) -> None:
    """Wait until ``c``'s node sees every nick of ``nicks`` online (or every one offline)."""
    want = set(nicks) if online else set()
    assert wait_until(lambda: ison(c, nicks) == want, WAIT), (
        f"{nicks} never {'online' if online else 'offline'} on {c.sock.getpeername()}")


def names(c: Client, channel: str) -> list[str]:
    """The members of ``channel`` as ``c``'s node lists them in NAMES (prefixes kept, in order)."""
    c.send(f"NAMES {channel}")
    got: list[str] = []
    while True:
        line = c.expect(lambda x: command_of(x) in ("353", "366"))
        if command_of(line) == "366":
            return got
        got.extend(text_of(line).split())


def wait_names(c: Client, channel: str, want: set[str]) -> list[str]:
    """Wait until NAMES on ``c``'s node lists exactly the nicks ``want`` (prefixes ignored)."""
    seen: list[list[str]] = []

    def ok() -> bool:
        seen.append(names(c, channel))
        return {n.lstrip("@+") for n in seen[-1]} == want

    assert wait_until(ok, WAIT), f"NAMES {channel}: {seen[-1]}, want {want}"
    return seen[-1]


def numeric_reply(c: Client, command: str, codes: Iterable[str]) -> list[str]:
    """Send ``command``; return every line up to (including) the first with one of ``codes``."""
    codes = set(codes)
    c.send(command)
    start = len(c.lines)
    c.expect(lambda x: command_of(x) in codes)
    return c.lines[start:]


def whois(c: Client, nick: str) -> dict[str, list[str]]:
    """WHOIS ``nick``: the reply lines by numeric, up to 318."""
    lines = numeric_reply(c, f"WHOIS {nick}", ["318"])
    out: dict[str, list[str]] = {}
    for line in lines:
        out.setdefault(command_of(line), []).append(line)
    return out


def assert_logged_in(c: Client, nick: str, account: str) -> None:
    """Within WAIT, ``c``'s node shows ``nick`` logged in as ``account`` (WHOIS 330)."""
    assert wait_until(lambda: "330" in whois(c, nick), WAIT)
    assert params_of(whois(c, nick)["330"][0])[1:3] == [nick, account]


def collect(c: Client, pred: Callable[[str], bool], until: Callable[[list[str]], bool],
            timeout: float = 20.0) -> list[str]:
    """Read ``c``'s lines; keep those with ``pred``; stop once ``until(kept)`` holds."""
    kept: list[str] = []
    deadline = time.monotonic() + timeout
    while not until(kept):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"collected {len(kept)} lines, last {kept[-5:]!r}")
        kept.append(c.expect(pred, timeout=left))
    return kept


def at_once(actions: Sequence[Callable[[], T]], timeout: float = 30.0) -> list[T]:
    """Run ``actions`` in threads released together by one barrier; their results, in order."""
    barrier = threading.Barrier(len(actions))
    results: dict[int, T] = {}
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            barrier.wait(timeout)
            results[k] = actions[k]()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(actions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    if errors:
        raise errors[0]
    return [results[k] for k in range(len(actions))]


def quit_and_wait(c: Client, nick: str, observers: Iterable[Client]) -> None:
    """QUIT ``c`` and wait until every observer's node has ``nick`` offline."""
    c.quit()
    for o in observers:
        wait_online(o, [nick], online=False)


def db_rows(url: str, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with psycopg.connect(url, connect_timeout=5) as conn:
        return list(conn.execute(sql, args).fetchall())  # type: ignore[arg-type]


# -- 1. the nick table is one ----------------------------------------------------------------


def test_twenty_clients_on_two_nodes_racing_for_one_nick_get_exactly_one_welcome(cluster):  # noqa: F811 - fixture
    net = cluster(2, limits=LIMITS)
    racers = [raw(net, k % 2) for k in range(20)]
    for k, c in enumerate(racers):
        c.send(f"USER racer{k} 0 * :racer {k}")    # registration now waits for NICK only

    def claim(c: Client) -> Callable[[], str]:
        def go() -> str:
            c.send("NICK racer")
            return c.expect(lambda x: command_of(x) in ("001", "433", "432", "ERROR"))
        return go

    answers = at_once([claim(c) for c in racers])
    codes = [command_of(a) for a in answers]
    assert codes.count("001") == 1, answers
    assert codes.count("433") == 19, answers
    winner = codes.index("001")
    assert params_of(answers[winner])[0] == "racer"
    # the losers' connections stay open: each registers with another nick
    for k, c in enumerate(racers):
        if k != winner:
            c.send(f"NICK racer{k}")
            assert params_of(c.expect_numeric("001"))[0] == f"racer{k}"
    everyone = ["racer"] + [f"racer{k}" for k in range(20) if k != winner]
    for c in (racers[0], racers[1]):            # one client of each node
        wait_online(c, everyone)
        info = whois(c, "racer")
        assert f" 312 {params_of(info['312'][0])[0]} racer n{winner % 2 + 1}.test " in info["312"][0]
    # as on one server (docs/protocol.md "Accounts: the login"): an unregistered
    # client's 433 names it "*"
    wrong = [a for a in answers if command_of(a) == "433" and params_of(a) != ["*", "racer"]]
    assert wrong == [], f"{len(wrong)} of 19 losers got a 433 that does not name them '*': {wrong[:3]}"


def test_a_nick_held_on_one_node_is_refused_on_the_other_until_its_holder_quits(cluster):  # noqa: F811 - fixture
    net = cluster(2, limits=LIMITS)
    alice = irc(net, 0, "alice")
    bob = irc(net, 1, "bob")
    wait_online(bob, ["alice"])
    # a new connection on n2
    newcomer = raw(net, 1)
    newcomer.send("USER alice 0 * :second alice")
    newcomer.send("NICK alice")
    line = newcomer.expect(lambda x: command_of(x) in ("001", "433"))
    assert line == ":n2.test 433 * alice :Nickname is already in use", line
    # a registered user of n2 changing to it; casemapping counts (rfc1459)
    for taken in ("alice", "ALICE"):
        bob.send(f"NICK {taken}")
        line = bob.expect(lambda x: command_of(x) in ("433", "NICK"))
        assert command_of(line) == "433", line
        assert params_of(line) == ["bob", taken]
    assert ison(alice, ["bob", "alice"]) == {"alice", "bob"}
    # alice quits on n1: the nick is free on n2, for a NICK change and for the newcomer
    quit_and_wait(alice, "alice", [bob])
    bob.send("NICK alice")
    assert bob.expect(lambda x: command_of(x) in ("433", "NICK")) == ":bob!bob@127.0.0.1 NICK :alice"
    newcomer.send("NICK bob")     # the nick bob gave up, from n2 itself
    assert params_of(newcomer.expect_numeric("001"))[0] == "bob"
    watcher = irc(net, 0, "watcher")
    assert ison(watcher, ["alice", "bob"]) == {"alice", "bob"}
    assert "n2.test" in whois(watcher, "alice")["312"][0]


# -- 2. channel creation race ----------------------------------------------------------------


def test_clients_on_two_nodes_creating_one_channel_at_once_found_one_channel_with_one_op(cluster):  # noqa: F811 - fixture
    net = cluster(2, limits=LIMITS, server={"autojoin": []})
    nicks = [f"cr{k}" for k in range(10)]
    clients = [irc(net, k % 2, nick) for k, nick in enumerate(nicks)]
    wait_online(clients[0], nicks)
    wait_online(clients[1], nicks)
    channels = ["#race1", "#race2", "#race3"]

    def join(c: Client) -> Callable[[], list[str]]:
        def go() -> list[str]:
            c.send("JOIN " + ",".join(channels))
            start = len(c.lines)
            for _ in channels:
                c.expect_numeric("366")
            return c.lines[start:]
        return go

    replies = at_once([join(c) for c in clients])
    for ch in channels:
        # exactly one joiner found the channel: its own NAMES listed only itself, as op
        founders = [nicks[k] for k, lines in enumerate(replies)
                    if any(command_of(x) == "353" and f" {ch} :" in x
                           and text_of(x) == f"@{nicks[k]}" for x in lines)]
        assert len(founders) == 1, (ch, founders, replies)
        views = [wait_names(c, ch, set(nicks)) for c in (clients[0], clients[1])]
        ops = [n for n in views[0] if n.startswith("@")]
        assert ops == [f"@{founders[0]}"], views[0]
        assert views[0] == views[1], f"NAMES {ch} differs between n1 and n2: {views}"
        # LIST agrees too
        for c in (clients[0], clients[1]):
            c.send(f"LIST {ch}")
            assert params_of(c.expect_numeric("322"))[1:] == [ch, "10"]


# -- 3. one order for everyone ---------------------------------------------------------------


def channel_events(channel: str) -> Callable[[str], bool]:
    """Lines that are one of ``channel``'s messages or events (PRIVMSG, JOIN, PART, MODE, TOPIC, KICK)."""
    def pred(line: str) -> bool:
        if command_of(line) not in ("PRIVMSG", "JOIN", "PART", "MODE", "TOPIC", "KICK"):
            return False
        params = params_of(line)
        return params[:1] == [channel] or (not params and text_of_or_none(line) == channel)
    return pred


def text_of_or_none(line: str) -> str | None:
    """The trailing parameter, or None when the line has none."""
    rest = untagged(line)
    return rest.split(" :", 1)[1] if " :" in rest else None


def test_two_senders_flooding_one_channel_are_seen_in_one_interleaving_on_three_nodes(cluster):  # noqa: F811 - fixture
    net = cluster(3, limits=LIMITS, server={"autojoin": []})
    s1, s2 = irc(net, 0, "s1"), irc(net, 1, "s2")
    r1, r2, r3 = irc(net, 0, "r1"), irc(net, 1, "r2"), irc(net, 2, "r3")
    mover = irc(net, 2, "mover")
    for c in (s1, s2, r1, r2, r3):          # s1 first: it founds #flood and is its operator
        c.send("JOIN #flood")
        c.expect_numeric("366")
    for c in (s1, s2, r1, r2, r3):
        wait_names(c, "#flood", {"s1", "s2", "r1", "r2", "r3"})
    s2.send("PRIVMSG #flood :ready")     # everything before this is read and left behind
    for c in (s1, r1, r2, r3):
        c.expect(":s2!s2@127.0.0.1 PRIVMSG #flood :ready", timeout=WAIT)
    n = 200
    one = [f"PRIVMSG #flood :s1 {k}" for k in range(n)]
    one[50:50] = ["TOPIC #flood :topic set mid-flood"]
    one[120:120] = ["MODE #flood +v r2"]
    one[170:170] = ["MODE #flood -v r2"]
    one.append("PRIVMSG #flood :s1 done")
    two = [f"PRIVMSG #flood :s2 {k}" for k in range(n)] + ["PRIVMSG #flood :s2 done"]

    def burst(c: Client, lines: list[str]) -> Callable[[], None]:
        return lambda: c.send("".join(x + "\r\n" for x in lines).encode())

    def move() -> None:
        for k in range(3):
            mover.send("JOIN #flood")
            mover.send(f"PRIVMSG #flood :mover {k}")
            time.sleep(0.02)
            mover.send(f"PART #flood :step {k}")
            time.sleep(0.02)
        mover.send("JOIN #flood")
        mover.send("PRIVMSG #flood :mover done")

    at_once([burst(s1, one), burst(s2, two), move])
    dones = {"s1 done", "s2 done", "mover done"}

    def finished(kept: list[str]) -> bool:
        return dones <= {text_of_or_none(x) for x in kept}

    pred = channel_events("#flood")
    views = {name: [untagged(x) for x in collect(c, pred, finished)]
             for name, c in (("r1", r1), ("r2", r2), ("r3", r3))}
    assert views["r1"] == views["r2"], "n1 and n2 receivers saw different orders"
    assert views["r1"] == views["r3"], "n1 and n3 receivers saw different orders"
    seq = views["r1"]
    # every line arrived once, each sender's lines in the order sent
    for sender, sent in (("s1", one), ("s2", two)):
        mine = [x for x in seq if x.startswith(f":{sender}!")]
        assert [x.split(" ", 1)[1] for x in mine] == sent, f"{sender}'s lines out of order or missing"
    movers = [x.split(" ", 1)[1] for x in seq if x.startswith(":mover!")]
    expected_mover: list[str] = []
    for k in range(3):
        expected_mover += ["JOIN #flood", f"PRIVMSG #flood :mover {k}", f"PART #flood :step {k}"]
    expected_mover += ["JOIN #flood", "PRIVMSG #flood :mover done"]
    assert movers == expected_mover
    assert len(seq) == len(one) + len(two) + len(expected_mover)
    # the senders see the same order too (without their own PRIVMSGs: no echo-message)
    for sender, c in (("s1", s1), ("s2", s2)):
        others = [x for x in seq if not (x.startswith(f":{sender}!") and " PRIVMSG " in x)]
        want = len(others)
        got = [untagged(x) for x in collect(c, pred, lambda k: len(k) == want)]  # noqa: B023
        assert got == others, f"{sender} saw another order than the receivers"


def test_messages_across_two_channels_and_dms_keep_one_order_for_everyone(cluster):  # noqa: F811 - fixture
    net = cluster(2, limits=LIMITS, server={"autojoin": []})
    p, q = irc(net, 0, "p"), irc(net, 1, "q")
    x, y = irc(net, 0, "x"), irc(net, 1, "y")
    for c in (p, q, x, y):
        c.send("JOIN #a,#b")
        c.expect_numeric("366")
        c.expect_numeric("366")
    for c in (p, q, x, y):
        wait_names(c, "#a", {"p", "q", "x", "y"})
        wait_names(c, "#b", {"p", "q", "x", "y"})
    p.send("PRIVMSG #b :ready")
    for c in (q, x, y):
        c.expect(":p!p@127.0.0.1 PRIVMSG #b :ready", timeout=WAIT)
    from_p, from_q = [], []
    for k in range(120):
        from_p.append(f"PRIVMSG {'#a' if k % 2 else '#b'} :p {k}")
        if k % 10 == 0:
            from_p.append(f"PRIVMSG y :p dm {k}")
        from_q.append(f"PRIVMSG {'#b' if k % 3 else '#a'} :q {k}")
    from_p.append("PRIVMSG #a :p done")
    from_q.append("PRIVMSG #b :q done")
    at_once([lambda: p.send("".join(s + "\r\n" for s in from_p).encode()),
             lambda: q.send("".join(s + "\r\n" for s in from_q).encode())])

    def is_msg(line: str) -> bool:
        return command_of(line) == "PRIVMSG"

    def finished(kept: list[str]) -> bool:
        return {"p done", "q done"} <= {text_of(k) for k in kept}

    vx = [untagged(s) for s in collect(x, is_msg, finished)]
    vy = [untagged(s) for s in collect(y, is_msg, finished)]
    in_channels = [s for s in vy if " PRIVMSG #" in s]
    assert vx == in_channels, "x (n1) and y (n2), both in #a and #b, saw different orders"
    # per sender, across channels and DMs: y sees p's lines exactly in the order sent
    assert [s.split(" ", 1)[1] for s in vy if s.startswith(":p!")] == from_p
    assert [s.split(" ", 1)[1] for s in vy if s.startswith(":q!")] == from_q
    # p and q see each other's lines in the same relative order as x and y
    vp = [untagged(s) for s in collect(p, is_msg, lambda k: "q done" in {text_of(s) for s in k})]
    vq = [untagged(s) for s in collect(q, is_msg, lambda k: "p done" in {text_of(s) for s in k})]
    assert vp == [s for s in vx if s.startswith(":q!")]
    assert vq == [s for s in vx if s.startswith(":p!")]


def test_joins_parts_modes_topic_and_kick_are_seen_in_one_order_with_messages(cluster):  # noqa: F811 - fixture
    net = cluster(2, limits=LIMITS, server={"autojoin": []})
    op = irc(net, 0, "op")
    op.send("JOIN #ev")
    op.expect_numeric("366")
    talker, w1, w2, guest = irc(net, 1, "talker"), irc(net, 0, "w1"), irc(net, 1, "w2"), irc(net, 1, "guest")
    for c in (talker, w1, w2):
        c.send("JOIN #ev")
        c.expect_numeric("366")
    wait_names(op, "#ev", {"op", "talker", "w1", "w2"})
    op.send("PRIVMSG #ev :ready")
    for c in (talker, w1, w2):
        c.expect(":op!op@127.0.0.1 PRIVMSG #ev :ready", timeout=WAIT)
    ops_lines = []
    for k in range(30):
        ops_lines += [f"TOPIC #ev :topic {k}", f"MODE #ev {'+' if k % 2 == 0 else '-'}v talker"]
        if k % 5 == 0:
            ops_lines.append("KICK #ev guest :out")
    ops_lines.append("PRIVMSG #ev :op done")
    talk = [f"PRIVMSG #ev :t {k}" for k in range(60)] + ["PRIVMSG #ev :talker done"]

    def guest_moves() -> None:
        for _ in range(6):
            guest.send("JOIN #ev")
            time.sleep(0.03)
            guest.send("PART #ev")
        guest.send("PRIVMSG w1 :guest done")

    at_once([lambda: op.send("".join(s + "\r\n" for s in ops_lines).encode()),
             lambda: talker.send("".join(s + "\r\n" for s in talk).encode()),
             guest_moves])
    pred = channel_events("#ev")

    def finished(kept: list[str]) -> bool:
        return {"op done", "talker done"} <= {text_of_or_none(s) for s in kept}

    v1 = [untagged(s) for s in collect(w1, pred, finished)]
    v2 = [untagged(s) for s in collect(w2, pred, finished)]
    assert v1 == v2, "w1 (n1) and w2 (n2) saw #ev's events and messages in different orders"
    kinds = {command_of(s) for s in v1}
    assert {"PRIVMSG", "TOPIC", "MODE"} <= kinds, kinds
    assert [s.split(" ", 1)[1] for s in v1 if s.startswith(":talker!")] == talk
    # the final state agrees too: TOPIC and member list the same from both nodes
    w1.expect("guest done")
    for c in (w1, w2):
        c.send("TOPIC #ev")
        assert text_of(c.expect_numeric("332")) == "topic 29"
    assert names(w1, "#ev") == names(w2, "#ev")


# -- 4. presence across nodes ----------------------------------------------------------------


def test_whois_who_ison_names_list_lusers_and_links_see_the_whole_network(cluster):  # noqa: F811 - fixture
    net = cluster(3, limits=LIMITS)
    alice, bob, carol = irc(net, 0, "alice"), irc(net, 1, "bob"), irc(net, 2, "carol")
    everyone = ["alice", "bob", "carol"]
    clients = [alice, bob, carol]
    for c in clients:
        wait_online(c, everyone)
    bob.send("JOIN #side")
    bob.expect_numeric("366")
    alice.send("JOIN #side")
    alice.expect_numeric("366")
    for k, c in enumerate(clients):
        me = everyone[k]
        for j, nick in enumerate(everyone):
            info = whois(c, nick)
            assert "401" not in info, info
            assert params_of(info["311"][0]) == [me, nick, nick, H, "*"]
            assert params_of(info["312"][0]) == [me, nick, f"n{j + 1}.test"]
            assert "318" in info
        # WHO names the user's node; the hop count is 0 here and 1 for another node
        who = numeric_reply(c, "WHO bob", ["315"])
        line352 = [s for s in who if command_of(s) == "352"]
        assert len(line352) == 1, who
        assert params_of(line352[0])[3:6] == [H, "n2.test", "bob"], line352
        assert text_of(line352[0]).split(" ", 1)[0] == ("0" if k == 1 else "1")
        assert ison(c, everyone + ["nobody"]) == set(everyone)
        # LIST: member counts of the network
        lst = numeric_reply(c, "LIST", ["323"])
        counts = {params_of(s)[1]: params_of(s)[2] for s in lst if command_of(s) == "322"}
        assert counts == {"#general": "3", "#side": "2"}, lst
        # LUSERS: 251 and 266 count the network, 255 and 265 this node (docs/protocol.md section 6)
        lus = numeric_reply(c, "LUSERS", ["266"])
        by = {command_of(s): s for s in lus}
        assert text_of(by["251"]) == "There are 3 users and 0 invisible on 3 servers", lus
        assert params_of(by["266"])[1:3] == ["3", "3"], lus
        assert params_of(by["265"])[1] == "1", lus
        assert text_of(by["255"]).startswith("I have 1 clients"), lus
        # LINKS: this server first (hop 0), then the two others (hop 1)
        links = [s for s in numeric_reply(c, "LINKS", ["365"]) if command_of(s) == "364"]
        servers = [params_of(s)[1] for s in links]
        assert servers[0] == f"n{k + 1}.test" and sorted(servers) == ["n1.test", "n2.test", "n3.test"]
        assert [text_of(s).split(" ")[0] for s in links] == ["0", "1", "1"]
    # NAMES identical on every node
    views = [names(c, "#general") for c in clients]
    assert {n.lstrip("@") for n in views[0]} == set(everyone)
    assert views[0] == views[1] == views[2], views
    side = [names(c, "#side") for c in clients]
    assert side[0] == side[1] == side[2] == ["@bob", "alice"], side


def test_monitor_reports_users_of_another_node_coming_and_going(cluster):  # noqa: F811 - fixture
    net = cluster(2, limits=LIMITS)
    alice = irc(net, 0, "alice")
    alice.send("MONITOR + bob,carol")
    assert set(text_of(alice.expect_numeric("731")).split(",")) == {"bob", "carol"}
    bob = irc(net, 1, "bob")
    assert text_of(alice.expect_numeric("730", timeout=WAIT)) == f"bob!bob@{H}"
    bob.send("NICK bobby")               # a nick change: bob goes offline
    assert text_of(alice.expect_numeric("731", timeout=WAIT)) == "bob"
    bob.send("NICK bob")
    assert text_of(alice.expect_numeric("730", timeout=WAIT)) == f"bob!bob@{H}"
    bob.quit()
    assert text_of(alice.expect_numeric("731", timeout=WAIT)) == "bob"
    carol = irc(net, 1, "carol")
    assert text_of(alice.expect_numeric("730", timeout=WAIT)) == f"carol!carol@{H}"
    carol.close()                        # a connection closed without QUIT
    assert text_of(alice.expect_numeric("731", timeout=WAIT)) == "carol"
    alice.send("MONITOR L")
    listed = numeric_reply(alice, "MONITOR S", ["731"])
    assert any(command_of(s) == "732" for s in alice.lines)
    assert set(text_of([s for s in listed if command_of(s) == "731"][-1]).split(",")) == {"bob", "carol"}


def test_away_across_nodes_gives_301_whois_301_and_away_notify(cluster):  # noqa: F811 - fixture
    net = cluster(2, limits=LIMITS)
    alice = irc(net, 0, "alice", caps=["away-notify"])
    plain = irc(net, 0, "plain")
    bob = irc(net, 1, "bob")
    wait_names(alice, "#general", {"alice", "plain", "bob"})
    bob.send("AWAY :gone fishing")
    assert command_of(bob.expect(lambda s: command_of(s) in ("305", "306"))) == "306"
    assert alice.expect(lambda s: command_of(s) == "AWAY", timeout=WAIT) == \
        f":bob!bob@{H} AWAY :gone fishing"
    alice.send("PRIVMSG bob :are you there?")
    line = alice.expect_numeric("301")
    assert params_of(line) == ["alice", "bob"] and text_of(line) == "gone fishing"
    bob.expect(":alice!alice@127.0.0.1 PRIVMSG bob :are you there?")
    info = whois(plain, "bob")
    assert text_of(info["301"][0]) == "gone fishing"
    bob.send("AWAY")
    assert command_of(bob.expect(lambda s: command_of(s) in ("305", "306"))) == "305"
    assert alice.expect(lambda s: command_of(s) == "AWAY", timeout=WAIT) == f":bob!bob@{H} AWAY"
    assert "301" not in whois(plain, "bob")
    # plain, without away-notify, got no AWAY lines
    assert not [s for s in plain.sync() + plain.lines if command_of(s) == "AWAY"]


def test_channel_modes_topic_bans_kick_and_invite_set_on_one_node_hold_on_the_other(cluster):  # noqa: F811 - fixture
    net = cluster(2, limits=LIMITS, server={"autojoin": []})
    alice = irc(net, 0, "alice")
    alice.send("JOIN #mod")
    alice.expect_numeric("366")
    bob, carol, dave = irc(net, 1, "bob"), irc(net, 1, "carol"), irc(net, 1, "dave")
    for c in (bob, carol):
        c.send("JOIN #mod")
        c.expect_numeric("366")
    wait_names(alice, "#mod", {"alice", "bob", "carol"})
    # TOPIC set on n1 reaches n2, and a joiner on n2 gets it as 332
    alice.send("TOPIC #mod :the rules")
    assert bob.expect(lambda s: command_of(s) == "TOPIC", timeout=WAIT) == \
        f":alice!alice@{H} TOPIC #mod :the rules"
    dave.send("JOIN #mod")
    assert text_of(dave.expect_numeric("332")) == "the rules"
    dave.expect_numeric("366")
    dave.send("PART #mod")
    dave.expect(lambda s: command_of(s) == "PART")
    # +t (the default): bob on n2 may not set the topic
    bob.send("TOPIC #mod :mine now")
    assert params_of(bob.expect_numeric("482"))[1] == "#mod"
    # +m: bob cannot speak until voiced from n1
    alice.send("MODE #mod +m")
    assert bob.expect(lambda s: command_of(s) == "MODE", timeout=WAIT) == f":alice!alice@{H} MODE #mod +m"
    bob.send("PRIVMSG #mod :muted?")
    assert params_of(bob.expect_numeric("404"))[1] == "#mod"
    alice.send("MODE #mod +v bob")
    bob.expect(f":alice!alice@{H} MODE #mod +v bob", timeout=WAIT)
    bob.send("PRIVMSG #mod :voiced now")
    assert alice.expect(lambda s: command_of(s) == "PRIVMSG", timeout=WAIT) == \
        f":bob!bob@{H} PRIVMSG #mod :voiced now"
    # MODE and the ban list read the same on both nodes
    alice.send("MODE #mod +b carol!*@*")
    carol.expect(f":alice!alice@{H} MODE #mod +b carol!*@*", timeout=WAIT)
    modes = []
    for c in (alice, carol):
        modes.append(args_of(numeric_reply(c, "MODE #mod", ["324"])[-1])[2])
        bans = [s for s in numeric_reply(c, "MODE #mod b", ["368"]) if command_of(s) == "367"]
        assert [params_of(s)[2:4] for s in bans] == [["carol!*@*", f"alice!alice@{H}"]], bans
    assert modes[0] == modes[1] and set("mnt") <= set(modes[0]), modes
    # +b set on n1 keeps carol (n2) out: 474 on rejoin; a banned member cannot speak
    carol.send("PRIVMSG #mod :banned talk")
    assert params_of(carol.expect_numeric("404"))[1] == "#mod"
    carol.send("PART #mod")
    carol.expect(lambda s: command_of(s) == "PART")
    carol.send("JOIN #mod")
    assert params_of(carol.expect_numeric("474"))[1] == "#mod"
    # +i, then INVITE across nodes lets dave (n2) in once
    alice.send("MODE #mod +i")
    bob.expect(f":alice!alice@{H} MODE #mod +i", timeout=WAIT)
    dave.send("JOIN #mod")
    assert params_of(dave.expect_numeric("473"))[1] == "#mod"
    alice.send("INVITE dave #mod")
    assert args_of(alice.expect_numeric("341"))[1:3] == ["dave", "#mod"]
    assert dave.expect(lambda s: command_of(s) == "INVITE", timeout=WAIT) == \
        f":alice!alice@{H} INVITE dave #mod"
    dave.send("JOIN #mod")
    assert dave.expect(lambda s: command_of(s) in ("JOIN", "473")) == f":dave!dave@{H} JOIN #mod"
    # KICK from n1 removes bob on n2 from every replica
    alice.send("KICK #mod bob :bye bob")
    assert bob.expect(lambda s: command_of(s) == "KICK", timeout=WAIT) == \
        f":alice!alice@{H} KICK #mod bob :bye bob"
    assert {n.lstrip("@+") for n in wait_names(dave, "#mod", {"alice", "dave"})} == {"alice", "dave"}
    bob.send("PRIVMSG #mod :still here?")
    assert params_of(bob.expect_numeric("404"))[1] == "#mod"
    bob.send("JOIN #mod")          # +i still holds, and kick used no invite
    assert params_of(bob.expect_numeric("473"))[1] == "#mod"
    assert names(alice, "#mod") == names(dave, "#mod")


# -- 5. direct messages ----------------------------------------------------------------------


def test_direct_messages_across_nodes_echo_once_and_401_for_users_not_online(cluster):  # noqa: F811 - fixture
    net = cluster(2, limits=LIMITS, server={"autojoin": []})
    alice = irc(net, 0, "alice", caps=["echo-message", "message-tags", "server-time"])
    bob = irc(net, 1, "bob", caps=["message-tags", "server-time"])
    wait_online(alice, ["bob"])
    alice.send("PRIVMSG bob :hello over there")
    got = bob.expect(lambda s: command_of(s) == "PRIVMSG", timeout=WAIT)
    assert untagged(got) == f":alice!alice@{H} PRIVMSG bob :hello over there"
    echo = alice.expect(lambda s: command_of(s) == "PRIVMSG")
    assert untagged(echo) == untagged(got)
    assert tags_of(echo)["msgid"] == check_msgid(got) and tags_of(echo)["time"] == check_time(got)
    bob.send("NOTICE alice :notice back")
    assert untagged(alice.expect(lambda s: command_of(s) == "NOTICE", timeout=WAIT)) == \
        f":bob!bob@{H} NOTICE alice :notice back"
    bob.send("PRIVMSG alice :reply")
    assert untagged(alice.expect(lambda s: command_of(s) == "PRIVMSG", timeout=WAIT)) == \
        f":bob!bob@{H} PRIVMSG alice :reply"
    # exactly one echo, one delivery: nothing more arrives
    assert [s for s in alice.sync() if command_of(s) == "PRIVMSG"] == []
    assert [s for s in bob.sync() if command_of(s) == "PRIVMSG"] == []
    time.sleep(0.3)
    assert [s for s in alice.sync() if command_of(s) == "PRIVMSG"] == []
    assert [s for s in bob.sync() + bob.lines if "hello over there" in s] == [got]
    assert [s for s in alice.lines if "hello over there" in s] == [echo]
    # nobody anywhere: 401
    alice.send("PRIVMSG nobody :hi")
    line = alice.expect_numeric("401")
    assert params_of(line) == ["alice", "nobody"]
    # bob leaves n2: then 401 from n1 too, and no echo of a message that went nowhere
    quit_and_wait(bob, "bob", [alice])
    alice.send("PRIVMSG bob :are you gone?")
    assert params_of(alice.expect_numeric("401")) == ["alice", "bob"]
    assert [s for s in alice.sync() if command_of(s) == "PRIVMSG"] == []


# -- 6. accounts -----------------------------------------------------------------------------


def login(net: Cluster, i: int, nick: str, password: str | None) -> tuple[Client, list[str], bool]:
    """A PASS/NICK/USER attempt on node ``i``: (client, lines up to the verdict, welcomed)."""
    c = raw(net, i)
    if password is not None:
        c.send(f"PASS {password}")
    c.send(f"NICK {nick}")
    c.send(f"USER {nick} 0 * :{nick}")
    start = len(c.lines)
    verdict = c.expect(lambda s: command_of(s) in ("001", "464", "433", "ERROR"), timeout=WAIT)
    if command_of(verdict) == "001":
        c.expect(lambda s: command_of(s) in ("376", "422"))
        c.sync()                        # the account lines come after the welcome burst
        return c, c.lines[start:], True
    if command_of(verdict) == "464":
        c.expect(lambda s: command_of(s) == "ERROR")
    return c, c.lines[start:], False


def test_account_created_on_one_node_logs_in_on_the_other_and_refuses_a_wrong_password(
        cluster, pg_url):  # noqa: F811
    net = cluster(2, limits=LIMITS)
    o1, o2 = irc(net, 0, "obs1"), irc(net, 1, "obs2")
    c, lines, ok = login(net, 0, "acct", "first-pw")
    assert ok, lines
    assert ":n1.test NOTICE acct :Registered new account acct" in lines
    assert [params_of(s)[:3] for s in lines if command_of(s) == "900"] == \
        [["acct", f"acct!acct@{H}", "acct"]]
    assert_logged_in(o2, "acct", "acct")  # once n2 has applied the login
    quit_and_wait(c, "acct", [o1, o2])
    # the same password on n2: logged in, no new account
    c, lines, ok = login(net, 1, "acct", "first-pw")
    assert ok, lines
    assert not [s for s in lines if "Registered new account" in s]
    assert [command_of(s) for s in lines].count("900") == 1
    quit_and_wait(c, "acct", [o1, o2])
    # a wrong password on n2 and on n1: 464 and ERROR, closed, as on one server
    for i in (1, 0):
        c, lines, ok = login(net, i, "acct", "wrong-pw")
        assert not ok
        assert f":n{i + 1}.test 464 acct :Password incorrect" in lines, lines
        assert lines[-1] == f"ERROR :Closing Link: {H} (Bad password)", lines
        assert c.closed_by_server()
    # no password for the account's nick, on n2
    c, lines, ok = login(net, 1, "acct", None)
    assert not ok
    assert ":n2.test 464 acct :Password required: acct is a registered account" in lines, lines
    assert db_rows(pg_url, "SELECT name FROM accounts WHERE name_cf = 'acct'") == [("acct",)]
    assert ison(o1, ["acct"]) == set() and ison(o2, ["acct"]) == set()


def test_concurrent_first_logins_with_different_passwords_on_two_nodes_create_one_account(
        cluster, pg_url):  # noqa: F811
    net = cluster(2, limits=LIMITS)
    o1, o2 = irc(net, 0, "obs1"), irc(net, 1, "obs2")
    names_ = [f"race{k}" for k in range(5)]
    attempts: list[Callable[[], tuple[Client, list[str], bool]]] = []
    for name in names_:
        for i in (0, 1):
            attempts.append(lambda name=name, i=i: login(net, i, name, f"{name}-pw-n{i + 1}"))
    results = at_once(attempts)
    for k, name in enumerate(names_):
        pair = [results[2 * k], results[2 * k + 1]]
        welcomed = [i for i, r in enumerate(pair) if r[2]]
        assert len(welcomed) == 1, (name, pair)
        won = welcomed[0]
        winner_lines = pair[won][1]
        assert f":n{won + 1}.test NOTICE {name} :Registered new account {name}" in winner_lines
        loser_lines = pair[1 - won][1]
        assert not [s for s in loser_lines if "Registered new account" in s]
        loser_codes = [command_of(s) for s in loser_lines]
        assert "464" in loser_codes or "433" in loser_codes, loser_lines
        assert db_rows(pg_url, "SELECT count(*) FROM accounts WHERE name_cf = %s", (name,)) == [(1,)]
        # only the winner's password works afterwards, on both nodes
        pair[1 - won][0].close()
        quit_and_wait(pair[won][0], name, [o1, o2])
        good, bad = f"{name}-pw-n{won + 1}", f"{name}-pw-n{2 - won}"
        for i in (0, 1):
            c, lines, ok = login(net, i, name, bad)
            assert not ok and f":n{i + 1}.test 464 {name} :Password incorrect" in lines, lines
            c.close()
            c, lines, ok = login(net, i, name, good)
            assert ok, lines
            assert not [s for s in lines if "Registered new account" in s]
            quit_and_wait(c, name, [o1, o2])


# -- 7. CHATHISTORY --------------------------------------------------------------------------


def history(c: Client, target: str, limit: int = 100) -> list[tuple[str, str, str, str]]:
    """``CHATHISTORY LATEST target * limit``: (msgid, time, source+command+target, text) each."""
    c.send(f"CHATHISTORY LATEST {target} * {limit}")
    opened = c.expect(lambda s: command_of(s) == "BATCH" and untagged(s).split(" ")[2].startswith("+"))
    ref = untagged(opened).split(" ")[2][1:]
    assert untagged(opened).split(" ")[3:5] == ["chathistory", target], opened
    out: list[tuple[str, str, str, str]] = []
    while True:
        line = c.expect(lambda s: True)
        if command_of(line) == "BATCH":
            assert untagged(line).split(" ")[2] == f"-{ref}", line
            return out
        tags, rest = split_tags(line)
        assert tags.get("batch") == ref, line
        head, text = rest.split(" :", 1)
        out.append((tags["msgid"], tags["time"], head, text))


def test_chathistory_is_the_same_from_every_node_and_from_a_node_added_later(cluster, pg_url):  # noqa: F811
    each = 40          # messages per sender and channel; 2 * each + 1 within CHATHISTORY=100
    channels = ["#h1", "#h2", "#h3"]
    net = cluster(2, limits=LIMITS, server={"autojoin": []})
    reader1 = irc(net, 0, "reader1", caps=READER)
    reader2 = irc(net, 1, "reader2", caps=READER)
    alice, bob = irc(net, 0, "alice"), irc(net, 1, "bob")
    members = {"reader1", "reader2", "alice", "bob"}
    for c in (reader1, reader2, alice, bob):
        c.send("JOIN " + ",".join(channels))
        for _ in channels:
            c.expect_numeric("366")
    for ch in channels:
        wait_names(reader1, ch, members)
        wait_names(reader2, ch, members)

    def is_msg(s: str) -> bool:
        return command_of(s) == "PRIVMSG"

    def entry(s: str) -> tuple[str, str, str, str]:
        return (tags_of(s)["msgid"], tags_of(s)["time"], untagged(s).split(" :", 1)[0], text_of(s))

    h1: dict[str, list[tuple[str, str, str, str]]] = {}
    for ch in channels:
        # alice (n1) and bob (n2) alternate, microseconds apart: the two nodes' messages
        # arrive (their server-time) and reach the log in orders that may differ
        for k in range(each):
            alice.send(f"PRIVMSG {ch} :alice {ch} {k}")
            bob.send(f"PRIVMSG {ch} :bob {ch} {k}")
        live = [[entry(s) for s in collect(c, is_msg, lambda kept: len(kept) == 2 * each)]
                for c in (reader1, reader2)]
        assert live[0] == live[1], f"{ch}: the live messages differ between n1 and n2"
        h1[ch] = history(reader1, ch)
        assert h1[ch] == live[0], f"{ch}: n1's CHATHISTORY differs from what was delivered"
        assert history(reader2, ch) == h1[ch], f"{ch}: n1 and n2 give different CHATHISTORY"
        assert sorted(t for *_, t in h1[ch]) == sorted(
            [f"alice {ch} {k}" for k in range(each)] + [f"bob {ch} {k}" for k in range(each)])
    # only the sender's node writes a message to PostgreSQL (docs/cluster.md "History"),
    # in the batch of the next second: each message once
    total = 2 * each * len(channels)
    assert wait_until(lambda: db_rows(pg_url, "SELECT count(*) FROM history")[0][0] >= total, 5.0)
    time.sleep(1.5)        # docs: messages of the last ~1 s before a node joins may be missing
    rows = db_rows(pg_url, "SELECT msgid, text FROM history")
    assert sorted(rows) == sorted((m, t) for ch in channels for m, _, _, t in h1[ch]), \
        "history rows in PostgreSQL missing or duplicated"
    # a node started now loads the history
    net.add_node()
    reader3 = irc(net, 2, "reader3", caps=READER)
    reader3.send("JOIN " + ",".join(channels))
    for _ in channels:
        reader3.expect_numeric("366")
    h3 = {ch: history(reader3, ch) for ch in channels}
    for ch in channels:
        assert sorted(h3[ch]) == sorted(h1[ch]), f"{ch}: the node added later lacks messages"
    # and it is live: a message after it joined is everyone's latest alike
    alice.send("PRIVMSG #h1 :after n3 joined")
    for c in (reader1, reader2, reader3):
        c.expect("after n3 joined", timeout=WAIT)
    last = [history(c, "#h1")[-1] for c in (reader1, reader2, reader3)]
    assert last[0] == last[1] == last[2] and last[0][3] == "after n3 joined", last
    # the same messages in the same order from every node: the log's order, as n1 and n2 give it
    for ch in channels:
        diff = next((k for k, (a, b) in enumerate(zip(h1[ch], h3[ch], strict=True)) if a != b), None)
        assert diff is None, (
            f"{ch}: the node added later orders CHATHISTORY differently from n1 and n2, first at "
            f"index {diff}: n1 {h1[ch][diff]} vs n3 {h3[ch][diff]}")


def test_messages_sent_while_a_node_starts_reach_its_chathistory(cluster):  # noqa: F811
    """A node loads the history from PostgreSQL before it joins; messages sent around
    that moment were not written yet and are not entries it applies. A few seconds
    after joining it reads them from the database (docs/cluster.md "History")."""
    net = cluster(1, limits=LIMITS, server={"autojoin": []})
    reader1 = irc(net, 0, "reader1", caps=READER)
    alice = irc(net, 0, "alice")
    for c in (reader1, alice):
        c.send("JOIN #busy")
        c.expect_numeric("366")
    stop = threading.Event()
    sent: list[int] = []

    def talk() -> None:  # one message every 50 ms, all through n2's start
        k = 0
        while not stop.is_set() and k < 95:
            alice.send(f"PRIVMSG #busy :line {k}")
            sent.append(k)
            k += 1
            time.sleep(0.05)

    talker = threading.Thread(target=talk, daemon=True)
    talker.start()
    try:
        time.sleep(0.5)
        net.add_node()
        time.sleep(1.0)
    finally:
        stop.set()
        talker.join(timeout=10)
    want = [f"line {k}" for k in sent]
    collect(reader1, lambda s: command_of(s) == "PRIVMSG", lambda kept: len(kept) == len(want))
    reader2 = irc(net, 1, "reader2", caps=READER)
    reader2.send("JOIN #busy")
    reader2.expect_numeric("366")
    assert [t for *_, t in history(reader1, "#busy")] == want

    def complete() -> bool:
        return [t for *_, t in history(reader2, "#busy")] == want
    assert wait_until(complete, WAIT), (
        f"n2 lacks: {sorted(set(want) - {t for *_, t in history(reader2, '#busy')})}")
    assert history(reader2, "#busy") == history(reader1, "#busy")


def test_kill_kline_and_dline_by_an_oper_on_one_node_hold_on_the_other(configured):
    """Operator commands go through the log: a KILL, K-line or D-line set on n1
    disconnects the matching users of n2 and is enforced by n2 at registration
    (docs/cluster.md "What stays per node" says what does not)."""
    net = configured(opers_config(cluster={"node_timeout": DEFAULT_NODE_TIMEOUT},
                                  limits=LIMITS, server={"autojoin": []}))
    boss = RawClient(net.port(0))
    net.clients.append(boss)
    boss.register("boss")
    become_oper(boss)
    bob, carol = irc(net, 1, "bob"), irc(net, 1, "carol")
    for c in (boss, bob, carol):
        c.send("JOIN #o")
        c.expect_numeric("366")
    wait_names(carol, "#o", {"boss", "bob", "carol"})

    boss.send("KILL bob :flooding")
    assert bob.expect(lambda s: command_of(s) == "KILL") == ":boss!boss@127.0.0.1 KILL bob :flooding"
    assert bob.expect(lambda s: command_of(s) == "ERROR") == (
        "ERROR :Closing Link: 127.0.0.1 (Killed (boss (flooding)))")
    assert carol.expect(lambda s: command_of(s) == "QUIT") == (
        ":bob!bob@127.0.0.1 QUIT :Killed (boss (flooding))")
    assert "401" in whois(carol, "bob")

    flooder = irc(net, 1, "flooder")
    flooder.send("JOIN #o")
    flooder.expect_numeric("366")
    wait_names(boss, "#o", {"boss", "carol", "flooder"})
    boss.send("KLINE flooder@127.0.0.1 :Flooding")
    assert flooder.expect_numeric("465").endswith(" :You are banned from this server: Flooding")
    assert flooder.expect(lambda s: command_of(s) == "ERROR") == (
        "ERROR :Closing Link: 127.0.0.1 (K-Lined (Flooding))")
    assert carol.expect(lambda s: command_of(s) == "QUIT" and "flooder" in s) == (
        ":flooder!flooder@127.0.0.1 QUIT :K-Lined (Flooding)")
    refused = RawClient(net.port(1))
    net.clients.append(refused)
    refused.send("NICK othernick")
    refused.send("USER flooder 0 * :again")
    assert refused.expect_numeric("465").endswith(" :You are banned from this server: Flooding")
    assert refused.closed_by_server()
    boss.send("UNKLINE flooder@127.0.0.1")
    boss.expect(lambda s: command_of(s) == "NOTICE" and "K-line" in s)
    assert wait_until(lambda: register_outcome(net, 1, "flooder") == "001", WAIT)

    far = RawClient(net.port(1), source="127.0.0.2")
    net.clients.append(far)
    far.register("far")
    boss.send("DLINE 127.0.0.2 :abuse")
    assert far.expect(lambda s: command_of(s) == "ERROR") == (
        "ERROR :Closing Link: 127.0.0.2 (D-Lined (abuse))")
    assert far.closed_by_server()
    fresh = RawClient(net.port(1), source="127.0.0.2")
    net.clients.append(fresh)
    assert fresh.readline(5) == "ERROR :Closing Link: 127.0.0.2 (D-Lined (abuse))"
    # nothing else was touched: carol on n2 and boss on n1 still talk
    carol.send("PRIVMSG #o :still here")
    boss.expect(lambda s: s.endswith("PRIVMSG #o :still here"))
    boss.send("PRIVMSG #o :and here")
    carol.expect(lambda s: s.endswith("PRIVMSG #o :and here"))


def register_outcome(net: Cluster, i: int, nick: str) -> str:
    """Register ``nick`` on node ``i`` and quit: the numeric or ERROR it got first."""
    c = RawClient(net.port(i))
    try:
        c.send(f"NICK {nick}")
        c.send(f"USER {nick} 0 * :{nick}")
        line = c.expect(lambda s: command_of(s) in ("001", "465", "433", "ERROR"), 5)
        return command_of(line)
    finally:
        c.send("QUIT")
        c.close()


# -- 8. the SEND dialect ---------------------------------------------------------------------


def simple(net: Cluster, i: int, name: str) -> Client:
    """A SEND-dialect user on node ``i``'s IRC port (the first line decides the dialect)."""
    c = raw(net, i)
    c.send(f"HELLO-FROM {name}\n".encode())
    assert c.readline() == f"HELLO {name}"
    return c


def list_ok(c: Client) -> list[str]:
    c.send(b"LIST\n")
    line = c.expect(lambda s: s.startswith("LIST-OK "))
    return line[len("LIST-OK "):].split(",")


def test_send_dialect_users_and_irc_users_on_different_nodes_talk_both_ways(cluster):  # noqa: F811 - fixture
    net = cluster(2, limits=LIMITS)
    bob = irc(net, 1, "bob")
    sam = simple(net, 0, "sam")
    wait_online(bob, ["sam"])
    assert list_ok(sam) == ["bob", "sam"]
    sue = simple(net, 1, "sue")
    wait_online(bob, ["sue"])
    assert wait_until(lambda: list_ok(sam) == ["bob", "sam", "sue"], WAIT)
    assert list_ok(sue) == ["bob", "sam", "sue"]
    # SEND from n1 to an IRC user on n2, and back
    sam.send(b"SEND bob hello from the course protocol\n")
    assert sam.expect(lambda s: s in ("SEND-OK", "BAD-DEST-USER", "BAD-RQST-BODY")) == "SEND-OK"
    assert bob.expect(lambda s: command_of(s) == "PRIVMSG", timeout=WAIT) == \
        f":sam!sam@{H} PRIVMSG bob :hello from the course protocol"
    bob.send("PRIVMSG sam :hello from irc")
    assert sam.expect(lambda s: s.startswith("DELIVERY "), timeout=WAIT) == "DELIVERY bob hello from irc"
    # SEND-dialect user to SEND-dialect user across nodes
    sue.send(b"SEND sam psst\n")
    assert sue.expect(lambda s: s in ("SEND-OK", "BAD-DEST-USER", "BAD-RQST-BODY")) == "SEND-OK"
    assert sam.expect(lambda s: s.startswith("DELIVERY "), timeout=WAIT) == "DELIVERY sue psst"
    # errors, as documented: offline target, empty message; a name online on another node
    sam.send(b"SEND nobody hi\n")
    assert sam.expect(lambda s: s in ("SEND-OK", "BAD-DEST-USER", "BAD-RQST-BODY")) == "BAD-DEST-USER"
    sam.send(b"SEND bob    \n")
    assert sam.expect(lambda s: s in ("SEND-OK", "BAD-DEST-USER", "BAD-RQST-BODY")) == "BAD-RQST-BODY"
    dup = raw(net, 1)
    dup.send(b"HELLO-FROM sam\n")
    assert dup.readline() == "IN-USE"
    dup.send(b"HELLO-FROM bob\n")
    assert dup.readline() == "IN-USE"
    # an IRC user on n2 sees the SEND-dialect user of n1 in WHOIS
    assert params_of(whois(bob, "sam")["312"][0])[2] == "n1.test"
    # after sam leaves n1, SEND to it from n2 fails
    sam.close()
    wait_online(bob, ["sam"], online=False)
    sue.send(b"SEND sam still there?\n")
    assert sue.expect(lambda s: s in ("SEND-OK", "BAD-DEST-USER", "BAD-RQST-BODY")) == "BAD-DEST-USER"
    assert list_ok(sue) == ["bob", "sue"]
    assert [s for s in bob.sync() + bob.lines if "still there" in s] == []


# -- 9. pseudo-users exist once --------------------------------------------------------------


def test_echobot_is_one_user_of_the_network_and_answers_exactly_once(configured):
    text = config_text()
    assert "echobot = false" in text
    net = configured(text.replace("echobot = false", "echobot = true"))
    alice, bob = irc(net, 0, "alice"), irc(net, 1, "bob")
    wait_online(alice, ["bob"])
    servers = []
    for c in (alice, bob):
        info = whois(c, "echobot")
        assert "401" not in info and "311" in info and "335" in info, info
        servers.append(params_of(info["312"][0])[2])
    # every node has its own copy of echobot (docs/cluster.md), each shown on its own
    # server; the user itself is the same
    assert servers == ["n1.test", "n2.test"], servers
    assert [params_of(whois(c, "echobot")["311"][0])[1:] for c in (alice, bob)] == \
        [["echobot", "echobot", H, "*"]] * 2
    views = [names(c, "#general") for c in (alice, bob)]
    assert views[0] == views[1]
    assert [n.lstrip("@+") for n in views[0]].count("echobot") == 1, views[0]
    lus = {command_of(s): s for s in numeric_reply(alice, "LUSERS", ["266"])}
    # LUSERS counts the users behind connections (alice, bob), not echobot (as Ergo)
    assert text_of(lus["251"]).startswith("There are 2 users"), lus["251"]
    for c, who in ((bob, "bob"), (alice, "alice")):
        c.send(f"PRIVMSG echobot :echo me {who}")
        got = c.expect(lambda s: command_of(s) == "PRIVMSG", timeout=WAIT)
        assert untagged(got).endswith(f" PRIVMSG {who} :echo me {who}"), got
        assert untagged(got).startswith(":echobot!")
    time.sleep(0.5)
    for c, who in ((bob, "bob"), (alice, "alice")):
        c.sync()
        answers = [s for s in c.lines if command_of(s) == "PRIVMSG" and "echo me" in s]
        assert len(answers) == 1, f"{who} got {answers}"
    # a SEND-dialect user on n2 gets one DELIVERY back
    sam = simple(net, 1, "sam")
    sam.send(b"SEND echobot ping\n")
    assert sam.expect(lambda s: s in ("SEND-OK", "BAD-DEST-USER")) == "SEND-OK"
    assert sam.expect(lambda s: s.startswith("DELIVERY "), timeout=WAIT) == "DELIVERY echobot ping"
    sam.send(b"SEND sam me\n")
    assert sam.expect(lambda s: s.startswith("DELIVERY ")) == "DELIVERY sam me"
    assert [s for s in sam.lines if s.startswith("DELIVERY echobot")] == ["DELIVERY echobot ping"]
    assert list_ok(sam).count("echobot") == 1


def test_nickserv_and_chanserv_on_one_node_take_effect_on_the_other(configured):
    text = config_text(server={"autojoin": []})
    assert "[services]\nenabled = false" in text
    net = configured(text.replace("[services]\nenabled = false", "[services]\nenabled = true"))
    alice = irc(net, 0, "alice")
    obs = irc(net, 1, "obs")
    for c in (alice, obs):
        for svc in ("NickServ", "ChanServ"):
            assert "311" in whois(c, svc)
    alice.send("PRIVMSG NickServ :REGISTER s3cret-pw")
    alice.expect_numeric("900", timeout=WAIT)
    assert_logged_in(obs, "alice", "alice")
    # ChanServ REGISTER on n1
    bob = irc(net, 0, "bob")
    alice.send("JOIN #reg")
    alice.expect_numeric("366")
    alice.send("CS REGISTER #reg")
    notice = alice.expect(lambda s: command_of(s) == "NOTICE" and s.startswith(":ChanServ!"), timeout=WAIT)
    bob.send("JOIN #reg")
    bob.expect_numeric("366")
    # alice leaves n1 and comes back on n2 with her password: ChanServ ops her there
    quit_and_wait(alice, "alice", [obs, bob])
    c, lines, ok = login(net, 1, "alice", "s3cret-pw")
    assert ok, lines
    assert not [s for s in lines if "Registered new account" in s]
    c.send("JOIN #reg")
    seen = bob.expect(lambda s: command_of(s) == "MODE", timeout=WAIT)
    assert untagged(seen).startswith(":ChanServ!ChanServ@"), seen
    assert untagged(seen).endswith(" MODE #reg +o alice"), seen
    mode = c.expect(lambda s: command_of(s) == "MODE" and "+o alice" in s, timeout=WAIT)
    assert untagged(mode).startswith(":ChanServ!ChanServ@") and untagged(mode).endswith(" MODE #reg +o alice")
    assert "@alice" in wait_names(bob, "#reg", {"alice", "bob"})
    assert names(bob, "#reg") == names(c, "#reg")
    assert "#reg" in notice and "register" in notice.lower(), notice
    # NickServ IDENTIFY on n2 for a guest nick; n1 sees the login
    ally = irc(net, 1, "ally")
    ally.send("NS IDENTIFY alice s3cret-pw")
    ally.expect_numeric("900", timeout=WAIT)
    assert_logged_in(bob, "ally", "alice")
    # a wrong password is refused, on n1
    eve = irc(net, 0, "eve")
    eve.send("NS IDENTIFY alice wrong")
    assert "Invalid account credentials" in eve.expect(lambda s: s.startswith(":NickServ!"), timeout=WAIT)
    assert "330" not in whois(obs, "eve")


# -- 10. bad input -----------------------------------------------------------------------------


def test_bad_input_in_cluster_mode_gets_its_answer_and_harms_nobody(cluster):  # noqa: F811 - fixture
    net = cluster(2, limits=LIMITS)
    xavier = irc(net, 0, "xavier")
    wendy = irc(net, 1, "wendy")
    wait_names(xavier, "#general", {"xavier", "wendy"})
    marks = iter(range(1000))

    def still_fine(sender: Client, sender_nick: str, watcher: Client) -> None:
        """The sender's next message reaches the watcher on the other node, nothing bad before it."""
        token = f"after-{next(marks)}"
        sender.send(f"PRIVMSG #general :{token}")
        line = watcher.expect(lambda s: command_of(s) == "PRIVMSG", timeout=WAIT)
        assert line == f":{sender_nick}!{sender_nick}@{H} PRIVMSG #general :{token}", line

    def answer(c: Client, data: bytes, code: str) -> str:
        c.send(data)
        return c.expect(lambda s: command_of(s) == code or command_of(s).isdigit()
                        or command_of(s) == "FAIL")

    cases: list[tuple[bytes, str, str]] = [
        (b"PRIVMSG #general :" + b"c" * 600 + b"\r\n", "417", ":n1.test 417 xavier :Input line was too long"),
        (b"@a=" + b"t" * 4200 + b" PRIVMSG #general :tagged too much\r\n", "417",
         ":n1.test 417 xavier :Input line was too long"),
        (b"PRIVMSG #general :caf\xe9 \xff\xfe\r\n", "FAIL",
         ":n1.test FAIL PRIVMSG INVALID_UTF8 :Message rejected, contains invalid UTF-8"),
        (b"FROBNICATE a b c\r\n", "421", ":n1.test 421 xavier FROBNICATE :Unknown command"),
        (b"JOIN nochannel\r\n", "403", ""),
        (b"JOIN #caf\xe9\r\n", "403", ""),
        (b"PRIVMSG #general\r\n", "412", ":n1.test 412 xavier :No text to send"),
        (b"PRIVMSG\r\n", "411", ""),
        (b"PRIVMSG nobody :x\r\n", "401", ""),
        (b"NICK 9bad\r\n", "432", ""),
        (b"MODE #nosuch +o xavier\r\n", "403", ""),
        (b"\r\n\n\r\n", "", ""),
    ]
    for data, code, exact in cases:
        if code:
            line = answer(xavier, data, code)
            assert command_of(line) == code, (data[:40], line)
            if exact:
                assert line == exact, (data[:40], line)
        else:
            xavier.send(data)
        still_fine(xavier, "xavier", wendy)
    # an unterminated 10000-byte line: one 417 before its end; then the node goes on
    xavier.send(b"PRIVMSG #general :" + b"d" * 10_000)
    assert xavier.expect_numeric("417") == ":n1.test 417 xavier :Input line was too long"
    time.sleep(0.1)
    xavier.send(b"\r\n")
    still_fine(xavier, "xavier", wendy)
    # CR and NUL inside a line are never relayed as a forged line
    xavier.send(b"PRIVMSG #general :hi\r:wendy!wendy@127.0.0.1 PRIVMSG #general :forged\r\n")
    xavier.send(b"PRIVMSG #general :nul\x00here\r\n")
    # (docs/protocol.md "Wire format": CR and NUL inside a line are removed)
    assert wendy.expect(lambda s: command_of(s) == "PRIVMSG", timeout=WAIT) == \
        f":xavier!xavier@{H} PRIVMSG #general :hi:wendy!wendy@127.0.0.1 PRIVMSG #general :forged"
    assert wendy.expect(lambda s: command_of(s) == "PRIVMSG", timeout=WAIT) == \
        f":xavier!xavier@{H} PRIVMSG #general :nulhere"
    still_fine(xavier, "xavier", wendy)
    # the other direction: bad input on n2, watcher on n1
    for data, code in ((b"FROBNICATE\r\n", "421"), (b"PRIVMSG #general\r\n", "412"),
                       (b"PRIVMSG #general :\xc3\x28\r\n", "FAIL"),
                       (b"KICK #general xavier :not an op\r\n", "482"),
                       (b"PRIVMSG #general :" + b"e" * 700 + b"\r\n", "417")):
        line = answer(wendy, data, code)
        assert command_of(line) == code, (data[:40], line)
        assert line.startswith(":n2.test "), line
        still_fine(wendy, "wendy", xavier)
    # before registration
    pre = raw(net, 1)
    pre.send("JOIN #general")
    assert pre.expect_numeric("451") == ":n2.test 451 * :You have not registered"
    pre.send(b"\xff\xfe\r\n")
    pre.send("PRIVMSG #general :sneaky")
    pre.expect_numeric("451")
    still_fine(xavier, "xavier", wendy)
    # nothing rejected was relayed to anyone, and both nodes are alive
    wendy.sync()
    xavier.sync()
    relayed = [text_of(s) for s in wendy.lines if command_of(s) == "PRIVMSG"]
    assert all(t.startswith(("after-", "hi", "nul")) for t in relayed), relayed
    assert [t for t in relayed if t.startswith(("hi", "nul"))] != [], relayed
    assert not [s for s in wendy.lines if "\r" in s or "\x00" in s]
    assert not [s for s in wendy.lines if s.startswith(":wendy!") and command_of(s) == "PRIVMSG"]
    assert not [s for s in wendy.lines
                if "\ufffd" in s or "tagged too much" in s or "cccc" in s or "dddd" in s]
    assert [text_of(s) for s in xavier.lines if command_of(s) == "PRIVMSG"] == \
        [t for t in (text_of(s) for s in xavier.lines if command_of(s) == "PRIVMSG") if t.startswith("after-")]
    assert all(node.alive() for node in net.nodes)


# -- 11. migrations ---------------------------------------------------------------------------


def test_nodes_started_on_an_empty_database_migrate_its_schema_once(cluster, pg_url):  # noqa: F811
    assert db_rows(pg_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
    net = cluster(2, limits=LIMITS)
    tables = {r[0] for r in db_rows(pg_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"schema_migrations", "accounts", "account_seen", "history", "server_bans",
            "registered_channels"} <= tables, tables
    applied = db_rows(pg_url, "SELECT version, name FROM schema_migrations ORDER BY version")
    assert applied == [(m.version, m.name) for m in MIGRATIONS]
    # a third node finds the schema current: nothing applied again, and it serves
    net.add_node()
    assert db_rows(pg_url, "SELECT version, name FROM schema_migrations ORDER BY version") == applied
    c = irc(net, 2, "late", password="late-pw")
    assert any(command_of(s) == "900" for s in c.lines)
    assert db_rows(pg_url, "SELECT name FROM accounts") == [("late",)]
    with contextlib.suppress(Exception):
        c.quit()
