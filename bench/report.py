"""Markdown tables of :class:`~bench.scenarios.Result` lists."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bench.scenarios import Result

DETAIL_COLUMNS = ["scenario", "server", "deliveries", "expected", "seconds", "deliveries/s",
                  "lost", "out-of-order", "p50 ms", "p99 ms", "server CPU s", "gen CPU s",
                  "server RSS MiB", "notes"]


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if digits == 0 or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "/") for c in cells) + " |"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    align = ["---" if h in ("scenario", "server", "notes", "metric") else "---:" for h in header]
    return "\n".join([_row(header), _row(align), *(_row(r) for r in rows)])


def details_table(results: Sequence[Result]) -> str:
    """One row per (scenario, server) with every measured column (str, markdown)."""
    rows = []
    for r in results:
        notes = [f"{k}: {v}" for k, v in r.extra.items()]
        if r.timed_out:
            notes.insert(0, "TIMED OUT")
        if r.error:
            notes.insert(0, f"ERROR: {r.error[:200]}")
        rows.append([
            r.scenario, r.server, f"{r.deliveries:,}", f"{r.expected:,}", _num(r.seconds, 2),
            _num(r.rate, 0), f"{r.lost:,}", f"{r.out_of_order:,}", _num(r.p50_ms, 2),
            _num(r.p99_ms, 2), _num(r.server_cpu, 2), _num(r.gen_cpu, 2),
            _num(r.rss_kib / 1024 if r.rss_kib is not None else None, 1), "; ".join(notes),
        ])
    return _table(DETAIL_COLUMNS, rows)


def _extra_float(key: str) -> Callable[[Result], float | None]:
    def get(r: Result) -> float | None:
        try:
            return float(r.extra[key])
        except (KeyError, ValueError):
            return None
    return get


def _metrics(scenario: str) -> list[tuple[str, Callable[[Result], float | None], int]]:
    """(label, extractor, decimals) of the headline metrics of a scenario."""
    if scenario.startswith("idle"):
        return [("registrations/s", lambda r: r.rate, 0),
                ("RSS KiB per connection", _extra_float("RSS/conn KiB"), 1),
                ("server CPU ms per registration", lambda r: _per(r, 1e3), 3)]
    if scenario.startswith("storm"):
        return [("conversation p99 ms", lambda r: r.p99_ms, 2),
                ("registrations done, s", lambda r: r.seconds, 1),
                ("server CPU s", lambda r: r.server_cpu, 2)]
    return [("deliveries/s", lambda r: r.rate, 0),
            ("p99 ms", lambda r: r.p99_ms, 2),
            ("server CPU µs per delivery", lambda r: _per(r, 1e6), 2)]


def _per(r: Result, scale: float) -> float | None:
    """Server CPU seconds per delivery (or registration) times ``scale``."""
    if r.server_cpu is None or not r.deliveries:
        return None
    return r.server_cpu / r.deliveries * scale


def comparison_table(results: Sequence[Result], servers: Sequence[str]) -> str:
    """Row per (scenario, headline metric); a column per server and ``ours/ngircd`` (markdown)."""
    order: list[str] = []
    by: dict[tuple[str, str], Result] = {}
    for r in results:
        if r.scenario not in order:
            order.append(r.scenario)
        by[(r.scenario, r.server)] = r
    both = "ours" in servers and "ngircd" in servers
    clusters = [s for s in servers if s.startswith("cluster-")] if "ours" in servers else []
    header = (["scenario", "metric", *servers] + (["ours/ngircd"] if both else [])
              + [f"{c}/ours" for c in clusters])
    rows = []
    for scenario in order:
        for label, get, digits in _metrics(scenario):
            values: dict[str, float | None] = {}
            cells = [scenario, label]
            for s in servers:
                row = by.get((scenario, s))
                v = get(row) if row is not None and not row.error else None
                values[s] = v
                cells.append(_num(v, digits))
            if both:
                o, n = values.get("ours"), values.get("ngircd")
                cells.append(f"{o / n:.2f}" if o is not None and n else "-")
            for c in clusters:
                v, o = values.get(c), values.get("ours")
                cells.append(f"{v / o:.2f}" if v is not None and o else "-")
            rows.append(cells)
    return _table(header, rows)


CLUSTER_COLUMNS = [
    ("entries", "entries", 0),
    ("entries/stream entry", "entries/stream entry", 1),
    ("deliveries/entry", "deliveries/entry", 1),
    ("node CPU us/entry", "node CPU µs/entry (mean)", 2),
    ("redis CPU us/entry", "Redis CPU µs/entry", 2),
    ("nodes CPU us/delivery", "nodes CPU µs/delivery", 3),
    ("entry payload B", "entry payload B", 0),
    ("redis in B/entry", "Redis in B/entry", 0),
    ("redis out B/entry", "Redis out B/entry", 0),
    ("redis commands/entry", "Redis commands/entry", 2),
    ("stream B/entry kept", "stream memory B/entry", 0),
    ("cross-node p50 ms", "cross-node p50 ms", 2),
    ("cross-node p99 ms", "cross-node p99 ms", 2),
    ("same-node p99 ms", "same-node p99 ms", 2),
]
"""(key in :attr:`Result.cluster`, column header, decimals) of :func:`cluster_table`."""


def cluster_table(results: Sequence[Result]) -> str:
    """One row per cluster result: the per-log-entry costs (markdown; ``-`` = not measured).

    Per-node CPU columns (``n1 CPU µs/entry`` ...) follow the fixed ones.
    """
    rows_in = [r for r in results if r.cluster]
    nodes = sorted({k for r in rows_in for k in r.cluster
                    if k.startswith("n") and k.endswith(" CPU us/entry") and k[1].isdigit()})
    cols = CLUSTER_COLUMNS[:3] + [(k, k.replace("us", "µs"), 2) for k in nodes] + CLUSTER_COLUMNS[3:]
    header = ["scenario", "server", *(label for _k, label, _d in cols)]
    rows = [[r.scenario, r.server, *(_num(r.cluster.get(k), d) for k, _l, d in cols)]
            for r in rows_in]
    return _table(header, rows)
