"""Smoke test of the benchmark: ``python -m bench --server ours --size smoke``.

Runs the load generator against our server (started by the benchmark on a
free 127.0.0.1 port) with tiny counts, and checks that it exits 0 and that
the results table shows no lost messages.
"""

from __future__ import annotations

import shutil
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


def _tables(stdout: str) -> dict[str, list[dict[str, str]]]:
    """Every markdown table of the output, by the ``## `` heading above it: rows as dicts."""
    tables: dict[str, list[dict[str, str]]] = {}
    heading, header = "", None
    for line in stdout.splitlines():
        if line.startswith("## "):
            heading, header = line[3:], None
        elif line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if header is None:
                header = cells
            elif not set(cells[0]) <= set("-:"):
                tables.setdefault(heading, []).append(dict(zip(header, cells, strict=True)))
        else:
            header = None
    return tables


@pytest.mark.timeout(120)
def test_bench_cluster_mode_smoke() -> None:
    """Two nodes over one redis-server: nothing lost, one log entry per PRIVMSG sent."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    from bench.engines import postgres_bindir

    if postgres_bindir() is None:
        pytest.skip("PostgreSQL is not installed")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--server", "cluster", "--cluster-nodes", "2",
         "--size", "smoke", "--scenarios", "fanout,dm", "--modes", "window", "--no-pin",
         "--timeout", "30"],
        cwd=REPO, capture_output=True, text=True, timeout=100,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    tables = _tables(proc.stdout)
    results = next(rows for head, rows in tables.items() if head.startswith("Results"))
    assert [(r["scenario"], r["server"]) for r in results] == [
        ("fanout 10x2x200 window", "cluster-2"), ("dm 5x200 window", "cluster-2")], proc.stdout
    for row in results:
        assert row["lost"] == "0" and row["out-of-order"] == "0", proc.stdout
        assert "ERROR" not in row["notes"] and "TIMED OUT" not in row["notes"], row
        assert "cross-node p50/p99 ms" in row["notes"], row
    costs = {r["scenario"]: r for r in tables["Cluster costs per log entry"]}
    # one log entry per PRIVMSG: 2 senders x 200 to the channel, 5 pairs x 200 DMs
    assert costs["fanout 10x2x200 window"]["entries"] == "400", proc.stdout
    assert costs["fanout 10x2x200 window"]["deliveries/entry"] == "10.0", proc.stdout
    assert costs["dm 5x200 window"]["entries"] == "1,000", proc.stdout
    for row in costs.values():
        assert row["n1 CPU µs/entry"] != "-" and row["n2 CPU µs/entry"] != "-", row
        assert row["Redis CPU µs/entry"] != "-", row
        # each entry reaches Redis once (XADD) and leaves it once per node (XREAD); the
        # payload is sampled from the stream's last entries, so allow some difference
        assert float(row["Redis out B/entry"]) > 1.8 * float(row["entry payload B"]), row
        # a node appends its write batches as one stream entry each
        assert float(row["entries/stream entry"].replace(",", "")) >= 1.0, row
