"""ircd.history.HistoryStore without a server: forgetting a target while batches are
out, the bound on targets held in memory, and the CHATHISTORY TARGETS index (a real
SQLite file, no mocks)."""

from __future__ import annotations

from ircd.history import HistoryStore, Item, dm_key
from ircd.storage.sqlite import SQLiteHistoryDisk


def item(target: str, t: float, n: int) -> Item:
    return Item(target, t, f"m{n}", "a!a@h", None, "PRIVMSG", target, f"text {n}")


def stored(store: HistoryStore) -> list[str]:
    return sorted(row[7] for row in store.disk.recent(0.0, 1000))


def test_a_batch_taken_before_a_forget_and_written_after_it_does_not_bring_rows_back(tmp_path):
    store = HistoryStore(SQLiteHistoryDisk(tmp_path / "h.sqlite3"), retention_days=0)
    store.add(item("#c", 10.0, 1))
    store.add(item("#c", 11.0, 2))
    in_flight = store.take_pending()          # a worker is about to write these
    store.forget("#c", 12.0)                  # the channel is gone
    store.add(item("#c", 13.0, 3))            # ... and made again at once
    later, erase = store.take_pending(), store.take_erasures()
    assert erase == [("#c", 12.0)]
    store.write(later, erase)                 # the later batch's worker wins the race
    store.write(in_flight)
    store.batch_done()
    store.batch_done()
    assert stored(store) == ["text 3"]
    assert [i.text for i in store.items("#c")] == ["text 3"]
    store.close()


def test_a_failed_batch_put_back_after_a_forget_loses_that_targets_old_messages(tmp_path):
    store = HistoryStore(SQLiteHistoryDisk(tmp_path / "h.sqlite3"), retention_days=0)
    store.add(item("#c", 10.0, 1))
    store.add(item("#d", 10.5, 2))
    failed = store.take_pending()
    store.forget("#c", 12.0)
    store.requeue(failed, [])                 # the write failed; it is tried again
    store.batch_done()
    assert [i.text for i in store.pending] == ["text 2"]
    store.write(store.take_pending(), store.take_erasures())
    store.batch_done()
    assert stored(store) == ["text 2"]
    store.close()


def test_unwritten_messages_of_a_forgotten_target_are_dropped_and_it_is_deleted(tmp_path):
    store = HistoryStore(SQLiteHistoryDisk(tmp_path / "h.sqlite3"), retention_days=0)
    store.add(item("#c", 10.0, 1))
    store.write(store.take_pending())
    store.batch_done()
    store.add(item("#c", 11.0, 2))
    store.forget("#c", 12.0)
    assert store.pending == [] and store.items("#c") == [] and "m1" not in store.by_msgid
    store.write(store.take_pending(), store.take_erasures())
    store.batch_done()
    assert stored(store) == []
    store.close()


def test_targets_in_memory_are_bounded_the_least_recent_dropped_also_on_load(tmp_path):
    store = HistoryStore(SQLiteHistoryDisk(tmp_path / "h.sqlite3"), retention_days=0, max_targets=2)
    store.add(item("#a", 1.0, 1))
    store.add(item("dm:x:y", 2.0, 2))
    store.add(item("#a", 3.0, 3))             # #a is the most recent again
    store.add(item("#b", 4.0, 4))             # a third target: dm:x:y goes
    assert list(store.targets) == ["#a", "#b"]
    assert "m2" not in store.by_msgid and store.items("dm:x:y") == []
    store.write(store.take_pending())
    store.batch_done()
    store.close()
    again = HistoryStore(SQLiteHistoryDisk(tmp_path / "h.sqlite3"), retention_days=0, max_targets=2)
    assert again.load(5.0) == 3               # the two most recent targets' messages
    assert sorted(again.targets) == ["#a", "#b"]
    again.close()


def test_a_channel_that_never_had_history_costs_no_deletion(tmp_path):
    store = HistoryStore(SQLiteHistoryDisk(tmp_path / "h.sqlite3"), retention_days=0)
    store.forget("#quiet", 1.0)
    assert store.take_erasures() == [] and store.erased == {}
    store.add(item("#talk", 1.0, 1))
    store.forget("#talk", 2.0)
    store.forget("#talk", 2.5)                # nothing new since: nothing more to do
    assert store.erasing == {"#talk": 2.0}
    store.add(item("#talk", 2.6, 2))          # made again, and gone again
    store.forget("#talk", 3.0)
    assert store.take_erasures() == [("#talk", 3.0)]   # once per target, the latest time
    store.close()


def test_channels_over_max_targets_at_load_are_still_named_for_the_start_clean_up(tmp_path):
    store = HistoryStore(SQLiteHistoryDisk(tmp_path / "h.sqlite3"), retention_days=0)
    store.write([item("#old", 1.0, 1), item("#new", 2.0, 2), item("dm:a:b", 3.0, 3)])
    store.close()
    again = HistoryStore(SQLiteHistoryDisk(tmp_path / "h.sqlite3"), retention_days=0, max_targets=1)
    again.load(5.0)
    assert list(again.targets) == ["dm:a:b"]
    assert sorted(again.channel_targets()) == ["#new", "#old"]
    again.forget("#old", 5.0)                 # not in memory, but maybe on disk: deleted
    assert again.take_erasures() == [("#old", 5.0)]
    again.close()


def _item(target: str, t: float, n: int) -> Item:
    return Item(target, t, f"id{n}", "bob!bob@h", "bob", "PRIVMSG", target, f"text {n}")


def test_targets_between_orders_by_latest_time_inside_the_window_and_keeps_the_limit(tmp_path):
    h = HistoryStore(SQLiteHistoryDisk(tmp_path / "h.sqlite3"))
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
    h = HistoryStore(SQLiteHistoryDisk(tmp_path / "h.sqlite3"))
    h.add(_item(dm_key("Alice", "bob"), 1.0, 1))
    h.add(_item(dm_key("carol", "bob"), 2.0, 2))
    h.add(_item("#chan", 3.0, 3))
    assert h.conversations("ALICE") == {"dm:alice:bob": "bob"}
    assert h.conversations("bob") == {"dm:alice:bob": "alice", "dm:bob:carol": "carol"}
    assert h.conversations("dave") == {}
    h.write(h.take_pending())
    h.close()
    loaded = HistoryStore(SQLiteHistoryDisk(tmp_path / "h.sqlite3"))
    assert loaded.load(now=10.0) == 3
    assert loaded.conversations("carol") == {"dm:bob:carol": "bob"}
    loaded.close()


def test_conversations_index_forgets_targets_no_longer_held(tmp_path):
    h = HistoryStore(SQLiteHistoryDisk(tmp_path / "h.sqlite3"))
    key = dm_key("alice", "bob")
    h.add(_item(key, 1.0, 1))
    del h.targets[key]  # as a bound on the targets held in memory does
    assert h.conversations("alice") == {} and h.dm_keys == {}
    h.close()
