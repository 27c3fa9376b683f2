"""SASL PLAIN (``AUTHENTICATE``), docs/protocol.md section 2 "SASL".

IRCv3 "SASL Authentication" 3.1/3.2: 900/903 on success, 904 failure, 905
too long, 906 aborted, 907 already authenticated, 908 mechanisms. Accounts
are made with ``PASS`` first (SASL only logs in to existing accounts). Raw
sockets against the real server subprocess.
"""

from __future__ import annotations

import base64
import re
import signal

import pytest

from ircd.accounts import AccountStore
from ircd.storage.sqlite import SQLiteAccountRows
from tests.ircv3util import (
    QUIET_TOML,
    SERVER,
    Client,
    H,
    command_of,
    module_server,
    register_account,
    tags_of,
    untagged,
)
from tests.support import FAST_HASH_TOML, ServerProcess

pytestmark = pytest.mark.timeout(30)

srv = module_server()
FAIL_904 = "SASL authentication failed"


def b64(account: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{account}\0{password}".encode()).decode()


def start(c: Client, nick: str, caps: str = "sasl") -> None:
    """Open negotiation (so registration waits), request ``caps``, send NICK and USER."""
    c.send("CAP LS 302")
    c.send(f"CAP REQ :{caps}")
    c.send(f"NICK {nick}")
    c.send(f"USER {nick} 0 * :{nick} real")
    lines = c.sync()
    assert f":{SERVER} CAP * ACK :{caps}" in lines, lines
    assert not [x for x in lines if command_of(x).isdigit()], lines


def authenticate(c: Client, *chunks: str, mechanism: str = "PLAIN") -> list[str]:
    """``AUTHENTICATE <mechanism>``, check the ``+`` challenge, send ``chunks``; return the answer."""
    c.send(f"AUTHENTICATE {mechanism}")
    assert c.sync() == [f":{SERVER} AUTHENTICATE +"]
    for chunk in chunks:
        c.send(f"AUTHENTICATE {chunk}")
    start_at = len(c.lines)
    c.expect(lambda line: command_of(line) in ("903", "904", "905", "906", "907"))
    return c.lines[start_at:]


def success_lines(nick: str, account: str) -> list[str]:
    return [
        f":{SERVER} 900 {nick} {nick}!{nick}@{H} {account} :You are now logged in as {account}",
        f":{SERVER} 903 {nick} :SASL authentication successful",
    ]


def finish(c: Client) -> list[str]:
    """CAP END; return the lines up to the end of the MOTD (001 must come)."""
    c.send("CAP END")
    start_at = len(c.lines)
    c.expect(lambda line: command_of(line) in ("376", "422", "433", "464", "ERROR"))
    lines = c.lines[start_at:] + c.sync()
    return lines


def whois_account(c: Client, nick: str) -> list[str]:
    c.send(f"WHOIS {nick}")
    return [x for x in c.sync() if command_of(x) == "330"]


# -- success ---------------------------------------------------------------------------------

def test_sasl_plain_success_then_registration_as_the_account(clients):
    register_account(clients.port, "saslok", "right horse")
    c = clients.raw()
    start(c, "saslok")
    assert authenticate(c, b64("saslok", "right horse")) == success_lines("saslok", "saslok")
    lines = finish(c)
    numerics = [command_of(x) for x in lines]
    assert "001" in numerics and "464" not in numerics, lines
    # Logged in already: no second 900, no "Registered new account" notice.
    assert "900" not in numerics and not [x for x in lines if "Registered new account" in x]
    assert whois_account(c, "saslok") == [f":{SERVER} 330 saslok saslok saslok :is logged in as"]
    other = clients("saslwatch")
    assert whois_account(other, "saslok") == [
        f":{SERVER} 330 saslwatch saslok saslok :is logged in as"]


def test_pass_sent_after_sasl_is_not_checked(clients):
    register_account(clients.port, "saslpass", "the-password")
    c = clients.raw()
    start(c, "saslpass")
    assert authenticate(c, b64("saslpass", "the-password")) == success_lines("saslpass", "saslpass")
    c.send("PASS not-the-password")
    lines = finish(c)
    assert "001" in [command_of(x) for x in lines], lines
    assert whois_account(c, "saslpass") == [
        f":{SERVER} 330 saslpass saslpass saslpass :is logged in as"]


def test_sasl_account_with_a_different_nick(clients):
    register_account(clients.port, "saslacct", "pw-acct")
    register_account(clients.port, "saslothr", "pw-other")
    # A nick that is nobody's account: registered, logged in as the SASL account.
    c = clients.raw()
    start(c, "saslfree")
    assert authenticate(c, b64("saslacct", "pw-acct")) == success_lines("saslfree", "saslacct")
    assert "001" in [command_of(x) for x in finish(c)]
    assert whois_account(c, "saslfree") == [
        f":{SERVER} 330 saslfree saslfree saslacct :is logged in as"]
    # Another account's nick: 433, and another NICK is possible.
    d = clients.raw()
    start(d, "saslothr")
    assert authenticate(d, b64("saslacct", "pw-acct"))[-1].startswith(f":{SERVER} 903 ")
    lines = finish(d)
    assert [command_of(x) for x in lines][:1] == ["433"], lines
    assert "Nickname is reserved by a registered account" in lines[0]
    d.send("NICK saslfre2")
    d.expect_numeric("001")


def test_long_password_in_400_byte_chunks(clients):
    password = "p" * 500
    c = clients.raw()
    c.send(f"PASS {password}")  # 505 bytes: within the 510-byte line limit
    c.send("NICK sasllong")
    c.send("USER sasllong 0 * :x")
    c.expect_numeric("900")
    c.quit()
    payload = b64("sasllong", password)
    assert 400 < len(payload) < 800
    d = clients.raw()
    start(d, "sasllong")
    assert authenticate(d, payload[:400], payload[400:]) == success_lines("sasllong", "sasllong")
    assert "001" in [command_of(x) for x in finish(d)]


def test_payload_of_exactly_400_bytes_ends_with_plus(clients):
    # base64 of 300 bytes is exactly 400 characters: NUL "exact4" NUL + 292 password bytes.
    password = "q" * 292
    register_account(clients.port, "exact4", password)
    payload = b64("exact4", password)
    assert len(payload) == 400
    c = clients.raw()
    start(c, "exact4")
    c.send("AUTHENTICATE PLAIN")
    assert c.sync() == [f":{SERVER} AUTHENTICATE +"]
    c.send(f"AUTHENTICATE {payload}")
    assert c.sync() == []  # exactly 400: more may follow, nothing is answered yet
    c.send("AUTHENTICATE +")
    c.expect_numeric("903")
    assert c.lines[-2:] == success_lines("exact4", "exact4")


# -- failures ---------------------------------------------------------------------------------

def test_wrong_password_invalid_account_name_and_malformed_payloads_get_904(clients):
    register_account(clients.port, "saslbad", "good")
    c = clients.raw()
    start(c, "saslbad")
    fail = [f":{SERVER} 904 saslbad :{FAIL_904}"]
    assert authenticate(c, b64("saslbad", "bad")) == fail
    # (A valid unknown name is registered, as by PASS: tests/test_trust_accounts.py.)
    assert authenticate(c, b64("9notanick", "good")) == fail
    assert authenticate(c, b64("no such", "good")) == fail
    assert authenticate(c, "!!!not-base64!!!") == fail
    assert authenticate(c, base64.b64encode(b"no-nul-separators").decode()) == fail
    # authzid naming another account than authcid
    assert authenticate(c, b64("saslbad", "good", authzid="someoneelse")) == fail
    # The connection is still usable: a right password works afterwards.
    assert authenticate(c, b64("saslbad", "good")) == success_lines("saslbad", "saslbad")


def test_authenticate_star_aborts_with_906(clients):
    c = clients.raw()
    start(c, "saslstar")
    c.send("AUTHENTICATE PLAIN")
    assert c.sync() == [f":{SERVER} AUTHENTICATE +"]
    c.send("AUTHENTICATE *")
    assert c.sync() == [f":{SERVER} 906 saslstar :SASL authentication aborted"]


def test_already_authenticated_gets_907(clients):
    register_account(clients.port, "sasltwice", "pw")
    c = clients.raw()
    start(c, "sasltwice")
    assert authenticate(c, b64("sasltwice", "pw"))[-1].startswith(f":{SERVER} 903 ")
    c.send("AUTHENTICATE PLAIN")
    assert c.sync() == [f":{SERVER} 907 sasltwice :You have already authenticated using SASL"]
    # Logged in with PASS at registration: also 907.
    register_account(clients.port, "saslpw", "pw2")
    e = clients("saslpw", password="pw2")
    e.send("AUTHENTICATE PLAIN")
    assert e.sync() == [f":{SERVER} 907 saslpw :You have already authenticated using SASL"]


def test_chunk_over_400_bytes_gets_905(clients):
    c = clients.raw()
    start(c, "saslbig")
    assert authenticate(c, "A" * 401) == [f":{SERVER} 905 saslbig :SASL message too long"]


def test_payload_over_8_kib_gets_905(clients):
    c = clients.raw()
    start(c, "saslhuge")
    lines = authenticate(c, *(["A" * 400] * 21))
    assert lines == [f":{SERVER} 905 saslhuge :SASL message too long"]


def test_unknown_mechanism_gets_908_and_904(clients):
    c = clients.raw()
    start(c, "saslmech")
    c.send("AUTHENTICATE EXTERNAL")
    assert c.sync() == [
        f":{SERVER} 908 saslmech PLAIN :are available SASL mechanisms",
        f":{SERVER} 904 saslmech :{FAIL_904}",
    ]


def test_cap_end_during_the_exchange_aborts_with_906_and_registers_as_guest(clients):
    c = clients.raw()
    start(c, "sasluser")
    c.send("AUTHENTICATE PLAIN")
    c.sync()
    c.send("CAP END")
    first = c.expect(lambda line: command_of(line) in ("906", "001"))
    assert first == f":{SERVER} 906 sasluser :SASL authentication aborted"
    c.expect_numeric("001")
    c.sync()
    assert whois_account(c, "sasluser") == []


def test_sasl_is_answered_with_the_label_of_the_command(clients):
    """labeled-response: the 900 and 903 answering a labeled AUTHENTICATE form its labeled batch.

    (The spec: a labeled command's whole response carries the label; ``ACK`` only
    when there is no response at all.)
    """
    register_account(clients.port, "sasllbl", "pw")
    c = clients("sasllblg", ["labeled-response", "batch"])
    c.send("@label=m1 AUTHENTICATE PLAIN")
    assert c.sync() == [f"@label=m1 :{SERVER} AUTHENTICATE +"]
    c.send(f"@label=m2 AUTHENTICATE {b64('sasllbl', 'pw')}")
    start_at = len(c.lines)
    c.expect_numeric("903")
    lines = c.lines[start_at:] + c.sync()
    assert len(lines) == 4, lines
    assert tags_of(lines[0]) == {"label": "m2"}, lines
    head = untagged(lines[0])
    assert head.startswith(f":{SERVER} BATCH +") and head.endswith(" labeled-response"), lines
    ref = head.split(" ")[2][1:]
    assert lines[1:] == [f"@batch={ref} {x}" for x in success_lines("sasllblg", "sasllbl")] + [
        f":{SERVER} BATCH -{ref}"]


# -- server-password mode -------------------------------------------------------------------

@pytest.fixture(scope="module")
def pw_srv(tmp_path_factory):
    data = tmp_path_factory.mktemp("ircv3pw") / "data"
    data.mkdir()
    store = AccountStore(SQLiteAccountRows(data / "chatserver.sqlite3"), time_cost=1,
                         memory_cost=1024)
    assert store.create("pwacct", "acct-secret")
    store.close()
    s = ServerProcess(data, config_text=QUIET_TOML,
                      extra_args=["--server-password", "srvpw"]).start()
    try:
        yield s
    finally:
        assert s.stop(signal.SIGTERM) == 0


def test_server_password_mode_sasl_logs_in_to_the_account(pw_srv):
    c = Client(pw_srv.port)
    try:
        c.send("PASS srvpw")
        start(c, "pwacct")
        assert authenticate(c, b64("pwacct", "acct-secret")) == success_lines("pwacct", "pwacct")
        lines = finish(c)
        assert "001" in [command_of(x) for x in lines], lines
        assert whois_account(c, "pwacct") == [f":{SERVER} 330 pwacct pwacct pwacct :is logged in as"]
    finally:
        c.quit()


def test_server_password_mode_registered_nick_without_sasl_gets_433(pw_srv):
    c = Client(pw_srv.port)
    try:
        c.send("PASS srvpw")
        c.send("NICK pwacct")
        c.send("USER pwacct 0 * :x")
        line = c.expect(lambda x: command_of(x) in ("001", "433", "464"))
        assert re.fullmatch(rf":{re.escape(SERVER)} 433 (\*|pwacct) pwacct "
                            r":Nickname is a registered account: log in with SASL", line), line
        # The connection stays open for another nick, which connects as a guest.
        c.send("NICK pwguest")
        c.expect_numeric("001")
        c.sync()
        assert whois_account(c, "pwguest") == []
    finally:
        c.quit()


def test_server_password_mode_wrong_server_password_is_refused(pw_srv):
    c = Client(pw_srv.port)
    try:
        c.send("PASS acct-secret")  # the account's password is not the server password
        c.send("NICK pwother")
        c.send("USER pwother 0 * :x")
        assert c.expect(lambda x: command_of(x) in ("001", "464")) == (
            f":{SERVER} 464 pwother :Password incorrect")
        assert c.closed_by_server(5)
    finally:
        c.close()


# -- throttling ---------------------------------------------------------------------------------

def test_sasl_failures_count_toward_login_throttling(tmp_path):
    config = FAST_HASH_TOML + ("\n[server]\nautojoin = []\n\n[limits]\nflood_burst = 100000\n"
                               "flood_rate = 100000.0\nlogin_failures_per_account = 3\n"
                               "login_delay_max = 0.0\n")
    s = ServerProcess(tmp_path / "data", config_text=config).start()
    try:
        register_account(s.port, "throttled", "right")
        c = Client(s.port)
        start(c, "thrnick")
        for _ in range(3):
            assert authenticate(c, b64("throttled", "wrong")) == [f":{SERVER} 904 thrnick :{FAIL_904}"]
        lines = authenticate(c, b64("throttled", "right"))
        assert len(lines) == 1 and re.fullmatch(
            rf":{re.escape(SERVER)} 904 thrnick :Too many failed login attempts; "
            r"try again in \d+ seconds", lines[0]), lines
        c.quit()
    finally:
        s.stop()
