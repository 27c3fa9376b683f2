"""CHATHISTORY (IRCv3 draft/chathistory), docs/protocol.md section 2 "CHATHISTORY".

Every subcommand with ``msgid=`` and ``timestamp=`` references, the
``CHATHISTORY=`` limit, oldest-first order and batch framing, direct-message
history between accounts and who may read what, the standard-reply errors,
persistence across a restart, ``[history] autoreplay_lines`` and ``[history]
enabled = false``. Raw sockets against the real server subprocess.
"""

from __future__ import annotations

import itertools
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.ircv3util import (
    QUIET_TOML,
    SERVER,
    Client,
    check_msgid,
    check_time,
    command_of,
    connect,
    join,
    module_server,
    register_account,
    split_tags,
    src,
    tags_of,
    untagged,
)
from tests.support import ServerProcess

pytestmark = pytest.mark.timeout(30)

LIMIT = 5
srv = module_server(QUIET_TOML + f"\n[history]\nchathistory_limit = {LIMIT}\n")
READER = ["batch", "server-time", "message-tags", "draft/chathistory"]


def post(sender: Client, target: str, texts: list[str], watcher: Client,
         command: str = "PRIVMSG") -> list[str]:
    """Send ``texts`` ~20 ms apart; return the lines ``watcher`` got (with time and msgid)."""
    for text in texts:
        sender.send(f"{command} {target} :{text}")
        sender.sync()
        time.sleep(0.02)
    got = watcher.sync()
    assert [untagged(x).split(" :", 1)[1] for x in got] == texts, got
    return got


def msgid(line: str) -> str:
    return check_msgid(line)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def ts(line: str, shift_ms: int = 0) -> str:
    """``timestamp=`` of ``line``'s time tag, moved by ``shift_ms`` milliseconds."""
    t = datetime.strptime(check_time(line), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return "timestamp=" + _iso(t + timedelta(milliseconds=shift_ms))


def query(c: Client, *params: str) -> list[str]:
    c.send("CHATHISTORY " + " ".join(params))
    return c.sync()


def batch(lines: list[str], target: str, kind: str = "chathistory") -> list[str]:
    """Check the framing ``BATCH +id <kind> <target>`` ... ``BATCH -id``; return the inner lines."""
    assert len(lines) >= 2, lines
    head = lines[0]
    assert not head.startswith("@"), head
    parts = head.split(" ")
    assert parts[:2] == [f":{SERVER}", "BATCH"] and parts[2].startswith("+"), head
    ref = parts[2][1:]
    assert ref and parts[3:] == ([kind, target] if target else [kind]), head
    assert lines[-1] == f":{SERVER} BATCH -{ref}", lines
    inner = lines[1:-1]
    for line in inner:
        assert tags_of(line).get("batch") == ref, line
    return inner


def texts(lines: list[str]) -> list[str]:
    return [untagged(x).split(" :", 1)[1] for x in lines]


def same_messages(history: list[str], live: list[str]) -> None:
    """History lines equal the live ones: same line, same time and msgid."""
    assert [untagged(x) for x in history] == [untagged(x) for x in live]
    for h, lv in zip(history, live, strict=True):
        th, tl = tags_of(h), tags_of(lv)
        assert th["time"] == tl["time"] and th["msgid"] == tl["msgid"], (h, lv)


def fail(sub: str, code: str, *params: str) -> str:
    return " ".join([f":{SERVER} FAIL CHATHISTORY {code} {sub}", *params])


# -- advertised ------------------------------------------------------------------------------

def test_cap_and_isupport_advertise_chathistory(clients):
    c = clients.raw()
    c.send("CAP LS 302")
    ls = c.sync()[0]
    assert " draft/chathistory " in ls + " "
    c.send("CAP END")
    c.send("NICK chisup")
    c.send("USER chisup 0 * :x")
    c.expect(lambda x: command_of(x) in ("376", "422"))
    tokens = " ".join(x for x in c.lines if command_of(x) == "005").split(" ")
    assert f"CHATHISTORY={LIMIT}" in tokens and "MSGREFTYPES=msgid,timestamp" in tokens


# -- the subcommands -----------------------------------------------------------------------------

_channels = itertools.count(1)


@pytest.fixture
def eight(clients):
    """A new channel with eight messages m0..m7 from bob: (reader alice, live lines, channel)."""
    chan = f"#hist{next(_channels)}"
    alice = clients("chalice", READER)
    bob = clients("chbob")
    join(chan, alice, bob)
    live = post(bob, chan, [f"m{i}" for i in range(7)], alice)
    live += post(bob, chan, ["m7"], alice, command="NOTICE")  # NOTICE is kept too
    return alice, live, chan


def test_latest_star_order_framing_and_limit(eight):
    alice, live, ch = eight
    inner = batch(query(alice, f"LATEST {ch} * 3"), ch)
    same_messages(inner, live[5:])
    assert untagged(inner[0]) == f":{src('chbob')} PRIVMSG {ch} :m5"
    assert untagged(inner[2]) == f":{src('chbob')} NOTICE {ch} :m7"
    for line in inner:
        assert set(tags_of(line)) == {"batch", "time", "msgid"}, line
    # More than CHATHISTORY= asked for: at most CHATHISTORY= returned (the latest ones).
    same_messages(batch(query(alice, f"LATEST {ch} * 50"), ch), live[-LIMIT:])
    # A second query gets a new batch id.
    first, second = query(alice, f"LATEST {ch} * 1"), query(alice, f"LATEST {ch} * 1")
    assert first[0] != second[0]


def test_latest_with_a_reference(eight):
    alice, live, ch = eight
    same_messages(batch(query(alice, f"LATEST {ch} msgid={msgid(live[4])} 10"), ch),
                  live[5:])
    # Six messages after m1, limit 5: the latest five.
    same_messages(batch(query(alice, f"LATEST {ch} msgid={msgid(live[1])} 10"), ch),
                  live[3:])
    same_messages(batch(query(alice, f"LATEST {ch} {ts(live[4], 1)} 2"), ch), live[6:])


def test_before_and_after(eight):
    alice, live, ch = eight
    same_messages(batch(query(alice, f"BEFORE {ch} msgid={msgid(live[5])} 2"), ch),
                  live[3:5])
    same_messages(batch(query(alice, f"BEFORE {ch} {ts(live[5])} 2"), ch), live[3:5])
    same_messages(batch(query(alice, f"BEFORE {ch} msgid={msgid(live[7])} 50"), ch),
                  live[2:7])
    assert batch(query(alice, f"BEFORE {ch} msgid={msgid(live[0])} 5"), ch) == []
    same_messages(batch(query(alice, f"AFTER {ch} msgid={msgid(live[2])} 3"), ch),
                  live[3:6])
    same_messages(batch(query(alice, f"AFTER {ch} {ts(live[2], 1)} 3"), ch), live[3:6])
    same_messages(batch(query(alice, f"AFTER {ch} msgid={msgid(live[0])} 50"), ch),
                  live[1:6])
    assert batch(query(alice, f"AFTER {ch} msgid={msgid(live[7])} 5"), ch) == []


def test_around(eight):
    alice, live, ch = eight
    same_messages(batch(query(alice, f"AROUND {ch} {ts(live[4])} 4"), ch), live[2:6])
    got = batch(query(alice, f"AROUND {ch} {ts(live[4])} 3"), ch)
    assert "m4" in texts(got) and len(got) == 3
    assert texts(got) == sorted(texts(got))


def test_around_a_msgid_includes_that_message(eight):
    """AROUND msgid=m4 4: "about half before and half from ref on", so m2 m3 m4 m5."""
    alice, live, ch = eight
    same_messages(batch(query(alice, f"AROUND {ch} msgid={msgid(live[4])} 4"), ch), live[2:6])


def test_between_in_both_orders(eight):
    alice, live, ch = eight
    a, b = f"msgid={msgid(live[1])}", f"msgid={msgid(live[6])}"
    same_messages(batch(query(alice, f"BETWEEN {ch} {a} {b} 10"), ch), live[2:6])
    same_messages(batch(query(alice, f"BETWEEN {ch} {b} {a} 10"), ch), live[2:6])
    a, b = ts(live[1], 1), ts(live[6])
    same_messages(batch(query(alice, f"BETWEEN {ch} {a} {b} 10"), ch), live[2:6])
    # The limit counts from the first reference.
    a, b = f"msgid={msgid(live[0])}", f"msgid={msgid(live[7])}"
    same_messages(batch(query(alice, f"BETWEEN {ch} {a} {b} 3"), ch), live[1:4])
    same_messages(batch(query(alice, f"BETWEEN {ch} {b} {a} 3"), ch), live[4:7])


def test_timestamp_references_are_exclusive_of_the_message_they_come_from(eight):
    """A reference built from a message's own ``time`` tag excludes that message.

    The spec's references are exclusive; a client's notion of a message's time is
    its ``time`` tag (millisecond precision), so AFTER / LATEST / BETWEEN starting
    at ``timestamp=<time of m2>`` must not return m2 again.
    """
    alice, live, ch = eight
    assert texts(batch(query(alice, f"AFTER {ch} {ts(live[2])} 2"), ch)) == ["m3", "m4"]
    assert texts(batch(query(alice, f"LATEST {ch} {ts(live[5])} 5"), ch)) == ["m6", "m7"]
    assert texts(batch(query(alice, f"BETWEEN {ch} {ts(live[2])} {ts(live[5])} 5"),
                       ch)) == ["m3", "m4"]


def test_history_for_a_client_without_batch(clients):
    alice = clients("chnb", ["server-time", "message-tags"])
    bob = clients("chnbbob")
    join("#nobatch", alice, bob)
    live = post(bob, "#nobatch", ["x1", "x2"], alice)
    lines = query(alice, "LATEST #nobatch * 5")
    assert not [x for x in lines if command_of(x) == "BATCH"], lines
    same_messages(lines, live)
    for line in lines:
        assert "batch" not in tags_of(line)


# -- TARGETS, direct messages, access ---------------------------------------------------------

def test_targets_lists_channels_and_conversations_with_their_latest_time(clients):
    register_account(clients.port, "tgalice", "pw-a")
    register_account(clients.port, "tgbob", "pw-b")
    alice = clients("tgalice", READER, password="pw-a")
    bob = clients("tgbob", READER, password="pw-b")
    start = "timestamp=" + _iso(datetime.now(UTC) - timedelta(seconds=5))
    join("#tg1", alice, bob)
    join("#tg2", alice, bob)
    l1 = post(bob, "#tg1", ["a"], alice)
    dm = post(bob, "tgalice", ["private"], alice)
    l2 = post(bob, "#tg2", ["b"], alice)
    end = ts(l2[-1], 1000)
    inner = batch(query(alice, f"TARGETS {start} {end} 10"), "", kind="draft/chathistory-targets")
    assert sorted(untagged(x) for x in inner) == sorted([  # any order
        f":{SERVER} CHATHISTORY TARGETS #tg1 {ts(l1[0])}",
        f":{SERVER} CHATHISTORY TARGETS #tg2 {ts(l2[0])}",
        f":{SERVER} CHATHISTORY TARGETS tgbob {ts(dm[0])}",
    ])
    # Only the period asked for.
    inner = batch(query(alice, f"TARGETS {ts(dm[0], 1)} {end} 10"), "",
                  kind="draft/chathistory-targets")
    assert [untagged(x) for x in inner] == [f":{SERVER} CHATHISTORY TARGETS #tg2 {ts(l2[0])}"]


def test_targets_are_ordered_by_latest_time_use_the_latest_and_keep_the_limits(clients):
    # #to1 gets the first and a later message, so ordering by the first
    # message, by the earliest time or by when a target was first seen all
    # differ from ordering by the latest message.
    register_account(clients.port, "toalice", "pw-a")
    register_account(clients.port, "tobob", "pw-b")
    alice = clients("toalice", READER, password="pw-a")
    bob = clients("tobob", READER, password="pw-b")
    chans = [f"#to{i}" for i in range(1, 7)]
    for chan in chans:
        join(chan, alice, bob)
    start = "timestamp=" + _iso(datetime.now(UTC) - timedelta(seconds=5))
    first = post(bob, "#to1", ["to1 first"], alice)
    to2 = post(bob, "#to2", ["to2"], alice)
    dm = post(bob, "toalice", ["private"], alice)
    latest1 = post(bob, "#to1", ["to1 latest"], alice)
    to3 = post(bob, "#to3", ["to3"], alice)
    end = ts(to3[-1], 1000)
    expected = [
        f":{SERVER} CHATHISTORY TARGETS #to2 {ts(to2[0])}",
        f":{SERVER} CHATHISTORY TARGETS tobob {ts(dm[0])}",
        f":{SERVER} CHATHISTORY TARGETS #to1 {ts(latest1[0])}",
        f":{SERVER} CHATHISTORY TARGETS #to3 {ts(to3[0])}",
    ]
    assert ts(first[0]) != ts(latest1[0])
    inner = batch(query(alice, f"TARGETS {start} {end} 5"), "", kind="draft/chathistory-targets")
    assert [untagged(x) for x in inner] == expected
    # The client's limit: the targets whose latest messages are the oldest.
    inner = batch(query(alice, f"TARGETS {start} {end} 2"), "", kind="draft/chathistory-targets")
    assert [untagged(x) for x in inner] == expected[:2]
    # The server's limit (ISUPPORT CHATHISTORY=5) caps a larger request.
    more = post(bob, "#to4", ["to4"], alice) + post(bob, "#to5", ["to5"], alice)
    end = ts(more[-1], 1000)
    inner = batch(query(alice, f"TARGETS {start} {end} 100"), "",
                  kind="draft/chathistory-targets")
    assert len(inner) == LIMIT
    assert [untagged(x) for x in inner] == [*expected, f":{SERVER} CHATHISTORY TARGETS #to4 "
                                            f"{ts(more[0])}"]
    # A window ending before #to1's latest message gives its latest one inside.
    inner = batch(query(alice, f"TARGETS {start} {ts(latest1[0])} 5"), "",
                  kind="draft/chathistory-targets")
    assert [untagged(x) for x in inner] == [
        f":{SERVER} CHATHISTORY TARGETS #to1 {ts(first[0])}",
        f":{SERVER} CHATHISTORY TARGETS #to2 {ts(to2[0])}",
        f":{SERVER} CHATHISTORY TARGETS tobob {ts(dm[0])}",
    ]
    # Bob, in the same channels, gets the same first target; a third account
    # sees neither the channels it is not in nor the others' conversation.
    inner = batch(query(bob, f"TARGETS {start} {end} 1"), "", kind="draft/chathistory-targets")
    assert [untagged(x) for x in inner] == [expected[0]]
    register_account(clients.port, "tocarol", "pw-c")
    carol = clients("tocarol", READER, password="pw-c")
    assert batch(query(carol, f"TARGETS {start} {end} 5"), "",
                 kind="draft/chathistory-targets") == []


def test_direct_message_history_between_accounts(clients):
    register_account(clients.port, "dmalice", "pw-a")
    register_account(clients.port, "dmbob", "pw-b")
    alice = clients("dmalice", READER, password="pw-a")
    bob = clients("dmbob", READER, password="pw-b")
    live = post(alice, "dmbob", ["hello bob"], bob)
    live += post(bob, "dmalice", ["hello alice"], alice)
    for reader, other in ((alice, "dmbob"), (bob, "dmalice")):
        inner = batch(query(reader, f"LATEST {other} * 10"), other)
        assert [untagged(x) for x in inner] == [
            f":{src('dmalice')} PRIVMSG dmbob :hello bob",
            f":{src('dmbob')} PRIVMSG dmalice :hello alice",
        ]
        for h, lv in zip(inner, live, strict=True):
            assert tags_of(h)["msgid"] == tags_of(lv)["msgid"]
            assert tags_of(h)["time"] == tags_of(lv)["time"]
    # A guest has no direct-message history at all.
    guest = clients("dmguest", READER)
    assert query(guest, "LATEST dmalice * 10") == [
        fail("LATEST", "INVALID_TARGET", "dmalice", ":No such target or no access")]
    # Messages with a guest are not kept.
    post(guest, "dmalice", ["from a guest"], alice)
    assert batch(query(alice, "LATEST dmguest * 10"), "dmguest") == []


def test_no_history_of_a_channel_you_are_not_in(clients):
    alice = clients("nmalice", READER)
    bob = clients("nmbob")
    join("#members", alice, bob)
    post(bob, "#members", ["secret"], alice)
    outsider = clients("nmout", READER)
    assert query(outsider, "LATEST #members * 10") == [
        fail("LATEST", "INVALID_TARGET", "#members", ":No such target or no access")]
    assert query(outsider, "BEFORE #nosuchchan timestamp=2030-01-01T00:00:00.000Z 10") == [
        fail("BEFORE", "INVALID_TARGET", "#nosuchchan", ":No such target or no access")]
    # After leaving, no more access.
    bob.send("PART #members")
    bob.sync()
    bob.send("CHATHISTORY LATEST #members * 10")
    assert bob.sync() == [
        fail("LATEST", "INVALID_TARGET", "#members", ":No such target or no access")]


def test_errors(clients):
    c = clients("cherr", READER)
    c.send("JOIN #err")
    c.sync()
    assert query(c, "FROB #err * 10") == [
        f":{SERVER} FAIL CHATHISTORY UNKNOWN_COMMAND FROB :Unknown subcommand"]
    for params in ("LATEST #err * many", "LATEST #err *", "BEFORE #err junk 10",
                   "AFTER #err msgid=doesnotexist 10", "AROUND #err timestamp=yesterday 10",
                   "BETWEEN #err * 10", "LATEST #err msgid= 10"):
        lines = query(c, params)
        sub = params.split(" ")[0]
        assert len(lines) == 1 and lines[0].startswith(fail(sub, "INVALID_PARAMS") + " :"), (
            params, lines)
    for params in ("TARGETS msgid=x timestamp=2030-01-01T00:00:00.000Z 5",
                   "TARGETS timestamp=2020-01-01T00:00:00.000Z", "TARGETS a b c"):
        lines = query(c, params)
        assert len(lines) == 1 and lines[0].startswith(fail("TARGETS", "INVALID_PARAMS") + " :"), (
            params, lines)
    c.send("CHATHISTORY")
    assert c.sync() == [f":{SERVER} 461 cherr CHATHISTORY :Not enough parameters"]


# -- persistence ---------------------------------------------------------------------------------

# Only registered channels exist after a restart, and only they keep their history
# (an unregistered channel's history goes with it: test_channel_trust.py).
KEPT_TOML = QUIET_TOML.replace("autojoin = []", 'autojoin = []\nregistered_channels = ["#keep", "#last"]')
assert KEPT_TOML != QUIET_TOML


def test_history_survives_a_restart(tmp_path):
    # Messages older than a second are on disk (the periodic flush), even after a SIGKILL.
    data = tmp_path / "data"
    first = ServerProcess(data, config_text=KEPT_TOML).start()
    try:
        alice = connect(first.port, "rsalice", READER, password="pw-a")
        bob = connect(first.port, "rsbob", READER, password="pw-b")
        join("#keep", alice, bob)
        live = post(bob, "#keep", ["before restart 1", "before restart 2"], alice)
        dm = post(alice, "rsbob", ["a direct one"], bob)
        time.sleep(1.6)
        alice.close()
        bob.close()
    finally:
        first.stop(signal.SIGKILL)
    second = ServerProcess(data, config_text=KEPT_TOML).start()
    try:
        alice = connect(second.port, "rsalice", READER, password="pw-a")
        bob = connect(second.port, "rsbob", READER, password="pw-b")
        join("#keep", alice, bob)
        same_messages(batch(query(alice, "LATEST #keep * 10"), "#keep"), live)
        same_messages(batch(query(bob, "LATEST rsalice * 10"), "rsalice"), dm)
        # References into the old history still work.
        same_messages(batch(query(alice, f"AFTER #keep msgid={msgid(live[0])} 10"), "#keep"),
                      live[1:])
        alice.close()
        bob.close()
    finally:
        second.stop()


def test_history_sent_just_before_sigterm_survives_the_restart(tmp_path):
    """Shutdown writes what the periodic flush has not written yet (docs: "at shutdown")."""
    data = tmp_path / "data"
    first = ServerProcess(data, config_text=KEPT_TOML).start()
    try:
        # Logged in with PASS, as usual: the server's worker threads have been used.
        alice = connect(first.port, "stalice", READER, password="pw-a")
        bob = connect(first.port, "stbob", password="pw-b")
        join("#last", alice, bob)
        live = post(bob, "#last", ["the last words"], alice)
    finally:
        assert first.stop(signal.SIGTERM) == 0  # at once, within the flush second
    second = ServerProcess(data, config_text=KEPT_TOML).start()
    try:
        alice = connect(second.port, "stalice", READER, password="pw-a")
        join("#last", alice)
        got = batch(query(alice, "LATEST #last * 10"), "#last")
        assert texts(got) == ["the last words"], "lost; first server's log: " + first.log()[-120:]
        same_messages(got, live)
        alice.close()
    finally:
        second.stop()


def test_chathistory_batch_nested_in_a_labeled_response(clients):
    alice = clients("lbalice", READER + ["labeled-response"])
    bob = clients("lbbob")
    join("#lbl", alice, bob)
    live = post(bob, "#lbl", ["one", "two"], alice)
    alice.send("@label=h1 CHATHISTORY LATEST #lbl * 5")
    lines = alice.sync()
    assert len(lines) == 6, lines
    outer_tags, outer = split_tags(lines[0])
    assert outer_tags == {"label": "h1"} and outer.endswith(" labeled-response"), lines[0]
    outer_ref = outer.split(" ")[2][1:]
    assert lines[-1] == f":{SERVER} BATCH -{outer_ref}"
    # The chathistory batch is inside the labeled one: its BATCH lines carry the outer id.
    inner_head_tags, inner_head = split_tags(lines[1])
    assert inner_head_tags == {"batch": outer_ref}, lines[1]
    untagged_inner = [inner_head] + lines[2:4] + [untagged(lines[4])]
    assert tags_of(lines[4]) == {"batch": outer_ref}, lines[4]
    same_messages(batch(untagged_inner, "#lbl"), live)


# -- autoreplay_lines, enabled = false ------------------------------------------------------------

def test_autoreplay_sends_the_last_lines_on_join(tmp_path):
    s = ServerProcess(tmp_path / "data",
                      config_text=QUIET_TOML + "\n[history]\nautoreplay_lines = 3\n").start()
    try:
        alice = connect(s.port, "aralice", ["server-time", "message-tags"])
        alice.send("JOIN #ar")
        assert [command_of(x) for x in alice.sync()] == ["JOIN", "353", "366"]  # nothing yet
        watcher = connect(s.port, "arwatch", ["server-time", "message-tags"])
        join("#ar", watcher)
        live = post(alice, "#ar", [f"r{i}" for i in range(5)], watcher)

        capable = connect(s.port, "arcap", ["batch", "server-time", "message-tags"])
        capable.send("JOIN #ar")
        lines = capable.sync()
        assert [command_of(x) for x in lines[:3]] == ["JOIN", "353", "366"]
        same_messages(batch(lines[3:], "#ar"), live[-3:])

        plain = connect(s.port, "arplain")
        plain.send("JOIN #ar")
        lines = plain.sync()
        assert lines[:3] == [f":{src('arplain')} JOIN #ar",
                             f":{SERVER} 353 arplain = #ar :@aralice arwatch arcap arplain",
                             f":{SERVER} 366 arplain #ar :End of /NAMES list"]
        # No capabilities: no BATCH and no tags, just the lines.
        assert lines[3:] == [f":{src('aralice')} PRIVMSG #ar :r{i}" for i in (2, 3, 4)]
        for c in (alice, watcher, capable, plain):
            c.close()
    finally:
        s.stop()


def test_history_disabled(tmp_path):
    s = ServerProcess(tmp_path / "data",
                      config_text=QUIET_TOML + "\n[history]\nenabled = false\n").start()
    try:
        c = Client(s.port)
        c.send("CAP LS 302")
        ls = c.sync()
        assert len(ls) == 1 and ls[0].startswith(f":{SERVER} CAP * LS :"), ls
        caps = ls[0].split(" :", 1)[1].split(" ")
        assert "draft/chathistory" not in caps and "sasl=PLAIN" in caps
        c.send("CAP REQ :draft/chathistory")
        assert c.sync() == [f":{SERVER} CAP * NAK :draft/chathistory"]
        c.send("CAP END")
        c.send("NICK hdoff")
        c.send("USER hdoff 0 * :x")
        c.expect(lambda x: command_of(x) in ("376", "422"))
        isupport = [x for x in c.lines if command_of(x) == "005"]
        assert isupport
        tokens = " ".join(isupport).split(" ")
        assert not [t for t in tokens if t.startswith(("CHATHISTORY", "MSGREFTYPES"))], isupport
        assert "MONITOR=100" in tokens
        c.quit()
    finally:
        s.stop()
