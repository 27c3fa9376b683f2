"""Interoperability with real IRC clients: irssi (in tmux) and WeeChat (headless).

Each test starts the real server (the ``server`` fixture), one or two real
clients (see ``tests/realclients.py``) and, where useful, a bot built on the
``irc`` library (tests/ircbot.py), and checks what the clients logged: the
auto-join to #general, channel lines both ways, direct messages, and that the server sent
no error during capability negotiation and registration. On failure the
clients' raw protocol logs and the server log are printed.

Select them with ``pytest -m realclients``. ``REALCLIENTS_SERVER=ngircd``
runs the same tests against a local ngIRCd instead (a reference server: if a
test passes there and fails here, the problem is ours).
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.ircbot import Bot
from tests.realclients import ClientError, Irssi, Ngircd, WeeChat, error_lines, parse
from tests.support import FAST_HASH_TOML, RawClient, command_of, free_port

pytestmark = [pytest.mark.realclients, pytest.mark.timeout(60)]

CHANNEL = "#general"


def need_irssi() -> None:
    if shutil.which("irssi") is None:
        pytest.skip("irssi not installed: apt-get install irssi")
    if shutil.which("tmux") is None:
        pytest.skip("tmux not installed (it runs irssi): apt-get install tmux")


def need_weechat() -> None:
    if shutil.which("weechat-headless") is None:
        pytest.skip("weechat-headless not installed: apt-get install weechat-headless")


@dataclass
class Target:
    """The server under test: its port, whether it auto-joins #general, its log."""

    port: int
    kind: str  # "chatserver" or "ngircd"
    log: Callable[[], str]
    tmp: Path
    clients: list = field(default_factory=list)

    @property
    def autojoins(self) -> bool:
        return self.kind == "chatserver"

    @property
    def client_autojoin(self) -> list[str]:
        """Channels the clients must join themselves (none when the server auto-joins)."""
        return [] if self.autojoins else [CHANNEL]


@pytest.fixture
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """Our server (default) or, with ``REALCLIENTS_SERVER=ngircd``, a reference ngIRCd.

    At teardown every client started with :func:`start` is stopped, and its
    logs are printed (pytest shows them only when the test failed).
    """
    if os.environ.get("REALCLIENTS_SERVER") == "ngircd":
        if shutil.which(Ngircd.binary) is None:
            pytest.skip("ngircd not installed")
        ref = Ngircd(tmp_path / "ngircd", free_port()).start()
        tgt = Target(ref.port, "ngircd", ref.log, tmp_path)
        stop: Callable[[], None] = ref.stop
    else:
        srv = request.getfixturevalue("server")
        tgt = Target(srv.port, "chatserver", srv.log, tmp_path)
        stop = lambda: None  # noqa: E731 - the server fixture stops it
    try:
        yield tgt
    finally:
        finish(tgt)
        stop()


def finish(tgt: Target) -> None:
    """Stop every client started with :func:`start` and print its logs and the server's
    (pytest shows them only when the test failed)."""
    for client in tgt.clients:
        client.stop()
    for client in tgt.clients:
        print(client.diagnostics(200))
    print(f"--- {tgt.kind} log (last 60 lines) ---")
    print("\n".join(tgt.log().splitlines()[-60:]))


def start(tgt: Target, cls: type[Irssi] | type[WeeChat], nick: str, **kwargs) -> Irssi | WeeChat:
    """Start a real client on ``tgt`` (stopped by the ``target`` fixture)."""
    workdir = tgt.tmp / f"{cls.kind}-{nick}-{len(tgt.clients)}"  # fresh logs for every run
    client = cls(tgt.port, nick, workdir, autojoin=tgt.client_autojoin, **kwargs)
    tgt.clients.append(client)
    client.start()
    return client


def bot(tgt: Target, nick: str = "bot") -> Bot:
    """An ``irc``-library bot (tests/ircbot.py) registered as ``nick`` and in #general."""
    if tgt.autojoins:
        return Bot(tgt.port, nick, autojoin=CHANNEL)
    b = Bot(tgt.port, nick, autojoin=None)
    b.send(f"JOIN {CHANNEL}")
    b.wait_for(lambda ev: ev.type == "endofnames" and ev.arguments[:1] == [CHANNEL])
    return b


def bot_expect(b: Bot, needle: str, *clients: Irssi | WeeChat, timeout: float = 15.0) -> str:
    """The raw line containing ``needle`` that the bot received; on timeout, fail with
    the clients' logs."""
    deadline = time.monotonic() + timeout
    while True:
        for line in b.raw:
            if needle in line:
                return line
        if time.monotonic() > deadline or b.disconnected:
            logs = "\n".join(c.diagnostics() for c in clients)
            pytest.fail(f"bot did not receive {needle!r}; it saw {b.raw[-20:]!r}\n{logs}")
        b.poll(0.05)


def token() -> str:
    return secrets.token_hex(4)


def registration_errors(client: Irssi | WeeChat) -> list[str]:
    """Error replies the server sent ``client``, less the one known, expected case.

    irssi sends a bogus ``JOIN :`` right after ``CAP LS`` (before NICK/USER);
    a 451 ERR_NOTREGISTERED answer to it, before the 001, is correct.
    """
    received = client.received()
    welcome = next((i for i, line in enumerate(received) if command_of(line) == "001"), len(received))
    bogus_join = isinstance(client, Irssi) and "JOIN :" in client.sent()
    quit_sent = any(command_of(line) == "QUIT" for line in client.sent())
    errors = []
    for i, line in enumerate(received):
        if line in error_lines([line]):
            if quit_sent and command_of(line) == "ERROR":
                continue  # the server's goodbye after the client's own QUIT
            if bogus_join and i < welcome and command_of(line) == "451":
                bogus_join = False  # one 451 for the one bogus JOIN
                continue
            errors.append(line)
    return errors


def caps_in(lines: list[str], sub: str) -> set[str]:
    """Capability names in the ``CAP <sub>`` lines among ``lines`` (values dropped)."""
    names = set()
    for line in lines:
        msg = parse(line)
        if msg.command == "CAP" and sub in (p.upper() for p in msg.params[:2]):
            names |= {item.split("=")[0] for item in msg.params[-1].split()}
    return names


def assert_clean_registration(client: Irssi | WeeChat) -> None:
    """CAP negotiation finished (LS answered, every REQ ACKed, END sent), 001 came,
    and the server sent no error (see :func:`registration_errors`)."""
    received, sent = client.received(), client.sent()
    what = f"{client.kind} {client.nick}"
    diag = client.diagnostics
    assert any(command_of(line) == "CAP" and " LS " in line for line in received), \
        f"{what}: no CAP LS reply\n{diag()}"
    naks = [line for line in received if command_of(line) == "CAP" and " NAK " in line]
    assert not naks, f"{what}: the server refused capabilities it offered: {naks}\n{diag()}"
    requested, acked = caps_in(sent, "REQ"), caps_in(received, "ACK")
    assert requested <= caps_in(received, "LS"), f"{what}: requested {requested} not all offered\n{diag()}"
    assert requested <= acked, f"{what}: requested {requested}, ACKed {acked}\n{diag()}"
    assert any(line.upper().startswith("CAP END") for line in sent), f"{what}: never sent CAP END\n{diag()}"
    assert any(command_of(line) == "001" for line in received), f"{what}: no 001\n{diag()}"
    errors = registration_errors(client)
    assert not errors, f"{what}: error replies from the server:\n" + "\n".join(errors) + f"\n{diag()}"


# -- the tests -------------------------------------------------------------------


@pytest.mark.parametrize("cls", [WeeChat, Irssi], ids=["weechat", "irssi"])
def test_client_chats_with_bot(target: Target, cls: type[Irssi] | type[WeeChat]) -> None:
    """The client registers, is auto-joined to #general, talks with a bot there,
    and gets the bot's direct message in a query."""
    (need_weechat if cls is WeeChat else need_irssi)()
    nick = "wuser" if cls is WeeChat else "iuser"
    irc_bot = bot(target)
    client = start(target, cls, nick)
    client.wait_registered()
    join = client.wait_joined(CHANNEL)
    assert parse(join).nick == nick, join
    # the client shows the join in the channel's log
    client.wait_log(rf"{nick}.*(has joined|joined)", channel=CHANNEL)
    # the bot sees the client's join and its line
    bot_expect(irc_bot, f":{nick}!", client)
    hello = f"hello from {cls.kind} {token()}"
    client.say(CHANNEL, hello)
    line = bot_expect(irc_bot, hello, client)
    msg = parse(line)
    assert (msg.nick, msg.command, msg.params) == (nick, "PRIVMSG", [CHANNEL, hello]), line
    # the bot's reply in #general shows in the client's channel log
    reply = f"welcome {nick} {token()}"
    irc_bot.conn.privmsg(CHANNEL, reply)
    logged = client.wait_log(reply, channel=CHANNEL)
    assert "bot" in logged, logged
    # a direct message from the bot opens a query that the client logs
    dm = f"psst {token()}"
    irc_bot.conn.privmsg(nick, dm)
    client.wait_log(dm, channel="bot")
    # and the client's direct answer reaches the bot
    answer = f"got it {token()}"
    client.msg("bot", answer)
    line = bot_expect(irc_bot, answer, client)
    msg = parse(line)
    assert (msg.nick, msg.command, msg.params) == (nick, "PRIVMSG", ["bot", answer]), line
    assert_clean_registration(client)
    irc_bot.quit()


def test_irssi_and_weechat_talk(target: Target) -> None:
    """irssi and WeeChat, both in #general, see each other's lines and direct messages."""
    need_irssi()
    need_weechat()
    wee = start(target, WeeChat, "wee")
    irs = start(target, Irssi, "irs")
    wee.wait_joined(CHANNEL)
    irs.wait_joined(CHANNEL)
    from_wee, from_irs = f"hi irssi {token()}", f"hi weechat {token()}"
    wee.say(CHANNEL, from_wee)
    irs.say(CHANNEL, from_irs)
    irs.wait_log(rf"wee.*{from_wee}", channel=CHANNEL)
    wee.wait_log(rf"irs.*{from_irs}", channel=CHANNEL)
    dm_wee, dm_irs = f"private to irs {token()}", f"private to wee {token()}"
    wee.msg("irs", dm_wee)
    irs.msg("wee", dm_irs)
    irs.wait_log(dm_wee, channel="wee")
    wee.wait_log(dm_irs, channel="irs")
    # a CTCP ACTION (/me) both ways
    act_irs, act_wee = f"waves {token()}", f"nods {token()}"
    irs.command(f"/window goto {CHANNEL}")
    irs.command(f"/me {act_irs}")
    wee.send_fifo(f"irc.main.{CHANNEL} */me {act_wee}")
    wee.wait_log(rf"irs {act_irs}", channel=CHANNEL)
    irs.wait_log(rf"\* wee {act_wee}", channel=CHANNEL)
    # WHOIS from each side answers without errors
    wee.command("/whois irs")
    irs.command("/whois wee")
    wee.wait_numeric(["318"])  # RPL_ENDOFWHOIS
    irs.wait_numeric(["318"])
    for client in (wee, irs):
        assert_clean_registration(client)


def test_registration_is_clean_for_both_clients(target: Target) -> None:
    """Capability negotiation and registration draw no error reply for either client,
    other than the expected 451 to irssi's pre-registration ``JOIN :``; the
    welcome burst (001-004, 005, end of MOTD) arrives and #general is joined
    without the client asking (our server)."""
    need_irssi()
    need_weechat()
    clients = [start(target, WeeChat, "wclean"), start(target, Irssi, "iclean")]
    for client in clients:
        client.wait_numeric(["376", "422"])  # end of MOTD / no MOTD
        client.wait_joined(CHANNEL)
        received = [command_of(line) for line in client.received()]
        for numeric in ("001", "002", "003", "004", "005"):
            assert numeric in received, f"{client.kind}: no {numeric}\n{client.diagnostics()}"
        if target.autojoins:
            assert not any(line.upper().startswith(f"JOIN {CHANNEL}") for line in client.sent()), \
                f"{client.kind} had to join {CHANNEL} itself\n{client.diagnostics()}"
    # the clients' post-join queries are answered: WeeChat's MODE #general (324),
    # irssi's MODE / WHO / MODE b, after which it reports the channel synced
    wee, irs = clients
    wee.wait_numeric(["324"])  # RPL_CHANNELMODEIS
    irs.wait_log(rf"Join to {CHANNEL} was synced", channel=CHANNEL)
    time.sleep(0.5)  # anything else in flight
    for client in clients:
        assert_clean_registration(client)


def test_channel_life_between_clients(target: Target) -> None:
    """irssi creates a channel and sets its topic; WeeChat joins and sees the topic;
    WeeChat changes nick and parts; irssi sees both. No error replies."""
    need_irssi()
    need_weechat()
    irs = start(target, Irssi, "iop")
    wee = start(target, WeeChat, "wop")
    room, topic = f"#interop{token()[:4]}", f"interop topic {token()}"
    irs.wait_joined(CHANNEL)
    wee.wait_joined(CHANNEL)
    irs.command(f"/join {room}")
    irs.wait_joined(room)
    irs.wait_log(rf"Join to {room} was synced", channel=room)
    irs.command(f"/topic {room} {topic}")
    irs.wait_log(rf"changed the topic of {room} to: {topic}", channel=room)
    wee.command(f"/join {room}")
    wee.wait_joined(room)
    wee.wait_log(rf"Topic for {room} is .*{topic}", channel=room)
    irs.wait_log(rf"wop .*has joined {room}", channel=room)
    wee.command("/nick wop2")
    irs.wait_log(r"wop is now known as wop2", channel=room)
    wee.wait_received(lambda line: parse(line).command == "NICK" and parse(line).nick == "wop", what="its NICK")
    wee.command(f"/part {room} see you")
    irs.wait_log(rf"wop2 .*has left {room}.*see you", channel=room)
    wee.wait_received(lambda line: parse(line).command == "PART" and parse(line).nick == "wop2", what="its PART")
    for client in (irs, wee):
        assert_clean_registration(client)


def test_account_login_with_server_password(target: Target) -> None:
    """Both clients' "server password" setting logs in to (creating) the account
    named by their nick: 900 RPL_LOGGEDIN, no errors; WeeChat logs in again."""
    need_irssi()
    need_weechat()
    if not target.autojoins:
        pytest.skip("accounts through PASS are specific to chatserver")
    wee = start(target, WeeChat, "wacct", password="wee-secret-1")
    irs = start(target, Irssi, "iacct", password="irs-secret-1")
    for client in (wee, irs):
        logged_in = client.wait_numeric(["900"], fail=["464", "ERROR"])
        assert parse(logged_in).params[2] == client.nick, logged_in
        client.wait_joined(CHANNEL)
        assert_clean_registration(client)
    wee.stop()
    again = start(target, WeeChat, "wacct", password="wee-secret-1")
    logged_in = again.wait_numeric(["900"], fail=["464", "ERROR"])
    assert parse(logged_in).params[2] == "wacct", logged_in
    again.wait_joined(CHANNEL)
    assert_clean_registration(again)


@pytest.mark.parametrize("cls", [WeeChat, Irssi], ids=["weechat", "irssi"])
def test_sasl_plain_login(target: Target, cls: type[Irssi] | type[WeeChat]) -> None:
    """The server offers ``sasl``; SASL PLAIN to an existing account, as the client
    does it: 900 and 903, no error, auto-joined."""
    (need_weechat if cls is WeeChat else need_irssi)()
    if not target.autojoins:
        pytest.skip("ngIRCd has no SASL")
    nick, password = f"{cls.kind[0]}sasl", "sasl-secret-1"
    # the account is created by a PASS login (chatserver: first use registers it)
    maker = RawClient(target.port)
    maker.register(nick, password=password)
    maker.send("QUIT :made the account")
    assert maker.closed_by_server(), "the server kept the account maker's connection"
    maker.close()
    client = start(target, cls, nick, sasl=(nick, password))
    client.wait_numeric(["903", "904"])  # SASL done, one way or the other
    assert "sasl" in caps_in(client.received(), "LS"), "the server did not offer sasl"
    assert "sasl" in caps_in(client.sent(), "REQ"), "the client did not request sasl"
    client.wait_numeric(["903"], fail=["902", "904", "905", "906", "907"])
    logged_in = client.wait_numeric(["900"])
    assert parse(logged_in).params[2] == nick, logged_in
    client.wait_joined(CHANNEL)
    assert_clean_registration(client)


def test_drivers_report_a_dead_server(tmp_path: Path) -> None:
    """A client pointed at a closed port times out with a ClientError carrying its logs."""
    need_weechat()
    client = WeeChat(free_port(), "nobody", tmp_path / "w")
    with client, pytest.raises(ClientError, match="001"):
        client.wait_registered(timeout=1.5)
    assert client.stopped
    assert not error_lines(client.received())


@pytest.mark.parametrize("cls", [WeeChat, Irssi], ids=["weechat", "irssi"])
def test_wrong_password_is_refused_visibly(target: Target, cls: type[Irssi] | type[WeeChat]) -> None:
    """A wrong password for an existing account: the client gets 464 and ERROR
    before any 001, and shows the refusal to its user."""
    (need_weechat if cls is WeeChat else need_irssi)()
    if not target.autojoins:
        pytest.skip("accounts through PASS are specific to chatserver")
    nick = f"{cls.kind[0]}bad"
    maker = RawClient(target.port)
    maker.register(nick, password="right-password")
    maker.send("QUIT")
    assert maker.closed_by_server()
    maker.close()
    client = start(target, cls, nick, password="wrong-password")
    refusal = client.wait_numeric(["464"], fail=["001"])
    client.wait_numeric(["ERROR"], fail=["001"])
    text = parse(refusal).params[-1]
    client._wait(f"the client to show {text!r}",
                 lambda: "" if text in client.screen() + "".join(client.read_logs().values()) else None, 15.0)
    assert not any(parse(line).command == "001" for line in client.received())


def time_tag(line: str) -> datetime:
    """The IRCv3 server-time ``@time=`` of a raw line, as an aware UTC datetime."""
    value = parse(line).tags.get("time")
    assert value, f"no @time= tag in {line!r}"
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def test_irssi_logs_replayed_line_with_server_time(server_factory, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """server-time end to end: a line said in #replay is replayed (``[history]
    autoreplay_lines``) to irssi when it joins seconds later, with its original
    ``@time=``, and irssi's channel log stamps it with that time (irssi's
    ``log_server_time``, ``auto`` by default), not the later time it arrived.

    irssi runs with ``TZ=UTC``, so its HH:MM:SS is the tag's; the clock is made
    to advance two seconds between the line and the join, so a stamp of the
    arrival time would differ (with ``/set log_server_time off`` this test
    fails). irssi's screen shows the arrival time unless ``show_server_time``
    is on; this test checks the log only.
    """
    need_irssi()
    if os.environ.get("REALCLIENTS_SERVER") == "ngircd":
        pytest.skip("join replay ([history] autoreplay_lines) is specific to chatserver")
    room = "#replay"
    srv = server_factory(config_text=FAST_HASH_TOML + "\n[history]\nautoreplay_lines = 5\n")
    tgt = Target(srv.port, "chatserver", srv.log, tmp_path)
    monkeypatch.setenv("TZ", "UTC")  # inherited by tmux, hence irssi
    raw = RawClient(srv.port)
    try:
        # the bot says a line and reads the server's @time for it from its echo
        raw.register("stamper")
        raw.send("CAP REQ :server-time echo-message")
        ack = raw.expect(lambda line: parse(line).command == "CAP" and "ACK" in parse(line).params[:2])
        assert set(parse(ack).params[-1].split()) == {"server-time", "echo-message"}, ack
        raw.send(f"JOIN {room}")
        raw.expect_numeric("366")
        text = f"stamp-check-{token()}"
        raw.send(f"PRIVMSG {room} :{text}")
        echo = raw.expect(lambda line: parse(line).command == "PRIVMSG" and parse(line).params[-1] == text)
        said_at = time_tag(echo)
        original = said_at.strftime("%H:%M:%S")

        irs = start(tgt, Irssi, "stamp", settings={"log_timestamp": "%H:%M:%S "})
        irs.wait_registered()
        assert "server-time" in caps_in(irs.sent(), "REQ"), f"irssi did not request server-time\n{irs.diagnostics()}"
        assert "server-time" in caps_in(irs.received(), "ACK"), irs.diagnostics()
        # let the clock pass the second of the line (only this sleep is fixed)
        time.sleep(max(0.0, said_at.timestamp() + 2.0 - time.time()))
        irs.command(f"/join {room}")
        join = irs.wait_joined(room)
        assert time_tag(join) >= said_at + timedelta(seconds=2), (echo, join)

        # the server replayed the line to irssi, after its JOIN, with the ORIGINAL time
        replayed = irs.wait_received(
            lambda line: parse(line).command == "PRIVMSG" and parse(line).params == [room, text],
            what=f"the replay of {text!r}")
        assert parse(replayed).nick == "stamper", replayed
        assert parse(replayed).tags["time"] == parse(echo).tags["time"], (echo, replayed)
        received = irs.received()
        assert received.index(join) < received.index(replayed), f"not a replay\n{irs.diagnostics()}"

        # irssi logs it with the original HH:MM:SS, its own join with a later one
        logged = irs.wait_log(rf"<.?stamper> {text}$", channel=room)
        joined = irs.wait_log(rf"-!- stamp \[.*\] has joined {room}", channel=room)
        assert joined[:8] != original, f"the clock did not advance: {joined!r}"
        assert logged == f"{original} <@stamper> {text}", \
            f"irssi stamped the replayed line {logged[:8]!r}, its original time is {original} ({echo!r})\n" \
            + irs.diagnostics()
        assert_clean_registration(irs)
    finally:
        raw.close()
        finish(tgt)
