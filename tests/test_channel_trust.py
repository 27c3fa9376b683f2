"""Who may enter and see a channel: INVITE, secret channels, history that dies with a channel.

Each test runs against a real ``python -m ircd`` on loopback (docs/protocol.md
"INVITE", "Secret channels", "CHATHISTORY"). Every refused step is checked
for its numeric, and that the members were not disturbed (they still chat).
"""

from __future__ import annotations

import pytest

from ircd.state import MAX_INVITES
from tests.rawusers import chats, numerics, params, until_pong, user
from tests.support import ServerProcess, command_of, config_with

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
    return any(command_of(x) == "JOIN" and x.startswith(f":{nick}!")
               and params(x)[0].lower() == chan.lower() for x in lines)


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
