"""Who may enter and see a channel: INVITE, secret channels, history that dies with a channel.

Each test runs against a real ``python -m ircd`` on loopback (docs/protocol.md
"INVITE", "Secret channels", "CHATHISTORY"). Every refused step is checked
for its numeric, and that the members were not disturbed (they still chat).
"""

from __future__ import annotations

import signal
import sqlite3
import time

import pytest

from ircd.state import MAX_INVITES
from tests.rawusers import chats, numerics, params, until_pong, user
from tests.support import RawClient, ServerProcess, command_of, config_with

FAST = config_with(limits={"flood_burst": 400, "flood_rate": 200.0})


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("trust") / "data", FAST).start()
    try:
        yield server
    finally:
        server.stop()


def ask(c, line: str) -> list[str]:
    """Every line ``c`` gets for ``line`` (read up to the answer of a PING sent after it)."""
    until_pong(c)
    c.send(line)
    return until_pong(c)


def join(c, chan: str, key: str = "") -> list[str]:
    """JOIN ``chan``; the lines received (the JOIN and NAMES, or the error numeric)."""
    return ask(c, f"JOIN {chan} {key}".rstrip())


def joined(lines: list[str], nick: str, chan: str) -> bool:
    """True if ``lines`` hold ``nick``'s JOIN of ``chan`` (tags or not)."""
    untagged = [x.split(" ", 1)[1] if x.startswith("@") else x for x in lines]
    return any(command_of(x) == "JOIN" and x.startswith(f":{nick}!")
               and params(x)[0].lower() == chan.lower() for x in untagged)


def names(c, chan: str) -> list[str]:
    """The nicks NAMES shows ``c`` for ``chan`` (prefixes removed)."""
    out: list[str] = []
    for x in ask(c, f"NAMES {chan}"):
        if command_of(x) == "353":
            out += [n.lstrip("@+") for n in params(x)[-1].split()]
    return sorted(out)


# -- INVITE --------------------------------------------------------------------------


def test_an_operators_invite_passes_plus_i_k_and_l_once_and_is_used_up(srv):
    op, member, guest = user(srv.port, "ia_op"), user(srv.port, "ia_mem"), user(srv.port, "ia_guest")
    join(op, "#ia")
    join(member, "#ia")
    ask(op, "MODE #ia +ikl sesame 2")
    assert numerics(join(guest, "#ia")) == ["475"]       # key checked first, then +i
    assert numerics(join(guest, "#ia", "sesame")) == ["471"]
    lines = ask(op, "INVITE ia_guest #ia")
    assert numerics(lines) == ["341"]
    assert any(command_of(x) == "INVITE" for x in until_pong(guest))
    lines = join(guest, "#ia")                            # no key, channel full: invited
    assert joined(lines, "ia_guest", "#ia"), lines
    assert names(op, "#ia") == ["ia_guest", "ia_mem", "ia_op"]
    ask(guest, "PART #ia")
    ask(op, "MODE #ia -kl")
    # The invitation was used up by the JOIN: +i keeps the guest out again.
    assert numerics(join(guest, "#ia")) == ["473"]
    chats(member, op, "ia_mem", "ia_op")


def test_a_plain_members_invite_is_no_way_past_ban_key_or_limit(srv):
    op, member = user(srv.port, "ib_op"), user(srv.port, "ib_mem")
    banned = user(srv.port, "ib_bad")
    join(op, "#ib")
    join(member, "#ib")
    ask(op, "MODE #ib +bkl ib_bad!*@* sesame 2")
    lines = ask(member, "INVITE ib_bad #ib")              # allowed (no +i): only a notice
    assert numerics(lines) == ["341"]
    assert any(command_of(x) == "INVITE" for x in until_pong(banned))
    assert numerics(join(banned, "#ib")) == ["475"]
    assert numerics(join(banned, "#ib", "sesame")) == ["471"]
    ask(op, "MODE #ib -l")
    assert numerics(join(banned, "#ib", "sesame")) == ["474"]
    ask(op, "MODE #ib -k")
    assert numerics(join(banned, "#ib")) == ["474"]
    assert names(op, "#ib") == ["ib_mem", "ib_op"]
    # A plain member may not invite at all once the channel is +i.
    ask(op, "MODE #ib +i")
    assert numerics(ask(member, "INVITE ib_bad #ib")) == ["482"]
    assert until_pong(banned) == []
    chats(member, op, "ib_mem", "ib_op")


def test_even_an_operators_invite_never_passes_a_ban(srv):
    op, member, banned = user(srv.port, "ic_op"), user(srv.port, "ic_mem"), user(srv.port, "ic_bad")
    join(op, "#ic")
    join(member, "#ic")
    ask(op, "MODE #ic +ib ic_bad!*@*")
    assert numerics(ask(op, "INVITE ic_bad #ic")) == ["341"]
    assert numerics(join(banned, "#ic")) == ["474"]
    assert names(op, "#ic") == ["ic_mem", "ic_op"]
    # An exception (+e) is the way in; the invitation (not used by the refused JOIN) passes +i.
    ask(op, "MODE #ic +e ic_bad!*@*")
    assert joined(join(banned, "#ic"), "ic_bad", "#ic")
    chats(member, op, "ic_mem", "ic_op")


def test_an_invite_dies_with_its_channel(srv):
    old, guest, new = user(srv.port, "id_old"), user(srv.port, "id_guest"), user(srv.port, "id_new")
    join(old, "#id")
    ask(old, "MODE #id +i")
    assert numerics(ask(old, "INVITE id_guest #id")) == ["341"]
    ask(old, "PART #id")                                  # the channel is gone
    lines = join(new, "#id")                              # a new owner's channel of that name
    assert joined(lines, "id_new", "#id")
    ask(new, "MODE #id +i")
    assert numerics(join(guest, "#id")) == ["473"]
    assert names(new, "#id") == ["id_new"]
    chats(guest, new, "id_guest", "id_new")


def test_the_invite_set_of_a_user_is_bounded_oldest_dropped(srv):
    op, guest = user(srv.port, "ie_op"), user(srv.port, "ie_guest")
    chans = [f"#ie{i}" for i in range(MAX_INVITES + 1)]
    for chan in chans:
        join(op, chan)
        ask(op, f"MODE {chan} +i")
        assert numerics(ask(op, f"INVITE ie_guest {chan}")) == ["341"]
    until_pong(guest)
    # The oldest invitation was dropped; the newest MAX_INVITES still hold.
    assert numerics(join(guest, chans[0])) == ["473"]
    for chan in chans[1:]:
        assert joined(join(guest, chan), "ie_guest", chan), chan
    chats(guest, op, "ie_guest", "ie_op")


# -- Secret channels (+s) ------------------------------------------------------------


def test_a_secret_channel_is_hidden_from_outsiders_in_list_whois_names_and_who(srv):
    alice, carl = user(srv.port, "sa_alice"), user(srv.port, "sa_carl")
    outsider = user(srv.port, "sa_out")
    join(alice, "#sa_hidden")
    join(carl, "#sa_hidden")
    ask(alice, "MODE #sa_hidden +s")
    ask(alice, "TOPIC #sa_hidden :plans")
    for query in ("LIST", "LIST #sa_hidden", "LIST *hidden*"):
        lines = ask(outsider, query)
        assert not [x for x in lines if command_of(x) == "322" and "#sa_hidden" in x], (query, lines)
        assert numerics(lines)[-1] == "323"
    whois = ask(outsider, "WHOIS sa_alice")
    channels = [params(x)[-1].replace("@", "").split() for x in whois if command_of(x) == "319"]
    assert channels == [["#general"]], whois         # #general yes, the secret one no
    assert [x for x in ask(outsider, "NAMES #sa_hidden") if command_of(x) == "353"] == []
    assert [x for x in ask(outsider, "WHO #sa_hidden") if command_of(x) == "352"] == []
    # Members see it.
    member_list = [params(x) for x in ask(carl, "LIST #sa_hidden") if command_of(x) == "322"]
    assert [p[1:3] for p in member_list] == [["#sa_hidden", "2"]]
    member_whois = [params(x)[-1] for x in ask(carl, "WHOIS sa_alice") if command_of(x) == "319"]
    assert "#sa_hidden" in member_whois[0].replace("@", "").split()
    chats(outsider, alice, "sa_out", "sa_alice")


# -- History dies with its channel ----------------------------------------------------

HISTORY_CAPS = ("draft/chathistory", "batch", "server-time", "message-tags")


def history_user(port: int, nick: str, password: str | None = None) -> RawClient:
    """A registered user with the CHATHISTORY capabilities (an account when ``password``)."""
    c = RawClient(port)
    c.send("CAP LS 302")
    c.send(f"CAP REQ :{' '.join(HISTORY_CAPS)}")
    if password is not None:
        c.send(f"PASS {password}")
    c.send(f"NICK {nick}")
    c.send(f"USER {nick} 0 * :{nick}")
    c.expect(lambda line: command_of(line) == "CAP" and " ACK " in line)
    c.send("CAP END")
    c.expect_numeric("001")
    c.expect(lambda line: command_of(line) in ("376", "422"))
    until_pong(c)
    return c


def history(c: RawClient, target: str) -> list[str]:
    """The texts CHATHISTORY LATEST gives ``c`` for ``target``, oldest first."""
    lines = ask(c, f"CHATHISTORY LATEST {target} * 50")
    assert [command_of(x) for x in lines][:1] == ["BATCH"], lines   # answered, not refused
    return [params(x)[-1] for x in lines if command_of(x) == "PRIVMSG"]


def say(c: RawClient, target: str, *texts: str) -> None:
    for text in texts:
        c.send(f"PRIVMSG {target} :{text}")
    until_pong(c)


def test_a_destroyed_channels_history_is_not_readable_by_whoever_creates_it_again(srv):
    alice, bob = history_user(srv.port, "ha_alice"), history_user(srv.port, "ha_bob")
    eve = history_user(srv.port, "ha_eve")
    join(alice, "#ha")
    ask(alice, "MODE #ha +sk secret")
    join(bob, "#ha", "secret")
    say(alice, "#ha", "the plan", "is at noon")
    assert history(bob, "#ha") == ["the plan", "is at noon"]
    ask(alice, "PART #ha")
    ask(bob, "PART #ha")                                   # the channel is gone
    assert joined(join(eve, "#ha"), "ha_eve", "#ha")       # at once, a new channel
    assert history(eve, "#ha") == []
    say(eve, "#ha", "mine")
    assert history(eve, "#ha") == ["mine"]
    # The same when the channel ends by a KICK and by a QUIT.
    join(alice, "#ha")
    say(alice, "#ha", "kicked away")
    ask(eve, "KICK #ha ha_alice")
    ask(eve, "PART #ha")
    assert joined(join(bob, "#ha"), "ha_bob", "#ha")
    assert history(bob, "#ha") == []
    say(bob, "#ha", "before quit")
    bob.send("QUIT :bye")
    bob.expect(lambda line: command_of(line) == "ERROR")
    assert joined(join(eve, "#ha"), "ha_eve", "#ha")
    assert history(eve, "#ha") == []
    chats(alice, eve, "ha_alice", "ha_eve")


def db_texts(data, until, timeout: float = 15.0) -> list[str]:
    """The texts in the history table of the server's SQLite file once ``until(texts)``
    holds (the server writes history in a batch a second)."""
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(data / "chatserver.sqlite3") as db:
            texts = sorted(t for (t,) in db.execute("SELECT text FROM history"))
        if until(texts) or time.monotonic() > deadline:
            assert until(texts), texts
            return texts
        time.sleep(0.1)


def test_a_destroyed_channels_history_is_deleted_from_the_database_too(tmp_path):
    data = tmp_path / "data"
    first = ServerProcess(data, FAST).start()
    try:
        alice = history_user(first.port, "hb_alice")
        eve = history_user(first.port, "hb_eve")
        join(alice, "#hb")
        ask(alice, "MODE #hb +sk secret")
        say(alice, "#hb", "old secret 1", "old secret 2")
        db_texts(data, until=lambda t: "old secret 2" in t)  # written by the periodic batch
        ask(alice, "PART #hb")
        assert joined(join(eve, "#hb"), "hb_eve", "#hb")   # at once: a new channel
        say(eve, "#hb", "new one")
        texts = db_texts(data, until=lambda t: "new one" in t)
        assert texts == ["new one"], texts                 # old rows gone, the new one kept
    finally:
        assert first.stop() == 0
    second = ServerProcess(data, FAST).start()
    try:
        eve = history_user(second.port, "hb_eve")
        assert joined(join(eve, "#hb"), "hb_eve", "#hb")
        assert history(eve, "#hb") == []                   # none survives a restart either
    finally:
        second.stop()


def test_in_memory_history_is_bounded_per_target_and_in_targets_channels_and_dms(server_factory):
    srv = server_factory(config_text=config_with(
        history={"max_targets": 3, "max_per_target": 2},
        limits={"flood_burst": 400, "flood_rate": 200.0}))
    alice = history_user(srv.port, "hc_alice", password="pw-alice")
    bob = history_user(srv.port, "hc_bob", password="pw-bob")
    carl = history_user(srv.port, "hc_carl", password="pw-carl")
    for chan in ("#hc1", "#hc2"):
        join(alice, chan)
        join(bob, chan)
    say(alice, "#hc1", "one", "two", "three")
    assert history(bob, "#hc1") == ["two", "three"]        # max_per_target = 2
    say(alice, "#hc2", "x")
    say(alice, "hc_bob", "dm to bob")
    assert history(alice, "hc_bob") == ["dm to bob"]
    assert history(bob, "#hc1") == ["two", "three"]        # 3 targets: all held
    say(alice, "hc_carl", "dm to carl")                    # a 4th: #hc1 is the least recent
    assert history(bob, "#hc1") == []
    assert history(bob, "#hc2") == ["x"]
    assert history(alice, "hc_bob") == ["dm to bob"]
    assert history(carl, "hc_alice") == ["dm to carl"]
    say(bob, "hc_carl", "dm bob carl")                     # a 5th: #hc2 goes
    assert history(bob, "#hc2") == []
    assert history(carl, "hc_bob") == ["dm bob carl"]
    chats(alice, bob, "hc_alice", "hc_bob")


def test_after_a_crash_the_history_of_channels_that_no_longer_exist_is_deleted_at_start(tmp_path):
    data = tmp_path / "data"
    kept = config_with(server={"registered_channels": ["#hk_reg"]})
    first = ServerProcess(data, kept).start()
    try:
        alice = history_user(first.port, "hk_alice")
        join(alice, "#hk")
        join(alice, "#hk_reg")
        say(alice, "#hk", "left behind")
        say(alice, "#hk_reg", "registered")
        db_texts(data, until=lambda t: "left behind" in t and "registered" in t)
    finally:
        first.stop(signal.SIGKILL)                         # no PART, no QUIT: rows stay
    second = ServerProcess(data, kept).start()
    try:
        eve = history_user(second.port, "hk_eve")
        assert joined(join(eve, "#hk"), "hk_eve", "#hk")   # a new channel of that name
        assert history(eve, "#hk") == []
        join(eve, "#hk_reg")
        assert history(eve, "#hk_reg") == ["registered"]   # a registered channel keeps it
        assert db_texts(data, until=lambda t: "left behind" not in t) == ["registered"]
    finally:
        second.stop()


def test_the_autojoin_channels_keep_their_history_across_a_restart(tmp_path):
    """``[server] autojoin`` channels (#general) are the server's own: everyone is put
    there, so their history outlives a clean restart, as a registered channel's does."""
    data = tmp_path / "data"
    text = config_with(server={"autojoin": ["#hk_lobby"]})
    first = ServerProcess(data, text).start()
    try:
        alice = history_user(first.port, "hk_alice")
        join(alice, "#hk_side")
        say(alice, "#hk_lobby", "good morning")
        say(alice, "#hk_side", "side talk")
        db_texts(data, until=lambda t: "good morning" in t and "side talk" in t)
    finally:
        first.stop()                                       # SIGTERM: everyone quits
    second = ServerProcess(data, text).start()
    try:
        eve = history_user(second.port, "hk_eve")
        assert history(eve, "#hk_lobby") == ["good morning"]
        join(eve, "#hk_side")
        assert history(eve, "#hk_side") == []
    finally:
        second.stop()
