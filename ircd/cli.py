"""The ``chatserver`` command (also ``python -m ircd``).

``chatserver [PORT] [--host HOST] [--config FILE] [--data-dir DIR]
[--server-name NAME] [--server-password PW]``. Command-line options override
the config file, which overrides the built-in defaults (:mod:`ircd.config`).

Exit codes: 0 after a graceful shutdown (SIGINT or SIGTERM), 1 when a
listener cannot be opened (e.g. the port is in use), 2 for a bad
configuration or bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from ircd import __version__
from ircd.accounts import AccountStore
from ircd.config import Config, ConfigError, load_config
from ircd.core import Server
from ircd.net import ExecutorScheduler, Node
from ircd.simple import EchoBot

log = logging.getLogger("ircd")

DB_FILE = "chatserver.sqlite3"


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
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument("--version", action="version", version=f"chatserver {__version__}")
    return p


def resolve_config(args: argparse.Namespace) -> Config:
    """Defaults < config file < command line; raises :class:`ConfigError`."""
    path = args.config or os.environ.get("CHATSERVER_CONFIG")
    config = load_config(path)
    if args.simple_port is not None:
        config = config.with_overrides("simple", enabled=True, port=args.simple_port)
    return config.with_overrides(
        "server",
        port=args.port,
        host=args.host,
        data_dir=args.data_dir,
        name=args.server_name,
        password=args.server_password,
        log_level=args.log_level,
    )


async def serve(config: Config) -> int:
    """Run until SIGINT/SIGTERM; return the process exit code."""
    loop = asyncio.get_running_loop()
    data_dir = Path(config.server.data_dir)
    a = config.accounts
    try:
        accounts = await asyncio.to_thread(
            AccountStore, data_dir / DB_FILE, a.argon2_time_cost, a.argon2_memory_cost,
            a.argon2_parallelism,
        )
    except Exception as exc:
        print(f"chatserver: cannot open database in {data_dir}: {exc}", file=sys.stderr)
        return 1
    scheduler = ExecutorScheduler(loop, a.hash_workers)
    core = Server(config, accounts, scheduler)
    if config.simple.echobot:
        EchoBot(core)
    node = Node(core, loop)
    listeners = [(config.server.port, "auto")]
    if config.simple.enabled:
        listeners.append((config.simple.port, "simple"))
    try:
        for port, dialect in listeners:
            await node.listen(config.server.host, port, dialect)
    except OSError as exc:
        why = exc.strerror or str(exc)
        print(f"chatserver: cannot listen on {config.server.host}:{port}: {why}",
              file=sys.stderr)
        await node.shutdown()
        scheduler.shutdown()
        accounts.close()
        return 1
    node.start_ticker()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("chatserver %s ready (data in %s)", __version__, data_dir.resolve())
    await stop.wait()
    log.info("shutting down")
    await node.shutdown()
    scheduler.shutdown()
    accounts.close()
    log.info("database closed; bye")
    return 0


def main(argv: list[str] | None = None) -> int:
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
    try:
        import uvloop
    except ImportError:
        return asyncio.run(serve(config))
    return uvloop.run(serve(config))


if __name__ == "__main__":
    sys.exit(main())
