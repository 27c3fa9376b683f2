"""INFO, ADMIN, LINKS, STATS and HELP, through the sans-I/O core (RFC 2812 section 3.4)."""

from __future__ import annotations

import pytest

from ircd.accounts import AccountStore
from ircd.config import Config
from ircd.core import ImmediateScheduler, Server
from ircd.state import CallbackSession
from ircd.storage.sqlite import SQLiteAccountRows


@pytest.fixture
def session(tmp_path):
    core = Server(Config(), AccountStore(SQLiteAccountRows(tmp_path / "db"), time_cost=1,
                                         memory_cost=1024),
                  ImmediateScheduler(), clock=lambda: 1_000_000.0)
    out: list[bytes] = []
    client = core.new_client(CallbackSession(out.append, lambda reason: None), "127.0.0.1")
    for line in (b"NICK amy", b"USER amy 0 * :Amy"):
        core.handle_line(client.session, line)
    out.clear()

    def run(line: bytes) -> list[str]:
        out.clear()
        core.handle_line(client.session, line)
        return b"".join(out).decode().splitlines()

    return run


def codes(lines: list[str]) -> list[str]:
    return [line.split(" ")[1] for line in lines]


def test_help_lists_every_command_of_the_table(session):
    from ircd.commands import COMMANDS

    lines = session(b"HELP")
    assert codes(lines)[0] == "704" and codes(lines)[-1] == "706"
    listed = " ".join(line.split(" :", 1)[1] for line in lines if " 705 " in line).split()
    assert sorted(listed) == sorted(COMMANDS)


def test_help_for_a_command_shows_its_documentation_without_markup(session):
    lines = session(b"HELP privmsg")
    assert codes(lines) == ["704", "705", "706"]
    assert lines[1].endswith(":PRIVMSG <target>{,<target>} :<text> (401, 403, 404, 407, 411, 412, 301).")


def test_help_for_an_unknown_subject_is_524(session):
    assert session(b"HELP FROB") == [":irc.chatserver.local 524 amy FROB :No help available on this topic"]


def test_stats_u_gives_uptime_then_219(session):
    lines = session(b"STATS u")
    assert lines == [":irc.chatserver.local 242 amy :Server Up 0 days 0:00:00",
                     ":irc.chatserver.local 219 amy u :End of /STATS report"]
    assert session(b"STATS") == [":irc.chatserver.local 219 amy * :End of /STATS report"]


def test_info_admin_and_links_answer_with_their_numerics(session):
    assert codes(session(b"INFO")) == ["371", "371", "371", "371", "374"]
    assert codes(session(b"ADMIN")) == ["256", "257", "258", "259"]
    assert session(b"LINKS") == [
        ":irc.chatserver.local 364 amy irc.chatserver.local irc.chatserver.local :0 chatserver",
        ":irc.chatserver.local 365 amy * :End of /LINKS list",
    ]
