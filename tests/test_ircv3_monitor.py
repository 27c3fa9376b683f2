"""MONITOR (IRCv3 "Monitor"), docs/protocol.md section 2 "MONITOR (presence)".

``MONITOR +`` answers at once with 730/731; afterwards 730/731 arrive when a
monitored nick logs in, quits, disconnects or changes nick. ``L`` (732/733),
``S``, ``-``, ``C``; at most 100 entries (734). Raw sockets against the real
server subprocess; the watcher shares no channel with the watched users.
"""

from __future__ import annotations

import pytest

from tests.ircv3util import SERVER, H, command_of, module_server, register_account

pytestmark = pytest.mark.timeout(30)

srv = module_server()


def on(watcher: str, *sources: str) -> str:
    return f":{SERVER} 730 {watcher} :" + ",".join(f"{n}!{n}@{H}" for n in sources)


def off(watcher: str, *nicks: str) -> str:
    return f":{SERVER} 731 {watcher} :" + ",".join(nicks)


def test_isupport_advertises_monitor_100(clients):
    c = clients("moisup")
    c.send("VERSION")
    tokens = " ".join(x for x in c.sync() if command_of(x) == "005").split(" ")
    assert "MONITOR=100" in tokens


def test_monitor_add_answers_at_once(clients):
    clients("moonline")
    w = clients("mowatch1")
    w.send("MONITOR + moonline,mooffline")
    assert w.sync() == [on("mowatch1", "moonline"), off("mowatch1", "mooffline")]
    w.send("MONITOR + mooffline")  # only offline ones: only 731
    assert w.sync() == [off("mowatch1", "mooffline")]


def test_monitor_login_quit_and_abrupt_disconnect(clients):
    w = clients("mowatch2")
    w.send("MONITOR + mologin")
    assert w.sync() == [off("mowatch2", "mologin")]
    target = clients("mologin")
    assert w.sync() == [on("mowatch2", "mologin")]
    target.send("QUIT :bye")
    assert target.closed_by_server(3)
    assert w.sync() == [off("mowatch2", "mologin")]
    # Again, then the socket is closed without QUIT.
    target = clients("mologin")
    assert w.sync() == [on("mowatch2", "mologin")]
    target.close()
    line = w.expect(lambda x: command_of(x) in ("730", "731"))
    assert line == off("mowatch2", "mologin")


def test_monitor_account_login_counts_only_when_it_succeeds(clients):
    register_account(clients.port, "moacct", "pw")
    w = clients("mowatch3")
    w.send("MONITOR + moacct")
    w.sync()
    bad = clients.raw()
    bad.send("PASS wrong")
    bad.send("NICK moacct")
    bad.send("USER moacct 0 * :x")
    bad.expect_numeric("464")
    assert bad.closed_by_server(3)
    assert w.sync() == []
    clients("moacct", password="pw")
    assert w.sync() == [on("mowatch3", "moacct")]


def test_monitor_nick_change(clients):
    w = clients("mowatch4")
    other = clients("mowatch5")
    w.send("MONITOR + monick1,monick2")
    other.send("MONITOR + monick1")  # watches only the old nick
    w.sync()
    other.sync()
    target = clients("monick1")
    assert w.sync() == [on("mowatch4", "monick1")]
    assert other.sync() == [on("mowatch5", "monick1")]
    target.send("NICK monick2")
    target.sync()
    assert w.sync() == [off("mowatch4", "monick1"), f":{SERVER} 730 mowatch4 :monick2!monick1@{H}"]
    assert other.sync() == [off("mowatch5", "monick1")]
    # A change of case only: the same monitored nick, no notification.
    target.send("NICK MONICK2")
    target.sync()
    assert w.sync() == []


def test_monitor_list_status_remove_and_clear(clients):
    clients("molsa")
    w = clients("mowatch6")
    w.send("MONITOR + molsa,molsb,molsc")
    w.sync()
    w.send("MONITOR L")
    lines = w.sync()
    assert lines[-1] == f":{SERVER} 733 mowatch6 :End of MONITOR list"
    listed = ",".join(x.split(" :", 1)[1] for x in lines if command_of(x) == "732")
    assert sorted(listed.split(",")) == ["molsa", "molsb", "molsc"]
    assert all(x.startswith(f":{SERVER} 732 mowatch6 :") for x in lines[:-1])

    w.send("MONITOR S")
    assert w.sync() == [on("mowatch6", "molsa"), off("mowatch6", "molsb", "molsc")]

    w.send("MONITOR - molsb")
    assert w.sync() == []
    w.send("MONITOR L")
    assert w.sync() == [f":{SERVER} 732 mowatch6 :molsa,molsc",
                        f":{SERVER} 733 mowatch6 :End of MONITOR list"]
    removed = clients("molsb")  # no longer monitored: no 730
    assert w.sync() == []
    removed.quit()
    assert w.sync() == []

    w.send("MONITOR C")
    assert w.sync() == []
    w.send("MONITOR L")
    assert w.sync() == [f":{SERVER} 733 mowatch6 :End of MONITOR list"]
    clients("molsc")
    assert w.sync() == []


def test_monitor_list_is_limited_to_100_entries(clients):
    w = clients("mowatch7")
    nicks = [f"mofull{i}" for i in range(100)]
    for i in range(0, 100, 25):
        w.send("MONITOR + " + ",".join(nicks[i:i + 25]))
    lines = w.sync()
    assert [command_of(x) for x in lines] == ["731"] * 4
    # Already on the list: accepted again without 734.
    w.send("MONITOR + mofull5")
    assert w.sync() == [off("mowatch7", "mofull5")]
    w.send("MONITOR + mofull100,mofull101")
    assert w.sync() == [f":{SERVER} 734 mowatch7 100 mofull100,mofull101 :Monitor list is full."]
    clients("mofull100")  # not added: no 730
    assert w.sync() == []
    w.send("MONITOR L")
    listed = ",".join(x.split(" :", 1)[1] for x in w.sync() if command_of(x) == "732")
    assert sorted(listed.split(",")) == sorted(nicks)


def test_extended_monitor_sends_away_and_setname_of_monitored_nicks(clients):
    # IRCv3 extended-monitor: no shared channel, yet the watcher who asked for it
    # (with away-notify and setname) is told; one who did not ask is not.
    target = clients("emtarget")
    keen = clients("emkeen", caps=["extended-monitor", "away-notify", "setname"])
    plain = clients("emplain", caps=["away-notify", "setname"])
    for w in (keen, plain):
        w.send("MONITOR + emtarget")
        w.sync()
    target.send("AWAY :lunch")
    target.send("SETNAME :New Name")
    target.sync()
    assert keen.sync() == [f":emtarget!emtarget@{H} AWAY :lunch",
                           f":emtarget!emtarget@{H} SETNAME :New Name"]
    assert plain.sync() == []


def test_extended_monitor_without_the_notify_capability_sends_nothing(clients):
    target = clients("emtarget2")
    watcher = clients("emwatch2", caps=["extended-monitor"])
    watcher.send("MONITOR + emtarget2")
    watcher.sync()
    target.send("AWAY :gone")
    target.sync()
    assert watcher.sync() == []
