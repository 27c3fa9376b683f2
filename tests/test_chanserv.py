"""ChanServ and registered channels (docs/protocol.md "Services").

REGISTER, INFO, OP/DEOP/VOICE, ACCESS, SET TOPICLOCK/GUARD, DROP, HELP; a
registered channel keeps its topic, modes, key, limit, bans and access list
while empty and across a restart; ``server.registered_channels``. Real
server subprocesses, raw sockets.
"""

from __future__ import annotations

import signal
import time

import pytest

from ircd.chanreg import ChannelRegistry, Registration
from ircd.state import Channel
from ircd.storage.sqlite import SQLiteChannelStore
from tests.ircv3util import SERVER, Client, command_of, connect, still_chats
from tests.support import SERVICES_TOML, ServerProcess

pytestmark = pytest.mark.timeout(60)

TOML = SERVICES_TOML + """
[server]
autojoin = []

[limits]
flood_burst = 100000
flood_rate = 100000.0
"""
CS = f":ChanServ!ChanServ@{SERVER}"


def cs(c: Client, text: str) -> list[str]:
    """``PRIVMSG ChanServ :text``; return every line up to the sync."""
    c.send(f"PRIVMSG ChanServ :{text}")
    return c.sync()


def notices(lines: list[str]) -> list[str]:
    return [line.split(" :", 1)[1] for line in lines if line.startswith(f"{CS} NOTICE ")]


def names(c: Client, chan: str) -> list[str]:
    c.send(f"NAMES {chan}")
    lines = c.sync()
    return [n for x in lines if command_of(x) == "353" for n in x.split(" :", 1)[1].split()]


@pytest.fixture
def srv(server_factory):
    return server_factory(config_text=TOML)


def joined(port: int, nick: str, chan: str, password: str | None = None) -> Client:
    c = connect(port, nick, password=password)
    c.send(f"JOIN {chan}")
    c.sync()
    return c


def test_register_needs_a_login_and_channel_operator_status(srv):
    guest = joined(srv.port, "guest", "#room")  # creator: operator, but no account
    assert notices(cs(guest, "REGISTER #room")) == [
        "You must be logged in to an account to register a channel."]
    member = joined(srv.port, "mia", "#room", password="miapw")  # logged in, not op
    assert notices(cs(member, "REGISTER #room")) == [
        "You must be a channel operator of #room to register it."]
    assert notices(cs(member, "REGISTER #nowhere")) == ["#nowhere does not exist; join it first."]
    assert notices(cs(member, "REGISTER room")) == ["Syntax: REGISTER #chan"]
    assert notices(cs(member, "INFO #room")) == ["#room is not registered."]
    assert notices(cs(member, "FROB")) == [
        "Unknown command FROB. Type /msg ChanServ HELP for the commands."]
    still_chats(guest, member)


def test_chanserv_nick_cannot_be_taken(srv):
    c = connect(srv.port, "somebody")
    c.send("NICK ChanServ")
    assert [command_of(x) for x in c.sync()] == ["433"]
    c.send("WHOIS chanserv")
    assert any(command_of(x) == "311" and "ChanServ ChanServ" in x for x in c.sync())


def test_registered_channel_survives_restart_with_topic_modes_key_bans_exceptions_and_founder(tmp_path):
    data = tmp_path / "data"
    first = ServerProcess(data, config_text=TOML).start()
    try:
        fay = joined(first.port, "fay", "#keep", password="faypw")
        lines = cs(fay, "REGISTER #keep")
        assert notices(lines) == ["#keep is now registered to fay."]
        fay.send("TOPIC #keep :kept topic")
        fay.send("MODE #keep +mk-n sekrit")
        fay.send("MODE #keep +l 20")
        fay.send("MODE #keep +b bad!*@*")
        fay.send("MODE #keep +eI good!*@* friend!*@*")
        fay.sync()
        connect(first.port, "hal", password="halpw").quit()
        assert notices(cs(fay, "ACCESS #keep ADD hal voice")) == ["hal now has voice access in #keep."]
        info = notices(cs(fay, "INFO #keep"))
        assert info[:2] == ["Channel: #keep", "Founder: fay"]
        fay.send("PART #keep")
        fay.sync()
        # empty, yet kept: a guest sees it in LIST with its topic, and needs the key
        g = connect(first.port, "gus")
        g.send("LIST #keep")
        assert any(command_of(x) == "322" and "#keep 0 :" in x and "kept topic" in x
                   for x in g.sync())
        g.send("JOIN #keep")
        assert [command_of(x) for x in g.sync()] == ["475"]
        # the periodic save runs once a second; stop (SIGTERM) also saves
    finally:
        assert first.stop() == 0
    second = ServerProcess(data, config_text=TOML).start()
    try:
        g = connect(second.port, "gus")
        g.send("MODE #keep")
        lines = g.sync()
        assert any(command_of(x) == "324" and x.split()[4:6] == ["+mtkl", "*"] and x.endswith(":20") for x in lines), lines
        g.send("TOPIC #keep")
        assert any(x.endswith("332 gus #keep :kept topic") for x in g.sync())
        g.send("MODE #keep b")
        assert any(command_of(x) == "367" and " bad!*@* " in x for x in g.sync())
        g.send("MODE #keep e")
        assert any(command_of(x) == "348" and " good!*@* " in x for x in g.sync())
        g.send("MODE #keep I")
        assert any(command_of(x) == "346" and " friend!*@* " in x for x in g.sync())
        fay = connect(second.port, "fay", password="faypw")
        fay.send("JOIN #keep sekrit")
        lines = fay.sync()
        assert f"{CS} MODE #keep +o fay" in lines, lines
        assert "@fay" in names(fay, "#keep")
        assert notices(cs(fay, "INFO #keep"))[1] == "Founder: fay"
        assert notices(cs(fay, "ACCESS #keep LIST")) == [
            "Access list of #keep:", "fay founder", "hal voice", "End of the access list."]
    finally:
        assert second.stop() == 0


def test_access_list_gives_op_and_voice_on_join(srv):
    founder = joined(srv.port, "fred", "#acc", password="fredpw")
    cs(founder, "REGISTER #acc")
    for nick in ("olga", "vic", "zed"):
        connect(srv.port, nick, password=nick + "pw").quit()
    assert notices(cs(founder, "ACCESS #acc ADD olga op")) == ["olga now has op access in #acc."]
    assert notices(cs(founder, "ACCESS #acc ADD vic voice")) == ["vic now has voice access in #acc."]
    assert notices(cs(founder, "ACCESS #acc ADD nobody op")) == ["nobody is not a registered account."]
    assert notices(cs(founder, "ACCESS #acc ADD vic admin")) == ["The level must be op or voice."]
    assert notices(cs(founder, "ACCESS #acc LIST")) == [
        "Access list of #acc:", "fred founder", "olga op", "vic voice", "End of the access list."]
    olga = joined(srv.port, "olga", "#acc", password="olgapw")
    vic = connect(srv.port, "vic", password="vicpw")
    vic.send("JOIN #acc")
    assert f"{CS} MODE #acc +v vic" in vic.sync()
    assert f"{CS} MODE #acc +v vic" in founder.sync()  # every member sees the status given
    zed = joined(srv.port, "zed", "#acc", password="zedpw")
    entries = names(founder, "#acc")
    assert "@olga" in entries and "+vic" in entries and "zed" in entries, entries
    # only the founder edits the list; anyone without access cannot even read it
    assert notices(cs(olga, "ACCESS #acc ADD zed op")) == ["Only the founder of #acc may do that."]
    assert notices(cs(zed, "ACCESS #acc LIST")) == ["You have no access to #acc."]
    assert notices(cs(founder, "ACCESS #acc DEL vic")) == ["vic removed from the access list of #acc."]
    assert notices(cs(founder, "ACCESS #acc DEL vic")) == ["vic is not on the access list of #acc."]
    vic.send("PART #acc")
    vic.send("JOIN #acc")
    vic.sync()
    assert "vic" in names(founder, "#acc")
    still_chats(zed, founder)


def test_op_deop_voice_need_access(srv):
    founder = joined(srv.port, "ann", "#ops", password="annpw")
    cs(founder, "REGISTER #ops")
    ben = joined(srv.port, "ben", "#ops", password="benpw")
    assert notices(cs(ben, "OP #ops")) == ["You do not have access to OP in #ops."]
    lines = cs(founder, "OP #ops ben")
    assert f"{CS} MODE #ops +o ben" in lines
    assert f"{CS} MODE #ops +o ben" in ben.sync()
    assert notices(cs(founder, "OP #ops ben")) == ["Nothing to change for ben in #ops."]
    cs(founder, "DEOP #ops ben")
    assert "ben" in names(ben, "#ops")
    lines = cs(founder, "DEOP #ops")
    assert f"{CS} MODE #ops -o ann" in lines
    cs(founder, "OP #ops")
    cs(founder, "VOICE #ops ben")
    assert "+ben" in names(ben, "#ops")
    assert notices(cs(founder, "OP #ops nosuchnick")) == ["nosuchnick is not online."]
    assert notices(cs(founder, "OP #unreg")) == ["#unreg is not registered."]
    guest = joined(srv.port, "gil", "#ops")
    assert notices(cs(guest, "VOICE #ops")) == ["You are not logged in."]
    still_chats(guest, ben)


def test_topiclock_keeps_the_topic_for_founder_and_op_accounts(srv):
    founder = joined(srv.port, "tia", "#tl", password="tiapw")
    cs(founder, "REGISTER #tl")
    other = joined(srv.port, "tom", "#tl", password="tompw")
    founder.send("MODE #tl +o tom")
    founder.sync()
    assert notices(cs(other, "SET #tl TOPICLOCK on")) == ["Only the founder of #tl may do that."]
    assert notices(cs(founder, "SET #tl TOPICLOCK maybe")) == ["Syntax: SET #chan TOPICLOCK|GUARD on|off"]
    assert notices(cs(founder, "SET #tl TOPICLOCK on")) == ["TOPICLOCK of #tl is now on."]
    other.send("TOPIC #tl :changed by tom")
    assert [x for x in other.sync() if command_of(x) == "482"] == [
        f":{SERVER} 482 tom #tl :The topic is locked (ChanServ TOPICLOCK)"]
    founder.send("TOPIC #tl :by the founder")
    assert any(x.endswith("TOPIC #tl :by the founder") for x in founder.sync())
    cs(founder, "ACCESS #tl ADD tom op")
    other.send("TOPIC #tl :tom has op access now")
    assert any(x.endswith("TOPIC #tl :tom has op access now") for x in other.sync())
    cs(founder, "SET #tl TOPICLOCK off")
    cs(founder, "ACCESS #tl DEL tom")
    other.send("TOPIC #tl :unlocked")
    assert any(x.endswith("TOPIC #tl :unlocked") for x in other.sync())


def test_guard_keeps_chanserv_in_the_channel(srv):
    founder = joined(srv.port, "gwen", "#guard", password="gwenpw")
    cs(founder, "REGISTER #guard")
    lines = cs(founder, "SET #guard GUARD on")
    assert f"{CS} JOIN #guard" in lines
    assert "@ChanServ" in names(founder, "#guard")
    # channel messages are not commands for ChanServ
    founder.send("PRIVMSG #guard :DROP #guard")
    assert notices(founder.sync()) == []
    lines = cs(founder, "SET #guard GUARD off")
    assert f"{CS} PART #guard :Guard off" in lines
    assert "@ChanServ" not in names(founder, "#guard")


def test_drop_unregisters_and_an_empty_channel_is_then_forgotten(srv):
    founder = joined(srv.port, "dora", "#drop", password="dorapw")
    cs(founder, "REGISTER #drop")
    other = joined(srv.port, "dan", "#drop", password="danpw")
    assert notices(cs(other, "DROP #drop")) == ["Only the founder of #drop may do that."]
    assert notices(cs(founder, "DROP #drop")) == ["#drop is no longer registered."]
    assert notices(cs(founder, "INFO #drop")) == ["#drop is not registered."]
    for c in (founder, other):
        c.send("PART #drop")
        c.sync()
    other.send("LIST #drop")
    assert not [x for x in other.sync() if command_of(x) == "322"]
    other.send("JOIN #drop")
    assert "@dan" in names(other, "#drop")  # a new channel again: its creator is operator


def test_cs_alias_and_help(srv):
    c = connect(srv.port, "helen")
    c.send("CS HELP")
    lines = notices(c.sync())
    assert lines[0].startswith("ChanServ registers channels.")
    assert any(x.startswith("ACCESS #chan ADD") for x in lines)


def test_registered_channels_by_config_are_kept_while_empty_and_claimable(server_factory):
    srv = server_factory(config_text=TOML.replace("autojoin = []",
                                                  'autojoin = []\nregistered_channels = ["#general"]'))
    c = connect(srv.port, "cleo", password="cleopw")
    c.send("LIST #general")
    assert any(command_of(x) == "322" and "#general 0 " in x for x in c.sync())
    assert notices(cs(c, "INFO #general"))[1].startswith("Founder: (none")
    c.send("JOIN #general")
    lines = c.sync()
    assert f"{CS} MODE #general +o cleo" in lines  # no founder: the first joiner is operator
    c.send("TOPIC #general :welcome")
    c.send("PART #general")
    c.sync()
    c.send("TOPIC #general")
    assert any(x.endswith("332 cleo #general :welcome") for x in c.sync())
    c.send("JOIN #general")
    c.sync()
    assert notices(cs(c, "REGISTER #general")) == ["#general is now registered to cleo."]
    assert notices(cs(c, "REGISTER #general")) == ["#general is already registered to cleo."]


def test_a_change_is_saved_within_seconds_even_if_the_server_is_killed(tmp_path):
    data = tmp_path / "data"
    first = ServerProcess(data, config_text=TOML).start()
    try:
        ivy = joined(first.port, "ivy", "#crash", password="ivypw")
        cs(ivy, "REGISTER #crash")
        ivy.send("TOPIC #crash :saved before the crash")
        ivy.sync()
        store = SQLiteChannelStore(data / "chatserver.sqlite3")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the once-a-second save, off the event loop
            saved = [r for r in store.load() if r["name"] == "#crash"]
            if saved and saved[0]["topic"] == "saved before the crash":
                break
            time.sleep(0.1)
        store.close()
        assert saved and saved[0]["founder"] == "ivy", saved
    finally:
        first.stop(signal.SIGKILL)
    second = ServerProcess(data, config_text=TOML).start()
    try:
        c = connect(second.port, "ivy", password="ivypw")
        c.send("TOPIC #crash")
        assert any(x.endswith("332 ivy #crash :saved before the crash") for x in c.sync())
    finally:
        second.stop()


def test_a_malformed_stored_channel_is_skipped_not_fatal(tmp_path):
    data = tmp_path / "data"
    store = SQLiteChannelStore(data / "chatserver.sqlite3")
    store.write([("#bad", {"name": "#bad", "created": "not a time"}),
                 ("#good", ChannelRegistry.record(_registered_channel("#good")))])
    store.close()
    srv = ServerProcess(data, config_text=TOML).start()
    try:
        c = connect(srv.port, "kim")
        c.send("LIST")
        listed = [x.split()[3] for x in c.sync() if command_of(x) == "322"]
        assert listed == ["#good"]
        assert "skipping a malformed registered channel '#bad'" in srv.log()
    finally:
        srv.stop()


def _registered_channel(name: str) -> Channel:
    chan = Channel(name=name, created=1_700_000_000.0)
    chan.registration = Registration(founder=None, registered_at=1_700_000_000.0)
    return chan
