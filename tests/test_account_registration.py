"""IRCv3 draft/account-registration: REGISTER and VERIFY (docs/protocol.md "Services").

``REGISTER * <password>`` and ``REGISTER <account> * <password>`` complete at
once (no e-mail): 900 then ``REGISTER SUCCESS``; the standard-replies FAIL
codes of the spec otherwise. Real server subprocess, raw sockets.
"""

from __future__ import annotations

import pytest

from tests.ircv3util import (
    SERVER,
    command_of,
    connect,
    join,
    module_server,
    still_chats,
)
from tests.support import FAST_HASH_TOML

pytestmark = pytest.mark.timeout(60)

srv = module_server(FAST_HASH_TOML + """
[server]
autojoin = []

[limits]
flood_burst = 100000
flood_rate = 100000.0
""")


def test_capability_is_advertised_without_value_and_can_be_requested(clients):
    c = clients.raw()
    c.send("CAP LS 302")
    ls = c.expect(lambda line: command_of(line) == "CAP")
    assert "draft/account-registration" in ls.split(" :", 1)[1].split()
    c.send("CAP REQ :draft/account-registration sasl")
    assert c.expect(lambda line: " ACK " in line or " NAK " in line).endswith(
        "ACK :draft/account-registration sasl")


def test_register_star_password_logs_in_and_works_on_a_new_connection(clients, srv):
    watcher = clients("arwatch", caps=["account-notify"])
    c = clients("arann", caps=["draft/account-registration"])
    join("#ar1", watcher, c)
    c.send("REGISTER * annpw1")
    lines = c.sync()
    assert lines == [
        f":{SERVER} 900 arann arann!arann@127.0.0.1 arann :You are now logged in as arann",
        f":{SERVER} REGISTER SUCCESS arann :Account arann registered",
    ]
    assert ":arann!arann@127.0.0.1 ACCOUNT arann" in watcher.sync()
    c.quit()
    again = connect(srv.port, "arann", password="annpw1")
    assert any(command_of(x) == "900" for x in again.lines)
    again.quit()


def test_register_with_account_email_password_form(clients):
    c = clients("arbob")
    c.send("REGISTER arbob bob@example.org bobpw")
    lines = c.sync()
    assert lines[-1] == f":{SERVER} REGISTER SUCCESS arbob :Account arbob registered"
    c.send("REGISTER * again")
    assert c.sync() == [
        f":{SERVER} FAIL REGISTER ALREADY_AUTHENTICATED arbob :You are already logged in as arbob"]
    c.send("VERIFY arbob 123")
    assert c.sync() == [
        f":{SERVER} FAIL VERIFY ALREADY_AUTHENTICATED arbob :You are already logged in as arbob"]


def test_register_fail_replies(clients, srv):
    connect(srv.port, "artaken", password="takenpw").quit()
    c = clients("arcarl")
    c.send("REGISTER someoneelse * pw")
    assert c.sync() == [f":{SERVER} FAIL REGISTER ACCOUNT_NAME_MUST_BE_NICK someoneelse "
                        ":The account name must be your nick, arcarl"]
    c.send("REGISTER * " + "x" * 301)
    assert c.sync() == [f":{SERVER} FAIL REGISTER UNACCEPTABLE_PASSWORD arcarl "
                        ":A password is 1 to 300 bytes without spaces"]
    c.send("REGISTER *")
    assert [command_of(x) for x in c.sync()] == ["461"]
    c.send("VERIFY arcarl 123456")
    assert c.sync() == [f":{SERVER} FAIL VERIFY INVALID_CODE arcarl "
                        ":No registration is waiting for verification"]
    c.send("WHOIS arcarl")
    assert not [x for x in c.sync() if command_of(x) == "330"]
    still_chats(c, clients("arother"))


def test_a_second_register_right_after_the_first_is_already_authenticated(clients):
    # A guest never holds a nick that is someone's account (PASS or SASL is needed
    # for it), so ACCOUNT_EXISTS only answers a race lost to another connection;
    # two REGISTERs in a row from one client are answered in order.
    c = clients("ardave")
    c.send("REGISTER * one")
    c.send("REGISTER * two")
    lines = c.sync()
    assert f":{SERVER} REGISTER SUCCESS ardave :Account ardave registered" in lines
    assert lines[-1] == (f":{SERVER} FAIL REGISTER ALREADY_AUTHENTICATED ardave "
                         ":You are already logged in as ardave")


def test_register_before_the_welcome_needs_the_connection_first(clients):
    c = clients.raw()
    c.send("CAP LS 302")
    c.send("NICK arearly")
    c.send("REGISTER * pw")
    c.send("VERIFY arearly 1")
    lines = c.sync()
    assert f":{SERVER} FAIL REGISTER COMPLETE_CONNECTION_REQUIRED :Complete the connection first; then REGISTER" in lines
    assert f":{SERVER} FAIL VERIFY COMPLETE_CONNECTION_REQUIRED :Complete the connection first" in lines
    c.send("USER a 0 * :a")
    c.send("CAP END")
    c.expect_numeric("001")


def test_labeled_register_gets_its_label(clients):
    c = clients("arlab", caps=["labeled-response", "batch"])
    c.send("@label=r1 REGISTER * labpw")
    lines = c.sync()
    assert lines[0].startswith("@label=r1 ") and "BATCH +" in lines[0], lines
    assert any("REGISTER SUCCESS arlab" in x for x in lines)
