"""The engines behind cluster mode: a redis-server and a PostgreSQL, in temporary folders.

``python -m bench --cluster-nodes N`` runs N of our nodes over one
redis-server (started here on a free 127.0.0.1 port, without persistence,
stopped after each scenario) and one PostgreSQL (started once per benchmark
run, one fresh database per scenario: cluster mode needs a shared
database). :class:`Resp` is a minimal blocking RESP2 client (standard
library only) that reads Redis's counters (``INFO``, ``XINFO STREAM``,
``MEMORY USAGE``) before and after a measured phase.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.servers import HOST, free_port

START_TIMEOUT = 30.0
"""Seconds an engine may take to accept connections."""


class RespError(Exception):
    """Redis answered with an error reply (``str()`` is its text)."""


class Resp:
    """A blocking RESP2 connection to Redis on 127.0.0.1:``port`` (one command at a time)."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def command(self, *args: str | int | bytes) -> Any:
        """Send one command; return its reply (bytes, int, list, ``None``; errors raise)."""
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            data = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(out))
        return self._reply()

    def _reply(self) -> Any:
        line = self.file.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RespError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.file.read(n + 2)
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise ConnectionError(f"unexpected RESP reply {line[:40]!r}")

    def info(self, section: str = "") -> dict[str, str]:
        """``INFO [section]`` as a dict (str -> str)."""
        text = (self.command("INFO", section) if section else self.command("INFO")).decode()
        out = {}
        for line in text.splitlines():
            if ":" in line and not line.startswith("#"):
                key, _, value = line.partition(":")
                out[key] = value
        return out

    def close(self) -> None:
        """Close the connection."""
        with contextlib.suppress(OSError):
            self.file.close()
            self.sock.close()


def _wait(ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str,
          log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: "
                               f"{log.read_text(errors='replace')[-600:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start within {START_TIMEOUT:.0f} s: "
                               f"{log.read_text(errors='replace')[-600:]}")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


class RedisProcess:
    """A redis-server on a free 127.0.0.1 port, no persistence, in a temporary folder.

    ``preexec`` runs in the child before exec (pinning it like the nodes);
    :attr:`url` is ``redis://127.0.0.1:<port>/0``.
    """

    def __init__(self, preexec: Callable[[], None] | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.preexec = preexec
        self.root = Path(tempfile.mkdtemp(prefix="bench-redis-"))
        self.port = free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        self.log_path = self.root / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The redis-server's process id."""
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> RedisProcess:
        """Start it; wait until it answers ``PING``."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self.proc = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", HOST, "--save", "",
                 "--appendonly", "no", "--dir", str(self.root), "--maxclients", "1000"],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=self.root,
                preexec_fn=self.preexec)  # noqa: PLW1509
        finally:
            log.close()
        _wait(self._pings, self.proc, "redis-server", self.log_path)
        return self

    def _pings(self) -> bool:
        try:
            r = Resp(self.port, timeout=1.0)
        except OSError:
            return False
        try:
            return bool(r.command("PING") == b"PONG")
        except (OSError, RespError):
            return False
        finally:
            r.close()

    def client(self) -> Resp:
        """A new :class:`Resp` connection to it."""
        return Resp(self.port)

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM (nothing is saved) and remove the folder."""
        _stop(self.proc)
        self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)


def postgres_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<v>/bin`` holding ``initdb`` and ``postgres``."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0)
    for d in reversed(dirs):
        if os.access(f"{d}/initdb", os.X_OK) and os.access(f"{d}/postgres", os.X_OK):
            return Path(d)
    return None


class PostgresProcess:
    """A throw-away PostgreSQL on a free 127.0.0.1 port (trust authentication, no fsync).

    As root it runs as ``nobody`` (PostgreSQL refuses to run as root).
    :meth:`new_database` creates an empty database per scenario and returns its URL.
    """

    def __init__(self) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bindir = bindir
        self.user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self.user = pwd.getpwnam("nobody")
        self.root = Path(tempfile.mkdtemp(prefix="bench-pg-", dir="/tmp"))
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)

    def _as_user(self, argv: list[str]) -> list[str]:
        if self.user is None:
            return argv
        return ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}",
                "--clear-groups", "--", *argv]

    def url(self, dbname: str = "postgres") -> str:
        """``postgresql://postgres@127.0.0.1:<port>/<dbname>``."""
        return f"postgresql://postgres@{HOST}:{self.port}/{dbname}"

    @property
    def pid(self) -> int:
        """The postmaster's process id."""
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> PostgresProcess:
        """initdb, start the postmaster, wait until it accepts connections."""
        done = subprocess.run(
            self._as_user([str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                           "--auth=trust", "-E", "UTF8", "--no-sync"]),
            capture_output=True, text=True, timeout=120, cwd=self.root, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr.strip()[-400:]}")
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        if self.user is not None:
            os.chown(self.log_path, self.user.pw_uid, self.user.pw_gid)
        try:
            self.proc = subprocess.Popen(
                self._as_user([str(self.bindir / "postgres"), "-D", str(self.data),
                               "-p", str(self.port), "-k", str(self.root),
                               "-c", "listen_addresses=" + HOST, "-c", "fsync=off",
                               "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                               "-c", "max_connections=200"]),
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=self.root)
        finally:
            log.close()
        _wait(self._accepts, self.proc, "postgres", self.log_path)
        return self

    def _accepts(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def new_database(self) -> str:
        """Create an empty database ``bench_<n>``; return its URL."""
        import psycopg

        name = f"bench_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown (SIGINT) and remove the folder."""
        _stop(self.proc, signal.SIGINT)
        self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)


def children_cpu_seconds(ppid: int) -> float:
    """CPU seconds of ``ppid`` plus its live children (PostgreSQL's backends), from /proc."""
    from bench.procstat import cpu_seconds

    total = cpu_seconds(ppid) or 0.0
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat, "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        rest = data[data.rfind(b")") + 2:].split()
        if len(rest) > 1 and rest[1] == str(ppid).encode():
            total += cpu_seconds(int(stat.split("/")[2])) or 0.0
    return total
