"""Real database engines for the tests: a PostgreSQL (and a redis-server) of their own.

Each engine runs from Debian's binaries on a free loopback port in a
temporary folder, with its unix socket inside that folder, and is stopped
afterwards, also when a test fails. PostgreSQL refuses to run as root, so
as root ``initdb`` and ``postgres`` run as the ``postgres`` system user
(``setpriv``, which execs, so the process we hold is the postmaster itself)
in a folder owned by that user. Nothing is mocked.

Fixtures (import them into a test module: ``from tests.engines import pg_url, postgres``):

- ``postgres`` (session): one :class:`PostgresServer` for the whole run.
- ``pg_url`` (function): a fresh database ``test_<n>`` on it, as a
  ``postgresql://`` URL; dropped after the test.
- ``redis_server`` (session): a :class:`RedisServer`, for the cluster tests.

A missing binary skips the tests that need it, naming the Debian package.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_port

ENGINE_START_TIMEOUT = 30.0
"""Seconds an engine may take to accept connections."""


def _postgres_bindir() -> Path | None:
    """Debian's newest ``/usr/lib/postgresql/<version>/bin`` with initdb and postgres, or None."""
    found = []
    for bindir in glob.glob("/usr/lib/postgresql/*/bin"):
        if os.access(f"{bindir}/initdb", os.X_OK) and os.access(f"{bindir}/postgres", os.X_OK):
            try:
                found.append((int(Path(bindir).parent.name), Path(bindir)))
            except ValueError:
                continue
    return max(found)[1] if found else None


def _unprivileged_user() -> pwd.struct_passwd | None:
    """The user to run PostgreSQL as: None when we are not root, else ``postgres`` (or ``nobody``)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.skip("running as root without a 'postgres' or 'nobody' user to run PostgreSQL as")


class PostgresServer:
    """A PostgreSQL cluster in a temporary folder, listening on 127.0.0.1:``port``.

    Superuser ``postgres`` with trust authentication (loopback only).
    :meth:`stop` and :meth:`start` may be called again (a restart keeps the
    data and the port). ``log_path`` is the server's log.
    """

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.user = _unprivileged_user()
        # (as root, in /tmp: a TMPDIR under /root would be closed to the postgres user)
        self.root = Path(tempfile.mkdtemp(prefix="chatserver-pg-",
                                          dir="/tmp" if self.user is not None else None))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._names = itertools.count(1)
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        self._run([str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                   "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"])

    def _as_user(self, argv: list[str]) -> list[str]:
        if self.user is None:
            return argv
        return ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}",
                "--init-groups", "--", *argv]

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run(self._as_user(argv), capture_output=True, text=True, timeout=60,
                              cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()}")

    def url(self, dbname: str = "postgres") -> str:
        """``postgresql://postgres@127.0.0.1:<port>/<dbname>``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> PostgresServer:
        """Start the postmaster and wait until it accepts connections."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        if self.user is not None:
            os.chown(self.log_path, self.user.pw_uid, self.user.pw_gid)
        self.proc = subprocess.Popen(
            self._as_user([str(self.bindir / "postgres"), "-D", str(self.data),
                           "-p", str(self.port), "-k", str(self.root),
                           "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                           "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                           "-c", "max_connections=200", "-c", "shared_buffers=32MB"]),
            stdout=log, stderr=log, cwd=self.root)
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + ENGINE_START_TIMEOUT
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}: "
                                   f"{self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        """Fast shutdown (SIGINT: sessions are ended, the data kept); waits for the exit."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self) -> None:
        """Stop, then start again on the same port with the same data."""
        self.stop()
        self.start()

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        """Run one statement as the superuser, in autocommit (CREATE/DROP DATABASE)."""
        import psycopg

        with psycopg.connect(self.url(dbname), autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)

    def new_database(self) -> str:
        """Create an empty database ``test_<n>``; return its name."""
        name = f"test_{next(self._names)}"
        self.execute(f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, ending its sessions first."""
        self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def destroy(self) -> None:
        """Stop the server and remove its folder."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL for the session (Debian package ``postgresql``)."""
    bindir = _postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL's initdb/postgres are not installed "
                    "(Debian package postgresql, /usr/lib/postgresql/*/bin)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install -e '.[test]')")
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty database on the session's PostgreSQL; dropped afterwards."""
    if postgres.proc is None:  # a test that stopped it failed before restarting it
        postgres.start()
    name = postgres.new_database()
    try:
        yield postgres.url(name)
    finally:
        if postgres.proc is None:
            postgres.start()
        postgres.drop_database(name)


class RedisServer:
    """A redis-server on 127.0.0.1:``port`` without persistence, in a temporary folder.

    For the cluster tests (issue 10: several nodes over one Redis); nothing
    uses it yet. ``url`` is ``redis://127.0.0.1:<port>/0``.
    """

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="chatserver-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        """Start it and wait until it accepts TCP connections."""
        log = open(self.root / "redis.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.root),
             "--unixsocket", str(self.root / "redis.sock")],
            stdout=log, stderr=log, cwd=self.root)
        log.close()
        from tests.support import wait_for_port

        wait_for_port(self.port, self.proc, timeout=ENGINE_START_TIMEOUT)
        return self

    def stop(self) -> None:
        """SIGTERM and wait (nothing is saved: ``--save ''``)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server for the session (Debian package ``redis-server``)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    server = RedisServer(binary)
    try:
        server.start()
        yield server
    finally:
        server.destroy()
