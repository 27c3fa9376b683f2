"""The new admin's story, end to end, as the README tells it (issue 12's "done when").

An admin makes an oper password hash with ``chatserver mkpasswd``, puts it in
``[[opers]]``, connects with real irssi, becomes an operator, KILLs and then
KLINEs a flooding user, registers a channel with ChanServ, restarts the
server, and finds the channel with its topic, modes and founder status
intact, and the K-line still in force.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.realclients import Irssi, parse
from tests.support import ROOT, SERVICES_TOML, RawClient, ServerProcess, command_of

pytestmark = [pytest.mark.realclients, pytest.mark.timeout(120)]

OPER_PASSWORD = "opsecret42"
ACCOUNT_PASSWORD = "bosspass"
ROOM = "#ops"


def mkpasswd(password: str) -> str:
    """Run the real ``chatserver mkpasswd`` with the password piped on stdin."""
    done = subprocess.run([sys.executable, "-m", "ircd", "mkpasswd"], input=password + "\n",
                          capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert done.returncode == 0, done.stderr
    hashed = done.stdout.strip()
    assert hashed.startswith("$argon2id$"), hashed
    return hashed


def mode_letters(rpl_channelmodeis: str) -> str:
    """The flag letters of a 324 RPL_CHANNELMODEIS line."""
    return parse(rpl_channelmodeis).params[2].lstrip("+")


def flooder(port: int) -> RawClient:
    client = RawClient(port)
    client.register("flooder")
    return client


def test_admin_kills_and_klines_a_flooder_registers_a_channel_and_keeps_it_across_a_restart(
        tmp_path: Path) -> None:
    if shutil.which("irssi") is None or shutil.which("tmux") is None:
        pytest.skip("irssi and tmux not installed: apt-get install irssi tmux")
    config = (SERVICES_TOML + f'\n[[opers]]\nname = "boss"\npassword = "{mkpasswd(OPER_PASSWORD)}"\n'
              'class = "admin"\n')
    data = tmp_path / "data"
    srv = ServerProcess(data, config_text=config).start()
    port = srv.port
    bad = bystander = irssi = None
    try:
        bystander = RawClient(port)
        bystander.register("bystander")
        bad = flooder(port)
        for i in range(5):
            bad.send(f"PRIVMSG #general :spam {i}")
        bystander.expect("spam 4")

        irssi = Irssi(port, "boss", tmp_path / "irssi1", password=ACCOUNT_PASSWORD).start()
        irssi.wait_joined("#general")
        irssi.command(f"/oper boss {OPER_PASSWORD}")
        irssi.wait_numeric(["381"], fail=["464", "491"])  # RPL_YOUREOPER

        # KILL: the flooder is gone, and the others see why.
        irssi.command("/kill flooder stop flooding")
        quit_line = bystander.expect(lambda line: line.startswith(":flooder!") and " QUIT " in line)
        assert "Killed (boss (stop flooding))" in quit_line, quit_line
        assert bad.closed_by_server()

        # It comes back; a K-line on its nick removes it now and keeps it out.
        bad = flooder(port)
        irssi.command("/quote KLINE 1d flooder!*@* :flooding #general")
        bystander.expect(lambda line: line.startswith(":flooder!") and " QUIT " in line)
        assert bad.closed_by_server()
        refused = RawClient(port)
        refused.send("NICK flooder\r\nUSER f 0 * :f\r\n")
        assert command_of(refused.expect(lambda line: command_of(line) in ("465", "001"))) == "465"
        assert refused.closed_by_server()

        # A channel: create it, set topic and modes, register it with ChanServ.
        irssi.command(f"/join {ROOM}")
        irssi.wait_joined(ROOM)
        irssi.command(f"/topic {ROOM} Operators only, keep it civil")
        irssi.command(f"/mode {ROOM} +ms")
        irssi.command(f"/msg ChanServ REGISTER {ROOM}")
        irssi.wait_received(lambda line: parse(line).command == "NOTICE"
                            and parse(line).nick == "ChanServ" and "regist" in line.lower())
        bystander.send(f"JOIN {ROOM}")
        bystander.expect(lambda line: command_of(line) == "366")
        bystander.send(f"MODE {ROOM}")
        modes_before = bystander.expect(lambda line: command_of(line) == "324")
        assert {"m", "s"} <= set(mode_letters(modes_before)), modes_before
    finally:
        for client in (bad, bystander):
            if client is not None:
                client.close()
        if irssi is not None:
            irssi.stop()
        srv.stop()

    # The restart: everything the admin set up is still there.
    srv = ServerProcess(data, config_text=config, port=port).start()
    irssi = None
    try:
        irssi = Irssi(port, "boss", tmp_path / "irssi2", password=ACCOUNT_PASSWORD).start()
        irssi.wait_joined("#general")
        irssi.command(f"/join {ROOM}")
        irssi.wait_joined(ROOM)
        topic = irssi.wait_received(lambda line: parse(line).command == "332")
        assert "Operators only, keep it civil" in topic, topic
        irssi.wait_received(lambda line: parse(line).command == "MODE" and ROOM in line
                            and "+o" in line and line.rstrip().endswith("boss"))
        irssi.command(f"/mode {ROOM}")
        modes_after = irssi.wait_received(lambda line: parse(line).command == "324")
        assert {"m", "s"} <= set(mode_letters(modes_after)), modes_after
        irssi.command(f"/msg ChanServ INFO {ROOM}")
        info = irssi.wait_received(lambda line: parse(line).command == "NOTICE"
                                   and parse(line).nick == "ChanServ" and "founder" in line.lower())
        assert "boss" in parse(info).params[-1], info
        # The K-line survived the restart too.
        refused = RawClient(port)
        refused.send("NICK flooder\r\nUSER f 0 * :f\r\n")
        assert command_of(refused.expect(lambda line: command_of(line) in ("465", "001"))) == "465"
        # And an ordinary user still gets in and chats.
        other = RawClient(port)
        other.register("newcomer")
        other.send("PRIVMSG #general :hello after the restart")
        irssi.wait_log("hello after the restart", channel="#general")
        other.close()
    finally:
        if irssi is not None:
            irssi.stop()
        srv.stop()
