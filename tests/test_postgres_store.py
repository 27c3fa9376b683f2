"""The PostgreSQL stores against a real PostgreSQL (tests/engines.py): every store's
methods, the migrations (empty database, second start, concurrent starts), atomic
account creation from two pools, and a PostgreSQL restart under an open pool."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from ircd.accounts import AccountStore, LoginResult
from ircd.history import HistoryStore, Item
from ircd.serverbans import DLINE, KLINE, ServerBan
from ircd.storage import BadDatabaseURL, check_database_url, redact_url
from ircd.storage.migrations import MIGRATIONS
from ircd.storage.postgres import (
    Database,
    DatabaseUnavailable,
    PostgresAccountRows,
    PostgresChannelStore,
    PostgresHistoryDisk,
    PostgresServerBanStore,
    migrate,
)
from tests.engines import pg_url, postgres  # noqa: F401 - fixtures
from tests.support import free_port

pytestmark = pytest.mark.timeout(60)

TABLES = {"schema_migrations", "accounts", "account_seen", "history", "server_bans",
          "registered_channels"}


@pytest.fixture
def db(pg_url):  # noqa: F811
    database = Database.open(pg_url, max_size=4)
    try:
        yield database
    finally:
        database.close()


def accounts_on(db: Database) -> AccountStore:
    return AccountStore(PostgresAccountRows(db), time_cost=1, memory_cost=1024)


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {name for (name,) in rows}


def versions(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]


# -- migrations --------------------------------------------------------------------------------

def test_migrations_create_every_table_in_an_empty_database_once(pg_url):  # noqa: F811
    assert tables(pg_url) == set()
    Database.open(pg_url).close()
    assert tables(pg_url) == TABLES
    assert versions(pg_url) == [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    # A second start applies nothing and keeps the data.
    db = Database.open(pg_url)
    try:
        assert accounts_on(db).create("keeper", "pw")
        with db.connection() as conn:
            assert migrate(conn) == []
    finally:
        db.close()
    db = Database.open(pg_url)
    try:
        assert accounts_on(db).verify("keeper", "pw")
    finally:
        db.close()
    assert versions(pg_url) == list(range(1, len(MIGRATIONS) + 1))


def test_concurrent_migrations_apply_each_version_exactly_once(pg_url):  # noqa: F811
    starters = 6
    barrier = threading.Barrier(starters)
    applied: list[list[int]] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                barrier.wait(timeout=10)
                applied.append(migrate(conn))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(starters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert sorted(v for one in applied for v in one) == [m.version for m in MIGRATIONS]
    assert versions(pg_url) == [m.version for m in MIGRATIONS]
    assert tables(pg_url) == TABLES


# -- accounts ----------------------------------------------------------------------------------

def test_account_store_methods_on_postgresql(db):
    store = accounts_on(db)
    assert store.shared
    assert store.names() == {}
    assert store.create("Alice", "s3cret")
    assert not store.create("ALICE", "other")  # rfc1459 casefold: the same name
    assert store.exists("alice") and not store.exists("bob")
    assert store.names() == {"alice": "Alice"}
    assert store.verify("alice", "s3cret") and not store.verify("alice", "nope")
    assert not store.verify("nobody", "s3cret")
    assert store.login_or_register("alice", "s3cret") is LoginResult.LOGGED_IN
    assert store.login_or_register("alice", "wrong") is LoginResult.BAD_PASSWORD
    assert store.login_or_register("Bob", "bobpw") is LoginResult.CREATED
    name, created, seen = store.info("alice")
    assert (name, seen) == ("Alice", None) and abs(created - time.time()) < 60
    store.touch("alice", 1234.5)
    store.touch("alice", 2345.5)
    assert store.info("ALICE")[2] == 2345.5
    assert store.info("nobody") is None
    assert not store.change_password("alice", "wrong", "new")
    assert store.change_password("alice", "s3cret", "n3w")
    assert store.verify("alice", "n3w") and not store.verify("alice", "s3cret")
    assert not store.drop("alice", "s3cret")
    assert store.drop("alice", "n3w")
    assert store.names() == {"bob": "Bob"} and store.info("alice") is None
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM account_seen").fetchone() == (0,)


def test_old_hash_is_upgraded_and_malformed_hash_refused(db):
    weak = AccountStore(PostgresAccountRows(db), time_cost=1, memory_cost=1024)
    strong = AccountStore(PostgresAccountRows(db), time_cost=2, memory_cost=1024)
    assert weak.create("carol", "pw")
    assert strong.verify("carol", "pw")
    with db.connection() as conn:
        (stored,) = conn.execute("SELECT password_hash FROM accounts").fetchone()
        assert ",t=2," in stored
        conn.execute("UPDATE accounts SET password_hash = 'garbage'")
    assert not strong.verify("carol", "pw")


def test_racing_creations_from_two_pools_create_exactly_one_account(pg_url):  # noqa: F811
    dbs = [Database.open(pg_url, max_size=10), Database.open(pg_url, max_size=10)]
    try:
        stores = [accounts_on(d) for d in dbs]
        racers = 20
        barrier = threading.Barrier(racers)
        results: dict[int, bool] = {}

        def race(i: int) -> None:
            store = stores[i % 2]
            barrier.wait(timeout=10)
            results[i] = store.create("newname", f"pw{i}")

        threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        winners = [i for i, ok in results.items() if ok]
        assert len(results) == racers and len(winners) == 1
        for store in stores:  # both see the one account, with the winner's password
            assert store.names() == {"newname": "newname"}
            assert store.verify("newname", f"pw{winners[0]}")
    finally:
        for d in dbs:
            d.close()


# -- history -----------------------------------------------------------------------------------

def item(target: str, t: float, n: int, account: str | None = "alice") -> Item:
    return Item(target, t, f"id{n}", "alice!a@h", account, "PRIVMSG", target, f"text {n}")


def test_history_is_written_loaded_bounded_and_pruned(db):
    now = time.time()
    first = HistoryStore(PostgresHistoryDisk(db), max_per_target=3, retention_days=1)
    old = item("#c", now - 3 * 86400, 0)
    msgs = [item("#c", now - 100 + i, i) for i in range(1, 6)]
    dm = item("dm:alice:bob", now - 50, 9, account=None)
    first.write([old, *msgs, dm])
    first.write([])
    second = HistoryStore(PostgresHistoryDisk(db), max_per_target=3, retention_days=1)
    assert second.load(now) == 4  # the newest 3 of #c, the DM; not the one past retention
    assert second.items("#c") == msgs[2:]
    assert second.items("dm:alice:bob") == [dm]
    assert second.by_msgid["id5"] == msgs[4]
    second.prune_disk(now)
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM history").fetchone() == (6,)
    forever = HistoryStore(PostgresHistoryDisk(db), max_per_target=10, retention_days=0)
    forever.prune_disk(now)  # 0: keep forever
    assert forever.load(now) == 6


# -- server bans and registered channels -------------------------------------------------------

def test_server_bans_are_saved_replaced_deleted_and_loaded(db):
    store = PostgresServerBanStore(db)
    k = ServerBan(KLINE, "*!Spam@*", "spam", "oper!o@h", 100.0, 0.0)
    d = ServerBan(DLINE, "10.0.0.0/8", "net", "oper!o@h", 100.0, 5000.0)
    store.save(k)
    store.save(d)
    store.save(ServerBan(KLINE, "*!spam@*", "again", "root!r@h", 200.0, 900.0))  # same key
    loaded = sorted(store.load(), key=lambda b: b.kind)
    assert loaded == [ServerBan(DLINE, "10.0.0.0/8", "net", "oper!o@h", 100.0, 5000.0),
                      ServerBan(KLINE, "*!spam@*", "again", "root!r@h", 200.0, 900.0)]
    store.delete(KLINE, "*!SPAM@*")
    store.delete(KLINE, "*!nothing@*")
    assert store.load() == [d]


def test_registered_channels_are_written_atomically_and_malformed_ones_skipped(db):
    store = PostgresChannelStore(db)
    a = {"name": "#a", "topic": "hello", "founder": "alice", "bans": ["x!*@*"]}
    b = {"name": "#b", "topic": "", "founder": "bob"}
    store.write([("#a", a), ("#b", b)])
    store.write([("#a", {**a, "topic": "changed"}), ("#b", None)])
    assert store.load() == [{**a, "topic": "changed"}]
    with db.connection() as conn:
        conn.execute("INSERT INTO registered_channels VALUES ('#bad', 'not json'),"
                     " ('#list', '[1, 2]'), ('#noname', '{\"topic\": \"x\"}')")
    assert store.load() == [{**a, "topic": "changed"}]
    with pytest.raises(TypeError):  # an unencodable record: nothing of the batch is written
        store.write([("#c", {"name": "#c"}), ("#d", {"name": "#d", "x": object()})])
    assert [r["name"] for r in store.load()] == ["#a"]


# -- start-up errors and a PostgreSQL restart --------------------------------------------------

def test_bad_database_urls_are_refused_with_a_reason():
    for good in ("", "postgresql://u@h/db", "postgres://u:p@127.0.0.1:5432/db?sslmode=disable"):
        check_database_url(good)
    for bad, why in [("mysql://u@h/db", "postgresql://"), ("postgresql:///db", "no host"),
                     ("postgresql://u@h", "no database"), ("postgresql://u@h:99999/db", "(?i)port out of range"),
                     ("postgresql://u@h:0/db", "port 0 out of range"),
                     ("postgresql://u@h:abc/db", "not a URL"), ("postgresql://u@h/db#x", "fragment")]:
        with pytest.raises(BadDatabaseURL, match=why):
            check_database_url(bad)
    assert redact_url("postgresql://me:hunter2@h:5/db") == "postgresql://me:***@h:5/db"
    assert redact_url("postgresql://me@h/db") == "postgresql://me@h/db"


def test_unreachable_database_is_one_line_naming_it_without_the_password():
    url = f"postgresql://me:hunter2@127.0.0.1:{free_port()}/nothing"
    with pytest.raises(DatabaseUnavailable) as info:
        Database.open(url)
    text = str(info.value)
    assert "\n" not in text and "hunter2" not in text
    assert text.startswith(f"cannot use the database postgresql://me:***@127.0.0.1:{url.split(':')[3]}")


def test_pool_fails_during_a_postgresql_restart_then_reconnects(postgres, pg_url):  # noqa: F811
    db = Database.open(pg_url, max_size=2)
    try:
        store = accounts_on(db)
        assert store.create("before", "pw")
        postgres.stop()
        with pytest.raises(psycopg.OperationalError):  # (psycopg_pool.PoolTimeout is one too)
            store.exists("before")
        postgres.start()
        deadline = time.monotonic() + 15
        while True:  # the pool replaces its broken connections by itself
            try:
                assert store.exists("before")
                break
            except psycopg.Error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert store.create("after", "pw") and store.verify("after", "pw")
    finally:
        db.close()


def test_database_url_in_the_config_file_is_checked_and_needs_a_restart(tmp_path):
    from ircd.cli import merge_reload
    from ircd.config import ConfigError, load_config, validate

    path = tmp_path / "config.toml"
    path.write_text('[database]\nurl = "postgresql://chat:pw@db.example:5432/chat"\n')
    config = load_config(path)
    validate(config, str(path))
    assert config.database.url == "postgresql://chat:pw@db.example:5432/chat"
    assert load_config(None).database.url == ""  # the default: SQLite
    path.write_text('[database]\nurl = "postgresql://chat:pw@db.example"\n')
    with pytest.raises(ConfigError) as info:
        validate(load_config(path), str(path))
    assert str(info.value) == (f"{path}: 'database.url' no database name "
                               "(postgresql://USER[:PW]@HOST:PORT/DBNAME) "
                               "(got 'postgresql://chat:***@db.example')")
    path.write_text('[database]\nurl = 5\n')
    with pytest.raises(ConfigError, match="database.url"):
        load_config(path)
    fresh = config.with_overrides("database", url="postgresql://u@elsewhere/db")
    merged, ignored = merge_reload(config, fresh)
    assert merged.database.url == config.database.url and ignored == ["database.url"]


def test_a_server_core_sees_accounts_another_server_made_after_its_refresh(pg_url):  # noqa: F811
    from ircd.config import Config
    from ircd.core import ACCOUNT_NAMES_REFRESH, ImmediateScheduler, Server

    dbs = [Database.open(pg_url), Database.open(pg_url)]
    try:
        mine, theirs = accounts_on(dbs[0]), accounts_on(dbs[1])
        assert mine.create("local", "pw")
        core = Server(Config(), mine, ImmediateScheduler())
        assert core.account_names == {"local": "local"}
        assert theirs.create("Remote", "pw")
        assert theirs.drop("local", "pw")
        assert core.account_names == {"local": "local"}  # a per-process cache ...
        core.refresh_account_names()  # ... re-read every ACCOUNT_NAMES_REFRESH seconds
        assert core.account_names == {"remote": "Remote"}
        assert theirs.create("third", "pw")
        core.tick(core.created + 10)  # not yet due
        assert "third" not in core.account_names
        core.tick(core.created + ACCOUNT_NAMES_REFRESH)
        assert core.account_names == {"remote": "Remote", "third": "third"}
    finally:
        for d in dbs:
            d.close()


def test_a_forgotten_channels_history_is_deleted_and_a_late_batch_does_not_bring_it_back(db):
    now = time.time()
    store = HistoryStore(PostgresHistoryDisk(db), retention_days=0)
    store.add(item("#gone", now - 10, 1))
    store.write(store.take_pending())
    store.batch_done()
    store.add(item("#gone", now - 5, 2))
    in_flight = store.take_pending()      # a batch being written while the channel goes
    store.forget("#gone", now)
    store.add(item("#gone", now + 1, 3))  # the channel made again at once
    store.add(item("#kept", now + 1, 4))
    store.write(store.take_pending(), store.take_erasures())
    store.write(in_flight)
    with db.connection() as conn:
        texts = [t for (t,) in conn.execute("SELECT text FROM history ORDER BY id")]
    assert texts == ["text 3", "text 4"]


def test_a_followed_targets_history_is_read_by_target_on_both_backends(db, tmp_path):
    """What a cluster node reads when it begins to follow a channel or an account:
    only that channel's, or that account's conversations', newest messages (at most
    ``per_target`` each, oldest first, from ``cutoff`` on), on SQLite and PostgreSQL."""
    from ircd.storage.sqlite import SQLiteHistoryDisk

    rows = []
    for i in range(6):
        for target in ("#a", "#b", "dm:alice:bob", "dm:bob:carol", "dm:al:bob", "dm:bob:alice2"):
            rows.append((target, 100.0 + i, f"{target}-{i}", "x!x@h", None, "PRIVMSG",
                         target, f"text {i}"))
    sqlite = SQLiteHistoryDisk(tmp_path / "h.sqlite3")
    try:
        for disk in (sqlite, PostgresHistoryDisk(db)):
            disk.append(rows)
            got = disk.recent_of("#a", 101.0, 3)
            assert [r[2] for r in got] == ["#a-3", "#a-4", "#a-5"], disk
            assert [r[2] for r in disk.recent_of("#a", 104.5, 10)] == ["#a-5"]
            direct = disk.recent_direct("bob", 103.0, 2)
            assert {r[0] for r in direct} == {"dm:alice:bob", "dm:bob:carol", "dm:al:bob",
                                              "dm:bob:alice2"}
            assert [r[2] for r in direct if r[0] == "dm:alice:bob"] == [
                "dm:alice:bob-4", "dm:alice:bob-5"]
            assert [r[1] for r in direct] == sorted(r[1] for r in direct)
            assert {r[0] for r in disk.recent_direct("alice", 0.0, 10)} == {"dm:alice:bob"}
            assert disk.recent_direct("nobody", 0.0, 10) == []
    finally:
        sqlite.close()
