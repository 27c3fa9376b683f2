"""Conformance gaps closed: KICK and NAMES with several targets, LIST filters (ELIST),
HELPOP, ``[server] description``, LUSERS (without pseudo-users) and WHO (with them).

Through the real server; the LIST filters on creation and topic time are also
checked with a fake clock through the sans-I/O core (no waiting for minutes).
"""

from __future__ import annotations

import pytest

from ircd.accounts import AccountStore
from ircd.config import Config
from ircd.core import ImmediateScheduler, Server
from ircd.listfilter import parse_list_filter
from ircd.state import CallbackSession, Channel
from ircd.storage.sqlite import SQLiteAccountRows
from tests.rawusers import WITH_ECHOBOT_TOML, chats, numerics, params, until_pong, user
from tests.support import RawClient, command_of, config_with

pytestmark = pytest.mark.timeout(60)


def _ask(c, line: str) -> list[str]:
    """The numerics ``c`` gets for ``line``, other lines (JOIN, QUIT...) left out."""
    until_pong(c)
    c.send(line)
    return [x for x in until_pong(c) if command_of(x).isdigit()]


def _join(c, *channels: str) -> None:
    for chan in channels:
        c.send(f"JOIN {chan}")
        c.expect(lambda line, chan=chan: command_of(line) == "366" and chan in line)


# -- KICK with several nicks ----------------------------------------------------------


def test_kick_several_nicks_at_once_is_seen_by_everyone(server):
    alice, bob, carol, dave = (user(server.port, n) for n in ("alice", "bob", "carol", "dave"))
    _join(alice, "#k")
    for c in (bob, carol, dave):
        _join(c, "#k")
    until_pong(alice)
    alice.send("KICK #k bob,carol :out")
    until_pong(alice)
    kicks = [x for x in until_pong(dave) if command_of(x) == "KICK"]
    assert [params(x) for x in kicks] == [["#k", "bob", "out"], ["#k", "carol", "out"]]
    for c, nick in ((bob, "bob"), (carol, "carol")):
        assert any(command_of(x) == "KICK" and params(x)[1] == nick for x in until_pong(c))
    names = [x for x in _ask(dave, "NAMES #k") if command_of(x) == "353"]
    assert sorted(params(names[0])[-1].split()) == ["@alice", "dave"]


def test_kick_list_with_a_missing_nick_kicks_the_others(server):
    alice, bob, carol = (user(server.port, n) for n in ("alice", "bob", "carol"))
    _join(alice, "#k")
    _join(bob, "#k")
    lines = _ask(alice, "KICK #k ghost,carol,bob")
    assert numerics(lines) == ["401", "441"]
    assert params(lines[0])[1] == "ghost" and params(lines[1])[1:3] == ["carol", "#k"]
    assert any(command_of(x) == "KICK" and params(x)[1] == "bob" for x in until_pong(bob))
    chats(carol, alice, "carol", "alice")


def test_kick_beyond_targmax_gets_407_for_the_rest(server):
    nicks = ["alice", "u1", "u2", "u3", "u4", "u5"]
    clients = {n: user(server.port, n) for n in nicks}
    for n in nicks:
        _join(clients[n], "#k")
    alice = clients["alice"]
    assert "TARGMAX=JOIN:,KICK:4,NAMES:4," in " ".join(alice.lines)
    lines = _ask(alice, "KICK #k u1,u2,u3,u4,u5")
    assert numerics(lines) == ["407"]
    assert params(lines[0])[1] == "u5"
    names = [x for x in _ask(alice, "NAMES #k") if command_of(x) == "353"]
    assert sorted(params(names[0])[-1].split()) == ["@alice", "u5"]


# -- NAMES with several channels ------------------------------------------------------


def test_names_of_several_channels_answers_each_in_order_then_one_366(server):
    # RFC 2812 3.2.5 / 5.1: one reply pair; irctest's testNamesMultipleChannels2812 wants
    # the 353s of each channel, then a single 366 naming "#chan1,#chan2".
    alice, bob = user(server.port, "alice"), user(server.port, "bob")
    _join(alice, "#a", "#b")
    _join(bob, "#b")
    lines = _ask(alice, "NAMES #b,#nope,#a")
    assert numerics(lines) == ["353", "353", "366"]
    assert params(lines[0])[2] == "#b" and sorted(params(lines[0])[3].split()) == ["@alice", "bob"]
    assert params(lines[1])[2] == "#a" and params(lines[1])[3] == "@alice"
    assert params(lines[2])[1] == "#b,#nope,#a"
    lines = _ask(alice, "NAMES #a")                    # one channel: the usual pair
    assert numerics(lines) == ["353", "366"] and params(lines[1])[1] == "#a"
    lines = _ask(bob, "NAMES #nope")                   # none: only the 366 (irctest, Modern)
    assert numerics(lines) == ["366"] and params(lines[0])[1] == "#nope"


def test_names_beyond_targmax_gets_407(server):
    alice = user(server.port, "alice")
    lines = _ask(alice, "NAMES #a,#b,#c,#d,#e")
    assert numerics(lines) == ["407", "366"]
    assert params(lines[0])[1] == "#e"
    assert params(lines[1])[1] == "#a,#b,#c,#d"


# -- LIST filters (ELIST=CMNTU) ---------------------------------------------------------


def _listed(c, arg: str) -> list[str]:
    lines = _ask(c, f"LIST {arg}".rstrip())
    assert numerics(lines)[0] == "321" and numerics(lines)[-1] == "323"
    return sorted(params(x)[1] for x in lines if command_of(x) == "322")


@pytest.fixture
def channels(server):
    """#apple (2 users, with a topic), #apricot and #banana (1 user each), #general."""
    alice, bob = user(server.port, "alice"), user(server.port, "bob")
    _join(alice, "#apple", "#apricot", "#banana")
    _join(bob, "#apple")
    alice.send("TOPIC #apple :fruit")
    alice.expect(lambda line: command_of(line) == "TOPIC")
    yield alice, bob


def test_list_advertises_elist_cmntu(channels):
    alice, _ = channels
    assert "ELIST=CMNTU" in " ".join(alice.lines).split()


def test_list_mask_filter_m(channels):
    alice, _ = channels
    assert _listed(alice, "#ap*") == ["#apple", "#apricot"]
    assert _listed(alice, "*an*") == ["#banana"]
    assert _listed(alice, "#a?ple") == ["#apple"]


def test_list_negative_mask_filter_n(channels):
    alice, _ = channels
    assert _listed(alice, "!#ap*") == ["#banana", "#general"]
    assert _listed(alice, "#a*,!*cot") == ["#apple"]


def test_list_user_count_filter_u_combines_with_a_mask(channels):
    alice, _ = channels
    assert _listed(alice, ">1") == ["#apple", "#general"]
    assert _listed(alice, "#a*,<2") == ["#apricot"]


def test_list_creation_time_filter_c(channels):
    alice, _ = channels
    assert _listed(alice, "C<60") == ["#apple", "#apricot", "#banana", "#general"]
    assert _listed(alice, "C>60") == []


def test_list_topic_time_filter_t(channels):
    alice, _ = channels
    assert _listed(alice, "T<60") == ["#apple"]  # channels without a topic never match T
    assert _listed(alice, "T>60") == []


def test_list_unknown_items_are_channel_names_and_list_nothing(channels):
    alice, bob = channels
    assert _listed(alice, "C<abc") == []
    assert _listed(alice, "") == ["#apple", "#apricot", "#banana", "#general"]
    chats(bob, alice, "bob", "alice")


def test_list_time_filters_with_a_fake_clock(tmp_path):
    now = [1_000_000.0]
    core = Server(Config(), AccountStore(SQLiteAccountRows(tmp_path / "db"), time_cost=1,
                                         memory_cost=1024),
                  ImmediateScheduler(), clock=lambda: now[0])
    out: list[bytes] = []
    amy = core.new_client(CallbackSession(out.append, lambda reason: None), "127.0.0.1")
    for line in (b"NICK amy", b"USER amy 0 * :Amy", b"JOIN #old"):
        core.handle_line(amy.session, line)
    now[0] += 120 * 60
    core.handle_line(amy.session, b"TOPIC #old :set two hours after creation")
    core.handle_line(amy.session, b"JOIN #new")
    now[0] += 30 * 60

    def listed(arg: str) -> list[str]:
        out.clear()
        core.handle_line(amy.session, b"LIST " + arg.encode())
        return sorted(line.split(" ")[3] for line in b"".join(out).decode().splitlines()
                      if line.split(" ")[1] == "322")

    assert listed("C>60") == ["#general", "#old"]
    assert listed("C<60") == ["#new"]
    assert listed("C>100,C<200") == ["#general", "#old"]
    assert listed("T<60") == ["#old"]
    assert listed("T>20") == ["#old"]
    assert listed("T>40") == []


def test_parse_list_filter_sorts_items_into_kinds():
    f = parse_list_filter("#A,#b*,!*c,>2,<9,C>1,C<5,T>3,T<4,junk,,")
    assert f.names == ["#a", "junk"]
    assert f.masks == ["#b*"] and f.negative == ["*c"]
    assert f.users == [(">", 2), ("<", 9)]
    assert f.created == [(">", 1), ("<", 5)] and f.topic == [(">", 3), ("<", 4)]


def test_list_filter_matches_channels_by_every_item():
    chan = Channel(name="#Fruit", created=0.0)
    assert parse_list_filter("").matches(chan, 600.0)
    assert parse_list_filter("#fruit").matches(chan, 600.0)
    assert not parse_list_filter("#veg").matches(chan, 600.0)
    assert parse_list_filter("#veg,#f*").matches(chan, 600.0)
    assert not parse_list_filter("!#f*").matches(chan, 600.0)
    assert parse_list_filter("C>9").matches(chan, 600.0)
    assert not parse_list_filter("C>10").matches(chan, 600.0)
    assert not parse_list_filter("T<100").matches(chan, 600.0)  # no topic
    assert parse_list_filter("<1").matches(chan, 600.0) and not parse_list_filter(">0").matches(chan, 0)


# -- HELPOP ----------------------------------------------------------------------------


def test_helpop_is_an_alias_of_help(server):
    amy, bob = user(server.port, "amy"), user(server.port, "bob")
    listing = _ask(amy, "HELPOP")
    assert listing == _ask(amy, "HELP") and numerics(listing)[0] == "704"
    assert "HELPOP" in " ".join(listing).split()
    lines = _ask(amy, "HELPOP privmsg")
    assert numerics(lines) == ["704", "705", "706"]
    assert params(lines[1])[-1].startswith("PRIVMSG <target>")
    lines = _ask(amy, "HELPOP frob")
    assert numerics(lines) == ["524"]
    chats(bob, amy, "bob", "amy")


# -- [server] description --------------------------------------------------------------


def test_description_shows_in_links_whois_and_info(server_factory):
    srv = server_factory(config_text=config_with(server={"description": "Hub of the test net"}))
    amy, bob = user(srv.port, "amy"), user(srv.port, "bob")
    links = _ask(amy, "LINKS")
    assert numerics(links) == ["364", "365"]
    assert links[0].endswith("364 amy irc.chatserver.local irc.chatserver.local :0 Hub of the test net")
    whois = [x for x in _ask(amy, "WHOIS bob") if command_of(x) == "312"]
    assert params(whois[0])[1:] == ["bob", "irc.chatserver.local", "Hub of the test net"]
    info = [x for x in _ask(bob, "INFO") if command_of(x) == "371"]
    assert any("Hub of the test net" in x for x in info)


def test_description_defaults_to_chatserver(server):
    amy = user(server.port, "amy")
    assert _ask(amy, "LINKS")[0].endswith(":0 chatserver")


def test_a_multi_line_description_is_refused_at_start(tmp_path):
    import subprocess
    import sys

    from tests.support import ROOT

    cfg = tmp_path / "bad.toml"
    cfg.write_text('[server]\ndescription = "two\\nlines"\n')
    proc = subprocess.run([sys.executable, "-m", "ircd", "0", "--config", str(cfg),
                           "--data-dir", str(tmp_path / "data")], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "server.description" in proc.stderr


# -- LUSERS counts users behind connections; WHO lists pseudo-users too -------------------


def test_lusers_does_not_count_pseudo_users_but_who_lists_them(server_factory):
    # Ergo does not count its services, and irctest's LUSERS tests count the clients
    # they connected: echobot, NickServ and ChanServ are not in 251/255/265/266.
    toml = WITH_ECHOBOT_TOML.replace("[services]\nenabled = false", "[services]\nenabled = true")
    assert toml != WITH_ECHOBOT_TOML
    srv = server_factory(config_text=toml)
    amy = user(srv.port, "amy")
    waiting = RawClient(srv.port)  # connected, not registered
    waiting.send("NICK waiting")
    try:
        lusers = {command_of(x): params(x) for x in _ask(amy, "LUSERS")}
        assert lusers["251"][-1] == "There are 1 users and 0 invisible on 1 servers"
        assert lusers["253"][1] == "1"
        assert lusers["255"][-1] == "I have 1 clients and 0 servers"
        assert lusers["265"][1:3] == ["1", "1"] and lusers["266"][1:3] == ["1", "1"]
        bob = user(srv.port, "bob")
        bob.send("MODE bob +i")
        lusers = {command_of(x): params(x) for x in _ask(amy, "LUSERS")}
        assert lusers["251"][-1] == "There are 1 users and 1 invisible on 1 servers"
        assert lusers["265"][1:3] == ["2", "2"] and lusers["266"][1:3] == ["2", "2"]
        who = [params(x)[5] for x in _ask(amy, "WHO *") if command_of(x) == "352"]
        assert sorted(who) == ["ChanServ", "NickServ", "amy", "bob", "echobot"]  # bob: shares #general
        general = [params(x)[5] for x in _ask(amy, "WHO #general") if command_of(x) == "352"]
        assert sorted(general) == ["amy", "bob", "echobot"]
    finally:
        waiting.close()


def test_lusers_without_echobot_counts_only_real_users(server):
    amy = user(server.port, "amy")
    lusers = {command_of(x): params(x) for x in _ask(amy, "LUSERS")}
    assert lusers["251"][-1] == "There are 1 users and 0 invisible on 1 servers"
    assert lusers["253"][1] == "0"
