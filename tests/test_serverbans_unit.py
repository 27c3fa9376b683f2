"""Unit tests of ircd/serverbans.py (sans-I/O, time given as ``now``) and of the SQLite store."""

from __future__ import annotations

import pytest

from ircd.accounts import AccountStore
from ircd.config import Config, OperBlock
from ircd.core import ImmediateScheduler, Server
from ircd.serverbans import (
    DLINE,
    KLINE,
    MAX_DURATION,
    BadMask,
    BanList,
    ServerBan,
    format_duration,
    normalize_dline_mask,
    normalize_kline_mask,
    parse_duration,
)
from ircd.state import CallbackSession
from ircd.storage.sqlite import SQLiteAccountRows, SqliteServerBanStore
from tests.opersupport import oper_hash


@pytest.mark.parametrize("text, seconds", [
    ("30s", 30), ("30m", 1800), ("1h", 3600), ("2d", 172800), ("1w", 604800),
    ("1d12h", 129600), ("90", 5400), ("1H", 3600),
])
def test_parse_duration_accepts_units_and_bare_minutes(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "h", "1x", "1h-", "-1h", "*@host", "1 h",
                                  f"{MAX_DURATION + 1}s"])
def test_parse_duration_refuses_what_is_no_duration(text):
    assert parse_duration(text) is None


def test_format_duration_round_trips_and_zero_is_permanent():
    assert format_duration(0) == "permanent"
    assert format_duration(90) == "1m30s"
    assert format_duration(129600) == "1d12h"
    for text in ("30s", "2d", "1d12h", "1w"):
        assert parse_duration(format_duration(parse_duration(text) or 0)) == parse_duration(text)


def test_kline_masks_are_completed_to_nick_user_host_and_bad_ones_refused():
    assert normalize_kline_mask("user@host") == "*!user@host"
    assert normalize_kline_mask("n!u@h") == "n!u@h"
    for bad in ("nohost", "a@b@c", "n!!u@h", "!u@h", "u@", "@h", "u@h h", "u@h,x"):
        with pytest.raises(BadMask):
            normalize_kline_mask(bad)


def test_dline_masks_are_canonical_addresses_or_networks():
    assert normalize_dline_mask("10.1.2.3") == "10.1.2.3"
    assert normalize_dline_mask("10.1.2.3/8") == "10.0.0.0/8"
    assert normalize_dline_mask("2001:DB8::1/32") == "2001:db8::/32"
    for bad in ("10.0.0.256", "10.0.0.0/33", "host.example", ""):
        with pytest.raises(BadMask):
            normalize_dline_mask(bad)


def kban(mask: str, set_at: float = 100.0, expires: float = 0.0) -> ServerBan:
    return ServerBan(KLINE, normalize_kline_mask(mask), "r", "op!o@h", set_at, expires)


def dban(mask: str, expires: float = 0.0) -> ServerBan:
    return ServerBan(DLINE, normalize_dline_mask(mask), "r", "op!o@h", 100.0, expires)


def test_kline_matches_any_source_casefolded_until_it_expires():
    bans = BanList()
    ban = kban("Flooder@*.example", expires=200.0)
    bans.add(ban)
    assert bans.kline_for(("nick!flooder@a.EXAMPLE",), 150.0) is ban
    assert bans.kline_for(("nick!x@a.example", "nick!flooder@b.example"), 150.0) is ban
    assert bans.kline_for(("nick!other@a.example",), 150.0) is None
    assert bans.kline_for(("nick!flooder@a.example",), 200.0) is None   # expired at 200
    assert bans.listing(KLINE, 199.0) == [ban]
    assert bans.listing(KLINE, 200.0) == []
    assert bans.expire(199.0) == []
    assert bans.expire(200.0) == [ban]
    assert len(bans) == 0


def test_dline_matches_addresses_in_the_network_and_ipv4_mapped_ipv6():
    bans = BanList()
    net = dban("192.0.2.0/24")
    one = dban("2001:db8::7")
    bans.add(net)
    bans.add(one)
    assert bans.dline_for("192.0.2.200", 0) is net
    assert bans.dline_for("::ffff:192.0.2.9", 0) is net
    assert bans.dline_for("192.0.3.1", 0) is None
    assert bans.dline_for("2001:db8::7", 0) is one
    assert bans.dline_for("2001:db8::8", 0) is None
    assert bans.dline_for("not an address", 0) is None
    assert bans.remove(DLINE, "192.0.2.5/24") is net     # given as typed: normalized
    assert bans.dline_for("192.0.2.200", 0) is None


def test_adding_the_same_mask_replaces_the_ban_and_kinds_are_separate():
    bans = BanList()
    first = kban("u@h")
    assert bans.add(first) is None
    second = kban("U@H", set_at=200.0)
    assert bans.add(second) is first
    assert bans.listing(KLINE, 0) == [second]
    assert bans.remove(DLINE, "u@h") is None
    assert bans.remove(KLINE, "u@h") is second
    assert bans.remove(KLINE, "u@h") is None


def test_listing_is_oldest_first():
    bans = BanList()
    late, early = kban("a@b", set_at=300.0), kban("c@d", set_at=100.0)
    bans.add(late)
    bans.add(early)
    assert bans.listing(KLINE, 0) == [early, late]


def test_sqlite_store_saves_replaces_deletes_and_reloads(tmp_path):
    path = tmp_path / "db" / "chatserver.sqlite3"
    store = SqliteServerBanStore(path)
    a, b = kban("u@h", expires=500.0), dban("10.0.0.0/8")
    store.save(a)
    store.save(b)
    replaced = ServerBan(KLINE, "*!U@H", "new reason", "op!o@h", 150.0)
    store.save(replaced)
    store.close()
    again = SqliteServerBanStore(path)
    assert sorted(again.load(), key=lambda x: x.kind) == [b, replaced]
    again.delete(KLINE, "*!u@h")
    again.delete(DLINE, "192.0.2.0/24")   # not there: nothing happens
    assert again.load() == [b]
    again.close()


# -- the core, with a fake clock and the real SQLite store (no sockets) ---------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_core_timed_kline_expires_with_the_clock_and_is_deleted_from_the_store(tmp_path):
    clock = _Clock()
    store = SqliteServerBanStore(tmp_path / "db")
    config = Config(opers=[OperBlock(name="ops", password=oper_hash("pw"))])
    core = Server(config, AccountStore(SQLiteAccountRows(tmp_path / "db"), time_cost=1,
                                       memory_cost=1024),
                  ImmediateScheduler(), clock=clock, ban_store=store)
    out: list[bytes] = []
    oper = core.new_client(CallbackSession(out.append, lambda reason: None), "127.0.0.1")
    for line in (b"NICK boss", b"USER boss 0 * :b", b"OPER ops pw", b"KLINE 30m flood@* :later"):
        core.handle_line(oper.session, line)
    assert b" 381 boss " in b"".join(out)
    assert [b.mask for b in store.load()] == ["*!flood@*"]

    def register_flood() -> list[str]:
        closed: list[str] = []
        sent: list[bytes] = []
        c = core.new_client(CallbackSession(sent.append, closed.append), "127.0.0.9")
        core.handle_line(c.session, b"NICK flood")
        core.handle_line(c.session, b"USER flood 0 * :f")
        return closed

    assert register_flood() == ["Closing Link: 127.0.0.9 (K-Lined (later))"]
    clock.now += 30 * 60 - 1
    assert register_flood() != []
    clock.now += 1
    assert register_flood() == []            # expired exactly at 30 minutes
    core.tick(clock.now + 61)                # the periodic prune removes it from the store
    assert store.load() == []
    assert len(core.serverbans) == 0


class _ReversedScheduler(ImmediateScheduler):
    """Holds the blocking jobs and runs them, later, last first (as two worker threads
    may): the order of the store's writes must not depend on it."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list = []

    def run_blocking(self, fn, done) -> None:
        self.held.append((fn, done))

    def run_held_reversed(self) -> None:
        held, self.held = self.held, []
        for fn, done in reversed(held):
            super().run_blocking(fn, done)


def test_a_kline_then_its_unkline_end_unbanned_in_the_store_whatever_order_the_jobs_run(tmp_path):
    store = SqliteServerBanStore(tmp_path / "db")
    config = Config(opers=[OperBlock(name="ops", password=oper_hash("pw"))])
    scheduler = _ReversedScheduler()
    core = Server(config, AccountStore(SQLiteAccountRows(tmp_path / "db"), time_cost=1,
                                       memory_cost=1024),
                  scheduler, ban_store=store)
    out: list[bytes] = []
    oper = core.new_client(CallbackSession(out.append, lambda reason: None), "127.0.0.1")
    for line in (b"NICK boss", b"USER boss 0 * :b", b"OPER ops pw"):
        core.handle_line(oper.session, line)
        scheduler.run_held_reversed()   # (the OPER check)
    core.handle_line(oper.session, b"KLINE gone@* :lifted at once")
    core.handle_line(oper.session, b"KLINE kept@* :stays")
    core.handle_line(oper.session, b"UNKLINE gone@*")
    scheduler.run_held_reversed()       # the delete runs first, then the saves
    assert [b.mask for b in store.load()] == ["*!kept@*"]
