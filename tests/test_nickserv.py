"""NickServ (docs/protocol.md "Services"): REGISTER, IDENTIFY, PASSWORD, INFO, DROP, HELP.

Real server subprocess with ``[services] enabled = true``, raw sockets. Every
answer is a NOTICE from ``NickServ!NickServ@<server>``; logging in and out
also sends 900/901 and ``ACCOUNT`` to account-notify peers.
"""

from __future__ import annotations

import pytest

from tests.ircv3util import (
    QUIET_SERVICES_TOML,
    SERVER,
    Client,
    command_of,
    connect,
    join,
    module_server,
    still_chats,
)
from tests.support import SERVICES_TOML

pytestmark = pytest.mark.timeout(60)


srv = module_server(QUIET_SERVICES_TOML)
NS = f":NickServ!NickServ@{SERVER} NOTICE"


def ns(c: Client, text: str) -> list[str]:
    """``PRIVMSG NickServ :text``; return every line up to the sync (answers are in order)."""
    c.send(f"PRIVMSG NickServ :{text}")
    return c.sync()


def notices(lines: list[str]) -> list[str]:
    """The texts of NickServ's NOTICEs among ``lines``."""
    return [line.split(" :", 1)[1] for line in lines if line.startswith(NS)]


def whois_account(c: Client, nick: str) -> str | None:
    c.send(f"WHOIS {nick}")
    lines = c.sync()
    acct = [x for x in lines if command_of(x) == "330"]
    return acct[0].split()[4] if acct else None


def test_nickserv_is_a_user_whose_nick_cannot_be_taken(clients):
    c = clients.raw()
    c.send("NICK NickServ")
    c.send("USER x 0 * :x")
    assert command_of(c.expect(lambda line: command_of(line) in ("433", "001"))) == "433"
    c.send("NICK nsguest1")
    c.expect_numeric("001")
    c.sync()
    c.nick = "nsguest1"
    c.send("NICK nickserv")
    assert [command_of(x) for x in c.sync()] == ["433"]
    c.send("WHOIS NickServ")
    lines = c.sync()
    assert f":{SERVER} 311 nsguest1 NickServ NickServ {SERVER} * :Account services" in lines
    c.send("WHO NickServ")
    assert any(command_of(x) == "352" and " NickServ H" in x for x in c.sync())
    other = clients("nsguest2")
    still_chats(c, other)


def test_register_logs_the_guest_in_and_the_account_then_needs_its_password(clients, srv):
    watcher = clients("nswatch1", caps=["account-notify"])
    alice = clients("nsalice1")
    join("#nsreg1", watcher, alice)
    lines = ns(alice, "REGISTER s3cret")
    assert f":{SERVER} 900 nsalice1 nsalice1!nsalice1@127.0.0.1 nsalice1 :You are now logged in as nsalice1" in lines
    assert notices(lines) == ["Account nsalice1 registered; you are now logged in."]
    assert ":nsalice1!nsalice1@127.0.0.1 ACCOUNT nsalice1" in watcher.sync()
    assert whois_account(watcher, "nsalice1") == "nsalice1"
    alice.quit()
    wrong = Client(srv.port)
    wrong.send("PASS nope")
    wrong.send("NICK nsalice1")
    wrong.send("USER a 0 * :a")
    wrong.expect_numeric("464")
    right = connect(srv.port, "nsalice1", password="s3cret")
    assert any(command_of(x) == "900" for x in right.lines)
    right.quit()


def test_register_refused_when_logged_in_taken_or_malformed(clients):
    bob = clients("nsbob1")
    assert notices(ns(bob, "REGISTER")) == ["Syntax: REGISTER <password>"]
    assert notices(ns(bob, "REGISTER a b")) == ["Syntax: REGISTER <password>"]
    assert notices(ns(bob, "REGISTER " + "x" * 301)) == [
        "That password is not acceptable: 1 to 300 bytes, no spaces."]
    assert whois_account(bob, "nsbob1") is None
    assert notices(ns(bob, "REGISTER pw1"))[0].startswith("Account nsbob1 registered")
    assert notices(ns(bob, "REGISTER pw2")) == ["You are already logged in as nsbob1."]
    other = clients("nsbob2")
    still_chats(bob, other)


def test_identify_logs_in_and_a_wrong_password_does_not(clients):
    owner = clients("nscarol1", password="carolpw")
    owner.quit()
    guest = clients("nscguest")
    lines = ns(guest, "IDENTIFY nscarol1 wrong")
    assert notices(lines) == ["Invalid account credentials."]
    assert not [x for x in lines if command_of(x) == "900"]
    assert notices(ns(guest, "IDENTIFY nobodyatall pw")) == ["Invalid account credentials."]
    assert whois_account(guest, "nscguest") is None
    lines = ns(guest, "IDENTIFY nscarol1 carolpw")
    assert notices(lines) == ["You are now logged in as nscarol1."]
    assert f":{SERVER} 900 nscguest nscguest!nscguest@127.0.0.1 nscarol1 :You are now logged in as nscarol1" in lines
    assert whois_account(guest, "nscguest") == "nscarol1"
    assert notices(ns(guest, "IDENTIFY nscarol1 carolpw")) == ["You are already logged in as nscarol1."]
    assert notices(ns(guest, "IDENTIFY")) == ["Syntax: IDENTIFY [<account>] <password>"]
    still_chats(guest, clients("nscother"))


def test_identify_with_the_password_alone_uses_the_current_nick(clients, srv):
    # In server-password-less mode a registered nick needs PASS; so log in from another
    # nick, then rename to the account's nick is refused until logged in.
    owner = clients("nsdave1", password="davepw")
    owner.quit()
    g = clients("nsdguest")
    g.send("NICK nsdave1")
    assert [command_of(x) for x in g.sync()] == ["433"]
    assert notices(ns(g, "IDENTIFY davepw")) == ["Invalid account credentials."]  # nsdguest: no account
    assert notices(ns(g, "IDENTIFY nsdave1 davepw")) == ["You are now logged in as nsdave1."]
    g.send("NICK nsdave1")
    assert any(x.endswith("NICK :nsdave1") for x in g.sync())


def test_password_changes_the_password_only_with_the_old_one(clients, srv):
    erin = clients("nserin1", password="old-pw")
    assert notices(ns(erin, "PASSWORD wrong new-pw")) == ["Invalid password."]
    assert notices(ns(erin, "PASSWORD old-pw")) == ["Syntax: PASSWORD <old password> <new password>"]
    assert notices(ns(erin, "PASSWORD old-pw new-pw")) == ["Password of nserin1 changed."]
    erin.quit()
    old = Client(srv.port)
    old.send("PASS old-pw")
    old.send("NICK nserin1")
    old.send("USER e 0 * :e")
    old.expect_numeric("464")
    new = connect(srv.port, "nserin1", password="new-pw")
    assert any(command_of(x) == "900" for x in new.lines)
    new.quit()
    guest = clients("nsfguest")
    assert notices(ns(guest, "PASSWORD a b")) == ["You are not logged in."]


def test_info_shows_registration_and_last_seen(clients):
    gina = clients("nsgina1", password="ginapw")
    lines = notices(ns(gina, "INFO"))
    assert lines[0] == "Account: nsgina1"
    assert lines[1].startswith("Registered: 20") and lines[1].endswith(" UTC")
    assert lines[2] == "Last seen: online now"
    gina.quit()
    other = clients("nsginaf")
    lines = notices(ns(other, "INFO nsgina1"))
    assert lines[0] == "Account: nsgina1"
    assert lines[2].startswith("Last seen: 20"), lines
    assert notices(ns(other, "INFO nsnobody9")) == ["nsnobody9 is not a registered account."]
    assert notices(ns(other, "INFO")) == ["nsginaf is not a registered account."]


def test_drop_deletes_the_account_and_logs_out(clients, srv):
    watcher = clients("nswatch2", caps=["account-notify"])
    hank = clients("nshank1", password="hankpw")
    join("#nsdrop1", watcher, hank)
    assert notices(ns(hank, "DROP wrong")) == ["Invalid password."]
    assert whois_account(watcher, "nshank1") == "nshank1"
    lines = ns(hank, "DROP hankpw")
    assert f":{SERVER} 901 nshank1 nshank1!nshank1@127.0.0.1 :You are now logged out" in lines
    assert notices(lines) == ["Account nshank1 dropped."]
    assert ":nshank1!nshank1@127.0.0.1 ACCOUNT *" in watcher.sync()
    assert whois_account(watcher, "nshank1") is None
    hank.quit()
    # the name is free again: a guest may take it, and register it anew
    again = clients("nshank1")
    assert notices(ns(again, "REGISTER other"))[0].startswith("Account nshank1 registered")
    guest = clients("nshguest")
    assert notices(ns(guest, "DROP x")) == ["You are not logged in."]
    still_chats(guest, watcher)


def test_ns_alias_help_and_unknown_commands(clients):
    c = clients("nsivan1")
    c.send("NS HELP")
    lines = notices(c.sync())
    assert lines[0].startswith("NickServ manages accounts.")
    assert any(x.startswith("IDENTIFY") for x in lines)
    c.send("NS FROB")
    assert notices(c.sync()) == ["Unknown command FROB. Type /msg NickServ HELP for the commands."]
    c.send("NICKSERV REGISTER ivanpw")
    assert notices(c.sync())[0].startswith("Account nsivan1 registered")
    c.send("PRIVMSG NickServ :")
    assert [command_of(x) for x in c.sync()] == ["412"]  # no text: never reaches NickServ
    c.send("PRIVMSG NickServ :   ")
    assert notices(c.sync()) == ["Type /msg NickServ HELP for the commands."]


def test_labeled_ns_identify_answer_carries_the_label(clients):
    owner = clients("nsjane1", password="janepw")
    owner.quit()
    c = clients("nsjguest", caps=["labeled-response", "batch"])
    c.send("@label=xy1 NS IDENTIFY nsjane1 janepw")
    lines = c.sync()
    assert lines[0].startswith("@label=xy1 ") and "BATCH +" in lines[0], lines
    assert any(" 900 " in x for x in lines)
    assert any("You are now logged in as nsjane1" in x for x in lines)


THROTTLE_TOML = SERVICES_TOML + """
[server]
autojoin = []

[limits]
login_failures_per_account = 2
login_delay_max = 0.0
"""


def test_identify_is_throttled_like_pass(server_factory):
    srv = server_factory(config_text=THROTTLE_TOML)
    register = connect(srv.port, "nskate1", password="katepw")
    register.quit()
    c = connect(srv.port, "nskguest")
    for _ in range(2):
        assert notices(ns(c, "IDENTIFY nskate1 wrong")) == ["Invalid account credentials."]
    lines = notices(ns(c, "IDENTIFY nskate1 katepw"))
    assert len(lines) == 1 and lines[0].startswith("Too many failed login attempts; try again in ")
    assert whois_account(c, "nskguest") is None
    # PASS from the same address is locked out for that account too: one throttle
    p = Client(srv.port)
    p.send("PASS katepw")
    p.send("NICK nskate1")
    p.send("USER k 0 * :k")
    assert "Too many failed login attempts" in p.expect_numeric("464")
    other = connect(srv.port, "nskother")
    still_chats(c, other)
    for x in (c, other):
        x.quit()
