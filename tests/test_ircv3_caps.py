"""IRCv3 capability negotiation and every capability's effect on the wire.

docs/protocol.md section 2 ("Capability negotiation") and the ircv3.net
specifications it links. Raw sockets against the real server subprocess; the
lines are compared exactly (tags parsed and checked separately, since
``time`` and ``msgid`` vary). One server is shared by the module; every test
uses its own nicks and channels (the server has no autojoin here).
"""

from __future__ import annotations

import base64

import pytest

from tests.ircv3util import (
    SERVER,
    Client,
    H,
    check_msgid,
    check_time,
    command_of,
    join,
    module_server,
    register_account,
    split_tags,
    src,
    tags_of,
    untagged,
)

pytestmark = pytest.mark.timeout(30)

srv = module_server()

# The table in docs/protocol.md, section 2.
DOCUMENTED = {
    "account-notify", "account-tag", "away-notify", "batch", "cap-notify", "chghost",
    "draft/account-registration", "draft/chathistory", "echo-message", "extended-join",
    "extended-monitor", "invite-notify", "labeled-response",
    "message-tags", "multi-prefix", "sasl=PLAIN", "server-time", "setname",
    "userhost-in-names", "znc.in/self-message",
}


def plain_lines(lines: list[str]) -> list[str]:
    return [untagged(x) for x in lines]


def cap_lines(lines: list[str]) -> list[str]:
    return [x for x in lines if command_of(x) == "CAP"]


def negotiate(c: Client, *lines: str) -> list[str]:
    for line in lines:
        c.send(line)
    return c.sync()


def sasl_plain(c: Client, account: str, password: str) -> list[str]:
    """AUTHENTICATE PLAIN for ``account``; returns the lines up to 903/904."""
    c.send("AUTHENTICATE PLAIN")
    c.expect(lambda line: line == "AUTHENTICATE +" or line.endswith(" AUTHENTICATE +"))
    payload = base64.b64encode(f"\0{account}\0{password}".encode()).decode()
    c.send(f"AUTHENTICATE {payload}")
    start = len(c.lines)
    c.expect(lambda line: command_of(line) in ("903", "904"))
    return c.lines[start:]


# -- negotiation -----------------------------------------------------------------------------

def test_cap_ls_302_lists_exactly_the_documented_capabilities_on_one_short_line(clients):
    c = clients.raw()
    c.send("CAP LS 302")
    lines = cap_lines(c.sync())
    assert len(lines) == 1, lines
    line = lines[0]
    assert len(line.encode()) + 2 < 512, f"LS line is {len(line) + 2} bytes"
    assert line.startswith(f":{SERVER} CAP * LS :"), line
    caps = line.split(" :", 1)[1].split(" ")
    assert len(caps) == len(set(caps))
    assert set(caps) == DOCUMENTED
    # The only value is sasl's.
    assert [x for x in caps if "=" in x] == ["sasl=PLAIN"]


def test_cap_ls_without_302_shows_no_values_and_does_not_enable_cap_notify(clients):
    c = clients.raw()
    c.send("CAP LS")
    lines = cap_lines(c.sync())
    assert len(lines) == 1, lines
    assert lines[0].startswith(f":{SERVER} CAP * LS :"), lines
    caps = lines[0].split(" :", 1)[1].split(" ")
    assert "=" not in lines[0].split(" :", 1)[1]
    assert set(caps) == {x.split("=")[0] for x in DOCUMENTED}
    c.send("CAP LIST")
    assert cap_lines(c.sync()) == [f":{SERVER} CAP * LIST :"]


def test_cap_ls_302_enables_cap_notify_implicitly(clients):
    c = clients.raw()
    c.send("CAP LS 302")
    c.send("CAP LIST")
    assert cap_lines(c.sync())[-1] == f":{SERVER} CAP * LIST :cap-notify"


@pytest.mark.parametrize("opening", ["CAP LS 302", "CAP LS", "CAP REQ :multi-prefix"])
def test_registration_is_suspended_until_cap_end(clients, opening):
    c = clients.raw()
    c.send(opening)
    c.send("NICK susp")
    c.send("USER susp 0 * :Sus Pended")
    lines = c.sync()
    assert not [x for x in lines if command_of(x).isdigit()], lines
    c.send("CAP LIST")
    c.send("PING stillwaiting")
    lines = c.sync()
    assert not [x for x in lines if command_of(x) == "001"], lines
    c.send("CAP END")
    assert c.expect_numeric("001") == f":{SERVER} 001 susp :Welcome to the chatserver IRC Network susp!susp@{H}"


def test_cap_req_ack_list_and_removal(clients):
    c = clients.raw()
    lines = negotiate(c, "CAP LS 302", "CAP REQ :multi-prefix server-time", "CAP LIST")
    assert cap_lines(lines)[1:] == [
        f":{SERVER} CAP * ACK :multi-prefix server-time",
        f":{SERVER} CAP * LIST :cap-notify multi-prefix server-time",
    ]
    lines = negotiate(c, "CAP REQ :-multi-prefix", "CAP LIST")
    assert cap_lines(lines) == [
        f":{SERVER} CAP * ACK :-multi-prefix",
        f":{SERVER} CAP * LIST :cap-notify server-time",
    ]
    c.send("NICK capreq")
    c.send("USER capreq 0 * :x")
    c.send("CAP END")
    c.expect_numeric("001")
    c.sync()
    # After registration the target is the nick.
    lines = negotiate(c, "CAP REQ :userhost-in-names", "CAP LIST")
    assert cap_lines(lines) == [
        f":{SERVER} CAP capreq ACK :userhost-in-names",
        f":{SERVER} CAP capreq LIST :cap-notify server-time userhost-in-names",
    ]


def test_cap_req_with_one_unknown_capability_is_refused_whole(clients):
    c = clients.raw()
    negotiate(c, "CAP LS 302", "CAP REQ :server-time")
    lines = negotiate(c, "CAP REQ :multi-prefix no-such-cap echo-message", "CAP LIST")
    assert cap_lines(lines) == [
        f":{SERVER} CAP * NAK :multi-prefix no-such-cap echo-message",
        f":{SERVER} CAP * LIST :cap-notify server-time",
    ]
    # A removal in a refused set does not happen either.
    lines = negotiate(c, "CAP REQ :-server-time bogus", "CAP LIST")
    assert cap_lines(lines) == [
        f":{SERVER} CAP * NAK :-server-time bogus",
        f":{SERVER} CAP * LIST :cap-notify server-time",
    ]
    # A value is not part of the name: "sasl=PLAIN" is not a capability to request.
    lines = negotiate(c, "CAP REQ :sasl=PLAIN")
    assert cap_lines(lines) == [f":{SERVER} CAP * NAK :sasl=PLAIN"]


def test_cap_unknown_subcommand_is_410(clients):
    c = clients.raw()
    assert c.numerics("410", negotiate(c, "CAP FROB")) == [
        f":{SERVER} 410 * FROB :Invalid CAP command"]


# -- message-tags (and message-ids) ------------------------------------------------------------

def test_message_tags_client_tags_msgid_and_tagmsg(clients):
    alice = clients("mtalice", ["message-tags"])
    bob = clients("mtbob", ["message-tags"])
    carl = clients("mtcarl")  # no capability
    join("#mt", alice, bob, carl)

    alice.send(r"@+example.com/foo=a\sb\:c;+bare;msgid=forged;time=2000-01-01T00:00:00.000Z "
               "PRIVMSG #mt :tagged")
    alice.send("PRIVMSG #mt :second")
    alice.send("NOTICE #mt :third")
    alice.sync()
    got = bob.sync()
    assert plain_lines(got) == [
        f":{src('mtalice')} PRIVMSG #mt :tagged",
        f":{src('mtalice')} PRIVMSG #mt :second",
        f":{src('mtalice')} NOTICE #mt :third",
    ]
    first = tags_of(got[0])
    # msgid is the server's (the client's forged one is dropped), time is not negotiated.
    assert first.pop("msgid") != "forged"
    assert first == {"+example.com/foo": r"a\sb\:c", "+bare": ""}, got[0]
    ids = [check_msgid(x) for x in got]
    assert len(set(ids)) == 3
    assert set(tags_of(got[1])) == {"msgid"}
    # Without message-tags: the same lines, no tags at all.
    assert carl.sync() == plain_lines(got)

    # TAGMSG: only to message-tags recipients, channel and direct.
    alice.send("@+typing=active TAGMSG #mt")
    alice.send("@+react=x TAGMSG mtcarl")
    alice.send("@+react=y TAGMSG mtbob")
    alice.sync()
    got = bob.sync()
    assert plain_lines(got) == [f":{src('mtalice')} TAGMSG #mt", f":{src('mtalice')} TAGMSG mtbob"]
    assert [{k: v for k, v in tags_of(x).items() if k != "msgid"} for x in got] == [
        {"+typing": "active"}, {"+react": "y"}]
    assert len({check_msgid(x) for x in got}) == 2
    assert carl.sync() == []


def test_message_tags_direct_message_and_oversized_tags(clients):
    alice = clients("mdalice", ["message-tags"])
    bob = clients("mdbob", ["message-tags"])
    alice.send("@+draft/reply=abc PRIVMSG mdbob :dm")
    alice.sync()
    got = bob.sync()
    assert len(got) == 1 and untagged(got[0]) == f":{src('mdalice')} PRIVMSG mdbob :dm"
    tags = tags_of(got[0])
    check_msgid(got[0])
    assert tags["+draft/reply"] == "abc" and set(tags) == {"msgid", "+draft/reply"}
    # A tag section over 4096 bytes: 417, and the connection stays usable.
    alice.send("@+big=" + "x" * 4100 + " PRIVMSG mdbob :too big")
    lines = alice.sync()
    assert alice.numerics("417", lines) == [f":{SERVER} 417 mdalice :Input line was too long"]
    assert bob.sync() == []


# -- server-time -----------------------------------------------------------------------------

def test_server_time_on_messages_and_events(clients):
    alice = clients("stalice", ["server-time"])
    bob = clients("stbob")
    join("#st", alice, bob)
    alice.send("MODE #st -t")
    alice.sync()
    for line in ("PRIVMSG #st :one", "NOTICE #st :two", "TOPIC #st :topic", "PART #st :bye",
                 "JOIN #st", "NICK stbob2", "PRIVMSG stalice :direct", "AWAY :x", "QUIT :later"):
        bob.send(line)
    bob.closed_by_server(3)
    alice.send("MODE #st +m")
    got = alice.sync()
    assert plain_lines(got) == [
        f":{src('stbob')} PRIVMSG #st :one",
        f":{src('stbob')} NOTICE #st :two",
        f":{src('stbob')} TOPIC #st :topic",
        f":{src('stbob')} PART #st :bye",
        f":{src('stbob')} JOIN #st",
        f":{src('stbob')} NICK :stbob2",
        f":stbob2!stbob@{H} PRIVMSG stalice :direct",
        f":stbob2!stbob@{H} QUIT :Quit: later",
        f":{src('stalice')} MODE #st +m",
    ]
    for line in got:
        assert set(tags_of(line)) == {"time"}, line
        check_time(line)
    times = [tags_of(x)["time"] for x in got]
    assert times == sorted(times)


def test_server_time_on_kick_invite_away_setname_and_account(clients):
    register_account(clients.port, "st2acct", "pw-st2")
    alice = clients("st2alice", ["server-time", "away-notify", "setname", "account-notify",
                                 "invite-notify"])
    bob = clients("st2bob")
    carl = clients("st2carl")
    join("#st2", bob, alice, carl)  # bob is the operator
    bob.send("KICK #st2 st2carl :out")
    bob.send("INVITE st2carl #st2")
    bob.send("AWAY :lunch")
    bob.send("SETNAME :Bob Two")
    bob.sync()
    sasl_plain(bob, "st2acct", "pw-st2")
    bob.sync()
    got = alice.sync()
    assert plain_lines(got) == [
        f":{src('st2bob')} KICK #st2 st2carl :out",
        f":{src('st2bob')} INVITE st2carl #st2",
        f":{src('st2bob')} AWAY :lunch",
        f":{src('st2bob')} SETNAME :Bob Two",
        f":{src('st2bob')} ACCOUNT st2acct",
    ]
    for line in got:
        assert set(tags_of(line)) == {"time"}, line
        check_time(line)


# -- account-tag -----------------------------------------------------------------------------

def test_account_tag_only_for_logged_in_senders(clients):
    register_account(clients.port, "atbob", "pw-atbob")
    alice = clients("atalice", ["account-tag"])
    bob = clients("atbob", password="pw-atbob")
    guest = clients("atguest")
    alice.send("JOIN #at")
    alice.send("MODE #at -t")
    alice.sync()
    for c in (bob, guest):
        c.send("JOIN #at")
        c.send("PRIVMSG #at :hello")
        c.send("NOTICE atalice :note")
        c.send("TOPIC #at :t")
        c.send("PART #at")
        c.sync()
    got = alice.sync()
    assert plain_lines(got) == [
        f":{src('atbob')} JOIN #at",
        f":{src('atbob')} PRIVMSG #at :hello",
        f":{src('atbob')} NOTICE atalice :note",
        f":{src('atbob')} TOPIC #at :t",
        f":{src('atbob')} PART #at",
        f":{src('atguest')} JOIN #at",
        f":{src('atguest')} PRIVMSG #at :hello",
        f":{src('atguest')} NOTICE atalice :note",
        f":{src('atguest')} TOPIC #at :t",
        f":{src('atguest')} PART #at",
    ]
    for line in got[:5]:
        assert tags_of(line) == {"account": "atbob"}, line
    for line in got[5:]:
        assert line.startswith(":"), line


def test_account_tag_on_nick_and_quit_of_a_logged_in_user(clients):
    """account-tag: the server adds ``account`` to every command a logged-in user sends."""
    register_account(clients.port, "atnq", "pw-atnq")
    alice = clients("atnqwatch", ["account-tag"])
    bob = clients("atnq", password="pw-atnq")
    join("#atnq", alice, bob)
    bob.send("NICK atnq2")
    bob.send("QUIT :gone")
    bob.closed_by_server(3)
    got = alice.sync()
    assert plain_lines(got) == [f":{src('atnq')} NICK :atnq2", f":atnq2!atnq@{H} QUIT :Quit: gone"]
    assert [tags_of(x) for x in got] == [{"account": "atnq"}, {"account": "atnq"}], got


# -- echo-message, znc.in/self-message -------------------------------------------------------

def test_echo_message_echo_carries_the_recipients_tags(clients):
    caps = ["echo-message", "message-tags", "server-time"]
    alice = clients("emalice", caps)
    bob = clients("embob", ["message-tags", "server-time"])
    carl = clients("emcarl")
    join("#em", alice, bob, carl)
    alice.send("@+x=1 PRIVMSG #em :hi all")
    alice.send("NOTICE embob :psst")
    alice.send("@+y=2 TAGMSG #em")
    echoes = alice.sync()
    got = bob.sync()
    assert plain_lines(echoes) == plain_lines(got) == [
        f":{src('emalice')} PRIVMSG #em :hi all",
        f":{src('emalice')} NOTICE embob :psst",
        f":{src('emalice')} TAGMSG #em",
    ]
    for echo, recv in zip(echoes, got, strict=True):
        assert tags_of(echo) == tags_of(recv)
        check_time(echo)
        check_msgid(echo)
    assert tags_of(echoes[0])["+x"] == "1"
    assert carl.sync() == [f":{src('emalice')} PRIVMSG #em :hi all"]
    # Without echo-message the sender gets nothing back.
    bob.send("PRIVMSG #em :no echo")
    assert bob.sync() == []


def test_message_to_yourself_arrives_once_and_with_echo_message_twice(clients):
    # znc.in/self-message alone: once, own source. echo-message: the delivery and
    # the echo (Ergo, InspIRCd; tests/test_conformance_echo.py has the other cases).
    for nick, caps, copies in (("selfecho", ["echo-message", "znc.in/self-message"], 2),
                               ("selfonly", ["znc.in/self-message"], 1)):
        c = clients(nick, caps)
        c.send(f"PRIVMSG {nick} :note to self")
        assert c.sync() == [f":{src(nick)} PRIVMSG {nick} :note to self"] * copies


# -- labeled-response and batch ----------------------------------------------------------------

def test_labeled_response_ack_single_line_and_batch(clients):
    alice = clients("lralice", ["labeled-response", "batch"], password="pw-lralice")
    bob = clients("lrbob")
    alice.send("@label=a PONG x")
    assert alice.sync() == [f"@label=a :{SERVER} ACK"]
    alice.send("@label=p PRIVMSG lrbob :no echo without echo-message")
    assert alice.sync() == [f"@label=p :{SERVER} ACK"]
    assert bob.sync() == [f":{src('lralice')} PRIVMSG lrbob :no echo without echo-message"]
    alice.send("@label=b PING x")
    assert alice.sync() == [f"@label=b :{SERVER} PONG {SERVER} :x"]
    alice.send(r"@label=sp\sace PING y")
    assert alice.sync() == [rf"@label=sp\sace :{SERVER} PONG {SERVER} :y"]

    alice.send("@label=c WHOIS lralice")
    lines = alice.sync()
    first_tags, first = split_tags(lines[0])
    assert first_tags.get("label") == "c" and set(first_tags) == {"label"}, lines[0]
    assert first.startswith(f":{SERVER} BATCH +") and first.endswith(" labeled-response"), first
    ref = first.split(" ")[2][1:]
    assert ref
    assert lines[-1] == f":{SERVER} BATCH -{ref}"
    inner = lines[1:-1]
    assert [command_of(x) for x in inner] == ["311", "312", "330", "378", "317", "318"]
    for line in inner:
        assert tags_of(line) == {"batch": ref}, line
    assert untagged(inner[0]) == f":{SERVER} 311 lralice lralice lralice {H} * :lralice real"
    assert untagged(inner[2]) == f":{SERVER} 330 lralice lralice lralice :is logged in as"

    # Batch ids are unique per batch.
    alice.send("@label=d WHOIS lrbob")
    lines = alice.sync()
    ref2 = untagged(lines[0]).split(" ")[2][1:]
    assert ref2 != ref and lines[-1] == f":{SERVER} BATCH -{ref2}"


def test_labeled_response_on_echoed_message(clients):
    alice = clients("lealice", ["labeled-response", "batch", "echo-message", "message-tags"])
    bob = clients("lebob", ["message-tags"])
    alice.send("@label=e1;+t=v PRIVMSG lebob :labeled")
    lines = alice.sync()
    got = bob.sync()
    assert len(lines) == 1 and untagged(lines[0]) == f":{src('lealice')} PRIVMSG lebob :labeled"
    tags = tags_of(lines[0])
    assert tags.pop("label") == "e1"
    assert tags == tags_of(got[0])
    assert tags["+t"] == "v"


# -- extended-join -----------------------------------------------------------------------------

def test_extended_join(clients):
    register_account(clients.port, "ejbob", "pw-ejbob")
    alice = clients("ejalice", ["extended-join"])
    alice.send("JOIN #ej")
    lines = alice.sync()
    assert lines[0] == f":{src('ejalice')} JOIN #ej * :ejalice real"
    bob = clients("ejbob", password="pw-ejbob", realname="Bob the Builder")
    guest = clients("ejguest", realname="Just Visiting")
    join("#ej", bob, guest)
    assert alice.sync() == [
        f":{src('ejbob')} JOIN #ej ejbob :Bob the Builder",
        f":{src('ejguest')} JOIN #ej * :Just Visiting",
    ]


# -- away-notify ---------------------------------------------------------------------------------

def test_away_notify(clients):
    alice = clients("awalice", ["away-notify"])
    bob = clients("awbob")
    carl = clients("awcarl")
    join("#aw", alice, bob, carl)
    bob.send("AWAY :gone fishing")
    assert bob.sync() == [f":{SERVER} 306 awbob :You have been marked as being away"]
    bob.send("AWAY")
    assert bob.sync() == [f":{SERVER} 305 awbob :You are no longer marked as being away"]
    assert alice.sync() == [f":{src('awbob')} AWAY :gone fishing", f":{src('awbob')} AWAY"]
    assert carl.sync() == []
    # A user who is away when joining: JOIN, then AWAY, to members with the capability.
    dave = clients("awdave")
    dave.send("AWAY :brb")
    dave.send("JOIN #aw")
    dave.sync()
    assert alice.sync() == [f":{src('awdave')} JOIN #aw", f":{src('awdave')} AWAY :brb"]
    assert carl.sync() == [f":{src('awdave')} JOIN #aw"]


# -- account-notify ------------------------------------------------------------------------------

def test_account_notify_on_sasl_after_registration(clients):
    register_account(clients.port, "anacct", "pw-anacct")
    alice = clients("analice", ["account-notify"])
    carl = clients("ancarl")
    guest = clients("anguest")
    join("#an", alice, carl, guest)
    lines = sasl_plain(guest, "anacct", "pw-anacct")
    assert [command_of(x) for x in lines] == ["900", "903"]
    assert lines[0] == f":{SERVER} 900 anguest {src('anguest')} anacct :You are now logged in as anacct"
    guest.sync()
    assert alice.sync() == [f":{src('anguest')} ACCOUNT anacct"]
    assert carl.sync() == []


# -- multi-prefix, userhost-in-names -----------------------------------------------------------

def test_multi_prefix_in_names_who_and_whois(clients):
    alice = clients("mpalice")
    bob = clients("mpbob", ["multi-prefix"])
    carl = clients("mpcarl")
    join("#mp", alice, bob, carl)
    alice.send("MODE #mp +v mpalice")
    alice.sync()
    for c in (bob, carl):
        c.send("NAMES #mp")
        c.send("WHO #mp")
        c.send("WHOIS mpalice")
    got = [x for x in bob.sync() if command_of(x) in ("353", "352", "319")]
    assert got == [
        f":{SERVER} 353 mpbob = #mp :@+mpalice mpbob mpcarl",
        f":{SERVER} 352 mpbob #mp mpalice {H} {SERVER} mpalice H@+ :0 mpalice real",
        f":{SERVER} 352 mpbob #mp mpbob {H} {SERVER} mpbob H :0 mpbob real",
        f":{SERVER} 352 mpbob #mp mpcarl {H} {SERVER} mpcarl H :0 mpcarl real",
        f":{SERVER} 319 mpbob mpalice :@+#mp",
    ]
    got = [x for x in carl.sync() if command_of(x) in ("353", "352", "319")]
    assert got[0] == f":{SERVER} 353 mpcarl = #mp :@mpalice mpbob mpcarl"
    assert got[1] == f":{SERVER} 352 mpcarl #mp mpalice {H} {SERVER} mpalice H@ :0 mpalice real"
    assert got[-1] == f":{SERVER} 319 mpcarl mpalice :@#mp"


def test_userhost_in_names(clients):
    alice = clients("uhalice", ["userhost-in-names"])
    bob = clients("uhbob")
    join("#uh", alice, bob)
    alice.send("NAMES #uh")
    assert alice.sync() == [
        f":{SERVER} 353 uhalice = #uh :@{src('uhalice')} {src('uhbob')}",
        f":{SERVER} 366 uhalice #uh :End of /NAMES list",
    ]
    bob.send("NAMES #uh")
    assert bob.sync()[0] == f":{SERVER} 353 uhbob = #uh :@uhalice uhbob"


# -- setname ---------------------------------------------------------------------------------------

def test_setname(clients):
    alice = clients("snalice", ["setname"])
    bob = clients("snbob", ["setname"])
    carl = clients("sncarl")
    join("#sn", alice, bob, carl)
    bob.send("SETNAME :Robert Tables")
    assert bob.sync() == [f":{src('snbob')} SETNAME :Robert Tables"]
    assert alice.sync() == [f":{src('snbob')} SETNAME :Robert Tables"]
    assert carl.sync() == []
    carl.send("WHOIS snbob")
    assert carl.sync()[0] == f":{SERVER} 311 sncarl snbob snbob {H} * :Robert Tables"
    bob.send("SETNAME :" + "x" * 101)
    assert bob.sync() == [f":{SERVER} FAIL SETNAME INVALID_REALNAME :Realname is not valid"]
    bob.send("SETNAME :" + "y" * 100)  # exactly the limit is fine
    assert bob.sync() == [f":{src('snbob')} SETNAME :{'y' * 100}"]
    assert alice.sync() == [f":{src('snbob')} SETNAME :{'y' * 100}"]


# -- invite-notify -------------------------------------------------------------------------------

def test_invite_notify(clients):
    alice = clients("inalice")
    bob = clients("inbob", ["invite-notify"])
    carl = clients("incarl")
    target = clients("intarget")
    join("#inv", alice, bob, carl)
    alice.send("INVITE intarget #inv")
    assert alice.sync() == [f":{SERVER} 341 inalice intarget :#inv"]
    assert target.sync() == [f":{src('inalice')} INVITE intarget #inv"]
    assert bob.sync() == [f":{src('inalice')} INVITE intarget #inv"]
    assert carl.sync() == []


# -- chghost / cap-notify: never sent -----------------------------------------------------------

def test_chghost_and_cap_notify_lines_are_never_sent(clients):
    alice = clients("chalice", ["chghost", "cap-notify"])
    bob = clients("chbob")
    join("#ch", alice, bob)
    bob.send("NICK chbob2")
    bob.send("AWAY :x")
    bob.send("SETNAME :new")
    bob.sync()
    got = alice.sync()
    assert got == [f":{src('chbob')} NICK :chbob2"]


# -- no trace without the capabilities -----------------------------------------------------------

ALL_CAPS = sorted(x.split("=")[0] for x in DOCUMENTED)


def test_a_client_without_capabilities_sees_no_trace_of_them(clients):
    register_account(clients.port, "ntfull", "pw-ntfull")
    register_account(clients.port, "ntacct", "pw-ntacct")
    plain = clients("ntplain")
    full = clients("ntfull", ALL_CAPS, password="pw-ntfull")
    guest = clients("ntguest", ALL_CAPS)
    clients("ntother")
    join("#nt", full, plain, guest)
    plain.sync()
    # Everything that would produce tags or extension lines for a capable client:
    full.send("@+example/x=1 PRIVMSG #nt :tagged")
    full.send("@+example/y=2 PRIVMSG ntplain :tagged dm")
    full.send("NOTICE #nt :note")
    full.send("@+typing=active TAGMSG #nt")
    full.send("@+typing=active TAGMSG ntplain")
    full.send("AWAY :away now")
    full.send("AWAY")
    full.send("SETNAME :Brand New Name")
    full.send("TOPIC #nt :topic")
    full.send("INVITE ntother #nt")
    full.sync()
    sasl_plain(guest, "ntacct", "pw-ntacct")
    guest.sync()
    away = clients("ntaway")
    away.send("AWAY :not here")
    away.send("JOIN #nt")
    away.sync()
    full.send("NICK ntfull2")
    full.send("PART #nt :parting")
    full.send("JOIN #nt")
    full.sync()
    # The plain client's own labeled commands get no label, no batch, no echo.
    plain.send("@label=a PING x")
    plain.send("@label=b WHOIS ntplain")
    plain.send("@label=c PRIVMSG #nt :mine")
    plain.send("@label=d PONG x")
    plain.send("NAMES #nt")
    plain.send("WHO #nt")
    lines = plain.sync()
    full.send("QUIT :done")
    full.closed_by_server(3)
    lines += plain.sync()

    assert lines, "nothing received"
    for line in lines:
        assert not line.startswith("@"), line
        assert line.startswith(":"), line
        assert command_of(line) not in ("BATCH", "ACCOUNT", "AWAY", "SETNAME", "CHGHOST",
                                        "TAGMSG", "CAP", "ACK", "INVITE", "FAIL"), line
    assert f":{src('ntfull')} PRIVMSG #nt :tagged" in lines
    assert f":{src('ntfull')} PRIVMSG ntplain :tagged dm" in lines
    joins = [x for x in lines if command_of(x) == "JOIN"]
    assert joins == [f":{src('ntaway')} JOIN #nt", f":ntfull2!ntfull@{H} JOIN #nt"]
    assert f":{SERVER} PONG {SERVER} :x" in lines
    # Nobody is an operator any more (ntfull left and came back).
    assert f":{SERVER} 353 ntplain = #nt :ntplain ntguest ntaway ntfull2" in lines
    assert lines[-1] == f":ntfull2!ntfull@{H} QUIT :Quit: done"


# -- WHOX ------------------------------------------------------------------------------------------

def test_whox_fields_order_and_token(clients):
    register_account(clients.port, "wxalice", "pw-wxalice")
    alice = clients("wxalice", password="pw-wxalice", realname="Alice Liddell")
    bob = clients("wxbob", realname="Bob Guest")
    join("#wx", alice, bob)
    bob.send("AWAY :out")
    bob.sync()
    alice.send("WHO #wx %tcuhnfar,123")
    assert alice.sync() == [
        f":{SERVER} 354 wxalice 123 #wx wxalice {H} wxalice H@ wxalice :Alice Liddell",
        f":{SERVER} 354 wxalice 123 #wx wxbob {H} wxbob G 0 :Bob Guest",
        f":{SERVER} 315 wxalice #wx :End of WHO list",
    ]
    # IP: yours only (others 255.255.255.255); server, hop count 0, op level n/a; no token.
    alice.send("WHO #wx %nisdo")
    assert alice.sync() == [
        f":{SERVER} 354 wxalice {H} {SERVER} wxalice 0 n/a",
        f":{SERVER} 354 wxalice 255.255.255.255 {SERVER} wxbob 0 n/a",
        f":{SERVER} 315 wxalice #wx :End of WHO list",
    ]
    alice.send("VERSION")
    isupport = " ".join(x for x in alice.sync() if command_of(x) == "005")
    assert " WHOX " in isupport
