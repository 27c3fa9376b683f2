"""Sans-I/O tests of the server core: lines in, bytes out, no sockets, a fake clock.

Each :class:`Conn` stands for one connection: the core writes to a list and
"closes" by recording the ERROR reason it was given.
"""

from __future__ import annotations

import dataclasses

import pytest

from ircd.accounts import AccountStore
from ircd.commands.registry import COMMANDS
from ircd.config import Config
from ircd.core import ImmediateScheduler, Server
from ircd.protocol.casemap import casefold
from ircd.protocol.framing import LineTooLong
from ircd.protocol.message import Message, parse_line
from ircd.state import CallbackSession
from ircd.storage.sqlite import SQLiteAccountRows

SERVER_NAME = "irc.chatserver.local"
START = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class Conn:
    """One fake connection to ``server``: ``send`` lines, ``take`` what was written."""

    def __init__(self, server: Server, ip: str = "127.0.0.1") -> None:
        self.server = server
        self.chunks: list[bytes] = []
        self.closed: list[str] = []
        self.client = server.new_client(CallbackSession(self.chunks.append, self.closed.append), ip)

    def send(self, *lines: str | bytes) -> None:
        for line in lines:
            self.server.handle_line(self.client.session, line.encode() if isinstance(line, str) else line)

    def take(self) -> list[Message]:
        """Every message written since the last ``take``, parsed."""
        data = b"".join(self.chunks)
        for chunk in self.chunks:
            assert chunk.endswith(b"\r\n"), chunk
        self.chunks.clear()
        return [parse_line(raw, check_length=False) for raw in data.split(b"\r\n") if raw]

    def take_raw(self) -> list[str]:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return [raw.decode() for raw in data.split(b"\r\n") if raw]

    def codes(self) -> list[str]:
        return [m.command for m in self.take()]


def commands(msgs: list[Message]) -> list[str]:
    return [m.command for m in msgs]


def only(msgs: list[Message], command: str) -> list[Message]:
    return [m for m in msgs if m.command == command]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path):
    s = AccountStore(SQLiteAccountRows(tmp_path / "db"), time_cost=1, memory_cost=1024)
    yield s
    s.close()


@pytest.fixture
def make_server(store, clock):
    def make(config: Config | None = None, **server_overrides) -> Server:
        cfg = (config or Config()).with_overrides("server", **server_overrides)
        return Server(cfg, store, ImmediateScheduler(), clock=clock)

    return make


@pytest.fixture
def server(make_server) -> Server:
    return make_server()


def connect(server: Server, nick: str, password: str | None = None, user: str | None = None,
            ip: str = "127.0.0.1") -> Conn:
    """A registered connection with its welcome burst already consumed."""
    conn = Conn(server, ip)
    if password is not None:
        conn.send(f"PASS {password}")
    conn.send(f"NICK {nick}", f"USER {user or nick} 0 * :{nick} real")
    msgs = conn.take()
    assert "001" in commands(msgs), msgs
    assert conn.client.registered
    return conn


@pytest.fixture
def trio(server):
    """alice (op of #general, registered first), bob and carol, all in #general."""
    alice = connect(server, "alice")
    bob = connect(server, "bob")
    carol = connect(server, "carol")
    alice.take()
    bob.take()
    return alice, bob, carol


# -- registration ------------------------------------------------------------


def test_registration_burst_sends_001_to_005_lusers_and_motd_in_order(server):
    conn = Conn(server)
    conn.send("NICK alice", "USER al 0 * :Alice Liddell")
    msgs = conn.take()
    codes = commands(msgs)
    wanted = ["001", "002", "003", "004", "005", "251", "252", "253", "254", "255", "375", "372",
              "376"]
    positions = [codes.index(c) for c in wanted]
    assert positions == sorted(positions), codes
    assert codes[0] == "001"
    for m in msgs[: codes.index("376") + 1]:
        assert m.source == SERVER_NAME
        assert m.params[0] == "alice"
    welcome = msgs[0]
    assert welcome.params[-1].endswith("alice!al@127.0.0.1")
    isupport = " ".join(" ".join(m.params[1:-1]) for m in only(msgs, "005"))
    assert "CASEMAPPING=rfc1459" in isupport.split()
    assert "CHANTYPES=#" in isupport.split()
    assert "PREFIX=(ov)@+" in isupport.split()
    assert all(len(m.params) - 2 <= 13 for m in only(msgs, "005"))
    assert only(msgs, "251")[0].params[-1] == "There are 1 users and 0 invisible on 1 servers"


def test_registration_with_user_before_nick_also_completes(server):
    conn = Conn(server)
    conn.send("USER al 0 * :Alice")
    assert conn.take() == []
    conn.send("NICK alice")
    assert commands(conn.take())[0] == "001"
    assert conn.client.registered


def test_empty_motd_gives_422_instead_of_375_372_376(make_server):
    server = make_server(motd="")
    conn = Conn(server)
    conn.send("NICK alice", "USER al 0 * :Alice")
    codes = conn.codes()
    assert "422" in codes
    assert not {"375", "372", "376"} & set(codes)


def test_registration_autojoins_general_as_first_member_op(server):
    conn = Conn(server)
    conn.send("NICK alice", "USER al 0 * :Alice")
    msgs = conn.take()
    joins = only(msgs, "JOIN")
    assert [(j.source, j.params) for j in joins] == [("alice!al@127.0.0.1", ["#general"])]
    names = only(msgs, "353")
    assert names[0].params[1:] == ["=", "#general", "@alice"]
    assert only(msgs, "366")[0].params[1] == "#general"
    assert commands(msgs).index("376") < commands(msgs).index("JOIN")


def test_autojoin_is_configurable(make_server):
    server = make_server(autojoin=["#a", "#b"])
    conn = Conn(server)
    conn.send("NICK alice", "USER al 0 * :Alice")
    assert [m.params[0] for m in only(conn.take(), "JOIN")] == ["#a", "#b"]


def test_nick_without_param_gets_431(server):
    conn = Conn(server)
    conn.send("NICK")
    msgs = conn.take()
    assert commands(msgs) == ["431"]
    assert msgs[0].params[0] == "*"


@pytest.mark.parametrize("nick", ["1abc", "-abc", "al!ce", "#chan", "a" * 31, "é"])
def test_erroneous_nick_gets_432(server, nick):
    conn = Conn(server)
    conn.send(f"NICK {nick}")
    msgs = conn.take()
    assert commands(msgs) == ["432"]
    assert msgs[0].params[:2] == ["*", nick]
    assert conn.client.nick == "*"


def test_nick_in_use_gets_433_before_registration(server):
    connect(server, "alice")
    conn = Conn(server)
    conn.send("NICK alice", "USER x 0 * :x")
    msgs = conn.take()
    assert commands(msgs) == ["433"]
    assert msgs[0].params[:2] == ["*", "alice"]
    assert not conn.client.registered
    conn.send("NICK alice2")
    assert "001" in conn.codes()


def test_nick_change_to_taken_nick_gets_433(trio):
    alice, bob, _ = trio
    bob.send("NICK alice")
    msgs = bob.take()
    assert commands(msgs) == ["433"]
    assert msgs[0].params[:2] == ["bob", "alice"]
    assert bob.client.nick == "bob"
    assert alice.take() == []


@pytest.mark.parametrize("line", ["JOIN #x", "PRIVMSG bob :hi", "WHOIS bob", "FOO", "MODE #x"])
def test_commands_before_registration_get_451(server, line):
    conn = Conn(server)
    conn.send(line)
    msgs = conn.take()
    assert commands(msgs) == ["451"]
    assert msgs[0].params[0] == "*"


def test_ping_is_answered_before_registration(server):
    conn = Conn(server)
    conn.send("PING :tok en")
    msgs = conn.take()
    assert [(m.command, m.params) for m in msgs] == [("PONG", [SERVER_NAME, "tok en"])]


def test_ping_without_token_gets_409(trio):
    alice, _, _ = trio
    alice.send("PING")
    assert alice.codes() == ["409"]


@pytest.mark.parametrize("line", ["USER", "USER a 0 *", "JOIN", "KICK #general", "INVITE bob",
                                  "TOPIC", "WHOIS", "ISON", "USERHOST", "MODE"])
def test_missing_params_get_461_naming_the_command(trio, line):
    alice, _, _ = trio
    alice.send(line)
    msgs = alice.take()
    assert commands(msgs) == ["461"]
    assert msgs[0].params[1] == line.split()[0]


def test_user_with_too_few_params_gets_461_before_registration(server):
    conn = Conn(server)
    conn.send("USER a 0 *")
    msgs = conn.take()
    assert commands(msgs) == ["461"]
    assert msgs[0].params[:2] == ["*", "USER"]


def test_unknown_command_gets_421(trio):
    alice, _, _ = trio
    alice.send("FROBNICATE x y")
    msgs = alice.take()
    assert commands(msgs) == ["421"]
    assert msgs[0].params[:2] == ["alice", "FROBNICATE"]


def test_user_after_registration_gets_462(trio):
    alice, _, _ = trio
    alice.send("USER again 0 * :again")
    assert alice.codes() == ["462"]
    assert alice.client.user == "alice"


def test_pass_after_registration_gets_462(trio):
    alice, _, _ = trio
    alice.send("PASS secret")
    assert alice.codes() == ["462"]


def test_lowercase_command_is_accepted(trio):
    alice, _, _ = trio
    alice.send("ping :x")
    assert commands(alice.take()) == ["PONG"]


# -- accounts ----------------------------------------------------------------


def test_pass_with_new_name_creates_account_with_notice_and_900(server, store):
    conn = Conn(server)
    conn.send("PASS hunter2", "NICK bob", "USER bob 0 * :Bob")
    msgs = conn.take()
    codes = commands(msgs)
    assert "001" in codes
    notices = [m for m in only(msgs, "NOTICE") if m.params[0] == "bob"]
    assert [n.params[1] for n in notices] == ["Registered new account bob"]
    logged_in = only(msgs, "900")
    assert len(logged_in) == 1
    assert logged_in[0].params[:3] == ["bob", "bob!bob@127.0.0.1", "bob"]
    assert conn.client.account == "bob"
    assert store.verify("bob", "hunter2")
    assert "bob" in server.account_names


def test_pass_with_existing_name_logs_in_with_900_and_no_notice(server, store):
    assert store.create("bob", "hunter2")
    server = Server(server.config, store, ImmediateScheduler(), clock=server.clock)
    conn = Conn(server)
    conn.send("PASS hunter2", "NICK bob", "USER bob 0 * :Bob")
    msgs = conn.take()
    assert "001" in commands(msgs)
    assert len(only(msgs, "900")) == 1
    assert not [m for m in only(msgs, "NOTICE") if "Registered" in m.params[-1]]
    assert conn.client.account == "bob"


def test_account_login_works_again_after_quit(server):
    first = connect(server, "bob", password="hunter2")
    first.send("QUIT :bye")
    second = Conn(server)
    second.send("PASS hunter2", "NICK Bob", "USER bob 0 * :Bob")
    msgs = second.take()
    assert "001" in commands(msgs)
    # The account is the one registered as "bob" (900 shows the name as typed at login).
    assert casefold(only(msgs, "900")[0].params[2]) == "bob"
    assert casefold(second.client.account) == "bob"
    assert not [m for m in only(msgs, "NOTICE") if "Registered" in m.params[-1]]


def test_wrong_password_gets_464_and_connection_is_closed(server):
    first = connect(server, "bob", password="hunter2")
    first.send("QUIT")
    conn = Conn(server)
    conn.send("PASS wrong", "NICK bob", "USER bob 0 * :Bob")
    msgs = conn.take()
    assert commands(msgs) == ["464"]
    assert msgs[0].params[0] == "bob"
    assert len(conn.closed) == 1
    assert "Bad password" in conn.closed[0]
    assert not conn.client.registered
    assert server.world.find_user("bob") is None
    conn.send("NICK other")  # nothing more happens on a closed connection
    assert conn.take() == []


def test_registered_name_without_password_gets_464_and_is_closed(server):
    connect(server, "bob", password="hunter2").send("QUIT")
    conn = Conn(server)
    conn.send("NICK BOB", "USER bob 0 * :Bob")
    msgs = conn.take()
    assert commands(msgs) == ["464"]
    assert "registered account" in msgs[0].params[-1]
    assert len(conn.closed) == 1
    assert "Password required" in conn.closed[0]


def test_guest_without_pass_registers_without_account(server):
    conn = Conn(server)
    conn.send("NICK guest", "USER g 0 * :Guest")
    msgs = conn.take()
    assert "001" in commands(msgs)
    assert "900" not in commands(msgs)
    assert conn.client.account is None
    assert "guest" not in server.account_names


def test_guest_is_refused_with_464_when_guests_are_disabled(make_server):
    server = make_server(Config().with_overrides("accounts", allow_guests=False))
    conn = Conn(server)
    conn.send("NICK guest", "USER g 0 * :Guest")
    assert conn.codes() == ["464"]
    assert len(conn.closed) == 1


def test_nick_change_to_someone_elses_account_gets_433(server):
    connect(server, "bob", password="hunter2").send("QUIT")
    alice = connect(server, "alice")
    alice.send("NICK Bob")
    assert alice.codes() == ["433"]
    assert alice.client.nick == "alice"


def test_server_password_mismatch_gets_464(make_server):
    server = make_server(password="letmein")
    conn = Conn(server)
    conn.send("PASS nope", "NICK alice", "USER a 0 * :A")
    assert conn.codes() == ["464"]
    assert len(conn.closed) == 1
    ok = Conn(server)
    ok.send("PASS letmein", "NICK alice", "USER a 0 * :A")
    assert "001" in ok.codes()


# -- PRIVMSG / NOTICE -----------------------------------------------------------


def test_privmsg_to_channel_reaches_each_other_member_exactly_once(trio):
    alice, bob, carol = trio
    alice.send("PRIVMSG #general :hello there")
    assert alice.take() == []
    for peer in (bob, carol):
        msgs = peer.take()
        assert [(m.source, m.command, m.params) for m in msgs] == [
            ("alice!alice@127.0.0.1", "PRIVMSG", ["#general", "hello there"])
        ]


def test_privmsg_to_channel_is_case_insensitive(trio):
    alice, bob, _ = trio
    alice.send("PRIVMSG #GENERAL :x")
    assert [m.params for m in bob.take()] == [["#general", "x"]]


def test_privmsg_to_nick_reaches_only_that_user(trio):
    alice, bob, carol = trio
    alice.send("PRIVMSG BOB :secret stuff")
    assert alice.take() == []
    msgs = bob.take()
    assert [(m.source, m.command, m.params) for m in msgs] == [
        ("alice!alice@127.0.0.1", "PRIVMSG", ["bob", "secret stuff"])
    ]
    assert carol.take() == []


def test_privmsg_to_several_targets_reaches_each(trio):
    alice, bob, carol = trio
    alice.send("PRIVMSG bob,carol :hi both")
    assert [m.params for m in bob.take()] == [["bob", "hi both"]]
    assert [m.params for m in carol.take()] == [["carol", "hi both"]]


def test_privmsg_to_too_many_targets_gets_407_for_the_extra(trio):
    alice, bob, carol = trio
    alice.send("PRIVMSG bob,carol,ghost1,ghost2,ghost3 :x")
    msgs = alice.take()
    assert [(m.command, m.params[1]) for m in msgs] == [
        ("407", "ghost3"), ("401", "ghost1"), ("401", "ghost2")]
    assert len(bob.take()) == 1 and len(carol.take()) == 1
    # A target named twice (in any case) counts, and is sent to, once.
    alice.send("PRIVMSG bob,BOB,bob,bob,carol :y")
    assert alice.take() == []
    assert len(bob.take()) == 1 and len(carol.take()) == 1


def test_privmsg_to_offline_nick_gets_401(trio):
    alice, _, _ = trio
    alice.send("PRIVMSG nobody :hello?")
    msgs = alice.take()
    assert commands(msgs) == ["401"]
    assert msgs[0].params[:2] == ["alice", "nobody"]


def test_privmsg_to_unknown_channel_gets_403(trio):
    alice, _, _ = trio
    alice.send("PRIVMSG #nowhere :hello?")
    msgs = alice.take()
    assert commands(msgs) == ["403"]
    assert msgs[0].params[1] == "#nowhere"


def test_privmsg_from_outside_a_no_external_channel_gets_404(server, trio):
    alice, bob, _ = trio
    dave = connect(server, "dave")
    dave.send("PART #general")
    dave.take()
    alice.take()
    bob.take()
    dave.send("PRIVMSG #general :let me in")
    msgs = dave.take()
    assert commands(msgs) == ["404"]
    assert msgs[0].params[1] == "#general"
    assert bob.take() == []


def test_privmsg_without_recipient_gets_411(trio):
    alice, _, _ = trio
    alice.send("PRIVMSG")
    assert alice.codes() == ["411"]


def test_privmsg_without_text_gets_412(trio):
    alice, bob, _ = trio
    alice.send("PRIVMSG bob")
    assert alice.codes() == ["412"]
    alice.send("PRIVMSG bob :")
    assert alice.codes() == ["412"]
    assert bob.take() == []


def test_notice_is_delivered_and_its_errors_are_never_answered(trio):
    alice, bob, _ = trio
    alice.send("NOTICE bob :psst")
    assert [(m.command, m.params) for m in bob.take()] == [("NOTICE", ["bob", "psst"])]
    alice.send("NOTICE nobody :x", "NOTICE #nowhere :x", "NOTICE", "NOTICE bob",
               "NOTICE a,b,c,d,e,f :x")
    assert alice.take() == []
    bob.send("AWAY :gone")
    bob.take()
    alice.send("NOTICE bob :are you there")
    assert alice.take() == []


def test_statusmsg_reaches_only_channel_operators(trio):
    alice, bob, carol = trio
    bob.send("PRIVMSG @#general :ops only")
    assert [m.params for m in alice.take()] == [["@#general", "ops only"]]
    assert carol.take() == []


# -- JOIN / PART ---------------------------------------------------------------


def test_join_sends_join_and_names_and_tells_members(trio):
    alice, bob, carol = trio
    alice.send("JOIN #dev")
    alice.take()
    bob.send("JOIN #Dev")
    msgs = bob.take()
    assert [(m.command, m.params) for m in msgs] == [
        ("JOIN", ["#dev"]),
        ("353", ["bob", "=", "#dev", "@alice bob"]),
        ("366", ["bob", "#dev", "End of /NAMES list"]),
    ]
    assert msgs[0].source == "bob!bob@127.0.0.1"
    assert [(m.source, m.command, m.params) for m in alice.take()] == [
        ("bob!bob@127.0.0.1", "JOIN", ["#dev"])
    ]
    assert carol.take() == []


def test_join_of_a_channel_already_joined_does_nothing(trio):
    alice, bob, _ = trio
    alice.send("JOIN #general")
    assert alice.take() == []
    assert bob.take() == []


def test_join_several_channels_with_keys(trio):
    alice, bob, _ = trio
    alice.send("JOIN #a,#b")
    alice.send("MODE #b +k sesame")
    alice.take()
    bob.send("JOIN #a,#b x,sesame")
    assert [m.params[0] for m in only(bob.take(), "JOIN")] == ["#a", "#b"]


@pytest.mark.parametrize("name", ["nohash", "#", "#a\x07b", "#bad:name", "#" + "x" * 70])
def test_join_invalid_channel_name_gets_403(trio, name):
    alice, _, _ = trio
    alice.send(f"JOIN {name}")
    msgs = alice.take()
    assert "403" in commands(msgs)
    assert "JOIN" not in commands(msgs)


def test_join_beyond_channel_limit_gets_405(make_server):
    server = make_server(max_channels=2, autojoin=[])
    alice = connect(server, "alice")
    alice.send("JOIN #a,#b,#c")
    msgs = alice.take()
    assert [m.params[0] for m in only(msgs, "JOIN")] == ["#a", "#b"]
    assert [m.params[1] for m in only(msgs, "405")] == ["#c"]


def test_join_zero_parts_every_channel(trio):
    alice, bob, _ = trio
    alice.send("JOIN #x", "JOIN 0")
    msgs = alice.take()
    assert sorted(m.params[0] for m in only(msgs, "PART")) == ["#general", "#x"]
    assert alice.client.channels == {}
    assert [m.command for m in bob.take()] == ["PART"]


def test_part_tells_every_member_with_the_reason(trio):
    alice, bob, carol = trio
    bob.send("PART #general :see you")
    expected = [("bob!bob@127.0.0.1", "PART", ["#general", "see you"])]
    for conn in (alice, bob, carol):
        assert [(m.source, m.command, m.params) for m in conn.take()] == expected
    assert "#general" not in bob.client.channels
    assert bob.client not in server_channel(alice, "#general").members


def server_channel(conn: Conn, name: str):
    return conn.server.world.find_channel(name)


def test_part_of_channel_not_joined_gets_442(trio):
    alice, bob, _ = trio
    alice.send("JOIN #private")
    alice.take()
    bob.send("PART #private")
    msgs = bob.take()
    assert commands(msgs) == ["442"]
    assert msgs[0].params[1] == "#private"


def test_part_of_unknown_channel_gets_403(trio):
    alice, _, _ = trio
    alice.send("PART #nowhere")
    msgs = alice.take()
    assert commands(msgs) == ["403"]
    assert msgs[0].params[1] == "#nowhere"


def test_last_member_leaving_destroys_the_channel(trio):
    alice, _, _ = trio
    alice.send("JOIN #tmp", "PART #tmp")
    assert alice.server.world.find_channel("#tmp") is None
    alice.take()
    alice.send("JOIN #tmp")
    msgs = alice.take()
    assert only(msgs, "353")[0].params[-1] == "@alice"


# -- TOPIC -----------------------------------------------------------------------


def test_topic_query_without_topic_gets_331(trio):
    alice, _, _ = trio
    alice.send("TOPIC #general")
    msgs = alice.take()
    assert commands(msgs) == ["331"]
    assert msgs[0].params[1] == "#general"


def test_topic_set_is_broadcast_and_then_reported_with_332_333(trio, clock):
    alice, bob, carol = trio
    alice.send("TOPIC #general :Welcome all")
    expected = [("alice!alice@127.0.0.1", "TOPIC", ["#general", "Welcome all"])]
    for conn in (alice, bob, carol):
        assert [(m.source, m.command, m.params) for m in conn.take()] == expected
    clock.advance(50)
    bob.send("TOPIC #general")
    msgs = bob.take()
    assert [(m.command, m.params) for m in msgs] == [
        ("332", ["bob", "#general", "Welcome all"]),
        ("333", ["bob", "#general", "alice!alice@127.0.0.1", str(int(START))]),
    ]


def test_join_shows_existing_topic(trio):
    alice, bob, _ = trio
    alice.send("JOIN #t", "TOPIC #t :the topic")
    alice.take()
    bob.send("JOIN #t")
    assert commands(bob.take()) == ["JOIN", "332", "333", "353", "366"]


def test_topic_change_by_non_op_on_plus_t_channel_gets_482(trio):
    alice, bob, carol = trio
    bob.send("TOPIC #general :mine now")
    msgs = bob.take()
    assert commands(msgs) == ["482"]
    assert msgs[0].params[1] == "#general"
    assert alice.take() == []
    assert server_channel(alice, "#general").topic == ""


def test_topic_change_by_member_on_minus_t_channel_is_allowed(trio):
    alice, bob, _ = trio
    alice.send("MODE #general -t")
    alice.take()
    bob.take()
    bob.send("TOPIC #general :anyone can")
    assert [m.command for m in alice.take()] == ["TOPIC"]
    assert server_channel(alice, "#general").topic == "anyone can"


def test_topic_change_by_non_member_gets_442(server, trio):
    alice, _, _ = trio
    alice.send("JOIN #x")
    bob = connect(server, "dave")
    bob.send("TOPIC #x :hi")
    assert bob.codes() == ["442"]


def test_empty_topic_clears_it(trio):
    alice, _, _ = trio
    alice.send("TOPIC #general :x", "TOPIC #general :")
    alice.take()
    alice.send("TOPIC #general")
    assert alice.codes() == ["331"]


# -- NAMES / LIST ----------------------------------------------------------------


def test_names_lists_members_with_prefixes(trio):
    alice, bob, _ = trio
    bob.send("NAMES #general")
    msgs = bob.take()
    assert commands(msgs) == ["353", "366"]
    assert msgs[0].params[:3] == ["bob", "=", "#general"]
    assert sorted(msgs[0].params[3].split()) == ["@alice", "bob", "carol"]


def test_names_of_unknown_channel_gives_only_366(trio):
    alice, _, _ = trio
    alice.send("NAMES #none")
    msgs = alice.take()
    assert [(m.command, m.params[1]) for m in msgs] == [("366", "#none")]


def test_list_shows_channels_with_member_counts_and_topics(trio):
    alice, bob, _ = trio
    alice.send("JOIN #dev", "TOPIC #dev :hacking")
    alice.take()
    bob.send("LIST")
    msgs = bob.take()
    assert commands(msgs)[0] == "321"
    assert commands(msgs)[-1] == "323"
    rows = {m.params[1]: m.params[2:] for m in only(msgs, "322")}
    assert rows == {"#general": ["3", "[+nt]"], "#dev": ["1", "[+nt] hacking"]}


def test_list_with_a_channel_argument_shows_only_that_channel(trio):
    alice, _, _ = trio
    alice.send("JOIN #dev")
    alice.take()
    alice.send("LIST #DEV")
    assert [m.params[1] for m in only(alice.take(), "322")] == ["#dev"]


# -- KICK / INVITE ---------------------------------------------------------------


def test_kick_by_op_removes_member_and_tells_everyone(trio):
    alice, bob, carol = trio
    alice.send("KICK #general bob :behave")
    expected = [("alice!alice@127.0.0.1", "KICK", ["#general", "bob", "behave"])]
    for conn in (alice, bob, carol):
        assert [(m.source, m.command, m.params) for m in conn.take()] == expected
    assert "#general" not in bob.client.channels
    alice.send("PRIVMSG #general :after")
    assert bob.take() == []
    assert len(carol.take()) == 1


def test_kick_without_reason_uses_the_kicker_nick(trio):
    alice, bob, _ = trio
    alice.send("KICK #general bob")
    assert only(bob.take(), "KICK")[0].params == ["#general", "bob", "alice"]


def test_kick_by_non_op_gets_482(trio):
    alice, bob, carol = trio
    bob.send("KICK #general carol")
    assert bob.codes() == ["482"]
    assert carol.client in server_channel(alice, "#general").members
    assert carol.take() == []


def test_kick_of_user_not_on_channel_gets_441(server, trio):
    alice, _, _ = trio
    dave = connect(server, "dave")
    dave.send("PART #general")
    alice.take()
    alice.send("KICK #general dave")
    msgs = alice.take()
    assert commands(msgs) == ["441"]
    assert msgs[0].params[1:3] == ["dave", "#general"]


def test_kick_of_unknown_nick_gets_401(trio):
    alice, _, _ = trio
    alice.send("KICK #general ghost")
    assert alice.codes() == ["401"]


def test_invite_lets_user_join_invite_only_channel(trio):
    alice, bob, _ = trio
    alice.send("JOIN #club", "MODE #club +i")
    alice.take()
    bob.send("JOIN #club")
    msgs = bob.take()
    assert commands(msgs) == ["473"]
    alice.send("INVITE bob #club")
    msgs = alice.take()
    assert [(m.command, m.params) for m in msgs] == [("341", ["alice", "bob", "#club"])]
    assert [(m.source, m.command, m.params) for m in bob.take()] == [
        ("alice!alice@127.0.0.1", "INVITE", ["bob", "#club"])
    ]
    bob.send("JOIN #club")
    assert "JOIN" in commands(bob.take())


def test_invite_of_user_already_on_channel_gets_443(trio):
    alice, bob, _ = trio
    alice.send("INVITE bob #general")
    msgs = alice.take()
    assert commands(msgs) == ["443"]
    assert msgs[0].params[1:3] == ["bob", "#general"]
    assert bob.take() == []


def test_invite_of_unknown_nick_gets_401(trio):
    alice, _, _ = trio
    alice.send("INVITE ghost #general")
    assert alice.codes() == ["401"]


def test_invite_to_invite_only_channel_by_non_op_gets_482(server, trio):
    alice, bob, _ = trio
    alice.send("MODE #general +i")
    dave = connect(server, "dave")  # autojoin refused: +i
    bob.send("INVITE dave #general")
    assert bob.codes()[-1] == "482"
    assert dave.take() == []


def test_invite_to_away_user_also_gets_301(trio):
    alice, bob, _ = trio
    bob.send("AWAY :lunch", "PART #general")
    alice.send("INVITE bob #general")
    msgs = alice.take()
    assert [m.command for m in msgs][-2:] == ["341", "301"]
    assert msgs[-1].params[1:] == ["bob", "lunch"]


# -- channel MODE ------------------------------------------------------------------


def test_channel_mode_query_gives_324_and_329(trio):
    alice, _, _ = trio
    alice.send("MODE #general")
    msgs = alice.take()
    assert [(m.command, m.params) for m in msgs] == [
        ("324", ["alice", "#general", "+nt"]),
        ("329", ["alice", "#general", str(int(START))]),
    ]


def test_mode_plus_o_is_broadcast_and_grants_op(trio):
    alice, bob, carol = trio
    alice.send("MODE #general +o bob")
    expected = [("alice!alice@127.0.0.1", "MODE", ["#general", "+o", "bob"])]
    for conn in (alice, bob, carol):
        assert [(m.source, m.command, m.params) for m in conn.take()] == expected
    bob.send("TOPIC #general :bob is op")
    assert commands(bob.take()) == ["TOPIC"]
    carol.send("NAMES #general")
    names = only(carol.take(), "353")[0].params[-1].split()
    assert sorted(names) == ["@alice", "@bob", "carol"]


def test_mode_plus_v_lets_a_user_speak_in_moderated_channel(trio):
    alice, bob, carol = trio
    alice.send("MODE #general +m")
    carol.take()
    bob.take()
    bob.send("PRIVMSG #general :hello?")
    assert bob.codes() == ["404"]
    assert carol.take() == []
    alice.send("MODE #general +v bob")
    assert only(carol.take(), "MODE")[0].params == ["#general", "+v", "bob"]
    bob.take()
    bob.send("PRIVMSG #general :now I can")
    assert bob.take() == []
    assert [m.params[-1] for m in carol.take()] == ["now I can"]


def test_mode_minus_n_allows_messages_from_outside(server, trio):
    alice, _, carol = trio
    dave = connect(server, "dave")
    dave.send("PART #general")
    alice.send("MODE #general -n")
    alice.take()
    carol.take()
    dave.take()
    dave.send("PRIVMSG #general :from outside")
    assert dave.take() == []
    assert [m.params[-1] for m in carol.take()] == ["from outside"]


def test_mode_plus_n_and_plus_t_reapplied_changes_nothing(trio):
    alice, bob, _ = trio
    alice.send("MODE #general +nt")
    assert alice.take() == []
    assert bob.take() == []


def test_mode_plus_k_requires_the_key_to_join(server, trio):
    alice, bob, _ = trio
    alice.send("MODE #general +k sesame")
    assert only(bob.take(), "MODE")[0].params == ["#general", "+k", "sesame"]
    alice.take()
    alice.send("MODE #general")
    assert only(alice.take(), "324")[0].params[1:] == ["#general", "+ntk", "sesame"]
    dave = connect(server, "dave")  # autojoin without key fails
    assert "#general" not in dave.client.channels
    dave.send("JOIN #general wrong")
    msgs = dave.take()
    assert commands(msgs) == ["475"]
    assert msgs[0].params[1] == "#general"
    dave.send("JOIN #general sesame")
    assert "JOIN" in commands(dave.take())


def test_mode_minus_k_removes_the_key(server, trio):
    alice, _, _ = trio
    alice.send("MODE #general +k sesame", "MODE #general -k *")
    assert server_channel(alice, "#general").key is None
    dave = connect(server, "dave")
    assert "#general" in dave.client.channels


def test_mode_plus_l_makes_the_channel_full(server, trio):
    alice, bob, _ = trio
    alice.send("MODE #general +l 3")
    assert only(bob.take(), "MODE")[0].params == ["#general", "+l", "3"]
    dave = Conn(server)
    dave.send("NICK dave", "USER d 0 * :d")
    msgs = dave.take()
    assert "001" in commands(msgs)
    assert "471" in commands(msgs)
    assert "#general" not in dave.client.channels
    alice.send("MODE #general -l")
    dave.send("JOIN #general")
    assert "JOIN" in commands(dave.take())


def test_mode_plus_l_with_bad_limit_is_refused(trio):
    alice, _, _ = trio
    alice.send("MODE #general +l many")
    assert alice.codes() == ["696"]
    assert server_channel(alice, "#general").limit is None


def test_mode_plus_b_bans_from_joining_and_is_listed_with_367_368(server, trio, clock):
    alice, bob, _ = trio
    alice.send("MODE #general +b dave")
    assert only(bob.take(), "MODE")[0].params == ["#general", "+b", "dave!*@*"]
    alice.take()
    dave = connect(server, "dave")
    assert "#general" not in dave.client.channels
    dave.send("JOIN #general")
    assert dave.codes() == ["474"]
    bob.send("MODE #general +b")
    msgs = bob.take()
    assert [(m.command, m.params[1:]) for m in msgs] == [
        ("367", ["#general", "dave!*@*", "alice!alice@127.0.0.1", str(int(START))]),
        ("368", ["#general", "End of channel ban list"]),
    ]
    alice.send("MODE #general -b dave!*@*")
    assert only(alice.take(), "MODE")[0].params == ["#general", "-b", "dave!*@*"]
    dave.send("JOIN #general")
    assert "JOIN" in commands(dave.take())


def test_banned_member_cannot_speak(trio):
    alice, bob, carol = trio
    alice.send("MODE #general +b bob!*@*")
    bob.take()
    carol.take()
    bob.send("PRIVMSG #general :hi")
    assert bob.codes() == ["404"]
    assert carol.take() == []


def test_mode_plus_i_refuses_uninvited_join_with_473(server, trio):
    alice, _, _ = trio
    alice.send("MODE #general +i")
    dave = connect(server, "dave")
    assert "#general" not in dave.client.channels
    dave.send("JOIN #general")
    msgs = dave.take()
    assert commands(msgs) == ["473"]
    assert msgs[0].params[1] == "#general"


def test_mode_with_unknown_letter_gets_472(trio):
    alice, bob, _ = trio
    alice.send("MODE #general +X")
    msgs = alice.take()
    assert commands(msgs) == ["472"]
    assert msgs[0].params[1] == "X"
    assert bob.take() == []


def test_mode_change_by_non_op_gets_482(trio):
    alice, bob, _ = trio
    bob.send("MODE #general +m")
    msgs = bob.take()
    assert commands(msgs) == ["482"]
    assert msgs[0].params[1] == "#general"
    assert "m" not in server_channel(alice, "#general").modes
    assert alice.take() == []


def test_mode_several_changes_are_broadcast_as_one_line(trio):
    alice, bob, _ = trio
    alice.send("MODE #general +mv-t bob")
    msgs = bob.take()
    assert [(m.command, m.params) for m in msgs] == [("MODE", ["#general", "+mv-t", "bob"])]


def test_mode_on_unknown_channel_gets_403(trio):
    alice, _, _ = trio
    alice.send("MODE #nowhere +m")
    assert alice.codes() == ["403"]


def test_user_mode_plus_i_is_echoed_and_reported_with_221(trio):
    alice, _, _ = trio
    alice.send("MODE alice +i")
    assert [(m.command, m.params) for m in alice.take()] == [("MODE", ["alice", "+i"])]
    alice.send("MODE alice")
    assert [(m.command, m.params[1]) for m in alice.take()] == [("221", "+i")]


def test_user_mode_of_another_user_gets_502(trio):
    alice, _, _ = trio
    alice.send("MODE bob +i")
    assert alice.codes() == ["502"]


# -- queries ------------------------------------------------------------------------


def test_who_channel_lists_each_member_with_352_then_315(trio):
    alice, bob, _ = trio
    bob.send("AWAY :brb")
    bob.take()
    alice.send("WHO #general")
    msgs = alice.take()
    assert commands(msgs) == ["352", "352", "352", "315"]
    rows = {m.params[5]: m.params for m in msgs[:3]}
    assert rows["alice"] == ["alice", "#general", "alice", "127.0.0.1", SERVER_NAME, "alice",
                             "H@", "0 alice real"]
    assert rows["bob"][6] == "G"
    assert msgs[-1].params[1] == "#general"


def test_who_mask_matches_nicks(trio):
    alice, _, _ = trio
    alice.send("WHO b*")
    msgs = alice.take()
    assert [m.params[5] for m in only(msgs, "352")] == ["bob"]
    assert msgs[-1].command == "315"


def test_whois_reports_user_channels_server_idle_and_end(trio, clock):
    alice, bob, _ = trio
    clock.advance(30)
    alice.send("WHOIS bob")
    msgs = alice.take()
    assert commands(msgs) == ["311", "319", "312", "317", "318"]
    assert msgs[0].params == ["alice", "bob", "bob", "127.0.0.1", "*", "bob real"]
    assert msgs[1].params[2] == "#general"
    assert msgs[2].params[2] == SERVER_NAME
    assert msgs[3].params[2:4] == ["30", str(int(START))]
    assert msgs[4].params[1] == "bob"


def test_whois_of_account_user_shows_330(server):
    bob = connect(server, "bob", password="pw")
    alice = connect(server, "alice")
    bob.take()
    alice.send("WHOIS bob")
    msgs = only(alice.take(), "330")
    assert [m.params[1:3] for m in msgs] == [["bob", "bob"]]


def test_whois_of_unknown_nick_gets_401_and_318(trio):
    alice, _, _ = trio
    alice.send("WHOIS ghost")
    msgs = alice.take()
    assert [(m.command, m.params[1]) for m in msgs] == [("401", "ghost"), ("318", "ghost")]


def test_ison_returns_only_online_nicks_with_their_case(trio):
    alice, _, _ = trio
    alice.send("ISON BOB ghost carol")
    msgs = alice.take()
    assert [(m.command, m.params) for m in msgs] == [("303", ["alice", "bob carol"])]


def test_ison_with_nobody_online_returns_empty_303(trio):
    alice, _, _ = trio
    alice.send("ISON ghost")
    assert [(m.command, m.params) for m in alice.take()] == [("303", ["alice", ""])]


def test_userhost_returns_nick_user_host_and_away_flag(trio):
    alice, bob, _ = trio
    bob.send("AWAY :out")
    alice.send("USERHOST bob carol ghost")
    msgs = alice.take()
    assert [(m.command, m.params) for m in msgs] == [
        ("302", ["alice", "bob=-bob@127.0.0.1 carol=+carol@127.0.0.1"])
    ]


def test_away_gives_306_and_301_to_senders_and_305_when_back(trio):
    alice, bob, _ = trio
    bob.send("AWAY :gone fishing")
    msgs = bob.take()
    assert commands(msgs) == ["306"]
    alice.send("PRIVMSG bob :hello")
    msgs = alice.take()
    assert [(m.command, m.params) for m in msgs] == [("301", ["alice", "bob", "gone fishing"])]
    assert [m.params[-1] for m in bob.take()] == ["hello"]
    alice.send("WHOIS bob")
    assert only(alice.take(), "301")[0].params[-1] == "gone fishing"
    bob.send("AWAY")
    assert bob.codes() == ["305"]
    alice.send("PRIVMSG bob :back?")
    assert alice.take() == []


def test_lusers_counts_users_channels_and_unregistered_connections(server, trio):
    alice, _, _ = trio
    Conn(server)  # an unregistered connection
    alice.send("LUSERS")
    msgs = {m.command: m.params for m in alice.take()}
    assert msgs["251"][-1] == "There are 3 users and 0 invisible on 1 servers"
    assert msgs["253"][1] == "1"
    assert msgs["254"][1] == "1"


# -- QUIT and NICK seen by peers -------------------------------------------------------


def test_quit_is_seen_once_by_a_peer_sharing_several_channels(trio):
    alice, bob, carol = trio
    alice.send("JOIN #a", "JOIN #b")
    bob.send("JOIN #a", "JOIN #b")
    alice.take()
    bob.take()
    carol.take()
    alice.send("QUIT :bye now")
    expected = [("alice!alice@127.0.0.1", "QUIT", ["Quit: bye now"])]
    assert [(m.source, m.command, m.params) for m in bob.take()] == expected
    assert [(m.source, m.command, m.params) for m in carol.take()] == expected
    assert alice.closed == ["Closing Link: 127.0.0.1 (Quit: bye now)"]
    assert alice.take() == []
    world = alice.server.world
    assert world.find_user("alice") is None
    assert all(alice.client not in ch.members for ch in world.channels.values())


def test_quit_is_not_sent_to_users_sharing_no_channel(server, trio):
    alice, _, _ = trio
    loner = connect(server, "loner")
    loner.send("PART #general")
    loner.take()
    alice.send("QUIT")
    assert loner.take() == []


def test_nick_of_quit_user_is_free_again(trio, server):
    alice, _, _ = trio
    alice.send("QUIT")
    again = Conn(server)
    again.send("NICK alice", "USER a 0 * :a")
    assert "001" in again.codes()


def test_nick_change_is_seen_once_by_peers_and_by_the_user(trio):
    alice, bob, carol = trio
    alice.send("JOIN #a")
    bob.send("JOIN #a")
    alice.take()
    bob.take()
    bob.send("NICK robert")
    expected = [("bob!bob@127.0.0.1", "NICK", ["robert"])]
    for conn in (alice, bob, carol):
        assert [(m.source, m.command, m.params) for m in conn.take()] == expected
    world = bob.server.world
    assert world.find_user("robert") is bob.client
    assert world.find_user("bob") is None
    alice.send("PRIVMSG robert :hi")
    assert [(m.source, m.params) for m in bob.take()] == [("alice!alice@127.0.0.1",
                                                          ["robert", "hi"])]


def test_nick_change_of_case_only_is_allowed(trio):
    alice, bob, _ = trio
    alice.send("NICK Alice")
    assert [(m.command, m.params) for m in bob.take()] == [("NICK", ["Alice"])]
    assert alice.client.nick == "Alice"


# -- casemapping -------------------------------------------------------------------------


def test_nick_differing_only_in_case_collides(trio, server):
    conn = Conn(server)
    conn.send("NICK ALICE", "USER x 0 * :x")
    msgs = conn.take()
    assert commands(msgs) == ["433"]
    assert msgs[0].params[1] == "ALICE"


def test_nick_with_brackets_collides_with_braces(server):
    connect(server, "a[b]")
    conn = Conn(server)
    conn.send("NICK a{b}", "USER x 0 * :x")
    assert conn.codes() == ["433"]
    conn.send("NICK A[B]")
    assert conn.codes() == ["433"]
    conn.send("NICK a|b^")
    assert "001" in conn.codes()


def test_backslash_collides_with_pipe(server):
    connect(server, "x\\y")
    conn = Conn(server)
    conn.send("NICK X|Y", "USER x 0 * :x")
    assert conn.codes() == ["433"]


def test_message_to_casefolded_nick_reaches_the_user(server):
    target = connect(server, "a[b]")
    sender = connect(server, "sender")
    target.take()
    sender.send("PRIVMSG A{B} :hi")
    assert [(m.params) for m in target.take()] == [["a[b]", "hi"]]


# -- CAP -------------------------------------------------------------------------------


def test_cap_ls_suspends_registration_until_cap_end(server):
    conn = Conn(server)
    conn.send("CAP LS 302")
    msgs = conn.take()
    assert msgs and all((m.command, m.params[:2]) == ("CAP", ["*", "LS"]) for m in msgs)
    # CAP LS 302 may span lines: every line but the last has "*" before the list.
    assert all(m.params[2] == "*" for m in msgs[:-1])
    assert len(msgs[-1].params) == 3
    offered = {item.split("=", 1)[0] for m in msgs for item in m.params[-1].split()}
    assert {"cap-notify", "multi-prefix", "userhost-in-names"} <= offered
    conn.send("NICK alice", "USER a 0 * :a")
    assert conn.take() == []
    assert not conn.client.registered
    conn.send("CAP END")
    assert commands(conn.take())[0] == "001"
    assert conn.client.registered


def test_cap_req_of_known_capability_gets_ack_and_shows_in_list(server):
    conn = Conn(server)
    conn.send("CAP LS", "CAP REQ :multi-prefix")
    msgs = conn.take()
    assert [(m.command, m.params) for m in msgs][-1] == ("CAP", ["*", "ACK", "multi-prefix"])
    conn.send("CAP LIST")
    assert [m.params for m in conn.take()] == [["*", "LIST", "multi-prefix"]]
    conn.send("NICK alice", "USER a 0 * :a")
    assert conn.take() == []
    conn.send("CAP END")
    assert "001" in conn.codes()


def test_cap_req_of_unknown_capability_gets_nak_and_enables_nothing(server):
    conn = Conn(server)
    conn.send("CAP REQ :multi-prefix sasl-nonexistent")
    assert [(m.command, m.params) for m in conn.take()] == [
        ("CAP", ["*", "NAK", "multi-prefix sasl-nonexistent"])
    ]
    assert "multi-prefix" not in conn.client.session.caps
    conn.send("CAP LIST")
    assert [m.params for m in conn.take()] == [["*", "LIST", ""]]


def test_cap_req_can_remove_a_capability(server):
    conn = Conn(server)
    conn.send("CAP REQ :multi-prefix", "CAP REQ :-multi-prefix")
    assert [m.params[1:] for m in conn.take()] == [["ACK", "multi-prefix"],
                                                   ["ACK", "-multi-prefix"]]
    assert "multi-prefix" not in conn.client.session.caps


def test_multi_prefix_shows_every_prefix_in_names(trio, server):
    alice, bob, _ = trio
    alice.send("MODE #general +v bob")
    conn = Conn(server)
    conn.send("CAP REQ :multi-prefix", "NICK dave", "USER d 0 * :d", "CAP END")
    conn.take()
    alice.send("MODE #general +o bob")
    conn.take()
    conn.send("NAMES #general")
    names = only(conn.take(), "353")[0].params[-1].split()
    assert "@+bob" in names


def test_cap_unknown_subcommand_gets_410(server):
    conn = Conn(server)
    conn.send("CAP FOO")
    msgs = conn.take()
    assert [(m.command, m.params[1]) for m in msgs] == [("410", "FOO")]


# -- timeouts (fake clock) ---------------------------------------------------------------


def test_idle_client_is_pinged_after_ping_interval(trio, clock):
    alice, _, _ = trio
    interval = alice.server.config.server.ping_interval
    alice.server.tick(clock.advance(interval - 1))
    assert alice.take() == []
    alice.server.tick(clock.advance(2))
    assert [(m.command, m.params) for m in alice.take()] == [("PING", [SERVER_NAME])]
    assert alice.closed == []


def test_unanswered_ping_disconnects_with_ping_timeout(trio, clock):
    alice, bob, carol = trio
    server = alice.server
    s = server.config.server
    server.tick(clock.advance(s.ping_interval + 1))  # everyone pinged
    for conn in (alice, bob, carol):
        assert commands(conn.take()) == ["PING"]
    bob.send("PONG :" + SERVER_NAME)
    carol.send("PONG :" + SERVER_NAME)
    clock.advance(s.ping_timeout + 1)
    server.tick()
    silent = int(s.ping_interval + 1 + s.ping_timeout + 1)
    assert alice.closed == [f"Ping timeout: {silent} seconds"]
    assert [(m.source, m.command, m.params) for m in bob.take()] == [
        ("alice!alice@127.0.0.1", "QUIT", [f"Ping timeout: {silent} seconds"])
    ]
    assert bob.closed == [] and carol.closed == []
    assert server.world.find_user("alice") is None


def test_answered_ping_keeps_the_client(trio, clock):
    server = trio[0].server
    s = server.config.server
    for _ in range(5):
        server.tick(clock.advance(s.ping_interval + 1))
        for conn in trio:
            assert commands(conn.take()) == ["PING"]
            conn.send(f"PONG :{SERVER_NAME}")
        server.tick(clock.advance(s.ping_timeout + 5))
        for conn in trio:
            assert conn.take() == []
    assert [conn.closed for conn in trio] == [[], [], []]


def test_unregistered_client_times_out_with_registration_timeout(server, clock):
    conn = Conn(server)
    conn.send("NICK slow")
    timeout = server.config.server.registration_timeout
    server.tick(clock.advance(timeout - 1))
    assert conn.closed == []
    server.tick(clock.advance(2))
    assert conn.closed == ["Registration timeout"]
    assert conn.client.id not in server.world.clients


def test_registration_timeout_does_not_affect_registered_clients(trio, clock):
    alice, _, _ = trio
    alice.server.tick(clock.advance(alice.server.config.server.registration_timeout + 5))
    assert alice.closed == []


# -- the command table's shared checks ------------------------------------------------------


def test_oper_commands_refuse_others_with_481_in_dispatch_before_the_handler(server, monkeypatch):
    """Each command the table marks OPER or ADMIN: 461 first if too few parameters, then
    481 for a non-oper (and for an oper of class ``oper`` on an ADMIN command); the
    handler runs only for those allowed."""
    alice = connect(server, "alice")
    ran: list[str] = []
    privileged = {name: spec for name, spec in COMMANDS.items() if spec.privilege}
    assert {"KILL", "KLINE", "REHASH", "DIE"} <= set(privileged)
    for name, spec in privileged.items():
        monkeypatch.setitem(COMMANDS, name, dataclasses.replace(
            spec, handler=lambda ctx, msg: ran.append(msg.command)))
    not_oper = "Permission Denied- You're not an IRC operator"
    not_admin = "Permission Denied- You need the admin oper class"
    for name, spec in privileged.items():
        if spec.min_params:
            alice.send(name)
            assert [m.command for m in alice.take()] == ["461"], name
        line = " ".join([name, *["x"] * spec.min_params])
        alice.send(line)
        assert [(m.command, m.params) for m in alice.take()] == [("481", ["alice", not_oper])]
    assert ran == []
    alice.client.oper = ("ops", "oper")
    for name, spec in privileged.items():
        alice.send(" ".join([name, *["x"] * spec.min_params]))
        if spec.privilege == "admin":
            assert [(m.command, m.params) for m in alice.take()] == [("481", ["alice", not_admin])]
        else:
            assert alice.take() == []
    assert ran == [name for name, spec in privileged.items() if spec.privilege == "oper"]
    alice.client.oper = ("root", "admin")
    ran.clear()
    for name, spec in privileged.items():
        alice.send(" ".join([name, *["x"] * spec.min_params]))
    assert ran == list(privileged)


# -- robustness ---------------------------------------------------------------------------


def test_exception_in_a_handler_gets_400_and_server_keeps_working(trio, monkeypatch):
    alice, bob, _ = trio

    def boom(ctx, msg):
        raise RuntimeError("boom")

    monkeypatch.setitem(COMMANDS, "TIME", dataclasses.replace(COMMANDS["TIME"], handler=boom))
    alice.send("TIME")
    msgs = alice.take()
    assert [(m.command, m.params[:2]) for m in msgs] == [("400", ["alice", "TIME"])]
    alice.send("PRIVMSG bob :still alive")
    assert [m.params for m in bob.take()] == [["bob", "still alive"]]
    assert alice.closed == []
    monkeypatch.undo()
    alice.send("TIME")
    assert alice.codes() == ["391"]


def test_line_too_long_marker_gets_417_and_connection_stays_usable(trio):
    alice, bob, _ = trio
    alice.send(LineTooLong)
    assert alice.codes() == ["417"]
    alice.send("PRIVMSG #general :" + "x" * 600)
    assert alice.codes() == ["417"]
    assert bob.take() == []
    alice.send("PRIVMSG bob :short")
    assert len(bob.take()) == 1


def test_empty_and_prefix_only_lines_are_ignored(trio):
    alice, _, _ = trio
    alice.send(b"", b"   ", b":alice", b"@tag=1")
    assert alice.take() == []


def test_a_source_sent_by_the_client_is_ignored(trio):
    alice, bob, _ = trio
    alice.send(":bob!x@y PRIVMSG bob :who am I")
    assert [m.source for m in bob.take()] == ["alice!alice@127.0.0.1"]


def test_shutdown_closes_every_client_with_the_reason(trio, server):
    alice, bob, carol = trio
    pending = Conn(server)
    server.shutdown()
    for conn in (alice, bob, carol, pending):
        assert conn.closed == ["Server shutting down"]
    assert server.world.clients == {}
