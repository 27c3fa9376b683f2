"""The account store: argon2id hashes in SQLite, atomic creation, durability."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from ircd.accounts import AccountStore, LoginResult
from ircd.storage.sqlite import SQLiteAccountRows

CLEAR = "Tr0ub4dor&3-clear-text-marker"


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "sub" / "accounts.sqlite3"


@pytest.fixture
def store(db_path):
    s = AccountStore(SQLiteAccountRows(db_path), time_cost=1, memory_cost=1024)
    yield s
    s.close()


def stored_hashes(path) -> dict[str, str]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT name_cf, password_hash FROM accounts"))


def run_racing(n: int, fn) -> list:
    """Run ``fn(i)`` in ``n`` threads released together; return the results by index."""
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            results[i] = fn(i)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    return results


# -- create / verify / names ---------------------------------------------------------


def test_store_creates_its_directory_and_starts_empty(store, db_path):
    assert db_path.parent.is_dir()
    assert store.names() == {}
    assert not store.exists("alice")


def test_creation_time_comes_from_the_injected_clock(db_path):
    store = AccountStore(SQLiteAccountRows(db_path), time_cost=1, memory_cost=1024,
                         clock=lambda: 1_700_000_000.5)
    try:
        assert store.create("alice", "pw")
        assert store.info("alice") == ("alice", 1_700_000_000.5, None)
    finally:
        store.close()


def test_create_then_verify_right_and_wrong_password(store):
    assert store.create("alice", "s3cret") is True
    assert store.verify("alice", "s3cret") is True
    assert store.verify("alice", "S3cret") is False
    assert store.verify("alice", "") is False
    assert store.verify("bob", "s3cret") is False


def test_create_of_taken_name_returns_false_and_keeps_the_first_password(store):
    assert store.create("alice", "first")
    assert store.create("alice", "second") is False
    assert store.create("ALICE", "third") is False
    assert store.verify("alice", "first")
    assert not store.verify("alice", "second")


def test_names_are_casefolded_with_rfc1459(store):
    assert store.create("Alice[1]", "pw")
    assert store.create("BOB", "pw")
    # casefolded keys, each with the name as registered
    assert store.names() == {"alice{1}": "Alice[1]", "bob": "BOB"}
    assert store.exists("alice{1}")
    assert store.exists("ALICE[1]")
    assert store.verify("alice{1}", "pw")
    assert store.create("aLiCe{1}", "pw") is False


def test_unicode_password_works(store):
    assert store.create("zoë", "pässwörd ✓ 日本")
    assert store.verify("ZOË".lower(), "pässwörd ✓ 日本")
    assert not store.verify("zoë", "passwort ✓ 日本")


# -- login_or_register ------------------------------------------------------------------


def test_login_or_register_creates_then_logs_in_then_refuses_a_bad_password(store):
    assert store.login_or_register("carol", "pw1") is LoginResult.CREATED
    assert store.login_or_register("carol", "pw1") is LoginResult.LOGGED_IN
    assert store.login_or_register("CAROL", "pw1") is LoginResult.LOGGED_IN
    assert store.login_or_register("carol", "pw2") is LoginResult.BAD_PASSWORD
    assert set(store.names()) == {"carol"}
    assert store.verify("carol", "pw1")


# -- hashing ---------------------------------------------------------------------------


def test_passwords_are_stored_as_argon2id_hashes(store, db_path):
    store.create("alice", CLEAR)
    store.login_or_register("bob", CLEAR)
    hashes = stored_hashes(db_path)
    assert set(hashes) == {"alice", "bob"}
    for h in hashes.values():
        assert h.startswith("$argon2id$")
        assert "m=1024,t=1,p=1" in h
        assert CLEAR not in h
    assert hashes["alice"] != hashes["bob"]  # salted


def test_clear_text_password_never_reaches_the_database_files(db_path):
    store = AccountStore(SQLiteAccountRows(db_path), time_cost=1, memory_cost=1024)
    store.create("alice", CLEAR)
    store.login_or_register("alice", CLEAR)
    store.login_or_register("alice", CLEAR + "x")
    needle = CLEAR.encode()
    for path in db_path.parent.iterdir():  # the database, its WAL and shm files
        assert needle not in path.read_bytes(), path
    store.close()
    for path in db_path.parent.iterdir():
        assert needle not in path.read_bytes(), path


def test_hash_made_with_old_parameters_is_upgraded_on_login(db_path):
    old = AccountStore(SQLiteAccountRows(db_path), time_cost=1, memory_cost=1024)
    assert old.create("alice", "pw")
    old.close()
    assert "t=1" in stored_hashes(db_path)["alice"]
    new = AccountStore(SQLiteAccountRows(db_path), time_cost=2, memory_cost=1024)
    try:
        assert not new.verify("alice", "wrong")
        assert "t=1" in stored_hashes(db_path)["alice"]  # no upgrade on failure
        assert new.verify("alice", "pw")
        upgraded = stored_hashes(db_path)["alice"]
        assert upgraded.startswith("$argon2id$")
        assert "t=2" in upgraded
        assert new.verify("alice", "pw")
    finally:
        new.close()


def test_malformed_stored_hash_refuses_login_without_crashing(store, db_path):
    store.create("alice", "pw")
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE accounts SET password_hash = 'garbage' WHERE name_cf = 'alice'")
    assert store.verify("alice", "pw") is False
    assert store.login_or_register("alice", "pw") is LoginResult.BAD_PASSWORD


# -- concurrency -------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", range(5))
def test_two_threads_racing_create_for_one_name_exactly_one_wins(store, attempt):
    name = f"race{attempt}"
    results = run_racing(2, lambda i: store.create(name if i == 0 else name.upper(), f"pw{i}"))
    assert sorted(results) == [False, True]
    winner = results.index(True)
    assert store.verify(name, f"pw{winner}")
    assert not store.verify(name, f"pw{1 - winner}")


def test_twenty_threads_racing_login_or_register_create_exactly_once(store):
    results = run_racing(20, lambda i: store.login_or_register("dave", f"password-{i}"))
    created = [i for i, r in enumerate(results) if r is LoginResult.CREATED]
    assert len(created) == 1, results
    (winner,) = created
    # Every other thread used a different password, so each was refused.
    assert all(r is LoginResult.BAD_PASSWORD for i, r in enumerate(results) if i != winner)
    assert store.verify("dave", f"password-{winner}")
    assert set(store.names()) == {"dave"}


def test_twenty_threads_with_the_same_password_create_once_and_log_in(store):
    results = run_racing(20, lambda i: store.login_or_register("erin", "same"))
    assert results.count(LoginResult.CREATED) == 1
    assert results.count(LoginResult.LOGGED_IN) == 19


def test_threads_creating_different_names_all_succeed(store):
    results = run_racing(16, lambda i: store.create(f"user{i}", f"pw{i}"))
    assert results == [True] * 16
    assert set(store.names()) == {f"user{i}" for i in range(16)}


# -- durability ---------------------------------------------------------------------------


def test_accounts_survive_close_and_reopen(db_path):
    first = AccountStore(SQLiteAccountRows(db_path), time_cost=1, memory_cost=1024)
    assert first.create("alice", "pw-a")
    assert first.login_or_register("Bob", "pw-b") is LoginResult.CREATED
    first.close()
    second = AccountStore(SQLiteAccountRows(db_path), time_cost=1, memory_cost=1024)
    try:
        assert second.names() == {"alice": "alice", "bob": "Bob"}
        assert second.verify("alice", "pw-a")
        assert second.login_or_register("bob", "pw-b") is LoginResult.LOGGED_IN
        assert second.login_or_register("bob", "pw-a") is LoginResult.BAD_PASSWORD
        assert second.create("alice", "other") is False
    finally:
        second.close()


def test_created_account_is_visible_to_another_connection_before_close(store, db_path):
    assert store.create("alice", "pw")
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT name, name_cf FROM accounts").fetchall()
    assert rows == [("alice", "alice")]
