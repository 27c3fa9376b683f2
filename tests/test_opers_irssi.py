"""A real irssi (in tmux, tests/realclients.py) as the server operator: the README's
walkthrough of /oper, /kill and a K-line against a flooding user."""

from __future__ import annotations

import shutil
import time

import pytest

from tests.opersupport import connect, oper_block
from tests.realclients import Irssi
from tests.support import RawClient, command_of, config_with

pytestmark = [pytest.mark.realclients, pytest.mark.timeout(90)]


def _wait_received(client: Irssi, pred, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in client.received():
            if pred(line):
                return line
        time.sleep(0.1)
    raise AssertionError("irssi did not receive the line\n" + client.diagnostics(80))


def test_irssi_oper_kills_and_klines_a_flooding_user(server_factory, tmp_path):
    if shutil.which("irssi") is None or shutil.which("tmux") is None:
        pytest.skip("irssi and tmux not installed: apt-get install irssi tmux")
    srv = server_factory(config_text=config_with() + oper_block("alice", "opsecret"))
    flooder = connect(srv.port, "flooder")
    watcher = connect(srv.port, "watcher")
    with Irssi(srv.port, "alice", tmp_path / "irssi") as irssi:
        irssi.wait_registered()
        irssi.wait_joined("#general")
        irssi.command("/oper alice opsecret")
        _wait_received(irssi, lambda x: command_of(x) == "381")
        irssi.command("/kill flooder Flooding #general")
        assert flooder.expect("KILL") == ":alice!alice@127.0.0.1 KILL flooder :Flooding #general"
        assert watcher.expect("QUIT") == (
            ":flooder!flooder@127.0.0.1 QUIT :Killed (alice (Flooding #general))")
        irssi.wait_log(r"flooder.*Killed \(alice \(Flooding #general\)\)", channel="#general")
        irssi.command("/quote KLINE 1h flooder@* :Flooding")
        _wait_received(irssi, lambda x: "Added K-line on *!flooder@* (1h): Flooding" in x)
        back = RawClient(srv.port)
        back.send("NICK flooder")
        back.send("USER flooder 0 * :back again")
        assert back.expect_numeric("465").endswith(":You are banned from this server: Flooding")
        assert back.closed_by_server()
        irssi.command("/stats k")
        row = _wait_received(irssi, lambda x: command_of(x) == "216")
        assert " K *!flooder@* " in row
        watcher.send("PRIVMSG #general :calm again")
        irssi.wait_log("calm again", channel="#general")
