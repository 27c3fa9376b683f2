"""The SEND/SEND-OK dialect without sockets: :class:`SimpleSession`, ``split_utf8``, names.

A real core (:class:`ircd.core.Server`) with a real account store in a
temporary directory and an :class:`~ircd.core.ImmediateScheduler`, so
account checks and the echobot's answer happen synchronously. Sessions write
bytes to a list; IRC users are core clients fed with ``core.handle_line``.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ircd.accounts import AccountStore
from ircd.config import Config
from ircd.core import ImmediateScheduler, Server
from ircd.simple import EchoBot, SimpleSession, split_utf8, valid_simple_name
from ircd.state import CallbackSession
from ircd.storage.sqlite import SQLiteAccountRows

pytestmark = pytest.mark.timeout(60)

NICKLEN = Config().server.nicklen


# -- fixtures and helpers ------------------------------------------------------


class Session:
    """A :class:`SimpleSession` whose output is collected as text lines."""

    def __init__(self, core: Server, ip: str = "127.0.0.1") -> None:
        self.out: list[bytes] = []
        self.closes = 0
        self.session = SimpleSession(core, self.out.append, self._close, ip)
        self._read = 0

    def _close(self) -> None:
        self.closes += 1

    def line(self, text: str | bytes) -> list[str]:
        """Handle one input line; return the output lines it produced."""
        data = text.encode() if isinstance(text, str) else text
        self.session.handle_line(data)
        return self.new()

    def new(self) -> list[str]:
        """Output lines written since the last call (each must end in a bare LF)."""
        data = b"".join(self.out[self._read:])
        self._read = len(self.out)
        if not data:
            return []
        assert data.endswith(b"\n"), data
        assert b"\r" not in data, f"the dialect ends lines with a bare LF: {data!r}"
        return data.decode("utf-8").split("\n")[:-1]

    def login(self, name: str) -> None:
        assert self.line(f"HELLO-FROM {name}") == [f"HELLO {name}"]


class IrcUser:
    """An IRC client of the core (registered with NICK/USER, optionally PASS)."""

    def __init__(self, core: Server, nick: str, password: str | None = None) -> None:
        self.core = core
        self.out: list[bytes] = []
        self.closed: list[str] = []
        self.client = core.new_client(CallbackSession(self.out.append, self.closed.append), "127.0.0.1")
        if password is not None:
            self.send(f"PASS {password}")
        self.send(f"NICK {nick}")
        self.send(f"USER {nick} 0 * :{nick}")
        assert self.client.registered, self.lines()
        self._read = 0

    def send(self, line: str) -> None:
        self.core.handle_line(self.client.session, line.encode())

    def raw(self) -> list[bytes]:
        """Raw lines (with CR LF) written since the last call."""
        data = b"".join(self.out)
        lines = [piece + b"\r\n" for piece in data.split(b"\r\n")[:-1]]
        new = lines[self._read:]
        self._read = len(lines)
        return new

    def lines(self) -> list[str]:
        return [raw[:-2].decode("utf-8") for raw in self.raw()]

    def quit(self) -> None:
        self.send("QUIT :bye")


def make_core(tmp_path, **simple) -> Server:
    config = Config().with_overrides("simple", **simple) if simple else Config()
    accounts = AccountStore(SQLiteAccountRows(tmp_path / "db"), time_cost=1, memory_cost=1024)
    return Server(config, accounts, ImmediateScheduler())


@pytest.fixture
def core(tmp_path):
    srv = make_core(tmp_path)
    yield srv
    srv.accounts.close()


# -- valid_simple_name -----------------------------------------------------------


@pytest.mark.parametrize("name", ["alice", "Bob", "a", "x1", "a-b", "a_b", "a[b]", "a{b}",
                                  "a|b", "a`b", "_lead", "[x]", "n" * NICKLEN])
def test_valid_simple_name_accepts_irc_nicks_without_forbidden_characters(name):
    assert valid_simple_name(name, NICKLEN)


@pytest.mark.parametrize("name", ["", " ", "a b", "a,b", "a\\b", "\\x", "a!b", "a@b", "a#b",
                                  "a$b", "a%b", "a^b", "a&b", "a*b", "^x", "1abc", "-ab", "é",
                                  "bébé", "a.b", "a\tb", "n" * (NICKLEN + 1)])
def test_valid_simple_name_refuses_forbidden_or_non_nick_names(name):
    assert not valid_simple_name(name, NICKLEN)


def test_valid_simple_name_honours_the_nick_length_limit():
    assert valid_simple_name("abcde", 5)
    assert not valid_simple_name("abcdef", 5)


# -- split_utf8 ----------------------------------------------------------------------


def test_split_utf8_returns_short_text_unchanged():
    assert split_utf8("hello", 10) == ["hello"]
    assert split_utf8("", 10) == [""]
    assert split_utf8("é" * 5, 10) == ["é" * 5]  # exactly 10 bytes


def test_split_utf8_cuts_ascii_into_limit_sized_pieces():
    assert split_utf8("abcdefghij", 4) == ["abcd", "efgh", "ij"]


@pytest.mark.parametrize("char", ["é", "€", "😀"])
def test_split_utf8_never_cuts_inside_a_multibyte_character(char):
    # "a" + chars: every cut at the byte limit would land inside a character.
    text = "a" + char * 50
    for limit in range(4, 20):
        pieces = split_utf8(text, limit)
        assert "".join(pieces) == text
        for piece in pieces:
            assert 0 < len(piece.encode()) <= limit


def test_split_utf8_fills_each_piece_as_far_as_the_next_character_allows():
    assert split_utf8("aé€😀", 4) == ["aé", "€", "😀"]
    assert split_utf8("aaa😀b", 4) == ["aaa", "😀", "b"]


@settings(max_examples=300, deadline=None)
@given(text=st.text(), limit=st.integers(min_value=4, max_value=600))
def test_split_utf8_pieces_fit_the_limit_and_join_to_the_original(text, limit):
    pieces = split_utf8(text, limit)
    assert "".join(pieces) == text
    for piece in pieces:
        assert len(piece.encode("utf-8")) <= limit
    if text:
        assert all(pieces), "no empty piece"


@settings(max_examples=200, deadline=None)
@given(text=st.text(min_size=1), limit=st.integers(min_value=4, max_value=64))
def test_split_utf8_uses_no_more_pieces_than_needed(text, limit):
    pieces = split_utf8(text, limit)
    for piece, following in zip(pieces, pieces[1:], strict=False):
        # The next piece's first character did not fit into this one.
        assert len((piece + following[0]).encode()) > limit


# -- handshake -----------------------------------------------------------------------


def test_hello_from_logs_in_as_a_simple_user_in_general(core):
    alice = Session(core)
    assert alice.line("HELLO-FROM alice") == ["HELLO alice"]
    user = core.world.find_user("alice")
    assert user is not None and user.kind == "simple" and user.registered
    assert "#general" in user.channels
    assert user.source == "alice!alice@127.0.0.1"


@pytest.mark.parametrize("line", ["LIST", "WHO", "SEND bob hi", "SEND bob"])
def test_list_or_send_before_hello_from_is_a_bad_header(core, line):
    s = Session(core)
    assert s.line(line) == ["BAD-RQST-HDR"]
    s.login("alice")  # the connection still works


def test_second_hello_from_after_login_is_a_bad_header_and_keeps_the_first_name(core):
    s = Session(core)
    s.login("alice")
    assert s.line("HELLO-FROM bob") == ["BAD-RQST-HDR"]
    assert s.line("HELLO-FROM alice") == ["BAD-RQST-HDR"]
    assert s.line("LIST") == ["LIST-OK alice"]
    assert core.world.find_user("bob") is None


@pytest.mark.parametrize("line", ["HELLO-FROM", "HELLO-FROM ", "HELLO-FROM a b", "HELLO-FROM a,b",
                                  "HELLO-FROM a\\b", "HELLO-FROM a!b", "HELLO-FROM a@b",
                                  "HELLO-FROM a#b", "HELLO-FROM a$b", "HELLO-FROM a%b",
                                  "HELLO-FROM a^b", "HELLO-FROM a&b", "HELLO-FROM a*b",
                                  "HELLO-FROM 9lives", "HELLO-FROM bébé",
                                  "HELLO-FROM " + "n" * (NICKLEN + 1), "HELLO-FROM alice "])
def test_hello_from_with_an_invalid_name_is_a_bad_header_and_login_still_works(core, line):
    s = Session(core)
    assert s.line(line) == ["BAD-RQST-HDR"]
    assert len(core.world.users) == 0
    s.login("alice")


@pytest.mark.parametrize("line", ["FOO", "FOO bar", "list", "send bob hi", "hello-from x",
                                  "PRIVMSG bob :hi", "SENDbob hi", "LIST extra", " LIST"])
def test_unknown_command_is_a_bad_header_before_and_after_login(core, line):
    s = Session(core)
    assert s.line(line) == ["BAD-RQST-HDR"]
    s.login("alice")
    assert s.line(line) == ["BAD-RQST-HDR"]
    assert s.line("LIST") == ["LIST-OK alice"]


def test_name_of_an_online_simple_user_is_in_use_case_insensitively(core):
    Session(core).login("alice")
    s = Session(core)
    assert s.line("HELLO-FROM alice") == ["IN-USE"]
    assert s.line("HELLO-FROM ALICE") == ["IN-USE"]
    assert s.closes == 0
    s.login("alice2")  # the connection stays open for another try


def test_name_of_an_online_irc_user_is_in_use(core):
    IrcUser(core, "bob")
    s = Session(core)
    assert s.line("HELLO-FROM bob") == ["IN-USE"]
    s.login("bobby")


def test_name_of_a_registered_account_is_in_use_even_when_offline(core):
    dave = IrcUser(core, "dave", password="dave-secret-1")
    assert dave.client.account == "dave"
    dave.quit()
    assert core.world.find_user("dave") is None
    s = Session(core)
    assert s.line("HELLO-FROM dave") == ["IN-USE"]
    assert s.line("HELLO-FROM DAVE") == ["IN-USE"]
    s.login("dave2")


def test_busy_when_max_clients_simple_users_are_online_and_retry_after_one_leaves(tmp_path):
    core = make_core(tmp_path, max_clients=2)
    EchoBot(core)  # the bot does not count
    IrcUser(core, "ircer")  # nor do IRC users
    first, second = Session(core), Session(core)
    first.login("u1")
    second.login("u2")
    third = Session(core)
    assert third.line("HELLO-FROM u3") == ["BUSY"]
    assert third.closes == 0
    assert third.line("HELLO-FROM u3") == ["BUSY"]
    assert core.world.find_user("u3") is None
    first.session.connection_lost()
    assert third.line("HELLO-FROM u3") == ["HELLO u3"]
    core.accounts.close()


def test_name_in_use_is_answered_before_busy(tmp_path):
    core = make_core(tmp_path, max_clients=1)
    Session(core).login("u1")
    s = Session(core)
    assert s.line("HELLO-FROM u1") == ["IN-USE"]
    assert s.line("HELLO-FROM u2") == ["BUSY"]
    core.accounts.close()


# -- LIST ------------------------------------------------------------------------------


def test_list_ok_names_everyone_online_in_both_dialects_sorted_without_spaces(core):
    IrcUser(core, "carol")
    Session(core).login("bob")
    alice = Session(core)
    alice.login("alice")
    assert alice.line("LIST") == ["LIST-OK alice,bob,carol"]
    assert alice.line("WHO") == ["LIST-OK alice,bob,carol"]
    assert alice.line("LIST ") == ["LIST-OK alice,bob,carol"]


def test_list_ok_includes_echobot(core):
    EchoBot(core)
    s = Session(core)
    s.login("alice")
    assert s.line("LIST") == ["LIST-OK alice,echobot"]


# -- SEND between simple users -------------------------------------------------------


def test_send_to_a_simple_user_delivers_and_acknowledges(core):
    alice, bob = Session(core), Session(core)
    alice.login("alice")
    bob.login("bob")
    assert alice.line("SEND bob hello there") == ["SEND-OK"]
    assert bob.new() == ["DELIVERY alice hello there"]
    assert alice.line("SEND BOB again") == ["SEND-OK"]
    assert bob.new() == ["DELIVERY alice again"]


def test_message_text_is_delivered_verbatim(core):
    alice, bob = Session(core), Session(core)
    alice.login("alice")
    bob.login("bob")
    text = ":colon first,  two spaces, tabs\tand UTF-8 é € 😀 trailing  "
    assert alice.line(f"SEND bob {text}") == ["SEND-OK"]
    assert bob.new() == [f"DELIVERY alice {text}"]


@pytest.mark.parametrize("size", [512, 8000])
def test_long_message_to_a_simple_user_arrives_whole_in_one_delivery(core, size):
    alice, bob = Session(core), Session(core)
    alice.login("alice")
    bob.login("bob")
    text = ("0123456789abcdef" * (size // 16 + 1))[:size]
    assert alice.line(f"SEND bob {text}") == ["SEND-OK"]
    assert bob.new() == [f"DELIVERY alice {text}"]


@pytest.mark.parametrize("line", ["SEND", "SEND ", "SEND bob", "SEND bob ", "SEND bob    ",
                                  "SEND bob \t ", "SEND  hi"])
def test_send_without_target_or_text_is_a_bad_body(core, line):
    alice, bob = Session(core), Session(core)
    alice.login("alice")
    bob.login("bob")
    assert alice.line(line) == ["BAD-RQST-BODY"]
    assert bob.new() == []
    assert alice.line("SEND bob ok") == ["SEND-OK"]
    assert bob.new() == ["DELIVERY alice ok"]


def test_send_to_a_list_of_names_with_an_unknown_one_is_bad_dest_user_and_not_delivered(core):
    alice, bob = Session(core), Session(core)
    alice.login("alice")
    bob.login("bob")
    assert alice.line("SEND bob,nobody hi") == ["BAD-DEST-USER"]
    assert bob.new() == [], "bob got a message whose SEND was answered BAD-DEST-USER"


def test_send_to_an_unknown_user_is_bad_dest_user(core):
    alice = Session(core)
    alice.login("alice")
    assert alice.line("SEND nobody hi") == ["BAD-DEST-USER"]
    assert alice.line("LIST") == ["LIST-OK alice"]


def test_send_to_a_user_who_left_is_bad_dest_user_and_the_name_is_free_again(core):
    alice, bob = Session(core), Session(core)
    alice.login("alice")
    bob.login("bob")
    bob.session.connection_lost()
    assert alice.line("SEND bob hi") == ["BAD-DEST-USER"]
    assert bob.new() == []
    again = Session(core)
    again.login("bob")
    assert alice.line("SEND bob hi") == ["SEND-OK"]
    assert again.new() == ["DELIVERY alice hi"]


def test_line_too_long_is_a_bad_body_and_the_session_still_works(core):
    alice, bob = Session(core), Session(core)
    alice.login("alice")
    bob.login("bob")
    alice.session.line_too_long()
    assert alice.new() == ["BAD-RQST-BODY"]
    assert alice.line("SEND bob still here") == ["SEND-OK"]
    assert bob.new() == ["DELIVERY alice still here"]


def test_closed_session_ignores_further_input(core):
    s = Session(core)
    s.login("alice")
    s.session.connection_lost()
    assert s.line("LIST") == []
    assert core.world.find_user("alice") is None


# -- bridging with IRC users ---------------------------------------------------------


def test_send_to_an_irc_user_arrives_as_privmsg_from_the_simple_user(core):
    bob = IrcUser(core, "bob")
    alice = Session(core)
    alice.login("alice")
    bob.lines()
    assert alice.line("SEND bob hi") == ["SEND-OK"]
    assert bob.lines() == [":alice!alice@127.0.0.1 PRIVMSG bob :hi"]


@pytest.mark.parametrize("verb", ["PRIVMSG", "NOTICE"])
def test_irc_privmsg_or_notice_arrives_as_delivery(core, verb):
    bob = IrcUser(core, "bob")
    alice = Session(core)
    alice.login("alice")
    bob.send(f"{verb} alice :hi there")
    assert alice.new() == ["DELIVERY bob hi there"]


def test_irc_ctcp_action_arrives_as_delivery_and_other_ctcp_is_dropped(core):
    bob = IrcUser(core, "bob")
    alice = Session(core)
    alice.login("alice")
    bob.send("PRIVMSG alice :\x01VERSION\x01")
    assert alice.new() == []
    bob.send("PRIVMSG alice :\x01ACTION waves\x01")
    assert alice.new() == ["DELIVERY bob * waves"]


def test_irc_channel_messages_are_not_delivered_by_default(core):
    bob = IrcUser(core, "bob")
    carol = IrcUser(core, "carol")
    alice = Session(core)
    alice.login("alice")
    carol.lines()
    bob.send("PRIVMSG #general :hello channel")
    bob.send("NOTICE #general :channel notice")
    assert ":bob!bob@127.0.0.1 PRIVMSG #general :hello channel" in carol.lines()
    assert alice.new() == []


def test_irc_channel_messages_are_delivered_with_deliver_channel_messages(tmp_path):
    core = make_core(tmp_path, deliver_channel_messages=True)
    bob = IrcUser(core, "bob")
    alice = Session(core)
    alice.login("alice")
    bob.send("PRIVMSG #general :hello channel")
    assert alice.new() == ["DELIVERY bob hello channel"]
    core.accounts.close()


def test_simple_user_is_seen_by_irc_names_whois_and_ison(core):
    bob = IrcUser(core, "bob")
    Session(core).login("alice")
    bob.lines()
    bob.send("NAMES #general")
    names = [line for line in bob.lines() if " 353 " in line]
    assert any("alice" in line.split(":", 2)[2].replace("@", "").split() for line in names), names
    bob.send("WHOIS alice")
    assert any(" 311 bob alice alice 127.0.0.1 " in line for line in bob.lines())
    bob.send("ISON alice nobody")
    assert any(line.endswith(" 303 bob :alice") for line in bob.lines())


def test_long_message_to_an_irc_user_is_split_into_irc_lines_on_character_boundaries(core):
    bob = IrcUser(core, "bob")
    alice = Session(core)
    alice.login("alice")
    bob.lines()
    text = ("aé€😀 " * 200)[:1800]
    assert len(text.encode()) >= 2000
    assert alice.line(f"SEND bob {text}") == ["SEND-OK"]
    raws = bob.raw()
    assert len(raws) >= 5
    prefix = b":alice!alice@127.0.0.1 PRIVMSG bob :"
    pieces = []
    for raw in raws:
        assert len(raw) <= 512, raw
        assert raw.startswith(prefix), raw
        pieces.append(raw[len(prefix):-2].decode("utf-8"))  # strict: no broken character
    assert "".join(pieces) == text


def test_simple_user_leaving_is_a_quit_for_irc_users(core):
    bob = IrcUser(core, "bob")
    alice = Session(core)
    alice.login("alice")
    bob.lines()
    alice.session.connection_lost()
    assert bob.lines() == [":alice!alice@127.0.0.1 QUIT :Connection closed"]
    assert alice.closes == 0  # the socket was already gone; nothing to close


def test_send_to_an_irc_user_who_quit_is_bad_dest_user(core):
    bob = IrcUser(core, "bob")
    alice = Session(core)
    alice.login("alice")
    bob.quit()
    assert alice.line("SEND bob hi") == ["BAD-DEST-USER"]


def test_server_shutdown_closes_the_simple_connection(core):
    alice = Session(core)
    alice.login("alice")
    core.shutdown()
    assert alice.closes == 1
    assert alice.line("LIST") == []


# -- echobot -------------------------------------------------------------------------------


def test_echobot_answers_a_send_with_the_same_text(core):
    EchoBot(core)
    alice = Session(core)
    alice.login("alice")
    # The immediate scheduler runs the bot's answer at once, so it may come first.
    assert sorted(alice.line("SEND echobot hi there")) == ["DELIVERY echobot hi there", "SEND-OK"]


def test_echobot_echoes_a_long_message_whole(core):
    EchoBot(core)
    alice = Session(core)
    alice.login("alice")
    text = "é" * 3000
    assert sorted(alice.line(f"SEND echobot {text}")) == [f"DELIVERY echobot {text}", "SEND-OK"]


def test_echobot_is_in_general_without_operator_status(core):
    EchoBot(core)
    bob = IrcUser(core, "bob")
    bob.send("NAMES #general")
    names = " ".join(line.split(":", 2)[2] for line in bob.lines() if " 353 " in line).split()
    assert "echobot" in names
    assert "@echobot" not in names
