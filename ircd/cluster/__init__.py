"""Cluster mode: several nodes forming one network over Redis (docs/cluster.md).

- :mod:`ircd.cluster.log`: the sans-I/O half. Log entries (bytes), applying
  them to this node's replica of the world, snapshots, node membership.
- :mod:`ircd.cluster.redis`: the asyncio edge. The Redis stream the entries
  go through and the nodes' inboxes of routed messages (one Lua script per
  write, XREAD), liveness keys, the epoch, snapshot exchange.
- :mod:`ircd.cluster.memory`: the same log in process, for tests and
  ``bench.core``.

This module only checks a ``[cluster] url`` without importing redis-py, so a
single node never imports it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

SCHEMES = ("redis", "rediss")
"""URL schemes accepted for ``[cluster] url`` / ``--cluster`` (redis-py's; rediss: TLS)."""


class BadClusterURL(ValueError):
    """A ``[cluster] url`` that is not ``redis://HOST[:PORT][/DB]``."""


def check_cluster_url(url: str) -> None:
    """Raise :class:`BadClusterURL` (a one-line reason) unless ``url`` is
    ``redis://[USER[:PW]@]HOST[:PORT][/DB]`` with DB a number (``rediss://`` too).
    The empty string means a single node and is accepted."""
    if not url:
        return
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadClusterURL(f"not a URL: {exc}") from None
    if parts.scheme not in SCHEMES:
        raise BadClusterURL("must start with redis:// (or rediss://)")
    if not parts.hostname:
        raise BadClusterURL("no host (redis://HOST:PORT/DB)")
    if port is not None and not 0 < port < 65536:
        raise BadClusterURL(f"port {port} out of range")
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        raise BadClusterURL(f"the database must be a number, not {db!r}")
