"""The ``chatserver`` command (also ``python -m ircd``).

``chatserver [PORT] [--host HOST] [--config FILE] [--data-dir DIR]
[--server-name NAME] [--server-password PW] [--simple-port PORT] [--tls-cert FILE
[--tls-key FILE] [--tls-port PORT]] [--websocket-port PORT] [--metrics-port PORT]
[--database URL] [--cluster URL [--node-name NAME]] [--log-level LEVEL]
[--version]``. Command-line options override
the config file, which overrides the built-in defaults (:mod:`ircd.config`).
``chatserver mkpasswd`` prints a password hash for ``[[opers]]`` (:func:`mkpasswd`).

Exit codes: 0 after a graceful shutdown (SIGINT or SIGTERM), 1 when a
listener cannot be opened (e.g. the port is in use), the database cannot
be opened or reached (``--database``), the cloak key cannot be kept in the
data directory, or the cluster's Redis cannot be used (``--cluster``), 2 for a bad
configuration, bad arguments, or an unusable TLS certificate. SIGHUP reloads
the config file (see :data:`NOT_RELOADABLE` for what needs a restart).
The stores are opened, with the backend ``[database]`` asks for, by
:func:`ircd.storage.stores.open_stores`.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import signal
import ssl
import sys
import time
from pathlib import Path

from passlib.hash import argon2

from ircd import __version__
from ircd.cloak import load_or_create_key
from ircd.config import Config, ConfigError, load_config, validate
from ircd.core import Server
from ircd.metrics import MetricsEndpoint
from ircd.net import ExecutorScheduler, Node, make_tls_context
from ircd.services import start_services
from ircd.simple import EchoBot
from ircd.storage.stores import StartupError, open_stores
from ircd.websocket import listen_websocket
from ircd.worldlog import EntryClock

log = logging.getLogger("ircd")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="chatserver",
        description="chatserver: an IRC server (RFC 1459/2812, IRCv3) with accounts.",
    )
    p.add_argument("port", nargs="?", type=int, help="IRC port (default 6667, or server.port)")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--config", help="config.toml to read (default: built-in defaults only)")
    p.add_argument("--data-dir", help="directory for the database (default ./data)")
    p.add_argument("--server-name", help="the server's name in replies")
    p.add_argument("--server-password", help="require this server password (PASS)")
    p.add_argument("--simple-port", type=int,
                   help="also listen for the SEND/SEND-OK dialect on this port (course: 5378)")
    p.add_argument("--tls-cert", help="PEM certificate chain: enables the TLS listener")
    p.add_argument("--tls-key", help="PEM private key (if not inside --tls-cert)")
    p.add_argument("--tls-port", type=int, help="TLS port (default 6697, or tls.port)")
    p.add_argument("--metrics-port", type=int,
                   help="serve Prometheus metrics on http://127.0.0.1:PORT/metrics "
                        "(or metrics.host)")
    p.add_argument("--websocket-port", type=int,
                   help="also serve IRC over WebSocket and the web client on this port (8097)")
    p.add_argument("--database", metavar="URL",
                   help="keep accounts, history, bans and registered channels in PostgreSQL: "
                        "postgresql://USER[:PW]@HOST:PORT/DBNAME (default: SQLite in the data dir)")
    p.add_argument("--cluster", metavar="URL",
                   help="join the network of nodes sharing this Redis: redis://HOST:PORT/DB "
                        "(docs/cluster.md; default: a single node)")
    p.add_argument("--node-name", help="this node's name in the cluster (default HOSTNAME:PORT)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument("--version", action="version", version=f"chatserver {__version__}")
    return p


def resolve_config(args: argparse.Namespace) -> Config:
    """Defaults < config file < command line; raises :class:`ConfigError`."""
    path = args.config or os.environ.get("CHATSERVER_CONFIG")
    config = load_config(path)
    if args.simple_port is not None:
        config = config.with_overrides("simple", enabled=True, port=args.simple_port)
    if args.metrics_port is not None:
        config = config.with_overrides("metrics", enabled=True, port=args.metrics_port)
    if args.tls_cert or args.tls_port is not None:
        config = config.with_overrides("tls", enabled=True, cert=args.tls_cert,
                                       key=args.tls_key, port=args.tls_port)
    if args.websocket_port is not None:
        config = config.with_overrides("websocket", enabled=True, port=args.websocket_port)
    if args.database is not None:
        config = config.with_overrides("database", url=args.database)
    config = config.with_overrides("cluster", url=args.cluster, node_name=args.node_name)
    config = config.with_overrides(
        "server",
        port=args.port,
        host=args.host,
        data_dir=args.data_dir,
        name=args.server_name,
        password=args.server_password,
        log_level=args.log_level,
    )
    validate(config, "command line")
    return config


NOT_RELOADABLE = {
    "server": ("host", "port", "data_dir", "cloak_hosts", "cloak_secret"),
    "simple": ("enabled", "port"),
    "tls": ("enabled", "port", "cert", "key"),
    "metrics": ("enabled", "host", "port"),
    "websocket": ("enabled", "port", "host", "tls"),
    "accounts": ("argon2_time_cost", "argon2_memory_cost", "argon2_parallelism", "hash_workers",
                 "max_queued_jobs"),
    "database": ("url", "timeout"),
    "limits": ("ipv6_prefix",),
    "cluster": ("url", "node_name", "node_timeout"),
}
"""Settings that SIGHUP cannot change: listeners, the database and the hashing pool."""


def merge_reload(old: Config, new: Config) -> tuple[Config, list[str]]:
    """Keep ``old``'s values for :data:`NOT_RELOADABLE` keys; return the merged config
    and the dotted names of keys whose change was ignored."""
    ignored = []
    for section, keys in NOT_RELOADABLE.items():
        keep = {}
        for key in keys:
            before, after = getattr(getattr(old, section), key), getattr(getattr(new, section), key)
            if before != after:
                ignored.append(f"{section}.{key}")
            keep[key] = before
        new = new.with_overrides(section, **keep)
    return new, ignored


def raise_fd_limit() -> None:
    """Raise the soft limit on open files to the hard limit (tens of thousands of clients)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


async def serve(config: Config, args: argparse.Namespace | None = None) -> int:
    """Run until SIGINT/SIGTERM; reload on SIGHUP; return the process exit code."""
    loop = asyncio.get_running_loop()
    tls_context = None
    if config.tls.enabled:
        try:
            tls_context = make_tls_context(config.tls.cert, config.tls.key)
        except (OSError, ssl.SSLError) as exc:
            why = getattr(exc, "strerror", None) or str(exc)
            print(f"chatserver: cannot load TLS certificate {config.tls.cert!r} / key "
                  f"{config.tls.key!r}: {why}", file=sys.stderr)
            return 2
    if config.websocket.enabled and config.websocket.tls and tls_context is None:
        print("chatserver: 'websocket.tls' needs [tls] enabled with a certificate "
              "(or --tls-cert)", file=sys.stderr)
        return 2
    data_dir = Path(config.server.data_dir)
    a = config.accounts
    try:
        stores = await asyncio.to_thread(open_stores, config, data_dir)
    except StartupError as exc:
        print(f"chatserver: {exc}", file=sys.stderr)
        return 1
    accounts, history, ban_store, channel_store = (
        stores.accounts, stores.history, stores.ban_store, stores.channel_store)
    bans, channel_records = stores.bans, stores.channel_records
    cloak_key = b""
    if config.server.cloak_hosts:
        try:
            cloak_key = await asyncio.to_thread(load_or_create_key, data_dir,
                                                config.server.cloak_secret)
        except OSError as exc:
            print(f"chatserver: cannot keep the cloak key in {data_dir}: "
                  f"{exc.strerror or exc}", file=sys.stderr)
            stores.close()
            return 1
    scheduler = ExecutorScheduler(loop, a.hash_workers, a.max_queued_jobs)
    # A cluster node reads its time through an EntryClock: the time of the log entry
    # being applied, else the wall clock (ircd/worldlog.py); a single node the wall clock.
    clock = EntryClock(time.time) if config.cluster.url else time.time
    core = Server(config, accounts, scheduler, clock=clock, history=history,
                  ban_store=ban_store, channel_store=channel_store,
                  account_names=stores.account_names, cloak_key=cloak_key)
    core.load_serverbans(bans)
    if bans:
        log.info("server bans: %d loaded", len(core.serverbans))
    log.info("registered channels: %d loaded", core.chanreg.load(channel_records))
    core.chanreg.apply_config(config.server.registered_channels)
    if history is not None and not config.cluster.url:
        # After a restart only registered channels exist: the others' history goes
        # (from the database with the first batch). A cluster node's channels may
        # live on in the other nodes, so a node keeps what it loaded.
        for target in history.channel_targets():
            if target not in core.world.channels and not core.keeps_history(target):
                history.forget(target, time.time())
    if config.services.enabled:
        start_services(core)
    if config.simple.echobot:
        EchoBot(core)
    cluster = None
    if config.cluster.url:
        from ircd.cluster.redis import ClusterError, RedisLog, default_node_name

        c = config.cluster
        cluster = RedisLog(core, c.url, c.node_name or default_node_name(config.server.port),
                           c.node_timeout)
        try:
            await cluster.start()
        except ClusterError as exc:
            print(f"chatserver: {exc}", file=sys.stderr)
            scheduler.shutdown()
            stores.close()
            return 1
    node = Node(core, loop)
    listeners: list[tuple[int, str, ssl.SSLContext | None]] = [(config.server.port, "auto", None)]
    if config.simple.enabled:
        listeners.append((config.simple.port, "simple", None))
    if tls_context is not None:
        listeners.append((config.tls.port, "auto", tls_context))
    metrics = MetricsEndpoint(node) if config.metrics.enabled else None
    host = config.server.host
    try:
        for port, dialect, tls in listeners:
            await node.listen(host, port, dialect, tls)
        if metrics is not None:
            host, port = config.metrics.host, config.metrics.port
            await metrics.start(host, port)
        if config.websocket.enabled:
            ws = config.websocket
            host, port = ws.host or config.server.host, ws.port
            await listen_websocket(node, host, port, tls_context if ws.tls else None)
    except OSError as exc:
        why = exc.strerror or str(exc)
        print(f"chatserver: cannot listen on {host}:{port}: {why}", file=sys.stderr)
        if metrics is not None:
            metrics.close()
        await node.shutdown()
        if cluster is not None:
            await cluster.close()
        scheduler.shutdown()
        stores.close()
        return 1
    node.start_ticker()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def reload() -> str:
        """Re-read the config file (SIGHUP, and REHASH); return the outcome in one line."""
        if args is None or not (args.config or os.environ.get("CHATSERVER_CONFIG")):
            log.warning("SIGHUP: no config file to reload (start with --config)")
            return "no config file to reload (started without --config)"
        try:
            fresh = resolve_config(args)
        except ConfigError as exc:
            log.error("SIGHUP: config not reloaded, keeping the old one: %s", exc)
            return f"config not reloaded, keeping the old one: {exc}"
        merged, ignored = merge_reload(node.core.config, fresh)
        node.reconfigure(merged)
        log.info("SIGHUP: configuration reloaded (limits, MOTD, timeouts, ISUPPORT)")
        if ignored:
            log.warning("SIGHUP: these changes need a restart and were ignored: %s",
                        ", ".join(ignored))
            return "configuration reloaded; needing a restart, ignored: " + ", ".join(ignored)
        return "configuration reloaded"

    loop.add_signal_handler(signal.SIGHUP, reload)
    # REHASH and DIE (ircd/commands/oper.py) do what SIGHUP and SIGTERM do.
    config_file = (args.config if args is not None else None) or os.environ.get(
        "CHATSERVER_CONFIG", "")
    core.rehash_hook = lambda: (os.path.basename(config_file) or "*", reload())
    core.die_hook = stop.set
    log.info("chatserver %s ready (data in %s)", __version__, data_dir.resolve())
    await stop.wait()
    log.info("shutting down")
    if metrics is not None:
        metrics.close()
    await node.shutdown()
    if cluster is not None:
        await cluster.close()
    scheduler.shutdown()  # waits for queued work (account checks, history writes)
    try:
        await asyncio.to_thread(channel_store.write, core.chanreg.changes())
        if history is not None:
            await asyncio.to_thread(history.write, history.take_pending(),
                                    history.take_erasures())
    except Exception as exc:  # e.g. PostgreSQL gone: say so, still exit cleanly
        log.error("final save to the database failed: %r", exc)
    await asyncio.to_thread(stores.close)
    log.info("database closed; bye")
    return 0


def mkpasswd(argv: list[str]) -> int:
    """``chatserver mkpasswd [--config FILE]``: print an argon2id hash for ``[[opers]]``.

    The password is asked for twice without echo on a terminal; from a pipe,
    the first line of stdin is the password (its line ending removed). The
    hash uses ``[accounts]``' argon2 parameters (from FILE, or the defaults).
    Exit codes: 0 printed, 2 empty or mismatched password or bad config.
    """
    p = argparse.ArgumentParser(prog="chatserver mkpasswd",
                                description="Print an argon2id hash of a password, for [[opers]].")
    p.add_argument("--config", help="config.toml whose [accounts] argon2 parameters to use")
    args = p.parse_args(argv)
    try:
        config = load_config(args.config or os.environ.get("CHATSERVER_CONFIG"))
    except ConfigError as exc:
        print(f"chatserver: {exc}", file=sys.stderr)
        return 2
    try:
        if sys.stdin.isatty():
            password = getpass.getpass("Password: ")
            if password and getpass.getpass("Again: ") != password:
                print("chatserver mkpasswd: the passwords differ", file=sys.stderr)
                return 2
        else:
            password = sys.stdin.readline().rstrip("\r\n")
    except (EOFError, KeyboardInterrupt):
        print("", file=sys.stderr)
        return 2
    if not password:
        print("chatserver mkpasswd: empty password", file=sys.stderr)
        return 2
    a = config.accounts
    hasher = argon2.using(type="ID", time_cost=a.argon2_time_cost,
                          memory_cost=a.argon2_memory_cost, parallelism=a.argon2_parallelism)
    print(hasher.hash(password))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["mkpasswd"]:
        return mkpasswd(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        config = resolve_config(args)
    except ConfigError as exc:
        print(f"chatserver: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    raise_fd_limit()
    try:
        import uvloop
    except ImportError:
        return asyncio.run(serve(config, args))
    return uvloop.run(serve(config, args))


if __name__ == "__main__":
    sys.exit(main())
