"""Issue 10's "done when", with real clients: irssi on one node, WeeChat on the other.

Two nodes (``python -m ircd ... --cluster redis://... --database postgresql://...``)
over a redis-server and a PostgreSQL database of this test's own; irssi
(in tmux) logs in on node n1, WeeChat (headless) on node n2. They chat in
#general and by direct message; WHOIS across nodes names the other node;
then n2 is killed (SIGKILL) and irssi shows WeeChat's user quitting with
``node n2 lost`` within ``node_timeout`` + 5 s. What each client showed is
kept in ``test-artifacts/`` (the irssi screen and both clients' logs).
"""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engines import RedisServer, pg_url, postgres  # noqa: F401 - fixtures
from tests.realclients import Irssi, WeeChat
from tests.support import ROOT, ServerProcess, config_with
from tests.test_realclients import assert_clean_registration, need_irssi, need_weechat, token

pytestmark = [pytest.mark.realclients, pytest.mark.timeout(120)]

NODE_TIMEOUT = 3
CHANNEL = "#general"


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    server = RedisServer(binary).start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def nodes(tmp_path: Path, redis: RedisServer, pg_url: str) -> Iterator[list[ServerProcess]]:  # noqa: F811
    config = config_with(cluster={"node_timeout": NODE_TIMEOUT})
    started = []
    try:
        for i in (1, 2):
            node = ServerProcess(tmp_path / f"n{i}" / "data", config, extra_args=[
                "--cluster", redis.url, "--database", pg_url, "--node-name", f"n{i}",
                "--server-name", f"n{i}.test"])
            started.append(node.start())   # listens once it has joined the network
        yield started
    finally:
        for node in started:
            if node.alive():
                node.stop()


def keep(name: str, text: str) -> None:
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / name).write_text(text)


def test_irssi_on_one_node_and_weechat_on_another_chat_then_see_a_node_lost(
        nodes: list[ServerProcess], tmp_path: Path) -> None:
    need_irssi()
    need_weechat()
    n1, n2 = nodes
    with Irssi(n1.port, "irene", tmp_path / "irssi", password="irene-pw") as irs, \
            WeeChat(n2.port, "walt", tmp_path / "weechat", password="walt-pw") as wee:
        irs.wait_joined(CHANNEL)
        wee.wait_joined(CHANNEL)
        try:
            # #general, both ways, across the nodes
            from_irs, from_wee = f"hello from n1 {token()}", f"hello from n2 {token()}"
            irs.say(CHANNEL, from_irs)
            wee.say(CHANNEL, from_wee)
            wee.wait_log(rf"irene.*{from_irs}", channel=CHANNEL)
            irs.wait_log(rf"walt.*{from_wee}", channel=CHANNEL)
            # direct messages, both ways
            dm_irs, dm_wee = f"private to walt {token()}", f"private to irene {token()}"
            irs.msg("walt", dm_irs)
            wee.msg("irene", dm_wee)
            wee.wait_log(dm_irs, channel="irene")
            irs.wait_log(dm_wee, channel="walt")
            # WHOIS across nodes names the other node's server (312)
            irs.command("/whois walt")
            whois = irs.wait_received(lambda line: " 312 " in line and " walt " in line)
            assert "n2.test" in whois
            for client in (irs, wee):
                assert_clean_registration(client)
            # n2 dies: irssi sees walt quit with the node's name, within the bound
            killed = time.monotonic()
            n2.stop(signal.SIGKILL)
            irs.wait_log(r"walt.*node n2 lost", channel=CHANNEL, timeout=NODE_TIMEOUT + 5)
            seen_after = time.monotonic() - killed
            # the node that is left keeps working: irssi can still talk and WHOIS
            irs.command("/whois walt")
            irs.wait_received(lambda line: " 401 " in line and " walt " in line)
            irs.say(CHANNEL, "still here")
            irs.wait_log("still here", channel=CHANNEL)
        finally:
            time.sleep(0.5)   # let irssi finish redrawing before the pane is captured
            keep("cluster-irssi-screen.txt", irs.screen())
            keep("cluster-irssi-general.log", irs.channel_log(CHANNEL).read_text()
                 if irs.channel_log(CHANNEL).exists() else "")
            keep("cluster-weechat-general.log", wee.channel_log(CHANNEL).read_text()
                 if wee.channel_log(CHANNEL).exists() else "")
    assert seen_after <= NODE_TIMEOUT + 5
    assert n1.alive()
