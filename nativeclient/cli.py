"""``chatclient HOST PORT USERNAME [--tls [--ca-file PATH]] [--room ROOM] [--timestamps] [--no-color]``.

Asks for the password without echo (``CHAT_PASSWORD`` in the environment
skips the question), logs in (a new name is registered with that password),
then runs the interactive terminal -- or, when stdin/stdout are not a
terminal, the scriptable pipe mode.

Every error is one line on stderr, never a traceback. Exit codes: 0 left
normally; 1 server unreachable / login did not complete; 2 login refused
(wrong password, name already online); 3 connection lost after login
(``disconnected: <reason>``); 64 bad command line; 70 internal error;
130 interrupted before the login finished.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
import threading

from nativeclient import __version__
from nativeclient.commands import normalize_room
from nativeclient.events import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    ClientError,
    ConnectionLost,
)
from nativeclient.render import Renderer
from nativeclient.session import ChatSession, debug_threads_enabled
from nativeclient.ui import Outcome, PipeUI, TerminalUI
from nativeclient.wire import fold

EXIT_USAGE = 64
EXIT_INTERNAL = 70
JOIN_TIMEOUT = 10.0


class UsageError(ClientError):
    """A bad command line or environment (exit code 64)."""

    exit_code = EXIT_USAGE


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see chatclient --help)")


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (errors raise :class:`UsageError` instead of exiting with 2)."""
    p = _Parser(
        prog="chatclient",
        description="Terminal client for the chat server. The password is asked for without "
        "echo; set CHAT_PASSWORD to skip the question. A new name is registered with that password.",
        epilog="Exit codes: 0 ok, 1 unreachable, 2 login refused, 3 disconnected, 64 usage.",
    )
    p.add_argument("host", help="server name or address")
    p.add_argument("port", type=_port, help="server port")
    p.add_argument("username", type=_username, help="your name (account and nick)")
    p.add_argument("--tls", action="store_true", help="connect with TLS (certificate verified)")
    p.add_argument("--ca-file", metavar="PATH", help="trust the CA certificate(s) in PATH (PEM); implies --tls")
    p.add_argument("--room", metavar="ROOM", help="start in ROOM instead of #general")
    p.add_argument("--timestamps", action="store_true", help="show the time of each message")
    p.add_argument("--no-color", action="store_true", help="no colours (also: NO_COLOR set, or not a terminal)")
    p.add_argument("--version", action="version", version=f"chatclient {__version__}")
    return p


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range 1-65535: {port}")
    return port


def _username(text: str) -> str:
    bad = set(" ,*?!@:\r\n\x00\x07")
    if not text or any(c in bad for c in text) or text[0] in "#&$:" or text[0].isdigit() or text[0] == "-":
        raise argparse.ArgumentTypeError(f"not a valid user name: {text!r}")
    return text


def read_password(username: str) -> str:
    """``CHAT_PASSWORD`` if set, else ask on the terminal without echo.

    Raises :class:`UsageError` when there is no terminal to ask on;
    ``KeyboardInterrupt`` when the user cancels (Ctrl-C or Ctrl-D).
    """
    password = os.environ.get("CHAT_PASSWORD")
    if password is not None:
        return password
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        raise UsageError("no terminal to ask for the password; set CHAT_PASSWORD") from None
    os.close(fd)
    try:
        return getpass.getpass(f"Password for {username}: ")
    except EOFError:
        raise KeyboardInterrupt from None


def use_color(no_color_flag: bool) -> bool:
    """Colours only on a terminal, without ``--no-color`` and without a non-empty ``NO_COLOR``."""
    return not no_color_flag and not os.environ.get("NO_COLOR") and sys.stdout.isatty()


def _quiet_logging() -> None:
    # Library loggers must not print tracebacks through logging's last-resort handler.
    if os.environ.get("CHATCLIENT_DEBUG_LOG"):
        logging.basicConfig(level=logging.DEBUG, filename=os.environ["CHATCLIENT_DEBUG_LOG"])
        return
    for name in ("asyncio", "concurrent.futures"):
        logger = logging.getLogger(name)
        logger.addHandler(logging.NullHandler())
        logger.propagate = False


def _print_out(text: str) -> None:
    """Print to stdout; if stdout is gone (e.g. piped into ``head``), stop writing to it quietly."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        _silence_stdout()


def _silence_stdout() -> None:
    # Point fd 1 at /dev/null so that neither we nor the interpreter's final
    # flush ever fail on the closed pipe again.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _print_err(text: str) -> None:
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def run(args: argparse.Namespace) -> int:
    """Log in and run the chosen front end; returns the exit code or raises a ``ClientError``.

    The password is read first; then one asyncio event loop runs the login,
    the front end and the QUIT (see :func:`session_main`).
    """
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    password = read_password(args.username)
    return asyncio.run(session_main(args, password, interactive))


async def session_main(args: argparse.Namespace, password: str, interactive: bool) -> int:
    """Log in, run the front end, send QUIT; the session is always closed at the end.

    Ctrl-C while the front end runs leaves normally (QUIT, exit 0); during
    the login it propagates (asyncio turns it into ``KeyboardInterrupt``).
    """
    tls = bool(args.tls or args.ca_file)
    session = ChatSession(args.host, args.port, args.username, password, tls=tls, ca_file=args.ca_file)
    try:
        info = await session.login()
        renderer = Renderer(
            color=use_color(args.no_color), timestamps=args.timestamps, show_own=interactive
        )
        _print_out("\n".join(renderer.login_lines(info, args.username)))
        if args.room:
            room = normalize_room(args.room)
            if fold(room) != fold(info.room or "") and not await session.join_and_wait(room, JOIN_TIMEOUT):
                _print_out(renderer.error(f"could not join {room}; staying in {info.room}"))
        ui = TerminalUI(session, renderer) if interactive else PipeUI(session, renderer)
        try:
            outcome = await ui.run()
        except (KeyboardInterrupt, asyncio.CancelledError):
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # Ctrl-C (SIGINT cancels the main task): leave normally
            outcome = Outcome("leaving")
        if outcome.lost:
            raise ConnectionLost(outcome.reason)
        await session.quit(outcome.reason)
        return EXIT_OK
    finally:
        await session.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``chatclient`` / ``python -m nativeclient``; returns the exit code."""
    _quiet_logging()
    code = EXIT_INTERNAL
    try:
        args = build_parser().parse_args(argv)
        code = run(args)
    except SystemExit as exc:  # --help / --version
        code = exc.code if isinstance(exc.code, int) else EXIT_OK
    except ConnectionLost as exc:
        _print_err(f"disconnected: {exc.message}")
        code = exc.exit_code
    except ClientError as exc:
        _print_err(f"chatclient: {exc.message}")
        code = exc.exit_code
    except KeyboardInterrupt:
        _print_err("chatclient: interrupted")
        code = EXIT_INTERRUPTED
    except Exception as exc:  # never show a traceback
        _print_err(f"chatclient: internal error: {type(exc).__name__}: {exc}")
        code = EXIT_INTERNAL
    finally:
        if debug_threads_enabled():
            names = sorted(t.name for t in threading.enumerate())
            _print_err(f"debug: live threads: {', '.join(names)}")
    return code
