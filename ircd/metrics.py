"""Prometheus metrics: the counters the core keeps, and the ``/metrics`` endpoint.

Two halves, as everywhere in the server:

- :class:`Stats` is sans-I/O: plain integers the core and the asyncio edge
  increment on the event loop (``server.stats.messages_relayed += 1``), so
  counting costs one attribute add on the hot path.
- :class:`MetricsEndpoint` is the edge: an HTTP listener on the event loop
  itself (``asyncio.start_server``) that answers ``GET /metrics`` with
  ``prometheus_client.generate_latest`` of its own
  :class:`~prometheus_client.CollectorRegistry` (never the global one).
  The :class:`ServerCollector` in that registry reads the server's state when
  scraped, on the loop, so every value is consistent and nothing is shared
  with another thread. A :class:`LagProbe` timer measures event-loop lag.

Metric names follow Prometheus' conventions (``_total`` for counters,
base units: seconds). "Messages per second" is ``rate(chatserver_messages_relayed_total[1m])``.
Enabled with ``--metrics-port PORT`` or ``[metrics] enabled = true``
(docs: README "Metrics").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ircd.net import Node

log = logging.getLogger("ircd.metrics")


class Stats:
    """Counters kept by the core and the edge (plain ints, changed on the event loop only).

    - ``messages_relayed``: PRIVMSG/NOTICE/TAGMSG accepted for delivery,
      once per target (a channel or a nick), from IRC and the SEND dialect;
      in a cluster, only those of this node's users (the node that took the
      line counts it; summed over the nodes, each message counts once);
    - ``sendq_drops``: clients disconnected with ``SendQ exceeded``;
    - ``flood_disconnects``: clients disconnected with ``Excess Flood``;
    - ``history_in_flight``: history messages handed to a worker and not yet
      written (see :meth:`ircd.core.Server.flush_history`).
    """

    __slots__ = ("messages_relayed", "sendq_drops", "flood_disconnects", "history_in_flight")

    def __init__(self) -> None:
        self.messages_relayed = 0
        self.sendq_drops = 0
        self.flood_disconnects = 0
        self.history_in_flight = 0


class LagProbe:
    """Event-loop lag: how late a timer due every ``interval`` seconds fires.

    ``lag`` (seconds, >= 0) is the lateness of the last firing; a loop
    blocked for a second shows about 1.0 there.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = 0.5) -> None:
        self.loop = loop
        self.interval = interval
        self.lag = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._schedule()

    def _schedule(self) -> None:
        due = self.loop.time() + self.interval
        self._handle = self.loop.call_at(due, self._fire, due)

    def _fire(self, due: float) -> None:
        self.lag = max(0.0, self.loop.time() - due)
        self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class ServerCollector(Collector):
    """Reads the running server's state for one scrape (called on the event loop)."""

    def __init__(self, node: Node, lag: LagProbe) -> None:
        self.node = node
        self.lag = lag

    def collect(self) -> Iterator[Metric]:
        core = self.node.core
        world = core.world
        stats = core.stats
        yield GaugeMetricFamily(
            "chatserver_connections",
            "Open client connections (IRC, IRC over TLS and the SEND dialect)",
            value=len(self.node.connections))
        yield GaugeMetricFamily(
            "chatserver_registered_users",
            "Registered users (nicks in use), built-in users such as echobot included",
            value=len(world.users))
        yield GaugeMetricFamily("chatserver_channels", "Channels that exist now",
                                value=len(world.channels))
        yield CounterMetricFamily(
            "chatserver_messages_relayed",
            "PRIVMSG, NOTICE and TAGMSG accepted for delivery, once per target",
            value=stats.messages_relayed)
        yield CounterMetricFamily("chatserver_sendq_drops",
                                  "Clients disconnected for exceeding their send queue",
                                  value=stats.sendq_drops)
        yield CounterMetricFamily("chatserver_flood_disconnects",
                                  "Clients disconnected for Excess Flood",
                                  value=stats.flood_disconnects)
        yield CounterMetricFamily("chatserver_login_failures",
                                  "Wrong passwords (PASS and SASL), as counted by the login throttle",
                                  value=core.login_throttle.failures_total)
        yield GaugeMetricFamily("chatserver_event_loop_lag_seconds",
                                "How late the last event-loop probe timer fired",
                                value=self.lag.lag)
        history = core.history
        backlog = stats.history_in_flight + (len(history.pending) if history is not None else 0)
        yield GaugeMetricFamily("chatserver_history_write_backlog",
                                "History messages waiting to be written to the database",
                                value=backlog)
        cluster: Any = core.log
        if cluster.sequenced:  # cluster mode (docs/cluster.md)
            yield GaugeMetricFamily("chatserver_cluster_nodes",
                                    "Nodes of the network this node's replica knows",
                                    value=len(cluster.nodes))
            yield CounterMetricFamily("chatserver_cluster_entries_applied",
                                      "Log entries this node applied to its replica",
                                      value=cluster.applied)
            yield GaugeMetricFamily("chatserver_cluster_available",
                                    "1 while the cluster's log (Redis) can be written, else 0",
                                    value=1 if cluster.transport.available else 0)


REQUEST_TIMEOUT = 5.0
"""Seconds a metrics client has to send its request head."""

MAX_REQUEST_HEAD = 8192
"""Bytes of request line and headers read at most; a longer head gets the connection closed."""

MAX_CONNECTIONS = 16
"""Metrics connections open at once; one more is answered ``503`` and closed at once."""

_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
         b"Content-Length: 22\r\nConnection: close\r\n\r\nToo many connections.\n")


class MetricsEndpoint:
    """``GET /metrics`` (Prometheus text exposition format) on ``host:port``, served on the loop.

    Any other path is ``404``, any other method ``405``; every response
    closes the connection (HTTP/1.1 ``Connection: close``). At most
    :data:`MAX_CONNECTIONS` connections are served at once (``active``);
    one more gets ``503`` and is closed. Use :meth:`start` (raises
    ``OSError``, e.g. address in use) and :meth:`close`.
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self.registry = CollectorRegistry(auto_describe=False)
        self.lag = LagProbe(node.loop)
        self.registry.register(ServerCollector(node, self.lag))
        self._server: asyncio.base_events.Server | None = None
        self.active = 0

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, host, port,
                                                  limit=MAX_REQUEST_HEAD, reuse_address=True)
        for sock in self._server.sockets:
            log.info("metrics on http://%s:%s/metrics", *sock.getsockname()[:2])

    def close(self) -> None:
        self.lag.stop()
        if self._server is not None:
            self._server.close()

    def render(self) -> bytes:
        """The metrics in Prometheus text format (bytes, UTF-8)."""
        return generate_latest(self.registry)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.active >= MAX_CONNECTIONS:
            log.warning("metrics connection from %s refused: %d open",
                        writer.get_extra_info("peername"), self.active)
            writer.write(_BUSY)
            writer.close()
            return
        self.active += 1
        try:
            await self._serve(reader, writer)
        finally:
            self.active -= 1

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            writer.close()
            return
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        method = parts[0] if parts else b""
        path = parts[1].split(b"?", 1)[0] if len(parts) > 1 else b""
        if method not in (b"GET", b"HEAD"):
            status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
        elif path != b"/metrics":
            status, ctype, body = "404 Not Found", "text/plain", b"see /metrics\n"
        else:
            status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, self.render()
        writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
        if method != b"HEAD":
            writer.write(body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()
