"""Bounds of docs/security.md's table that no other module checks: the channel
list modes (MAXLIST). Real server, raw sockets; each refused step is checked
for its numeric, and the channel keeps working."""

from __future__ import annotations

import pytest

from ircd.chanaccess import MAX_LIST_ENTRIES
from tests.rawusers import until_pong
from tests.support import RawClient, command_of, config_with

pytestmark = pytest.mark.timeout(60)

FAST = config_with(limits={"flood_burst": 1000, "flood_rate": 1000.0, "flood_backlog": 1000})


@pytest.mark.parametrize("mode, end", [("b", "368"), ("e", "349"), ("I", "347")])
def test_each_list_mode_holds_at_most_maxlist_entries(server_factory, mode, end):
    srv = server_factory(config_text=FAST)
    op = RawClient(srv.port)
    op.register("listop")
    op.send("JOIN #lists")
    until_pong(op)
    for i in range(MAX_LIST_ENTRIES):
        op.send(f"MODE #lists +{mode} mask{i}!*@*")
    until_pong(op)
    op.send(f"MODE #lists +{mode} onemore!*@*")
    lines = until_pong(op)
    assert [command_of(x) for x in lines] == ["478"], lines
    assert f" 478 listop #lists {mode} :" in lines[0], lines
    op.send(f"MODE #lists {mode}")
    listed = until_pong(op)
    entries = [x for x in listed if command_of(x) not in (end,)]
    assert len(entries) == MAX_LIST_ENTRIES, listed[-3:]
    assert not any("onemore" in x for x in listed)
    # Removing one makes room again; the channel still works.
    op.send(f"MODE #lists -{mode} mask0!*@*")
    op.send(f"MODE #lists +{mode} onemore!*@*")
    lines = until_pong(op)
    assert not any(command_of(x) == "478" for x in lines), lines
    other = RawClient(srv.port)
    other.register("listuser")
    other.send("JOIN #lists")
    other.send("PRIVMSG #lists :still here")
    op.expect("PRIVMSG #lists :still here")
