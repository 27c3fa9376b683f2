"""Crash safety of the account database: ``kill -9`` in the middle of a registration storm.

60 clients register new accounts at once, with the default argon2id
parameters (so that hashing takes real time and the storm is still running
when the process is killed). Every name whose registration the server
acknowledged (001 or 900 received) was committed before the acknowledgement
was sent (``synchronous=FULL``), so after ``SIGKILL`` and a restart on the
same data directory each of them must log in with its password, as an
existing account, and be refused with a wrong one. The database files left
by the killed process pass ``PRAGMA integrity_check``, and every row in them
holds a hash of the password that was used for that name.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time

import pytest
from passlib.hash import argon2

from tests.support import ServerProcess, command_of

pytestmark = pytest.mark.timeout(90)

STORM = 60
KILL_AFTER_ACKS = 20

# Default argon2 parameters; no echobot; no registration throttle (one address). The restarted
# server tolerates the many wrong passwords of the check from one address.
CONFIG = "[simple]\nechobot = false\n[accounts]\nregistrations_per_ip = 100000\n"
RESTART_CONFIG = CONFIG + "[limits]\nlogin_failures_per_ip = 100000\nlogin_delay_max = 0.5\n"


def password_of(name: str) -> str:
    return f"pw-{name}-secret"


class Registrant(threading.Thread):
    """Registers one new account and records whether the server acknowledged it."""

    def __init__(self, port: int, name: str, acked: set[str], lock: threading.Lock) -> None:
        super().__init__(daemon=True)
        self.port, self.name, self.acked, self.lock = port, name, acked, lock
        self.lines: list[str] = []

    def run(self) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=20)
        except OSError:
            return
        with sock:
            sock.sendall(f"PASS {password_of(self.name)}\r\nNICK {self.name}\r\n"
                         f"USER {self.name} 0 * :storm\r\n".encode())
            buf = b""
            while True:
                try:
                    chunk = sock.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    line = raw.decode(errors="replace").rstrip("\r")
                    self.lines.append(line)
                    if command_of(line) in ("001", "900"):
                        with self.lock:
                            self.acked.add(self.name)
                    if command_of(line) in ("900", "464", "433"):
                        return


async def _login(port: int, name: str, password: str) -> list[str]:
    """PASS/NICK/USER; the lines up to 900 (logged in) or to the connection's end."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"PASS {password}\r\nNICK {name}\r\nUSER {name} 0 * :check\r\n".encode())
    lines: list[str] = []
    try:
        async with asyncio.timeout(30):
            while True:
                raw = await reader.readline()
                if not raw:
                    return lines
                line = raw.decode(errors="replace").rstrip("\r\n")
                lines.append(line)
                if command_of(line) == "900":
                    return lines
    finally:
        writer.close()


def integrity_check(db_copy) -> str:
    if shutil.which("sqlite3"):
        out = subprocess.run(["sqlite3", str(db_copy), "PRAGMA integrity_check;"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()
    with sqlite3.connect(db_copy) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def storm_then_kill(srv: ServerProcess, names: list[str]) -> tuple[set[str], set[str]]:
    """Register ``names`` at once, SIGKILL the server after KILL_AFTER_ACKS acknowledgements;
    return (acknowledged when the kill was sent, acknowledged in all)."""
    acked: set[str] = set()
    lock = threading.Lock()
    threads = [Registrant(srv.port, name, acked, lock) for name in names]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with lock:
                if len(acked) >= KILL_AFTER_ACKS:
                    break
            time.sleep(0.002)
        with lock:
            acked_at_kill = set(acked)
    finally:
        srv.stop(signal.SIGKILL)
    for t in threads:
        t.join(10)
    assert srv.proc.returncode == -signal.SIGKILL
    # Every 001/900 read, even after the kill, was sent by the server before it died.
    assert len(acked_at_kill) >= KILL_AFTER_ACKS
    assert len(acked) < len(names), "the storm was over before the kill: nothing was tested"
    return acked_at_kill, acked


def check_files(data, tmp_path, label: str, acked: set[str]) -> int:
    """The files a killed server left: integrity ok, every acknowledged name present,
    every row a hash of that name's password. Returns the number of rows."""
    snapshot = tmp_path / f"snapshot-{label}"
    snapshot.mkdir()
    for f in data.iterdir():
        shutil.copy2(f, snapshot / f.name)
    db_copy = snapshot / "chatserver.sqlite3"
    assert integrity_check(db_copy) == "ok"
    with sqlite3.connect(db_copy) as db:
        rows = dict(db.execute("SELECT name, password_hash FROM accounts"))
    assert acked <= set(rows), f"acknowledged but missing: {sorted(acked - set(rows))}"
    # Rows of registrations that were not acknowledged yet are complete too.
    for name in set(rows) - acked:
        assert argon2.verify(password_of(name), rows[name]), name
    return len(rows)


def test_kill_9_during_a_registration_storm_loses_no_acknowledged_account(tmp_path):
    data = tmp_path / "data"
    # Round 1: a fresh server, killed during the storm.
    at_kill1, acked1 = storm_then_kill(ServerProcess(data, config_text=CONFIG).start(),
                                       [f"first{i:02d}" for i in range(STORM)])
    check_files(data, tmp_path, "1", acked1)
    # Round 2: restarted on the killed server's files (no repair), killed again mid-storm.
    at_kill2, acked2 = storm_then_kill(ServerProcess(data, config_text=CONFIG).start(),
                                       [f"second{i:02d}" for i in range(STORM)])
    acked = acked1 | acked2
    rows = check_files(data, tmp_path, "2", acked)

    # Restart once more: every acknowledged account of both rounds works.
    again = ServerProcess(data, config_text=RESTART_CONFIG).start()
    names = sorted(acked)
    try:
        async def check():
            right = asyncio.gather(*(_login(again.port, n, password_of(n)) for n in names))
            wrong = asyncio.gather(*(_login(again.port, n, "not-the-password") for n in names))
            return await right, await wrong

        right, wrong = asyncio.run(check())
        for name, lines in zip(names, right, strict=True):
            codes = [command_of(line) for line in lines]
            assert "001" in codes and "900" in codes, (name, lines[-3:])
            # Logged in to the existing account, not registered anew.
            assert not any("Registered new account" in line for line in lines), name
        for name, lines in zip(names, wrong, strict=True):
            assert [command_of(line) for line in lines][:1] == ["464"], (name, lines)
        assert again.alive()
    finally:
        again.stop()
    print(f"crash: acknowledged {len(at_kill1)}+{len(at_kill2)} at the kills, "
          f"{len(acked)} in all, {rows} rows; {len(names)} accounts checked after restart")
