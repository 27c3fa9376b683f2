"""The native client's pure session state and wire layer, without sockets, threads or clocks.

:class:`~nativeclient.state.SessionState` is driven here the way the I/O link
(:class:`~nativeclient.session.ChatSession`) drives it: lines in with a fixed
``now``, commands in, then the queued bytes and outputs read back. The
socket-level behaviour (threads, futures, the real server) is tested in
``tests/test_nativeclient.py``.

* :mod:`nativeclient.wire`: the ircdocs parser-tests vectors, framing, CTCP,
  case folding, and a differential check against the ``irc`` package the
  client used to parse with (the same events for the same line);
* registration and login on both kinds of server the client supports: the
  chatserver (accounts, automatic ``#general``) and a plain IRC server (the
  client joins ``#general`` itself), and every way a login is refused;
* confirmations (PING, echo-message, label, ACK, labelled batch, error
  numerics), rooms and users, time taken from ``server-time`` or ``now``;
* properties (hypothesis): any sequence of received lines never raises, every
  request is settled at most once, and after the connection ends every
  request has been settled exactly once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import irc.client
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nativeclient.events import (
    ConnectionLost,
    Disconnected,
    Info,
    LoginRefused,
    Message,
    Presence,
    SendResult,
    ServerError,
    Topic,
    UnreachableError,
    UserList,
)
from nativeclient.state import (
    _NUMERIC_NAMES,
    Closed,
    LoginSettled,
    Rejected,
    Resolved,
    SessionState,
    line_events,
)
from nativeclient.wire import LineDecoder, ctcp_split, encode_line, fold, parse_line

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SETTLEMENTS = (Resolved, Rejected, LoginSettled, Closed)

_SHARED = Path(__file__).resolve().parents[2] / "shared/reference/parser-tests"
_VENDORED = Path(__file__).resolve().parent / "vectors/parser-tests"
VECTORS = _SHARED if _SHARED.is_dir() else _VENDORED


class Driver:
    """A :class:`SessionState` with its output collected: ``sent`` lines, ``out`` outputs."""

    def __init__(self, username: str = "alice", password: str = "s3cret pw") -> None:
        self.state = SessionState(username, password, where="fake:6667")
        self.sent: list[str] = []
        self.out: list = []

    def pump(self) -> None:
        data = self.state.data_to_send()
        if data:
            assert data.endswith(b"\r\n")
            self.sent += data.decode().split("\r\n")[:-1]
        self.out += self.state.outputs()

    def start(self) -> None:
        self.state.start()
        self.pump()

    def recv(self, *lines: str, now: datetime = NOW) -> None:
        for line in lines:
            self.state.receive_line(line, now)
        self.pump()

    def last(self, prefix: str) -> str:
        found = [line for line in self.sent if line.startswith(prefix)]
        assert found, f"never sent {prefix!r}: {self.sent}"
        return found[-1]

    def events(self) -> list:
        return [o for o in self.out if not isinstance(o, SETTLEMENTS)]

    def settled(self, kind: type) -> list:
        return [o for o in self.out if isinstance(o, kind)]

    def resolved(self, request: int) -> object:
        values = [o.value for o in self.out if isinstance(o, Resolved) and o.request == request]
        assert len(values) == 1, f"request {request} resolved {len(values)} times: {self.out}"
        return values[0]


def login_chatserver(d: Driver, caps: str = "", new_account: bool = False) -> None:
    """The chatserver's login: accounts, the automatic JOIN of #general, then the client's PING."""
    d.start()
    d.recv(f":srv CAP * LS :{caps}")
    if caps:
        d.recv(f":srv CAP alice ACK :{d.last('CAP REQ').split(':', 1)[1]}")
    d.recv(":srv 001 alice :Welcome", ":srv 376 alice :End of MOTD")
    if new_account:
        d.recv(":srv NOTICE alice :Registered new account alice")
    token = d.last("PING").split(":", 1)[1]
    d.recv(
        ":srv 900 alice alice!alice@h alice :You are now logged in as alice",
        ":alice!alice@h JOIN #general",
        ":srv 353 alice = #general :@bob alice +carol",
        ":srv 366 alice #general :End of NAMES",
        f":srv PONG srv :{token}",
    )


def login_plain(d: Driver) -> None:
    """A plain IRC server: no CAP, no accounts, no automatic JOIN; ISUPPORT PREFIX with ``~``."""
    d.start()
    d.recv(
        ":irc.example 001 alice :Welcome",
        ":irc.example 005 alice PREFIX=(qov)~@+ CHANTYPES=# :are supported by this server",
        ":irc.example 422 alice :MOTD File is missing",
    )
    token = d.last("PING").split(":", 1)[1]
    d.recv(f":irc.example PONG irc.example :{token}")
    assert d.sent[-1] == "JOIN #general"
    d.recv(
        ":alice!a@h JOIN #general",
        ":irc.example 353 alice = #general :~dave @bob alice",
        ":irc.example 366 alice #general :End of /NAMES list.",
    )


def login_info(d: Driver):
    (settled,) = d.settled(LoginSettled)
    assert settled.error is None, settled.error
    return settled.info


# --------------------------------------------------------------------------- wire


def _vectors(name: str) -> list:
    path = VECTORS / name
    if not path.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no vectors at {path}"))]
    return [pytest.param(t, id=str(i)) for i, t in enumerate(yaml.safe_load(path.read_text())["tests"])]


@pytest.mark.parametrize("case", _vectors("msg-split.yaml"))
def test_parse_line_matches_the_ircdocs_msg_split_vectors(case) -> None:
    atoms = case["atoms"]
    line = parse_line(case["input"])
    assert line is not None
    tags = {k: "" if v is None else v for k, v in (atoms.get("tags") or {}).items()}
    expected = (tags, atoms.get("source"), atoms["verb"].upper(), tuple(atoms.get("params") or ()))
    assert (line.tags, line.source, line.command, line.params) == expected


def test_line_decoder_frames_lf_and_crlf_across_chunks_and_falls_back_to_latin1() -> None:
    dec = LineDecoder()
    assert dec.push(b":a PRIVMSG #x :h") == []
    assert dec.pending == 16
    assert dec.push(b"i\r\n\r\nPING :t\nOl\xe9\r\nOl\xc3\xa9\n") == [":a PRIVMSG #x :hi", "PING :t", "Olé", "Olé"]
    assert dec.pending == 0


def test_encode_line_refuses_newlines_and_lines_over_512_bytes() -> None:
    assert encode_line("PING :x") == b"PING :x\r\n"
    assert len(encode_line("x" * 510)) == 512
    with pytest.raises(ValueError, match="512"):
        encode_line("x" * 511)
    for bad in ("PRIVMSG #a :one\nQUIT", "PRIVMSG #a :one\rQUIT", "PRIVMSG #a :one\0two"):
        with pytest.raises(ValueError, match="CR, LF and NUL"):
            encode_line(bad)


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("plain", ["plain"]),
        ("\x01ACTION waves\x01", [("ACTION", "waves")]),
        ("\x01VERSION\x01", [("VERSION",)]),
        ("a\x01PING 1\x01b", ["a", ("PING", "1"), "b"]),
        ("lonely \x01", ["lonely ", "\x01"]),
        ("x\x100y", ["x\x00y"]),
    ],
)
def test_ctcp_split(text: str, pieces: list) -> None:
    assert ctcp_split(text) == pieces


def test_fold_is_rfc1459() -> None:
    assert fold("Nick[]\\^") == "nick{}|~"


_ALPHABET = st.sampled_from(list("aZ09#&+!@:-_[]{}\\|^~ \x01=;.,*"))
_WORD = st.text(_ALPHABET.filter(lambda c: c not in " "), min_size=1, max_size=6)
_COMMANDS = st.sampled_from(
    ["PRIVMSG", "NOTICE", "JOIN", "PART", "KICK", "QUIT", "NICK", "TOPIC", "PING", "PONG", "CAP", "ERROR",
     "BATCH", "ACK", "MODE", "001", "005", "353", "366", "376", "401", "404", "433", "464", "900", "999"]
)


@st.composite
def irc_lines(draw) -> str:
    """Lines that look like IRC, odd ones included (no tag value ends in a backslash)."""
    parts = []
    if draw(st.booleans()):
        tags = draw(st.lists(st.tuples(st.sampled_from(["label", "time", "batch", "x"]), _WORD), max_size=2))
        parts.append("@" + ";".join(f"{k}={v.rstrip(chr(92)) or 'v'}" for k, v in tags))
    if draw(st.booleans()):
        parts.append(":" + draw(st.sampled_from(["srv", "bob!b@h", "alice!a@h", "Alice!x@y", "bob"])))
    parts.append(draw(_COMMANDS | _WORD))
    parts += draw(st.lists(_WORD, max_size=4))
    if draw(st.booleans()):
        parts.append(":" + draw(st.text(_ALPHABET, max_size=12)))
    return " ".join(parts)


def _irc_package_events(text: str) -> list[tuple] | None:
    """What ``irc.client`` (the client's former parser) makes of ``text``; None when it raises."""
    reactor = irc.client.Reactor()
    reactor.remove_global_handler("ping", irc.client._ping_ponger)
    conn = reactor.server()
    conn.real_nickname = "alice"
    got: list = []
    reactor.add_global_handler("all_events", lambda c, e: got.append(e), -100)
    try:
        conn._process_line(text)
    except Exception:
        return None
    out = []
    for e in got:
        if e.type == "all_raw_messages":
            continue
        code = getattr(e.type, "code", None)
        etype = code if code and code.isdigit() and code not in _NUMERIC_NAMES else str(e.type)
        tags = {t["key"]: t["value"] or "" for t in (e.tags or [])}
        out.append((etype, str(e.source or ""), e.target, tuple(e.arguments), tags))
    return out


def _same_kind(etype: str) -> str:
    # irc.client counts "+x" and "!x" as channels, the client only "#x" and "&x": both go to one handler
    return {"pubmsg": "privmsg", "pubnotice": "privnotice"}.get(etype, etype)


@settings(max_examples=400, deadline=None)
@given(irc_lines())
def test_line_events_match_the_irc_package(text: str) -> None:
    theirs = _irc_package_events(text)
    line = parse_line(text)
    ours = [(e.type, e.source, e.target, e.arguments, e.tags) for e in line_events(line)] if line else []
    if theirs is None:
        return  # the irc package raises on this line; ours only has to give something sane (below)
    ours_n = [(_same_kind(t), *rest) for t, *rest in ours]
    theirs_n = [(_same_kind(t), *rest) for t, *rest in theirs]
    assert ours_n[: len(theirs_n)] == theirs_n
    # the one difference allowed: the irc package drops the text after a CTCP request
    extra = ours_n[len(theirs_n):]
    assert extra == [] or (len(extra) == 1 and extra[0][3] == (text.rsplit("\x01", 1)[1],))


# --------------------------------------------------------------------------- registration and login


def test_registration_lines_in_order_with_and_without_password() -> None:
    d = Driver()
    d.start()
    assert d.sent == ["CAP LS 302", "PASS :s3cret pw", "NICK alice", "USER alice 0 * :alice"]
    d = Driver(password="")
    d.start()
    assert d.sent == ["CAP LS 302", "NICK alice", "USER alice 0 * :alice"]


def test_caps_requested_only_when_offered_and_labeled_response_only_with_batch() -> None:
    d = Driver()
    d.start()
    d.recv(":srv CAP * LS * :multi-prefix labeled-response")
    assert d.sent[-1].startswith("USER")  # more to come: nothing requested yet
    d.recv(":srv CAP * LS :echo-message sasl=PLAIN server-time")
    assert d.sent[-1] == "CAP REQ :echo-message server-time"
    d.recv(":srv CAP alice ACK :echo-message server-time")
    assert d.sent[-1] == "CAP END" and d.state.caps == {"echo-message", "server-time"}
    assert d.state.echo


def test_login_on_the_chatserver_with_a_new_account() -> None:
    d = Driver()
    login_chatserver(d, new_account=True)
    info = login_info(d)
    assert (info.nick, info.account, info.new_account, info.room) == ("alice", "alice", True, "#general")
    assert info.online == ("alice", "bob", "carol")
    assert d.state.online_users() == ("bob", "carol") and d.state.current_room == "#general"
    assert d.events() == []  # the login burst is summarised, not reported


def test_login_on_a_plain_irc_server_joins_general_itself() -> None:
    d = Driver()
    login_plain(d)
    info = login_info(d)
    assert (info.account, info.new_account, info.room) == (None, False, "#general")
    assert info.online == ("alice", "bob", "dave")  # "~" stripped: ISUPPORT PREFIX


def test_login_completes_without_a_room_when_general_is_refused() -> None:
    d = Driver()
    d.start()
    d.recv(":srv 001 alice :Welcome", ":srv 376 alice :End")
    d.recv(f":srv PONG srv :{d.last('PING').split(':', 1)[1]}")
    d.recv(":srv 474 alice #general :Cannot join channel (+b)")
    assert login_info(d).room is None and d.state.current_room is None


def test_others_messages_during_login_are_kept_after_001_only() -> None:
    d = Driver()
    d.start()
    d.recv(":bob!b@h PRIVMSG alice :too early", ":srv 001 alice :Welcome", ":bob!b@h PRIVMSG alice :kept")
    d.recv(":carol!c@h JOIN #general", ":alice!a@h JOIN #general")
    assert [type(e).__name__ for e in d.events()] == ["Message", "Presence"]
    assert d.events()[0].text == "kept" and not d.events()[1].own


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        ([":srv 464 alice :Password incorrect"], "wrong password for alice"),
        ([":srv 464 alice :Too many failed login attempts"], "login refused for alice: Too many failed login attempts"),
        ([":srv 433 * alice :Nickname is already in use"], "alice is already online"),
        ([":srv 432 * alice :Erroneous nickname"], "the server does not accept the name 'alice': Erroneous nickname"),
        ([":srv 465 * :You are banned"], "the server refused the login: You are banned"),
        ([":srv 451 * :Registration timed out", "ERROR :Closing link"], "the server refused the login: Registration timed out"),
        (["ERROR :Closing link"], "the server refused the login: Closing link"),
    ],
)
def test_login_refused(lines: list[str], error: str) -> None:
    d = Driver()
    d.start()
    d.recv(*lines)
    (settled,) = d.settled(LoginSettled)
    assert isinstance(settled.error, LoginRefused) and settled.error.message == error
    if "ERROR" not in lines[-1]:
        assert d.sent[-1] == "QUIT :login failed"


def test_connection_lost_during_login_is_unreachable() -> None:
    d = Driver()
    d.start()
    d.state.connection_lost("")
    d.pump()
    (settled,) = d.settled(LoginSettled)
    assert isinstance(settled.error, UnreachableError)
    assert settled.error.message == "fake:6667 closed the connection during login (connection closed by the server)"
    assert d.settled(Closed) == [Closed("connection closed by the server")]
    assert d.events() == []  # not logged in: no Disconnected


# --------------------------------------------------------------------------- confirmations


def test_ping_confirms_every_message_sent_before_it() -> None:
    d = Driver()
    login_chatserver(d)
    pieces = d.state.send_message("#general", "x" * 800, NOW, operation="PM", confirm=True)
    d.pump()
    assert len(pieces) >= 2 and "".join(p.text for p in pieces) == "x" * 800
    sent = [line.split(" :")[0] for line in d.sent[-len(pieces) - 1 :]]
    assert sent == ["PRIVMSG #general"] * len(pieces) + ["PING"]
    assert all(len(line.encode()) <= 510 for line in d.sent)
    local = [e for e in d.out if isinstance(e, Message)]
    assert [m.own and m.time for m in local] == [NOW] * len(pieces)  # no echo-message: shown at once, stamped now
    ping = d.last("PING").split(":", 1)[1]
    d.recv(f":srv PONG srv :{ping}")
    assert all(d.resolved(p.seq).via == "ping" for p in pieces)
    assert [e.ok for e in d.events() if isinstance(e, SendResult)] == [True]  # only the last piece notifies


def test_401_fails_the_oldest_message_to_that_nick() -> None:
    d = Driver()
    login_chatserver(d)
    (p,) = d.state.send_message("dave", "there?", NOW, operation="DM", confirm=True)
    d.recv(":srv 401 alice dave :No such nick/channel")
    result = d.resolved(p.seq)
    assert not result.ok and result.not_online and result.reason == "dave is not online"
    assert result in d.events()


def test_unknown_error_about_privmsg_fails_the_oldest_message() -> None:
    d = Driver()
    login_chatserver(d)
    p, = d.state.send_message("#general", "one", NOW)
    d.state.send_message("#general", "two", NOW)
    d.recv(":srv 400 alice PRIVMSG :Unknown error")
    assert d.resolved(p.seq).reason == "could not send to #general: Unknown error"


def test_echo_confirms_in_order_by_target_and_text() -> None:
    d = Driver()
    login_chatserver(d, caps="echo-message")
    p, = d.state.send_message("Bob", "psst", NOW, operation="DM", confirm=True)
    assert d.state.outputs() == []  # with echo-message nothing is shown before the echo
    d.recv(":alice!a@h PRIVMSG bob :psst")
    own = [e for e in d.events() if isinstance(e, Message)]
    assert own[0].own and own[0].kind == "dm" and d.resolved(p.seq).via == "echo"
    assert isinstance(d.events()[-1], SendResult)  # the confirmation comes after the message


@pytest.mark.parametrize("answer", ["echo", "ack", "batch"])
def test_label_confirms(answer: str) -> None:
    d = Driver()
    login_chatserver(d, caps="labeled-response batch echo-message")
    assert d.state.caps == {"labeled-response", "batch", "echo-message"}
    p, = d.state.send_message("#general", "hi", NOW, confirm=True)
    d.pump()
    label = d.sent[-1].split(" ", 1)[0].removeprefix("@label=")
    assert d.sent[-1] == f"@label={label} PRIVMSG #general :hi"  # no PING: the label answers
    if answer == "echo":
        d.recv(f"@label={label} :alice!a@h PRIVMSG #general :hi")
    elif answer == "ack":
        d.recv(f"@label={label} :srv ACK")
    else:
        d.recv(f"@label={label} :srv BATCH +b1 labeled-response", "@batch=b1 :srv NOTICE alice :x", ":srv BATCH -b1")
    assert d.resolved(p.seq).via == "label"


# --------------------------------------------------------------------------- rooms, users, time


def test_server_time_is_used_and_now_otherwise() -> None:
    d = Driver()
    login_chatserver(d)
    later = NOW + timedelta(hours=1)
    d.recv("@time=2025-05-06T07:08:09.000Z :bob!b@h PRIVMSG #general :stamped", ":bob!b@h PRIVMSG #general :now", now=later)
    stamped, plain = d.events()
    assert stamped.time == datetime(2025, 5, 6, 7, 8, 9, tzinfo=UTC) and plain.time == later


def test_server_ping_is_answered_and_ctcp_version_too() -> None:
    d = Driver()
    login_chatserver(d)
    d.recv("PING :irc.example", ":bob!b@h PRIVMSG alice :\x01VERSION\x01", ":alice!a@h PRIVMSG alice :\x01VERSION\x01")
    assert d.sent[-2:] == ["PONG irc.example", "NOTICE bob :\x01VERSION chatclient\x01"]


def test_parting_the_current_room_switches_to_general_and_a_kick_removes_the_room() -> None:
    d = Driver()
    login_chatserver(d)
    request = d.state.join("#dev")
    d.pump()
    assert d.sent[-1] == "JOIN #dev"
    d.recv(":alice!a@h JOIN #Dev", ":srv 353 alice = #Dev :alice bob", ":srv 366 alice #Dev :End")
    assert d.resolved(request) is True and d.state.current_room == "#Dev"
    assert UserList("#Dev", ("alice", "bob")) in d.events()
    d.recv(":alice!a@h PART #dev :bye")
    assert d.state.current_room == "#general" and Info("now talking in #general") in d.events()
    d.recv(":bob!b@h KICK #general alice :out")
    assert d.state.current_room is None and d.state.rooms == []
    assert Presence("kick", "alice", room="#general", reason="out", by="bob", own=True) in d.events()


def test_joining_a_room_we_are_in_switches_at_once_and_a_refused_join_answers_false() -> None:
    d = Driver()
    login_chatserver(d)
    request = d.state.join("#GENERAL")
    d.pump()
    assert d.resolved(request) is True and Info("now talking in #general") in d.events()
    request = d.state.join("#secret")
    d.recv(":srv 475 alice #secret :Cannot join channel (+k)")
    assert d.resolved(request) is False
    assert ServerError("#secret: Cannot join channel (+k)", "475") in d.events()


def test_nick_changes_are_tracked() -> None:
    d = Driver()
    login_chatserver(d)
    d.recv(":bob!b@h NICK robert", ":alice!a@h NICK alicia")
    assert d.state.nick == "alicia" and d.state.online_users() == ("carol", "robert")
    assert [e.own for e in d.events()] == [False, True]


def test_topic_who_and_list() -> None:
    d = Driver()
    login_chatserver(d)
    d.state.request_rooms()
    d.recv(
        ":srv 332 alice #general :hello",
        ":bob!b@h TOPIC #general :",
        ":srv 352 alice #general u h srv bob H :0 bob",
        ":srv 315 alice #general :End of WHO",
        ":srv 321 alice Channel :Users Name",
        ":srv 322 alice #b 3 :[+nt] bee",
        ":srv 322 alice #A 1 :",
        ":srv 323 alice :End of LIST",
    )
    topic, cleared, who, rooms = d.events()
    assert topic == Topic("#general", "hello") and cleared == Topic("#general", None, setter="bob")
    assert who == UserList("#general", ("bob",)) and d.state.members("#general") == ("bob",)
    assert [(r.name, r.users, r.topic) for r in rooms.rooms] == [("#A", 1, ""), ("#b", 3, "bee")]


# --------------------------------------------------------------------------- the end of the connection


def test_commands_without_a_connection_raise_connection_lost() -> None:
    d = Driver()
    with pytest.raises(ConnectionLost):
        d.state.send_message("#general", "hi", NOW)
    with pytest.raises(ConnectionLost):
        d.state.sync()
    with pytest.raises(ValueError, match="not in any room"):
        d.state.part()


def test_connection_lost_rejects_every_request_and_reports_disconnected() -> None:
    d = Driver()
    login_chatserver(d)
    requests = [
        *(m.seq for m in d.state.send_message("bob", "hi", NOW, confirm=True)),
        d.state.request_names("#general"),
        d.state.join("#new"),
    ]
    d.recv("ERROR :Closing Link: kill")
    d.state.connection_lost("")
    d.pump()
    rejected = {o.request for o in d.settled(Rejected)}
    assert set(requests) <= rejected and d.state.pending_requests() == set()
    assert Disconnected("Closing Link: kill") in d.events() and d.settled(Closed) == [Closed("Closing Link: kill")]
    with pytest.raises(ConnectionLost):
        d.state.request_who()


def test_after_close_no_event_comes_out() -> None:
    d = Driver()
    login_chatserver(d)
    d.state.close()
    d.state.quit("bye now")
    d.recv(":bob!b@h PRIVMSG #general :hi")
    d.state.connection_lost("closed")
    d.pump()
    assert d.sent[-1] == "QUIT :bye now" and d.events() == [] and d.settled(Closed) == [Closed("closed")]


# --------------------------------------------------------------------------- properties


def _check_invariants(d: Driver) -> None:
    s = d.state
    assert s.current_room is None or fold(s.current_room) in {fold(r) for r in s.rooms}
    for room in s.rooms:
        assert list(s.members(room)) == sorted(s.members(room), key=fold)
    settled = [o.request for o in d.out if isinstance(o, Resolved | Rejected)]
    assert len(settled) == len(set(settled)), "a request was settled twice"
    assert not set(settled) & s.pending_requests()
    assert len(d.settled(LoginSettled)) <= 1
    for line in d.sent:
        assert "\n" not in line and "\r" not in line and len(line.encode()) <= 510


_SCRIPTED = st.sampled_from(
    [
        ":srv 001 alice :Welcome", ":srv 376 alice :End", ":srv CAP * LS :echo-message labeled-response batch",
        ":srv CAP alice ACK :echo-message labeled-response batch", ":alice!a@h JOIN #general",
        ":srv 353 alice = #general :@bob alice", ":srv 366 alice #general :End", ":alice!a@h PART #general",
        ":bob!b@h KICK #general alice", ":alice!a@h PRIVMSG bob :hi", ":srv 401 alice bob :No such nick",
        ":srv PONG srv :chatclient-1", ":srv PONG srv :chatclient-2", ":srv PONG srv :chatclient-3",
        "@label=cl1 :srv ACK", "@label=cl2 :srv BATCH +x labeled-response", ":srv BATCH -x",
        ":srv 475 alice #dev :no", ":alice!a@h JOIN #dev", "ERROR :bye", ":srv 464 alice :Password incorrect",
    ]
)
_RAW = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b" "))
_COMMAND_CALLS = st.sampled_from(["msg", "dm", "sync", "join", "names", "part", "who"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(irc_lines(), _SCRIPTED, _RAW, _COMMAND_CALLS), max_size=40), st.booleans())
def test_any_lines_and_commands_never_raise_and_keep_the_state_consistent(steps: list, lose: bool) -> None:
    d = Driver()
    d.start()
    made: list[int] = []
    for step in steps:
        if isinstance(step, bytes):
            d.state.receive_line(step, NOW)
        elif step in ("msg", "dm", "sync", "join", "names", "part", "who"):
            try:
                if step == "msg":
                    made += [m.seq for m in d.state.send_message("#general", "hello", NOW, confirm=True)]
                elif step == "dm":
                    made += [m.seq for m in d.state.send_message("bob", "x" * 600, NOW, action=True)]
                elif step == "sync":
                    made.append(d.state.sync())
                elif step == "join":
                    made.append(d.state.join("#dev"))
                elif step == "names":
                    made.append(d.state.request_names())
                elif step == "part":
                    d.state.part()
                else:
                    d.state.request_who()
            except (ConnectionLost, ValueError):
                pass
        else:
            d.state.receive_line(step, NOW)
        d.pump()
        _check_invariants(d)
    d.state.connection_lost("gone" if lose else "")
    d.pump()
    _check_invariants(d)
    settled = {o.request for o in d.out if isinstance(o, Resolved | Rejected)}
    assert set(made) <= settled, "a request was never settled"
    assert d.state.pending_requests() == set() and len(d.settled(LoginSettled)) == 1
    assert len(d.settled(Closed)) == 1


def test_receive_line_takes_bytes_like_the_decoder() -> None:
    d = Driver()
    login_chatserver(d)
    d.state.receive_line(":bob!b@h PRIVMSG #general :Ol\xe9".encode("latin-1"), NOW)
    d.state.receive_data(b":bob!b@h PRIVMSG #general :tw", NOW)
    d.state.receive_data(b"o\r\n", NOW + timedelta(seconds=1))
    d.pump()
    assert [(e.text, e.time) for e in d.events()] == [("Olé", NOW), ("two", NOW + timedelta(seconds=1))]

