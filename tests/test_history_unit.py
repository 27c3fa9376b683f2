"""HistoryStore's CHATHISTORY TARGETS index (sans-I/O but for its real SQLite file)."""

from __future__ import annotations

from ircd.history import HistoryStore, Item, dm_key


def _item(target: str, t: float, n: int) -> Item:
    return Item(target, t, f"id{n}", "bob!bob@h", "bob", "PRIVMSG", target, f"text {n}")


def test_targets_between_orders_by_latest_time_inside_the_window_and_keeps_the_limit(tmp_path):
    h = HistoryStore(tmp_path / "h.sqlite3")
    for n, (target, t) in enumerate([("#a", 1.0), ("#b", 5.0), ("#a", 10.0), ("#c", 12.0),
                                     ("#a", 20.0), ("#d", 30.0)]):
        h.add(_item(target, t, n))
    keys = ["#a", "#b", "#c", "#d", "#none"]
    # #a's latest inside (0, 15) is 10, not its first (1) nor its very latest (20).
    assert h.targets_between(keys, 0.0, 15.0, 10) == [("#b", 5.0), ("#a", 10.0), ("#c", 12.0)]
    assert h.targets_between(keys, 15.0, 0.0, 10) == [("#b", 5.0), ("#a", 10.0), ("#c", 12.0)]
    assert h.targets_between(keys, 0.0, 15.0, 2) == [("#b", 5.0), ("#a", 10.0)]
    assert h.targets_between(keys, 0.0, 100.0, 3) == [("#b", 5.0), ("#c", 12.0), ("#a", 20.0)]
    # Strictly between, in whole milliseconds.
    assert h.targets_between(keys, 5.0, 12.0, 10) == [("#a", 10.0)]
    assert h.targets_between(["#a"], 20.0, 100.0, 10) == []
    assert h.targets_between(keys, 0.0, 100.0, 0) == []
    h.close()


def test_conversations_are_indexed_per_account_when_added_and_when_loaded(tmp_path):
    h = HistoryStore(tmp_path / "h.sqlite3")
    h.add(_item(dm_key("Alice", "bob"), 1.0, 1))
    h.add(_item(dm_key("carol", "bob"), 2.0, 2))
    h.add(_item("#chan", 3.0, 3))
    assert h.conversations("ALICE") == {"dm:alice:bob": "bob"}
    assert h.conversations("bob") == {"dm:alice:bob": "alice", "dm:bob:carol": "carol"}
    assert h.conversations("dave") == {}
    h.write(h.take_pending())
    h.close()
    loaded = HistoryStore(tmp_path / "h.sqlite3")
    assert loaded.load(now=10.0) == 3
    assert loaded.conversations("carol") == {"dm:bob:carol": "bob"}
    loaded.close()


def test_conversations_index_forgets_targets_no_longer_held(tmp_path):
    h = HistoryStore(tmp_path / "h.sqlite3")
    key = dm_key("alice", "bob")
    h.add(_item(key, 1.0, 1))
    del h.targets[key]  # as a bound on the targets held in memory does
    assert h.conversations("alice") == {} and h.dm_keys == {}
    h.close()
