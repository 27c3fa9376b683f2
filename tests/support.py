"""Helpers shared by the integration tests: start the real server, talk raw IRC.

The server always runs as a subprocess (``python -m ircd``) on a free loopback
port with a temporary data directory; nothing of ours is mocked.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Fast argon2 parameters keep the suite quick, and the world starts empty (no
# echobot, no NickServ/ChanServ); tests of the defaults, the echobot and the
# services say so explicitly (SERVICES_TOML).
FAST_HASH_TOML = """
[accounts]
argon2_time_cost = 1
argon2_memory_cost = 1024
# Tests register many accounts from 127.0.0.1; the registration throttle's own
# tests set a small value (tests/test_trust_accounts.py).
registrations_per_ip = 100000

[simple]
echobot = false

[services]
enabled = false
"""

SERVICES_TOML = FAST_HASH_TOML.replace("[services]\nenabled = false", "[services]\nenabled = true")
"""FAST_HASH_TOML with NickServ and ChanServ online."""


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def config_with(**sections: dict[str, object]) -> str:
    """FAST_HASH_TOML plus settings: ``config_with(server={"sendq": 65536})``.

    Keys go under the section's existing header when FAST_HASH_TOML has one,
    otherwise into a new table.
    """
    text = FAST_HASH_TOML
    for section, values in sections.items():
        body = "".join(f"{k} = {_toml(v)}\n" for k, v in values.items())
        header = f"[{section}]\n"
        if header in text:
            text = text.replace(header, header + body, 1)
        else:
            text = f"{text}\n{header}{body}"
    return text


PORTS_PER_WORKER = 1375
"""Ports each pytest-xdist worker hands out, from its own slice of 10000-31999."""

_next_port = [0]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` (127.0.0.1, or ::1) that is free right now.

    Each pytest-xdist worker (``PYTEST_XDIST_WORKER``, ``gw0``, ``gw1``...) takes
    ports from its own slice of 10000-31999, in turn, below the kernel's
    ephemeral range (32768 and up). A port the kernel picked (``bind(0)``) could
    be picked for another worker's server in the moment between this probe and
    that server's bind; then a test could talk to the other worker's server
    while its own failed to bind, which ``wait_for_port`` cannot tell apart.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    base = 10000 + (index % 16) * PORTS_PER_WORKER
    for _ in range(PORTS_PER_WORKER):
        port = base + _next_port[0] % PORTS_PER_WORKER
        _next_port[0] += 1
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {base}-{base + PORTS_PER_WORKER - 1}")


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 15.0,
                  host: str = "127.0.0.1") -> None:
    """Block until host:port accepts connections; raise if the process dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited early with code {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port} after {timeout}s")


class ServerProcess:
    """A running ``python -m ircd`` subprocess.

    ``port`` is the IRC port; ``data_dir`` the temporary data directory;
    ``stderr_path`` the log file. ``extra_args`` are appended to the command
    line; ``config_text`` is written to a config.toml passed with ``--config``;
    ``host`` is the address it listens on (``--host``: 127.0.0.1, or ::1).
    """

    def __init__(
        self,
        data_dir: Path,
        config_text: str = FAST_HASH_TOML,
        extra_args: Iterable[str] = (),
        port: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._own_port = port is None   # chosen here: may be chosen again (see start)
        self.port = port or free_port(host)
        self.config_text = config_text
        self._place_files()
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None

    def _place_files(self) -> None:
        self.config_path = self.data_dir.parent / f"config-{self.port}.toml"
        self.config_path.write_text(self.config_text)
        self.stderr_path = self.data_dir.parent / f"server-{self.port}.log"

    @property
    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "ircd", str(self.port),
            "--host", self.host,
            "--data-dir", str(self.data_dir),
            "--config", str(self.config_path),
            *self.extra_args,
        ]

    def start(self) -> ServerProcess:
        """Start the server and wait until its port accepts connections.

        A port chosen by :func:`free_port` can be taken by another process
        (a parallel test worker) before the server binds it: then, and only
        for a port chosen here, it starts again on another free port (at
        most three tries). Raises ``RuntimeError`` if the server exits early.
        """
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        for attempt in range(3):
            self._log = open(self.stderr_path, "ab")  # noqa: SIM115 - closed in stop()
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdout=self._log, stderr=self._log,
                                         env=env)
            try:
                wait_for_port(self.port, self.proc, host=self.host)
                return self
            except RuntimeError:
                self._log.close()
                if not (self._own_port and attempt < 2 and "cannot listen on" in self.log()):
                    raise
            self.port = free_port(self.host)
            self._place_files()
        raise AssertionError("unreachable")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Send ``sig`` and wait; returns the exit code (kills after ``timeout`` seconds)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")


class RawClient:
    """A raw-socket IRC client for byte-level tests.

    ``send(bytes | str)`` writes exactly what it is given (str gets CR LF
    appended); ``expect(pred)`` reads lines until one satisfies ``pred`` or
    ``timeout`` seconds pass (raising ``TimeoutError`` with what was seen),
    skipping the lines before it; ``expect_next(*patterns)`` asserts the
    next lines exactly, skipping nothing; ``expect_only(*patterns)`` also
    asserts that nothing else follows (a PING round trip).
    """

    _syncs = 0   # PING tokens used by expect_only (per instance once used)

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0,
                 source: str | None = None) -> None:
        # ``source``: the local address to connect from (e.g. "127.0.0.2", another loopback address)
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.timeout = timeout
        self.buf = b""
        self.lines: list[str] = []  # every line received, in order

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = (data + "\r\n").encode()
        self.sock.sendall(data)

    def readline(self, timeout: float | None = None) -> str | None:
        """One line (str, no CR LF), or None when the server closed the connection."""
        self.sock.settimeout(timeout if timeout is not None else self.timeout)
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\n", 1)
        line = raw.rstrip(b"\r").decode("utf-8", "replace")
        self.lines.append(line)
        return line

    def expect(self, pred, timeout: float | None = None) -> str:
        """Read until a line with ``pred(line)`` true (or containing ``pred`` if it is a str)."""
        if isinstance(pred, str):
            needle = pred
            pred = lambda line: needle in line  # noqa: E731
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching line; saw: {seen!r}")
            try:
                line = self.readline(left)
            except TimeoutError:
                raise TimeoutError(f"no matching line; saw: {seen!r}") from None
            except OSError as exc:
                raise TimeoutError(f"socket error {exc}; saw: {seen!r}") from None
            if line is None:
                raise ConnectionError(f"closed by server; saw: {seen!r}")
            seen.append(line)
            if pred(line):
                return line

    def expect_next(self, *patterns: str | re.Pattern[str] | Callable[[str], bool],
                    timeout: float | None = None) -> list[str]:
        """Assert that the next ``len(patterns)`` lines match ``patterns``, in order.

        Unlike :meth:`expect`, nothing is skipped: a duplicate, extra or error
        line fails the assertion. A ``str`` pattern must equal the line (str,
        without CR LF); a compiled regex must ``fullmatch`` it; a callable
        must return true for it. The only lines passed over are the server's
        ``PING`` (answered with ``PONG``), which may come at any time.
        Returns the matched lines. Raises ``AssertionError`` on the first
        mismatch (naming what came instead), ``TimeoutError`` when a line does
        not come within ``timeout`` seconds in all, ``ConnectionError`` when
        the server closes the connection first.
        """
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        got: list[str] = []
        for i, pattern in enumerate(patterns):
            while True:
                left = deadline - time.monotonic()
                try:
                    line = self.readline(max(left, 0.001))
                except TimeoutError:
                    raise TimeoutError(f"line {i} never came; matched so far: {got!r}") from None
                if line is None:
                    raise ConnectionError(f"closed by server before line {i}; matched: {got!r}")
                if line.startswith("PING "):
                    self.send("PONG " + line[5:])
                    continue
                break
            if isinstance(pattern, str):
                ok = line == pattern
            elif isinstance(pattern, re.Pattern):
                ok = pattern.fullmatch(line) is not None
            else:
                ok = bool(pattern(line))
            assert ok, f"line {i}: expected {pattern!r}, got {line!r} (matched before: {got!r})"
            got.append(line)
        return got

    def expect_only(self, *patterns: str | re.Pattern[str] | Callable[[str], bool],
                    timeout: float | None = None) -> list[str]:
        """:meth:`expect_next` ``patterns``, then nothing else before a PING round trip.

        Sends ``PING :<token>`` and requires the next line after the
        ``patterns`` to be its ``PONG``: the server answers one connection's
        commands in order, so any further reply to the earlier commands (a
        duplicate, an extra error) would come before it. Returns the lines
        matched by ``patterns``.
        """
        self._syncs += 1
        token = f"only-{self._syncs}"
        self.send(f"PING :{token}")
        pong = re.compile(rf"(?:@\S+ )?:\S+ PONG \S+ :{token}")   # nothing more before it
        got = self.expect_next(*patterns, pong, timeout=timeout)
        return got[:-1]

    def expect_numeric(self, numeric: str, timeout: float | None = None) -> str:
        """Read until a line whose command is ``numeric`` (e.g. ``"001"``)."""
        return self.expect(lambda line: _command_of(line) == numeric, timeout)

    def register(self, nick: str, password: str | None = None, user: str | None = None) -> None:
        """PASS (optional), NICK, USER; wait for 001 and the end of MOTD (376/422)."""
        if password is not None:
            self.send(f"PASS {password}")
        self.send(f"NICK {nick}")
        self.send(f"USER {user or nick} 0 * :{nick}'s real name")
        self.expect_numeric("001")
        self.expect(lambda line: _command_of(line) in ("376", "422"))

    def drain(self, quiet: float = 0.3) -> list[str]:
        """Read until the server is quiet for ``quiet`` seconds; return the lines."""
        out = []
        while True:
            try:
                line = self.readline(quiet)
            except TimeoutError:
                return out
            if line is None:
                return out
            out.append(line)

    def closed_by_server(self, timeout: float = 5.0) -> bool:
        """True if the server closes the connection within ``timeout`` (lines are consumed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.readline(max(0.01, deadline - time.monotonic())) is None:
                    return True
            except TimeoutError:
                return False
            except OSError:
                return True
        return False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


DECISIVE = ("001", "433", "464")
"""The numerics that decide a login: RPL_WELCOME, ERR_NICKNAMEINUSE, ERR_PASSWDMISMATCH."""


def start_login(port: int, nick: str, password: str | None,
                source: str | None = None) -> RawClient:
    """Connect (from ``source``, if given) and send PASS (if any), NICK and USER without waiting."""
    c = RawClient(port, source=source)
    if password is not None:
        c.send(f"PASS {password}")
    c.send(f"NICK {nick}")
    c.send(f"USER {nick} 0 * :{nick} real name")
    return c


def outcome(c: RawClient, timeout: float = 15.0) -> str:
    """The first of 001 / 433 / 464 the server sends (``timeout`` in seconds)."""
    return command_of(c.expect(lambda line: command_of(line) in DECISIVE, timeout))


def _command_of(line: str) -> str:
    parts = line.split(" ")
    i = 0
    if parts and parts[0].startswith("@"):
        i += 1
    if len(parts) > i and parts[i].startswith(":"):
        i += 1
    return parts[i].upper() if len(parts) > i else ""


command_of = _command_of
