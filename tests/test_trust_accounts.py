"""Issue 19 "Trust", accounts: throttles on the server password and on account
creation, SASL PLAIN registering, ChanServ acknowledging only durable changes,
channels per account, DROP leaving nothing to a namesake, OPER answers that do
not tell which oper names exist.

Real ``python -m ircd`` subprocesses on loopback (127.0.0.2, 127.0.0.3 stand
in for other hosts), raw sockets; plus sans-I/O checks of the throttle itself.
"""

from __future__ import annotations

import base64
import signal
import time

import pytest

from ircd.config import AccountsSection, LimitsSection
from ircd.limits import RegistrationThrottle, address_key
from tests.ircv3util import SERVER, Client, command_of, untagged
from tests.support import SERVICES_TOML, RawClient, ServerProcess

pytestmark = pytest.mark.timeout(120)

FLOOD_OFF = """
[limits]
flood_burst = 100000
flood_rate = 100000.0
"""


def services_toml(registrations: int = 100000, extra: str = "", limits: str = "") -> str:
    """Services on, no autojoin, the given registration limit, more ``[limits]`` lines."""
    text = SERVICES_TOML.replace("registrations_per_ip = 100000",
                                 f"registrations_per_ip = {registrations}")
    return text + "\n[server]\nautojoin = []\n" + extra + FLOOD_OFF + limits


class From(Client):
    """A :class:`Client` connecting from the loopback address ``source``."""

    def __init__(self, port: int, source: str = "127.0.0.1") -> None:
        RawClient.__init__(self, port, timeout=10.0, source=source)
        self.nick = "*"


def welcome(port: int, nick: str, password: str | None = None, source: str = "127.0.0.1",
            caps: tuple[str, ...] = ()) -> From:
    """Register ``nick`` (PASS if given) from ``source``; return after the MOTD."""
    c = From(port, source)
    c.nick = nick
    if caps:
        c.send("CAP LS 302")
        c.send("CAP REQ :" + " ".join(caps))
        c.send("CAP END")
    if password is not None:
        c.send(f"PASS :{password}")
    c.send(f"NICK {nick}")
    c.send(f"USER {nick} 0 * :{nick}")
    c.expect_numeric("001")
    c.expect(lambda line: command_of(line) in ("376", "422"))
    c.sync()
    return c


def chats(a: Client, b: Client, text: str = "still here") -> None:
    """``a`` can message ``b``: the server and these users are unaffected."""
    a.send(f"PRIVMSG {b.nick} :{text}")
    a.sync()
    assert any(line.endswith(f"PRIVMSG {b.nick} :{text}") for line in b.sync())


def plain(account: str, password: str) -> str:
    return base64.b64encode(f"\0{account}\0{password}".encode()).decode()


def notices_from(service: str, lines: list[str]) -> list[str]:
    head = f":{service}!{service}@{SERVER} NOTICE "
    return [line.split(" :", 1)[1] for line in lines if line.startswith(head)]


def ask(c: Client, service: str, text: str) -> list[str]:
    c.send(f"PRIVMSG {service} :{text}")
    return notices_from(service, c.sync())


# -- 9: the server password ------------------------------------------------------------------

SERVER_PASSWORD_TOML = services_toml(limits="""login_failures_per_account = 3
login_failures_per_ip = 100
login_delay_max = 3.0
login_lockout = 300.0
""").replace("[server]\n", '[server]\npassword = "right horse"\n', 1)


def try_server_password(port: int, password: str, source: str) -> tuple[str, float]:
    """Connect from ``source`` with server password ``password``; return the first
    numeric answered and the seconds from the registration's last line to it."""
    c = From(port, source)
    c.send(f"PASS :{password}")
    c.send("NICK guesser")
    sent = time.monotonic()
    c.send("USER guesser 0 * :guesser")
    line = c.expect(lambda x: command_of(x) in ("001", "464"))
    took = time.monotonic() - sent
    if command_of(line) == "464":
        assert c.closed_by_server(5.0)
    c.close()
    return line, took


def test_wrong_server_passwords_are_delayed_then_lock_out_that_address_only(server_factory):
    srv = server_factory(config_text=SERVER_PASSWORD_TOML)
    alice = welcome(srv.port, "alice", "right horse")
    bob = welcome(srv.port, "bob", "right horse")
    # Each wrong guess from 127.0.0.2 is answered 0.5 s per recent failure later:
    # the k-th after at least 0.5 k s (instead of at once, ~2600 guesses a second).
    for k in (1, 2, 3):
        line, took = try_server_password(srv.port, f"guess {k}", "127.0.0.2")
        assert line == f":{SERVER} 464 guesser :Password incorrect", line
        assert took >= 0.5 * k - 0.05, (k, took)
    # Three failures: 127.0.0.2 is locked out, even with the right password.
    line, took = try_server_password(srv.port, "right horse", "127.0.0.2")
    assert command_of(line) == "464" and "Too many failed login attempts; try again in" in line
    # Another address still gets in with the right password, at once.
    line, took = try_server_password(srv.port, "right horse", "127.0.0.3")
    assert command_of(line) == "001", line
    assert "wrong server password from 127.0.0.2" in srv.log()
    chats(alice, bob)


# -- 12: account registration throttle ---------------------------------------------------------

def test_account_creation_is_throttled_per_address_by_every_way_of_registering(server_factory):
    srv = server_factory(config_text=services_toml(registrations=2))
    # Two new accounts from 127.0.0.2: one by PASS (the first login), one by NickServ.
    first = welcome(srv.port, "first", "pw1", source="127.0.0.2")
    second = welcome(srv.port, "second", source="127.0.0.2")
    assert ask(second, "NickServ", "REGISTER pw2") == [
        "Account second registered; you are now logged in."]
    throttled = "Too many accounts registered from your address; try again in "
    # The third, by each way, is refused with its own clear answer; nothing is created.
    third = welcome(srv.port, "third", source="127.0.0.2", caps=("draft/account-registration",))
    third.send("REGISTER * * pw3")
    answer = third.sync()
    assert len(answer) == 1 and answer[0].startswith(
        f":{SERVER} FAIL REGISTER TEMPORARILY_UNAVAILABLE third :{throttled}"), answer
    [notice] = ask(third, "NickServ", "REGISTER pw3")
    assert notice.startswith(throttled), notice
    pass_user = From(srv.port, "127.0.0.2")
    pass_user.send("PASS :pw4")
    pass_user.send("NICK fourth")
    pass_user.send("USER fourth 0 * :fourth")
    line = pass_user.expect(lambda x: command_of(x) in ("001", "400", "464"))
    assert line.startswith(f":{SERVER} 400 fourth PASS :{throttled}"), line
    assert pass_user.closed_by_server()
    sasl = From(srv.port, "127.0.0.2")
    sasl.nick = "fifth"
    sasl.send("CAP LS 302")
    sasl.send("CAP REQ :sasl")
    sasl.send("NICK fifth")
    sasl.send("USER fifth 0 * :fifth")
    sasl.send("AUTHENTICATE PLAIN")
    sasl.expect(lambda x: x.endswith(" AUTHENTICATE +"))
    sasl.send("AUTHENTICATE " + plain("fifth", "pw5"))
    line = sasl.expect(lambda x: command_of(x) in ("903", "904"))
    assert line.startswith(f":{SERVER} 904 fifth :{throttled}"), line
    sasl.send("CAP END")
    sasl.expect_numeric("001")  # as a guest
    # None of them exists: a guest may take each name from another address.
    for name in ("fourth", "fifth"):
        assert ask(first, "NickServ", f"INFO {name}") == [f"{name} is not a registered account."]
    # (third is online as a guest: INFO names the nick)
    assert ask(first, "NickServ", "INFO third") == ["third is not a registered account."]
    # Logging in to existing accounts from 127.0.0.2 still works.
    first.quit()
    back = welcome(srv.port, "first", "pw1", source="127.0.0.2")
    assert any(" 900 first " in x for x in back.lines)
    # Another address may create accounts.
    other = welcome(srv.port, "sixth", "pw6", source="127.0.0.3")
    assert any(" 900 sixth " in x for x in other.lines)
    chats(back, other)
    chats(second, sasl)


def test_registration_throttle_counts_an_ipv6_64_as_one_address():
    accounts = AccountsSection(registrations_per_ip=2, registrations_window=100.0)
    regs = RegistrationThrottle(accounts, LimitsSection())
    assert address_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert regs.reserve("2001:db8:1:2::1", 0.0) == 0.0
    assert regs.reserve("2001:db8:1:2:ffff::9", 1.0) == 0.0
    # A third address of the same /64 waits until the first creation is 100 s old.
    assert regs.reserve("2001:db8:1:2::3", 10.0) == pytest.approx(90.0)
    assert regs.reserve("2001:db8:1:3::1", 10.0) == 0.0  # another /64
    regs.refund("2001:db8:1:2::1", 20.0)  # the last creation did not happen
    assert regs.reserve("2001:db8:1:2::3", 20.0) == 0.0
    assert regs.wait("2001:db8:1:2::3", 100.0) == pytest.approx(0.0)
    narrow = RegistrationThrottle(accounts, LimitsSection(ipv6_prefix=128))
    assert narrow.reserve("2001:db8::1", 0.0) == narrow.reserve("2001:db8::1", 0.0) == 0.0
    assert narrow.reserve("2001:db8::2", 0.0) == 0.0
    assert RegistrationThrottle(AccountsSection(registrations_per_ip=0),
                                LimitsSection()).reserve("192.0.2.1", 0.0) > 0


# -- SASL PLAIN registers a new name -------------------------------------------------------------

def test_sasl_plain_for_an_unregistered_name_registers_it_and_tells_account_notify_peers(
        server_factory):
    srv = server_factory(config_text=services_toml())
    # Before the welcome: NOTICE, 900, 903, then the welcome.
    c = From(srv.port)
    c.send("CAP LS 302")
    c.send("CAP REQ :sasl")
    c.send("NICK newbie")
    c.send("USER newbie 0 * :newbie")
    c.send("AUTHENTICATE PLAIN")
    c.expect(lambda x: x.endswith(" AUTHENTICATE +"))
    c.send("AUTHENTICATE " + plain("newbie", "secret"))
    start = len(c.lines)
    c.expect_numeric("903")
    got = c.lines[start:]
    assert len(got) == 3, got
    assert got[0] == f":{SERVER} NOTICE newbie :Registered new account newbie"
    assert got[1].startswith(f":{SERVER} 900 newbie newbie!newbie@"), got  # (any host form)
    assert got[1].endswith(" newbie :You are now logged in as newbie"), got
    assert got[2] == f":{SERVER} 903 newbie :SASL authentication successful"
    c.send("CAP END")
    c.expect_numeric("001")
    # The account exists with the SASL password: PASS with another one is refused.
    wrong = From(srv.port)
    wrong.send("PASS :not-it")
    wrong.send("NICK newbie2")
    wrong.send("USER newbie2 0 * :x")
    wrong.expect_numeric("001")  # another nick, a guest
    wrong.quit()
    c.quit()
    bad = From(srv.port)
    bad.send("PASS :not-it")
    bad.send("NICK newbie")
    bad.send("USER newbie 0 * :x")
    assert command_of(bad.expect(lambda x: command_of(x) in ("001", "464"))) == "464"
    back = welcome(srv.port, "newbie", "secret")
    # After the welcome: a guest logs in to a new name by SASL; peers with
    # account-notify see ACCOUNT.
    watcher = welcome(srv.port, "watcher", caps=("account-notify",))
    guest = welcome(srv.port, "latecomer", caps=("sasl",))
    for u in (watcher, guest):
        u.send("JOIN #room")
        u.sync()
    watcher.sync()
    guest.send("AUTHENTICATE PLAIN")
    guest.expect(lambda x: x.endswith(" AUTHENTICATE +"))
    guest.send("AUTHENTICATE " + plain("latecomer", "pw"))
    guest.expect_numeric("903")
    assert any(x.startswith(f":{SERVER} 900 latecomer latecomer!latecomer@")
               and x.endswith(" latecomer :You are now logged in as latecomer")
               for x in guest.lines)
    watcher.expect(lambda x: x.startswith(":latecomer!latecomer@")
                   and x.endswith(" ACCOUNT latecomer"))
    chats(back, watcher)


# -- 13: ChanServ acknowledges only what is saved ---------------------------------------------

def cs_until(c: Client, text: str, expected: str) -> None:
    """``PRIVMSG ChanServ :text`` and read up to ChanServ's answer, which must be ``expected``."""
    c.send(f"PRIVMSG ChanServ :{text}")
    head = f":ChanServ!ChanServ@{SERVER} NOTICE {c.nick} :"
    line = c.expect(lambda x: x.startswith(head))
    assert line == head + expected, line


def test_chanserv_changes_survive_kill_9_right_after_their_answer(tmp_path):
    data = tmp_path / "data"
    toml = services_toml()
    steps = [
        # (what to do once registered, ChanServ's answer, then the check after the restart)
        ("REGISTER #vault1", "#vault1 is now registered to alice.", "INFO #vault1",
         "Founder: alice"),
        ("ACCESS #vault1 ADD bob op", "bob now has op access in #vault1.",
         "ACCESS #vault1 LIST", "bob op"),
        ("SET #vault1 TOPICLOCK on", "TOPICLOCK of #vault1 is now on.", "INFO #vault1",
         "Topic lock: on; guard: off"),
        ("REGISTER #vault2", "#vault2 is now registered to alice.", "INFO #vault2",
         "Founder: alice"),
        ("DROP #vault2", "#vault2 is no longer registered.", "INFO #vault2",
         "#vault2 is not registered."),
        ("REGISTER #vault3", "#vault3 is now registered to alice.", "INFO #vault3",
         "Founder: alice"),
    ]
    srv = ServerProcess(data, config_text=toml).start()
    welcome(srv.port, "bob", "pw-b").quit()
    for text, answer, check, expected in steps:
        alice = welcome(srv.port, "alice", "pw-a")
        channel = text.split()[1]
        if text.startswith("REGISTER"):
            alice.send(f"JOIN {channel}")
            alice.sync()
        cs_until(alice, text, answer)
        srv.stop(signal.SIGKILL)
        srv = ServerProcess(data, config_text=toml, port=srv.port).start()
        alice = welcome(srv.port, "alice", "pw-a")
        assert expected in ask(alice, "ChanServ", check), (text, check)
        alice.quit()
    other = welcome(srv.port, "carol")
    dave = welcome(srv.port, "dave")
    chats(other, dave)
    srv.stop()


# -- 14: channels per account ------------------------------------------------------------------

def test_an_account_founds_at_most_max_channels_per_account(server_factory):
    srv = server_factory(config_text=services_toml().replace(
        "[services]\nenabled = true", "[services]\nenabled = true\nmax_channels_per_account = 2"))
    alice = welcome(srv.port, "alice", "pw-a")
    bob = welcome(srv.port, "bob", "pw-b")
    for name in ("#one", "#two", "#three", "#bobs"):
        (bob if name == "#bobs" else alice).send(f"JOIN {name}")
    alice.sync()
    bob.sync()
    assert ask(alice, "ChanServ", "REGISTER #one") == ["#one is now registered to alice."]
    assert ask(alice, "ChanServ", "REGISTER #two") == ["#two is now registered to alice."]
    assert ask(alice, "ChanServ", "REGISTER #three") == [
        "You may not register more than 2 channels; DROP one first."]
    assert ask(alice, "ChanServ", "INFO #three") == ["#three is not registered."]
    # Another account is not affected; after a DROP alice may register again.
    assert ask(bob, "ChanServ", "REGISTER #bobs") == ["#bobs is now registered to bob."]
    assert ask(alice, "ChanServ", "DROP #one") == ["#one is no longer registered."]
    assert ask(alice, "ChanServ", "REGISTER #three") == ["#three is now registered to alice."]
    chats(alice, bob)


# -- 11: DROP, then a new account of the same name ------------------------------------------

READER = ("batch", "server-time", "message-tags", "draft/chathistory")


def history_texts(c: Client, target: str) -> list[str]:
    c.send(f"CHATHISTORY LATEST {target} * 50")
    return [untagged(x).split(" :", 1)[1] for x in c.sync()
            if command_of(x) in ("PRIVMSG", "NOTICE")]


def test_a_dropped_account_leaves_no_history_or_access_to_a_new_account_of_its_name(tmp_path):
    data = tmp_path / "data"
    toml = services_toml()
    srv = ServerProcess(data, config_text=toml).start()
    alice = welcome(srv.port, "alice", "pw-a", caps=READER)
    bob = welcome(srv.port, "bob", "pw-b", caps=READER)
    alice.send("PRIVMSG bob :the old secret")
    alice.sync()
    bob.expect(lambda x: x.endswith("PRIVMSG bob :the old secret"))
    alice.send("JOIN #club")
    alice.sync()
    assert ask(alice, "ChanServ", "REGISTER #club") == ["#club is now registered to alice."]
    assert ask(alice, "ChanServ", "ACCESS #club ADD bob op") == ["bob now has op access in #club."]
    time.sleep(1.5)  # the history batch is on disk too
    assert history_texts(bob, "alice") == ["the old secret"]
    alice.send("PRIVMSG bob :one more, not yet written")
    alice.sync()
    assert ask(bob, "NickServ", "DROP pw-b") == ["Account bob dropped."]
    # Somebody else registers "bob".
    bob.quit()
    newbob = welcome(srv.port, "bob", "new-pw", caps=READER)
    assert any("Registered new account bob" in x for x in newbob.lines)
    assert history_texts(newbob, "alice") == []
    assert history_texts(alice, "bob") == []  # (the conversation was with the old bob)
    assert "bob" not in " ".join(ask(alice, "ChanServ", "ACCESS #club LIST"))
    newbob.send("JOIN #club")
    assert not any(" MODE #club +o bob" in x for x in newbob.sync())
    # Nor after a restart, from the database.
    alice.send("PRIVMSG bob :hello new bob")
    alice.sync()
    newbob.expect(lambda x: x.endswith("PRIVMSG bob :hello new bob"))
    time.sleep(1.5)
    srv.stop()
    srv = ServerProcess(data, config_text=toml, port=srv.port).start()
    newbob = welcome(srv.port, "bob", "new-pw", caps=READER)
    alice = welcome(srv.port, "alice", "pw-a", caps=READER)
    assert history_texts(newbob, "alice") == ["hello new bob"]
    assert history_texts(alice, "bob") == ["hello new bob"]
    chats(alice, newbob)
    srv.stop()
