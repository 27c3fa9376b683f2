"""Server bans over real sockets: KLINE, DLINE, UNKLINE, UNDLINE, STATS k/d, applied to
users online and at connect, kept across a restart, and timed bans expiring.

Clients that should be banned connect from other loopback addresses
(127.0.0.2, 127.0.0.3: Linux routes all of 127.0.0.0/8 to the loopback
interface) so that a D-line does not hit the oper's own connection.
"""

from __future__ import annotations

import time

import pytest

from tests.opersupport import OPER_PASSWORD, become_oper, connect, oper_block, opers_config
from tests.support import SERVICES_TOML, RawClient, command_of

pytestmark = pytest.mark.timeout(90)

SERVER = "irc.chatserver.local"


def registration_outcome(port: int, nick: str, source: str | None = None) -> list[str]:
    """Connect, register, and return the lines up to 001 or the closing of the connection."""
    c = RawClient(port, source=source)
    try:
        c.send(f"NICK {nick}")
        c.send(f"USER {nick} 0 * :{nick}")
        while True:
            line = c.readline(10)
            if line is None or command_of(line) == "001":
                return c.lines
    finally:
        c.close()


def assert_kline_refusal(lines: list[str], nick: str, reason: str) -> None:
    assert not any(command_of(x) == "001" for x in lines), lines
    assert lines[-2:] == [
        f":{SERVER} 465 {nick} :You are banned from this server: {reason}",
        f"ERROR :Closing Link: 127.0.0.1 (K-Lined ({reason}))",
    ], lines


def oper(port: int, nick: str = "boss") -> RawClient:
    c = connect(port, nick)
    become_oper(c)
    return c


def notice(c: RawClient) -> str:
    return c.expect(lambda x: command_of(x) == "NOTICE" and f" NOTICE {x.split()[2]} " in x
                    and x.startswith(f":{SERVER} "))


def stats(c: RawClient, letter: str) -> list[str]:
    c.send(f"STATS {letter}")
    rows = []
    while True:
        line = c.expect(lambda x: command_of(x) in ("216", "225", "219", "481"))
        if command_of(line) in ("219", "481"):
            if command_of(line) == "481":
                c.expect_numeric("219")
            return rows
        rows.append(line)


# -- KLINE -------------------------------------------------------------------------------------


def test_kline_disconnects_matching_users_now_and_refuses_them_at_registration(server_factory):
    srv = server_factory(config_text=opers_config())
    boss = oper(srv.port)
    flooder = connect(srv.port, "flooder")
    bystander = connect(srv.port, "bystander")
    boss.send("KLINE flooder@127.0.0.1 :Flooding #general")
    assert notice(boss) == (f":{SERVER} NOTICE boss :Added K-line on *!flooder@127.0.0.1 "
                            "(permanent): Flooding #general")
    assert flooder.expect_numeric("465") == (
        f":{SERVER} 465 flooder :You are banned from this server: Flooding #general")
    assert flooder.expect(lambda x: command_of(x) == "ERROR") == (
        "ERROR :Closing Link: 127.0.0.1 (K-Lined (Flooding #general))")
    assert flooder.closed_by_server()
    assert bystander.expect("QUIT") == ":flooder!flooder@127.0.0.1 QUIT :K-Lined (Flooding #general)"
    assert notice(boss) == f":{SERVER} NOTICE boss :K-line on *!flooder@127.0.0.1 disconnected: flooder"
    # Any nick with that user name is refused at registration; other users still come in.
    assert_kline_refusal(_register_as_user(srv.port, "othernick", "flooder"),
                         "othernick", "Flooding #general")
    assert command_of(registration_outcome(srv.port, "fine")[-1]) == "001"
    bystander.send("PRIVMSG boss :still here")
    boss.expect("still here")
    log = srv.log()
    assert "K-line added on *!flooder@127.0.0.1 (permanent) by boss!boss@127.0.0.1" in log


def _register_as_user(port: int, nick: str, user: str) -> list[str]:
    c = RawClient(port)
    try:
        c.send(f"NICK {nick}")
        c.send(f"USER {user} 0 * :{nick}")
        while True:
            line = c.readline(10)
            if line is None or command_of(line) == "001":
                return c.lines
    finally:
        c.close()


def test_kline_with_a_nick_mask_matches_only_that_nick_and_a_bare_nick_bans_its_host(
        server_factory):
    srv = server_factory(config_text=opers_config())
    boss = oper(srv.port)
    boss.send("KLINE spammer!*@* :go away")
    notice(boss)
    assert_kline_refusal(registration_outcome(srv.port, "spammer"), "spammer", "go away")
    assert command_of(registration_outcome(srv.port, "spammer2")[-1]) == "001"
    victim = connect(srv.port, "victim", source="127.0.0.2")
    watcher = connect(srv.port, "watcher")
    boss.send("KLINE victim :by nick")
    assert notice(boss) == f":{SERVER} NOTICE boss :Added K-line on *!*@127.0.0.2 (permanent): by nick"
    assert victim.expect_numeric("465").endswith(":You are banned from this server: by nick")
    assert watcher.expect("QUIT") == ":victim!victim@127.0.0.2 QUIT :K-Lined (by nick)"


def test_kline_refuses_bad_masks_unknown_nicks_and_non_opers(server_factory):
    srv = server_factory(config_text=opers_config())
    bob = connect(srv.port, "bob")
    bob.send("KLINE *@* :everyone")
    assert bob.expect_numeric("481") == (
        f":{SERVER} 481 bob :Permission Denied- You're not an IRC operator")
    boss = oper(srv.port)
    for bad in ("a@b@c", "nick!!u@h", "!u@h", "u@"):
        boss.send(f"KLINE {bad} :bad")
        assert boss.expect_numeric("415").startswith(f":{SERVER} 415 boss "), bad
    boss.send("KLINE nobody :x")
    assert boss.expect_numeric("401") == f":{SERVER} 401 boss nobody :No such nick/channel"
    boss.send("KLINE 1h")
    assert command_of(boss.expect(lambda x: command_of(x) in ("401", "461", "415"))) == "401"
    assert stats(boss, "k") == []
    bob.send("PRIVMSG boss :nobody was banned")
    boss.expect("nobody was banned")


# -- DLINE -------------------------------------------------------------------------------------


def test_dline_disconnects_users_now_and_refuses_connections_before_registration(server_factory):
    srv = server_factory(config_text=opers_config())
    boss = oper(srv.port)
    bad = connect(srv.port, "bad", source="127.0.0.2")
    good = connect(srv.port, "good", source="127.0.0.5")   # outside 127.0.0.0/30
    unregistered = RawClient(srv.port, source="127.0.0.2")
    unregistered.send("NICK halfway")
    time.sleep(0.1)
    boss.send("DLINE 127.0.0.0/30 :abuse from this network")
    assert notice(boss) == (f":{SERVER} NOTICE boss :Added D-line on 127.0.0.0/30 (permanent): "
                            "abuse from this network")
    assert bad.expect(lambda x: command_of(x) == "ERROR") == (
        "ERROR :Closing Link: 127.0.0.2 (D-Lined (abuse from this network))")
    assert bad.closed_by_server()
    assert unregistered.closed_by_server()
    assert good.expect("QUIT") == ":bad!bad@127.0.0.2 QUIT :D-Lined (abuse from this network)"
    # A new connection from the network: ERROR at once, without registering.
    fresh = RawClient(srv.port, source="127.0.0.2")
    assert fresh.readline(5) == "ERROR :Closing Link: 127.0.0.2 (D-Lined (abuse from this network))"
    assert fresh.readline(5) is None
    # The oper (127.0.0.1, inside the network) is not disconnected; 127.0.0.6 is outside.
    outside = connect(srv.port, "outside", source="127.0.0.6")
    outside.send("PRIVMSG boss :hello from outside")
    boss.expect("hello from outside")
    good.send("PRIVMSG boss :good is still here")
    boss.expect("good is still here")


def test_dline_refuses_what_is_no_address_or_network(server_factory):
    srv = server_factory(config_text=opers_config())
    boss = oper(srv.port)
    for bad in ("300.1.2.3", "10.0.0.0/99", "example.org", "1.2.3.4/x"):
        boss.send(f"DLINE {bad} :no")
        assert boss.expect_numeric("415").startswith(f":{SERVER} 415 boss "), bad
    assert stats(boss, "d") == []
    boss.send("DLINE")
    assert command_of(boss.expect_numeric("461")) == "461"


# -- STATS, UNKLINE, UNDLINE ----------------------------------------------------------------------


def test_stats_k_and_d_list_the_bans_to_opers_only(server_factory):
    srv = server_factory(config_text=opers_config())
    boss = oper(srv.port)
    boss.send("KLINE 2d *@10.9.9.9 :two days")
    notice(boss)
    boss.send("KLINE ~x@host.example :forever")
    notice(boss)
    boss.send("DLINE 1h 192.0.2.0/24 :an hour")
    notice(boss)
    rows = stats(boss, "k")
    assert len(rows) == 2
    first = rows[0].split()
    assert first[:5] == [f":{SERVER}", "216", "boss", "K", "*!*@10.9.9.9"]
    assert 2 * 86400 - 60 <= int(first[6]) <= 2 * 86400
    assert first[7] == "boss!boss@127.0.0.1" and rows[0].endswith(" :two days")
    second = rows[1].split()
    assert second[4] == "*!~x@host.example" and second[6] == "0" and rows[1].endswith(":forever")
    rows = stats(boss, "d")
    assert len(rows) == 1 and rows[0].split()[1:5] == ["225", "boss", "D", "192.0.2.0/24"]
    assert 3540 <= int(rows[0].split()[6]) <= 3600
    bob = connect(srv.port, "bob")
    assert stats(bob, "k") == [] and stats(bob, "d") == []
    assert "481" in [command_of(x) for x in bob.lines]


def test_unkline_and_undline_lift_bans(server_factory):
    srv = server_factory(config_text=opers_config())
    boss = oper(srv.port)
    boss.send("KLINE banned@* :no")
    notice(boss)
    boss.send("DLINE 127.0.0.2 :no")
    notice(boss)
    assert_kline_refusal(registration_outcome(srv.port, "banned"), "banned", "no")
    boss.send("UNKLINE banned@*")
    assert notice(boss) == f":{SERVER} NOTICE boss :Removed K-line on *!banned@*"
    boss.send("UNKLINE banned@*")
    assert notice(boss) == f":{SERVER} NOTICE boss :No K-line on banned@*"
    assert command_of(registration_outcome(srv.port, "banned")[-1]) == "001"
    boss.send("UNDLINE 127.0.0.2")
    assert notice(boss) == f":{SERVER} NOTICE boss :Removed D-line on 127.0.0.2"
    assert command_of(registration_outcome(srv.port, "back", source="127.0.0.2")[-1]) == "001"
    assert stats(boss, "k") == [] and stats(boss, "d") == []
    bob = connect(srv.port, "bob")
    bob.send("UNKLINE banned@*")
    assert command_of(bob.expect_numeric("481")) == "481"


# -- persistence and expiry -----------------------------------------------------------------------


def test_klines_and_dlines_survive_a_restart_and_unkline_is_kept_too(server_factory, tmp_path):
    data = tmp_path / "bans-data"
    srv = server_factory(config_text=opers_config(), data_dir=data)
    boss = oper(srv.port)
    boss.send("KLINE flooder@* :kept across restarts")
    notice(boss)
    boss.send("KLINE 1d gone@* :lifted before the restart")
    notice(boss)
    boss.send("DLINE 127.0.0.2 :dline kept")
    notice(boss)
    boss.send("UNKLINE gone@*")
    notice(boss)
    boss.close()
    assert srv.stop() == 0
    again = server_factory(config_text=opers_config(), data_dir=data)
    assert "server bans: 2 loaded" in again.log()
    assert_kline_refusal(registration_outcome(again.port, "flooder"), "flooder",
                         "kept across restarts")
    fresh = RawClient(again.port, source="127.0.0.2")
    assert fresh.readline(5) == "ERROR :Closing Link: 127.0.0.2 (D-Lined (dline kept))"
    assert command_of(registration_outcome(again.port, "gone")[-1]) == "001"
    boss = oper(again.port)
    assert [r.split()[4] for r in stats(boss, "k")] == ["*!flooder@*"]


def test_a_timed_kline_expires(server_factory):
    srv = server_factory(config_text=opers_config())
    boss = oper(srv.port)
    boss.send("KLINE 2s shortban@* :two seconds")
    assert notice(boss) == f":{SERVER} NOTICE boss :Added K-line on *!shortban@* (2s): two seconds"
    assert_kline_refusal(registration_outcome(srv.port, "shortban"), "shortban", "two seconds")
    deadline = time.monotonic() + 10
    while True:
        lines = registration_outcome(srv.port, "shortban")
        if command_of(lines[-1]) == "001":
            break
        assert time.monotonic() < deadline, "the 2s K-line never expired"
        time.sleep(0.25)
    assert stats(boss, "k") == []


def test_kline_closes_send_dialect_users_online_and_at_hello(server_factory):
    srv = server_factory(config_text=opers_config())
    boss = oper(srv.port)
    online = RawClient(srv.port)
    online.send(b"HELLO-FROM chatter\n")
    assert online.readline(5) == "HELLO chatter"
    boss.send("KLINE chatter@* :no chatting")
    assert notice(boss).endswith("(permanent): no chatting")
    assert notice(boss).endswith("disconnected: chatter")
    assert online.closed_by_server()
    again = RawClient(srv.port)
    again.send(b"HELLO-FROM chatter\n")
    assert again.closed_by_server()
    assert not any(line.startswith("HELLO ") for line in again.lines), again.lines
    other = RawClient(srv.port)
    other.send(b"HELLO-FROM talker\n")
    assert other.readline(5) == "HELLO talker"


def test_a_nick_mask_kline_also_holds_for_a_nick_taken_after_registering(server_factory):
    srv = server_factory(config_text=opers_config())
    boss = oper(srv.port)
    boss.send("KLINE spammer!*@* :go away")
    notice(boss)
    sneaky = connect(srv.port, "guest123", source="127.0.0.2")
    watcher = connect(srv.port, "watcher")
    sneaky.send("JOIN #general")
    watcher.send("JOIN #general")
    watcher.expect_numeric("366")
    sneaky.send("NICK spammer")
    assert sneaky.expect_numeric("465").endswith(":You are banned from this server: go away")
    assert sneaky.closed_by_server()
    # Others never see the banned nick: the user leaves under the old one.
    assert watcher.expect("QUIT") == ":guest123!guest123@127.0.0.2 QUIT :K-Lined (go away)"
    assert not [x for x in watcher.lines if x.endswith(" NICK :spammer")]
    # Other nick changes still work.
    watcher.send("NICK watcher2")
    assert watcher.expect(" NICK ") == ":watcher!watcher@127.0.0.1 NICK :watcher2"


def test_services_are_never_killed_nor_removed_by_a_server_ban(server_factory):
    srv = server_factory(config_text=SERVICES_TOML + oper_block("ops", OPER_PASSWORD))
    boss = oper(srv.port)
    for service in ("NickServ", "ChanServ"):
        boss.send(f"KILL {service} :bye")
        assert command_of(boss.expect(lambda x: command_of(x) in ("483", "ERROR"))) == "483"
    boss.send("DLINE 127.0.0.0/8 :everything local")
    notice(boss)
    boss.send("KLINE *@* :lockdown")
    notice(boss)
    # NickServ and ChanServ are still there, hold their nicks and answer.
    boss.send("WHOIS NickServ")
    assert command_of(boss.expect(lambda x: command_of(x) in ("311", "401"))) == "311"
    boss.send("NICK NickServ")
    assert command_of(boss.expect(lambda x: command_of(x) in ("433", "NICK"))) == "433"
    boss.send("PRIVMSG ChanServ :HELP")
    assert boss.expect(lambda x: x.startswith(":ChanServ!") and " NOTICE boss " in x)
