"""Unit tests of :mod:`ircd.limits` with an injected clock: no sockets, no sleeping.

- :class:`TokenBucket`: a burst, then a steady rate; the wait it returns is exact.
- :class:`LoginThrottle`: per-(account, address) and per-address lockouts,
  ``locked_for``, the capped answer delay, success, the window and ``prune``.
- :class:`ConnectionLimiter`: ``max_clients``, ``max_per_ip``, exempt
  addresses and networks, connection classes (first match, -1 = default),
  ``release`` and ``configure``.
"""

from __future__ import annotations

import pytest

from ircd.config import ConnectionClass, LimitsSection
from ircd.limits import ConnectionLimiter, LoginThrottle, TokenBucket

# -- TokenBucket -------------------------------------------------------------------


def test_bucket_allows_the_burst_at_once_then_reports_the_exact_wait():
    bucket = TokenBucket(burst=3, rate=2.0, now=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == pytest.approx(0.5, abs=1e-12)     # one token at 2/s
    assert bucket.take(100.25) == pytest.approx(0.25, abs=1e-12)   # half a token has come
    assert bucket.take(100.5) == 0.0                                # exactly one token now
    assert bucket.take(100.5) == pytest.approx(0.5, abs=1e-12)


def test_bucket_refills_at_the_rate_and_never_beyond_the_burst():
    bucket = TokenBucket(burst=4, rate=4.0, now=0.0)
    for _ in range(4):
        assert bucket.take(0.0) == 0.0
    # 1 s later 4 tokens are back; a long idle time gives no more than the burst.
    assert [bucket.take(1.0) for _ in range(4)] == [0.0] * 4
    assert bucket.take(1.0) == pytest.approx(0.25, abs=1e-12)
    assert [bucket.take(1000.0) for _ in range(4)] == [0.0] * 4
    assert bucket.take(1000.0) == pytest.approx(0.25, abs=1e-12)


def test_bucket_steady_rate_is_exactly_the_configured_rate():
    # Binary fractions keep the arithmetic exact: 8 commands/s, polled every 1/64 s.
    bucket = TokenBucket(burst=1, rate=8.0, now=0.0)
    assert bucket.take(0.0) == 0.0
    allowed = []
    for step in range(1, 129):                 # 2 s
        if bucket.take(step / 64) == 0.0:
            allowed.append(step / 64)
    assert allowed == [k / 8 for k in range(1, 17)]   # exactly every 1/8 s: 16 in 2 s


def test_bucket_waiting_the_returned_time_always_succeeds():
    bucket = TokenBucket(burst=2, rate=3.0, now=5.0)
    now = 5.0
    for _ in range(10):
        wait = bucket.take(now)
        if wait:
            now += wait
            # Waiting what it said is enough (up to float rounding: < 1 ns more).
            assert bucket.take(now) < 1e-9


# -- LoginThrottle -------------------------------------------------------------------


def throttle(**kw) -> LoginThrottle:
    values = dict(login_failures_per_ip=5, login_failures_per_account=3, login_window=600.0,
                  login_lockout=300.0, login_delay_max=1.0)
    values.update(kw)
    return LoginThrottle(LimitsSection(**values))


def test_account_lockout_is_per_account_and_address():
    t = throttle()
    assert t.locked_for("10.0.0.1", "alice", 0.0) == 0.0
    t.failure("10.0.0.1", "alice", 0.0)
    t.failure("10.0.0.1", "alice", 1.0)
    assert t.locked_for("10.0.0.1", "alice", 1.0) == 0.0       # 2 < 3: not yet
    t.failure("10.0.0.1", "alice", 2.0)
    assert t.locked_for("10.0.0.1", "alice", 2.0) == pytest.approx(300.0)
    assert t.locked_for("10.0.0.1", "alice", 102.0) == pytest.approx(200.0)
    # Another address for the same account, and the same address for another account, may try.
    assert t.locked_for("10.0.0.2", "alice", 2.0) == 0.0
    assert t.locked_for("10.0.0.1", "bob", 2.0) == 0.0
    # The lockout ends after login_lockout seconds.
    assert t.locked_for("10.0.0.1", "alice", 302.0) == 0.0
    assert t.locked_for("10.0.0.1", "alice", 400.0) == 0.0


def test_address_lockout_covers_every_account_from_that_address():
    t = throttle()
    for i, name in enumerate(["a", "b", "c", "d", "e"]):   # 5 accounts, one failure each
        assert t.locked_for("10.0.0.9", "zed", float(i)) == 0.0
        t.failure("10.0.0.9", name, float(i))
    assert t.locked_for("10.0.0.9", "zed", 4.0) == pytest.approx(300.0)
    assert t.locked_for("10.0.0.9", "a", 10.0) == pytest.approx(294.0)
    assert t.locked_for("10.0.0.8", "zed", 4.0) == 0.0


def test_failure_delay_grows_half_a_second_per_recent_failure_and_is_capped():
    t = throttle(login_failures_per_account=100, login_failures_per_ip=100, login_delay_max=1.2)
    delays = [t.failure("10.0.0.1", "alice", float(i)) for i in range(5)]
    assert delays == [0.5, 1.0, 1.2, 1.2, 1.2]
    # The delay counts failures for this (account, address) only.
    assert t.failure("10.0.0.2", "alice", 5.0) == 0.5
    assert t.failure("10.0.0.1", "bob", 5.0) == 0.5


def test_success_forgets_the_accounts_failures_from_that_address():
    t = throttle()
    t.failure("10.0.0.1", "alice", 0.0)
    t.failure("10.0.0.1", "alice", 1.0)
    t.success("10.0.0.1", "alice")
    assert t.failure("10.0.0.1", "alice", 2.0) == 0.5           # counting starts again
    t.failure("10.0.0.1", "alice", 3.0)
    assert t.locked_for("10.0.0.1", "alice", 3.0) == 0.0        # 2 since the success, not 4


def test_failures_older_than_the_window_do_not_count():
    t = throttle(login_window=60.0)
    t.failure("10.0.0.1", "alice", 0.0)
    t.failure("10.0.0.1", "alice", 10.0)
    assert t.failure("10.0.0.1", "alice", 100.0) == 0.5          # the first two expired
    assert t.locked_for("10.0.0.1", "alice", 100.0) == 0.0


def test_prune_drops_expired_entries_and_keeps_live_ones():
    t = throttle(login_window=60.0, login_lockout=100.0)
    for i in range(3):
        t.failure("10.0.0.1", "alice", float(i))                  # locked until 102
    t.failure("10.0.0.2", "bob", 50.0)
    t.prune(70.0)
    assert t.locked_for("10.0.0.1", "alice", 70.0) == pytest.approx(32.0)  # lockout kept
    assert ("bob", "10.0.0.2") in t._fail_acct                    # still within the window
    assert ("alice", "10.0.0.1") not in t._fail_acct              # expired failures dropped
    t.prune(1000.0)
    assert t._fail_ip == {} and t._fail_acct == {} and t._locked == {}
    assert t.locked_for("10.0.0.1", "alice", 1000.0) == 0.0


def test_configure_applies_new_limits():
    t = throttle()
    t.configure(LimitsSection(login_failures_per_account=1, login_lockout=10.0))
    t.failure("10.0.0.1", "alice", 0.0)
    assert t.locked_for("10.0.0.1", "alice", 0.0) == pytest.approx(10.0)


# -- ConnectionLimiter ---------------------------------------------------------------


def limiter(sendq: int = 65536, **kw) -> ConnectionLimiter:
    kw.setdefault("exempt", [])
    return ConnectionLimiter(LimitsSection(**kw), sendq)


def test_max_per_ip_then_max_clients_and_release():
    lim = limiter(max_clients=4, max_per_ip=2)
    assert lim.admit("10.0.0.1") is None
    assert lim.admit("10.0.0.1") is None
    assert lim.admit("10.0.0.1") == "Too many connections from your IP"
    assert lim.admit("10.0.0.2") is None
    assert lim.admit("10.0.0.3") is None
    assert lim.total == 4
    assert lim.admit("10.0.0.4") == "Server full"
    assert lim.total == 4 and "10.0.0.4" not in lim.per_ip        # refusals count nothing
    lim.release("10.0.0.1")
    assert lim.admit("10.0.0.4") is None                          # room again
    assert lim.admit("10.0.0.5") == "Server full"
    for ip in ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]:
        lim.release(ip)
    assert lim.total == 0 and lim.per_ip == {}


def test_default_exempts_loopback_v4_and_v6():
    lim = ConnectionLimiter(LimitsSection(max_per_ip=1), 65536)
    for ip in ["127.0.0.1", "127.0.0.1", "127.9.9.9", "127.9.9.9", "::1", "::1"]:
        assert lim.admit(ip) is None, ip
    assert lim.admit("192.0.2.1") is None
    assert lim.admit("192.0.2.1") == "Too many connections from your IP"
    assert lim.class_for("127.0.0.5").exempt and lim.class_for("::1").exempt
    assert not lim.class_for("192.0.2.1").exempt


def test_exempt_networks_and_single_addresses_but_never_past_max_clients():
    lim = limiter(max_clients=6, max_per_ip=1, exempt=["10.1.0.0/16", "192.0.2.7", "2001:db8::/32"])
    assert lim.admit("10.1.2.3") is None
    assert lim.admit("10.1.2.3") is None                          # exempt via CIDR
    assert lim.admit("192.0.2.7") is None
    assert lim.admit("192.0.2.7") is None                         # exempt single address
    assert lim.admit("2001:db8::1") is None
    assert lim.admit("2001:db8::1") is None                       # IPv6 network
    assert lim.admit("10.1.2.3") == "Server full"                 # exemption is per IP only
    lim.release("10.1.2.3")
    lim.release("192.0.2.7")
    assert lim.admit("10.2.0.1") is None                          # outside 10.1/16
    assert lim.admit("10.2.0.1") == "Too many connections from your IP"
    assert lim.admit("192.0.2.8") is None
    assert lim.admit("192.0.2.8") == "Server full"


def test_classes_override_per_key_and_minus_one_means_default():
    bots = ConnectionClass(name="bots", networks=["10.1.0.0/16"], max_per_ip=5, flood_burst=200,
                           flood_rate=-1.0, flood_backlog=2000, sendq=8_388_608)
    other = ConnectionClass(name="other", networks=["10.0.0.0/8"], flood_rate=50.0)
    lim = limiter(sendq=4096, max_per_ip=2, flood_burst=20, flood_rate=4.0, flood_backlog=60,
                  classes=[bots, other])
    c = lim.class_for("10.1.2.3")
    assert (c.name, c.max_per_ip, c.flood_burst, c.flood_rate, c.flood_backlog, c.sendq) == (
        "bots", 5, 200, 4.0, 2000, 8_388_608)
    # The first matching class wins: 10.1/16 is also in 10/8, but it is "bots".
    d = lim.class_for("10.200.0.1")
    assert (d.name, d.max_per_ip, d.flood_burst, d.flood_rate, d.flood_backlog, d.sendq) == (
        "other", 2, 20, 50.0, 60, 4096)
    e = lim.class_for("192.0.2.1")
    assert (e.name, e.max_per_ip, e.flood_burst, e.flood_rate, e.flood_backlog, e.sendq) == (
        "default", 2, 20, 4.0, 60, 4096)
    for _ in range(5):
        assert lim.admit("10.1.2.3") is None
    assert lim.admit("10.1.2.3") == "Too many connections from your IP"
    assert lim.admit("10.200.0.1") is None
    assert lim.admit("10.200.0.1") is None
    assert lim.admit("10.200.0.1") == "Too many connections from your IP"


def test_unparseable_address_gets_the_defaults():
    lim = limiter(max_per_ip=1, classes=[ConnectionClass(networks=["0.0.0.0/0"], max_per_ip=9)])
    c = lim.class_for("unknown")
    assert c.name == "default" and c.max_per_ip == 1 and not c.exempt
    assert lim.admit("unknown") is None
    assert lim.admit("unknown") == "Too many connections from your IP"


def test_configure_keeps_counts_and_applies_new_classes():
    lim = limiter(max_clients=10, max_per_ip=1)
    assert lim.admit("10.0.0.1") is None
    assert lim.class_for("10.0.0.1").name == "default"
    lim.configure(LimitsSection(max_clients=10, max_per_ip=1, exempt=[],
                                classes=[ConnectionClass(name="new", networks=["10.0.0.0/24"],
                                                         max_per_ip=2)]), 65536)
    assert lim.total == 1 and lim.per_ip == {"10.0.0.1": 1}
    assert lim.class_for("10.0.0.1").name == "new"                # the cache was cleared
    assert lim.admit("10.0.0.1") is None
    assert lim.admit("10.0.0.1") == "Too many connections from your IP"


def test_bucket_give_back_returns_tokens_but_never_beyond_the_burst():
    bucket = TokenBucket(5, 1.0, 0.0)
    assert bucket.take_upto(0.0, 5) == 5
    bucket.give_back(3)
    assert bucket.take_upto(0.0, 10) == 3
    bucket.give_back(100)
    assert bucket.take_upto(0.0, 10) == 5


def test_max_per_ip_counts_an_ipv6_64_as_one_address():
    limiter = ConnectionLimiter(LimitsSection(max_per_ip=2, exempt=[]), 65536)
    assert limiter.admit("2001:db8:1:2::1") is None
    assert limiter.admit("2001:db8:1:2:ffff::7") is None
    assert limiter.admit("2001:db8:1:2::99") == "Too many connections from your IP"
    assert limiter.admit("2001:db8:1:3::1") is None  # another /64
    limiter.release("2001:db8:1:2::1")
    assert limiter.admit("2001:db8:1:2::99") is None
    narrow = ConnectionLimiter(LimitsSection(max_per_ip=1, exempt=[], ipv6_prefix=128), 65536)
    assert narrow.admit("2001:db8::1") is None
    assert narrow.admit("2001:db8::2") is None


def test_throttle_tables_hold_at_most_max_tracked_addresses_oldest_forgotten():
    import ircd.limits as limits_module

    throttle = LoginThrottle(LimitsSection(login_failures_per_ip=1, login_failures_per_account=1))
    cap = limits_module.MAX_TRACKED
    for i in range(cap + 500):
        throttle.failure(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", "acct", 0.0)
    assert len(throttle._fail_ip) == cap
    assert len(throttle._fail_acct) == cap
    assert len(throttle._locked) == cap
    # The newest are kept (locked out), the oldest forgotten.
    newest = cap + 499
    assert throttle.locked_for(f"10.{newest >> 16 & 255}.{newest >> 8 & 255}.{newest & 255}",
                               "acct", 1.0) > 0
    assert throttle.locked_for("10.0.0.0", "acct", 1.0) == 0
