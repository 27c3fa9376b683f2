"""Shared fixtures: the real server as a subprocess on a free loopback port."""

from __future__ import annotations

import pytest

from tests.ircv3util import Clients
from tests.support import ServerProcess


@pytest.fixture
def server(tmp_path):
    """A fresh ``python -m ircd`` on 127.0.0.1 with a temporary data directory."""
    srv = ServerProcess(tmp_path / "data").start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def server_factory(tmp_path):
    """Start servers with custom config text / arguments: ``server_factory(config_text=..., extra_args=[...])``."""
    started: list[ServerProcess] = []

    def make(**kwargs) -> ServerProcess:
        kwargs.setdefault("data_dir", tmp_path / f"data{len(started)}")
        srv = ServerProcess(**kwargs).start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        if srv.alive():
            srv.stop()


@pytest.fixture
def clients(srv):
    """A :class:`tests.ircv3util.Clients` on the module's ``srv`` fixture (usually
    ``srv = module_server(...)``); every client it opened is closed afterwards."""
    opened = Clients(srv.port)
    yield opened
    opened.close_all()
