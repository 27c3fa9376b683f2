"""Smoke test of the benchmark: ``python -m bench --server ours --size smoke``.

Runs the load generator against our server (started by the benchmark on a
free 127.0.0.1 port) with tiny counts, and checks that it exits 0 and that
the results table shows no lost messages.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _column(header: str, name: str) -> int:
    cells = [c.strip() for c in header.strip().strip("|").split("|")]
    return cells.index(name)


@pytest.mark.timeout(240)
def test_bench_smoke_against_our_server() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--server", "ours", "--size", "smoke", "--no-pin"],
        cwd=REPO, capture_output=True, text=True, timeout=220,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    lines = proc.stdout.splitlines()
    header_at = next(i for i, line in enumerate(lines) if line.startswith("| scenario | server |"))
    lost = _column(lines[header_at], "lost")
    ooo = _column(lines[header_at], "out-of-order")
    rows = []
    for line in lines[header_at + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    scenarios = {row[0].split()[0] for row in rows}
    assert {"fanout", "dm", "idle", "storm"} <= scenarios, proc.stdout
    for row in rows:
        assert row[lost] == "0", f"{row[0]}: lost {row[lost]}\n{proc.stdout}"
        assert row[ooo] == "0", f"{row[0]}: out of order {row[ooo]}\n{proc.stdout}"
        assert "ERROR" not in row[-1] and "TIMED OUT" not in row[-1], row
