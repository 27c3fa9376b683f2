"""CPU time and memory of a process, read from Linux ``/proc``.

All functions return ``None`` instead of raising when the process is gone or
``/proc`` is unavailable, so a crashed server shows up as a missing number
rather than a benchmark crash.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds used so far by process ``pid`` (all its threads).

    Read from fields 14 and 15 (utime, stime, in clock ticks) of ``/proc/<pid>/stat``.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; everything after ')' is fixed.
    rest = data[data.rfind(b")") + 2:].split()
    try:
        return (int(rest[11]) + int(rest[12])) / _CLK_TCK
    except (IndexError, ValueError):
        return None


def memory_kib(pid: int) -> tuple[int, int] | None:
    """``(VmRSS, VmHWM)`` of process ``pid`` in KiB (current and peak resident set size)."""
    rss = hwm = None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except (OSError, ValueError):
        return None
    if rss is None:
        return None
    return rss, hwm if hwm is not None else rss


def self_cpu_seconds() -> float:
    """User + system CPU seconds used so far by this (generator) process."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


@dataclass(slots=True)
class Meter:
    """CPU and wall-clock meter over one measured interval.

    ``start()`` and ``stop()`` sample the server's CPU seconds (``/proc``), the
    generator's own CPU seconds (``getrusage``) and ``time.perf_counter()``.
    ``others`` names more server-side processes (cluster mode: the other
    nodes and redis-server, ``name -> pid``); ``server_cpu`` is then the sum
    over ``pid`` and all of them, and ``parts`` has each one's CPU seconds
    (``pid`` under the name ``"server"``).
    """

    pid: int
    others: dict[str, int] = field(default_factory=dict)
    server_cpu0: float | None = None
    gen_cpu0: float = 0.0
    wall0: float = 0.0
    server_cpu: float | None = None
    gen_cpu: float = 0.0
    wall: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)
    _parts0: dict[str, float | None] = field(default_factory=dict)

    def _sample(self) -> dict[str, float | None]:
        out = {"server": cpu_seconds(self.pid)}
        for name, pid in self.others.items():
            out[name] = cpu_seconds(pid)
        return out

    def start(self) -> None:
        """Begin the interval."""
        self._parts0 = self._sample()
        self.server_cpu0 = self._parts0["server"]
        self.gen_cpu0 = self_cpu_seconds()
        self.wall0 = time.perf_counter()

    def stop(self) -> None:
        """End the interval; ``server_cpu``/``gen_cpu``/``wall`` are then deltas in seconds."""
        end = self._sample()
        self.parts = {}
        for name, value in end.items():
            before = self._parts0.get(name)
            if value is not None and before is not None:
                self.parts[name] = value - before
        if "server" in self.parts and all(n in self.parts for n in self.others):
            self.server_cpu = sum(self.parts.values())
        self.gen_cpu = self_cpu_seconds() - self.gen_cpu0
        self.wall = time.perf_counter() - self.wall0
