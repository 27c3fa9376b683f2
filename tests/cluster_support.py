"""Several real nodes over one real Redis and one real PostgreSQL, for the cluster tests.

Fixtures (import them into a test module:
``from tests.cluster_support import cluster, redis  # noqa: F401``, plus
``from tests.engines import pg_url, postgres  # noqa: F401``):

- ``redis`` (function): a :class:`FaultyRedis` of this test's own, so a test
  may pause it (SIGSTOP), resume it, or restart it empty without touching
  other tests.
- ``cluster`` (function): a factory ``cluster(n=2, node_timeout=3, **config)``
  that starts ``n`` nodes (``python -m ircd --cluster <redis> --database
  <pg_url> --node-name n<i> --server-name n<i>.test``), each with its own
  data directory, one after the other (a node listens once it has joined the
  network), and returns a :class:`Cluster`. Every node is stopped afterwards.

Nothing is mocked: the nodes are the real server as subprocesses; Redis and
PostgreSQL are Debian's binaries on free loopback ports (tests/engines.py).
"""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.engines import RedisServer
from tests.support import RawClient, ServerProcess, config_with

DEFAULT_NODE_TIMEOUT = 3
"""Seconds; small, so that node-lost tests finish quickly (the default is 10)."""


class FaultyRedis(RedisServer):
    """A :class:`RedisServer` that a test can pause, resume and restart empty.

    ``pause()`` sends SIGSTOP (connections stay open, nothing answers: the
    "Redis paused" outage); ``resume()`` sends SIGCONT; ``restart_empty()``
    stops it and starts a new redis-server on the same port with no data
    (no persistence is configured: the "Redis restarted empty" outage).
    """

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL (Redis unreachable until :meth:`start` again, on the same port)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait(timeout=10)

    def restart_empty(self) -> None:
        self.kill()
        self.start()

    def destroy(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
        super().destroy()


class Cluster:
    """``n`` running nodes; ``nodes[i]`` is a :class:`~tests.support.ServerProcess`.

    Node ``i`` (0-based) is named ``n<i+1>`` with server name ``n<i+1>.test``.
    """

    def __init__(self, root: Path, redis_url: str, pg_url: str, config_text: str,
                 node_timeout: float) -> None:
        self.root = root
        self.redis_url = redis_url
        self.pg_url = pg_url
        self.config_text = config_text
        self.node_timeout = node_timeout
        self.nodes: list[ServerProcess] = []
        self.clients: list[RawClient] = []

    def _process(self, i: int, port: int | None = None) -> ServerProcess:
        name = f"n{i + 1}"
        return ServerProcess(self.root / name / "data", self.config_text, port=port, extra_args=[
            "--cluster", self.redis_url, "--database", self.pg_url,
            "--node-name", name, "--server-name", f"{name}.test"])

    def add_node(self) -> ServerProcess:
        """Start one more node and wait until it listens (it has joined the network)."""
        node = self._process(len(self.nodes)).start()
        self.nodes.append(node)
        return node

    def kill(self, i: int) -> None:
        """SIGKILL node ``i`` (its users' connections drop; the others must notice)."""
        self.nodes[i].stop(signal.SIGKILL)

    def restart(self, i: int) -> ServerProcess:
        """Start node ``i`` again on its port and data directory (it must rejoin by itself)."""
        old = self.nodes[i]
        if old.alive():
            old.stop()
        self.nodes[i] = self._process(i, port=old.port).start()
        return self.nodes[i]

    def port(self, i: int) -> int:
        return self.nodes[i].port

    def connect(self, i: int, nick: str, password: str | None = None,
                timeout: float = 10.0) -> RawClient:
        """A :class:`RawClient` registered on node ``i`` (waits for the end of MOTD)."""
        client = RawClient(self.port(i), timeout=timeout)
        self.clients.append(client)
        client.register(nick, password)
        return client

    def raw(self, i: int, timeout: float = 10.0) -> RawClient:
        """A connected, unregistered :class:`RawClient` on node ``i``."""
        client = RawClient(self.port(i), timeout=timeout)
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()
        for node in self.nodes:
            if node.alive():
                node.stop()

    def logs(self) -> str:
        """Every node's log, for assertion messages."""
        return "\n".join(f"--- {n.stderr_path.name}\n{n.log()[-4000:]}" for n in self.nodes)


def wait_until(pred: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    """Poll ``pred`` every ``step`` seconds for up to ``timeout`` seconds; True once it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


@pytest.fixture
def redis() -> Iterator[FaultyRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    server = FaultyRedis(binary).start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def cluster(tmp_path: Path, redis: FaultyRedis, pg_url: str) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def make(n: int = 2, node_timeout: float = DEFAULT_NODE_TIMEOUT,
             **sections: dict[str, object]) -> Cluster:
        cluster_section = dict(sections.pop("cluster", {}), node_timeout=node_timeout)
        text = config_with(cluster=cluster_section, **sections)
        net = Cluster(tmp_path, redis.url, pg_url, text, node_timeout)
        made.append(net)
        for _ in range(n):
            net.add_node()
        return net

    try:
        yield make
    finally:
        for net in made:
            net.close()
