"""Limits as plain objects with an injected clock: flood control, login throttling, connection limits.

Nothing here reads the time or touches a socket: every method takes ``now``
(seconds, any monotonic clock), so tests drive them without sleeping, as
Ergo's ``connection_limits`` package does.

- :class:`TokenBucket`: the per-client command budget (a burst, then a
  steady rate), as ngIRCd's penalty timer and Ergo's fakelag do.
- :class:`LoginThrottle`: failed passwords per (account, address) and per
  address, then a lockout with a clear message.
- :class:`ConnectionLimiter`: total and per-address connection counts, with
  exempt networks and connection classes (``[[limits.classes]]``).
- :class:`RegistrationThrottle`: new accounts per address (an IPv6 address
  counts as its ``[limits] ipv6_prefix`` network, :func:`address_key`).
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

from ircd.config import AccountsSection, ConnectionClass, LimitsSection


def address_key(ip: str, ipv6_prefix: int = 64) -> str:
    """The key a per-address throttle counts ``ip`` (a ``str`` address) under.

    An IPv4 address is itself; an IPv6 address is its ``/ipv6_prefix``
    network (``"2001:db8::1"`` with 64 gives ``"2001:db8::/64"``), because one
    host usually holds a whole /64 (RFC 6177; Ergo's ``ipv6-cidr-len``). An
    IPv4-mapped IPv6 address (``::ffff:1.2.3.4``) is the IPv4 address. A
    string that is not an address (a test's fake peer) is returned unchanged.
    """
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.ip_network(f"{addr}/{ipv6_prefix}", strict=False))
    return str(addr)


class TokenBucket:
    """``burst`` commands at once, refilled at ``rate`` commands per second.

    :meth:`take` returns 0.0 when a command may run now (and spends a token),
    otherwise the seconds to wait until one may.
    """

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, burst: int, rate: float, now: float) -> None:
        self.burst = float(burst)
        self.rate = rate
        self.tokens = float(burst)
        self.stamp = now

    def take_upto(self, now: float, n: int) -> int:
        """Spend tokens for up to ``n`` commands now; return how many may run (0..n).

        The batch form of :meth:`take`, for a connection that received several
        lines at once; :meth:`wait` says when the next token comes.
        """
        tokens = self.tokens + (now - self.stamp) * self.rate
        self.stamp = now
        if tokens > self.burst:
            tokens = self.burst
        allowed = n if tokens >= n else max(0, int(tokens))  # in debt (charge): none
        self.tokens = tokens - allowed
        return allowed

    def give_back(self, n: int) -> None:
        """Return ``n`` tokens spent by :meth:`take_upto` for lines that did not run
        after all (they wait behind an asynchronous step); never above ``burst``."""
        if n > 0:
            self.tokens = min(self.burst, self.tokens + n)

    def charge(self, now: float, n: int = 1) -> float:
        """Spend ``n`` tokens now even if that leaves the bucket in debt; return the
        tokens left (negative: that many commands' worth of debt).

        For work the server cannot delay, such as the PONG the WebSocket
        protocol sends for each PING frame: it costs like a line, and the lines
        after it wait until the debt is refilled (:meth:`take_upto` allows none
        while in debt, :meth:`wait` says how long).
        """
        tokens = self.tokens + (now - self.stamp) * self.rate
        self.stamp = now
        if tokens > self.burst:
            tokens = self.burst
        self.tokens = tokens - n
        return self.tokens

    def wait(self) -> float:
        """Seconds from the last call until one more token is available."""
        return max(0.0, (1.0 - self.tokens) / self.rate)

    def take(self, now: float) -> float:
        tokens = self.tokens + (now - self.stamp) * self.rate
        self.stamp = now
        if tokens > self.burst:
            tokens = self.burst
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return 0.0
        self.tokens = tokens
        return (1.0 - tokens) / self.rate


@dataclass(frozen=True, slots=True)
class ClassLimits:
    """The limits that apply to one client, resolved from ``[limits]`` and its class."""

    name: str
    max_per_ip: int
    flood_burst: int
    flood_rate: float
    flood_backlog: int
    sendq: int
    exempt: bool


class ConnectionLimiter:
    """Counts connections in total and per address (``str`` IPs; an IPv6 address
    counts as its ``[limits] ipv6_prefix`` network, :func:`address_key`).

    :meth:`admit` returns ``None`` and counts the connection, or a reason
    (``"Server full"``, ``"Too many connections from your IP"``) and counts
    nothing. Every admitted connection must be :meth:`release`-d once.
    """

    def __init__(self, limits: LimitsSection, default_sendq: int) -> None:
        self.total = 0
        self.per_ip: dict[str, int] = {}
        self.configure(limits, default_sendq)

    def configure(self, limits: LimitsSection, default_sendq: int) -> None:
        """Apply (re)loaded limits; current connections are kept."""
        self.limits = limits
        self.default_sendq = default_sendq
        self._exempt = [ipaddress.ip_network(n, strict=False) for n in limits.exempt]
        self._classes = [
            (cls, [ipaddress.ip_network(n, strict=False) for n in cls.networks])
            for cls in limits.classes
        ]
        self._cache: dict[str, ClassLimits] = {}

    def class_for(self, ip: str) -> ClassLimits:
        """The limits for a client from ``ip``."""
        cached = self._cache.get(ip)
        if cached is not None:
            return cached
        lim = self.limits
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            addr = None
        chosen: ConnectionClass | None = None
        if addr is not None:
            for cls, nets in self._classes:
                if any(addr in net for net in nets):
                    chosen = cls
                    break
        exempt = addr is not None and any(addr in net for net in self._exempt)
        result = ClassLimits("default", lim.max_per_ip, lim.flood_burst, lim.flood_rate,
                             lim.flood_backlog, self.default_sendq, exempt)
        if chosen is not None:  # -1 in a class means "as in [limits]"
            keys = ("max_per_ip", "flood_burst", "flood_rate", "flood_backlog", "sendq")
            overrides = {k: getattr(chosen, k) for k in keys if getattr(chosen, k) != -1}
            result = replace(result, name=chosen.name, **overrides)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[ip] = result
        return result

    def admit(self, ip: str) -> str | None:
        if self.total >= self.limits.max_clients:
            return "Server full"
        cls = self.class_for(ip)
        key = address_key(ip, self.limits.ipv6_prefix)
        count = self.per_ip.get(key, 0)
        if not cls.exempt and count >= cls.max_per_ip:
            return "Too many connections from your IP"
        self.total += 1
        self.per_ip[key] = count + 1
        return None

    def release(self, ip: str) -> None:
        """Forget one connection from ``ip`` that :meth:`admit` counted."""
        self.total -= 1
        key = address_key(ip, self.limits.ipv6_prefix)
        left = self.per_ip.get(key, 1) - 1
        if left > 0:
            self.per_ip[key] = left
        else:
            self.per_ip.pop(key, None)


MAX_TRACKED = 100_000
"""Most addresses (or (account, address) pairs) each throttle table holds; past it the
entry made longest ago is forgotten (:func:`bounded_setdefault`), so an attacker with
very many addresses costs bounded memory (expired entries also go with ``prune``)."""


def bounded_setdefault(table: dict, key: object, make: type = deque) -> Any:
    """``table.setdefault(key, make())``, first dropping the oldest entry (dicts keep
    insertion order) when ``table`` already holds :data:`MAX_TRACKED` entries."""
    value = table.get(key)
    if value is None:
        if len(table) >= MAX_TRACKED:
            del table[next(iter(table))]
        value = table[key] = make()
    return value


class LoginThrottle:
    """Failed logins per (account, address) and per address, within ``window`` seconds.

    After ``per_account`` failures for one account from one address, or
    ``per_ip`` failures from one address, further attempts from that address
    (for that account, or for any) are refused for ``lockout`` seconds. A
    correct password for the same account from another address still works.
    An IPv6 address counts as its ``ipv6_prefix`` network (:func:`address_key`).
    Each failure's answer is also delayed: :meth:`failure` returns the
    seconds to wait (0.5 s per recent failure, at most ``delay_max``).
    ``failures_total`` counts every failure since start (the
    ``chatserver_login_failures_total`` metric).
    """

    def __init__(self, limits: LimitsSection) -> None:
        self.failures_total = 0
        self._fail_ip: dict[str, deque[float]] = {}
        self._fail_acct: dict[tuple[str, str], deque[float]] = {}
        self._locked: dict[object, float] = {}
        self.configure(limits)

    def configure(self, limits: LimitsSection) -> None:
        self.per_ip = limits.login_failures_per_ip
        self.per_account = limits.login_failures_per_account
        self.window = limits.login_window
        self.lockout = limits.login_lockout
        self.delay_max = limits.login_delay_max
        self.ipv6_prefix = limits.ipv6_prefix

    def locked_for(self, ip: str, account_cf: str, now: float) -> float:
        """Seconds this address must still wait before trying ``account_cf``; 0 if it may."""
        ip = address_key(ip, self.ipv6_prefix)
        until = max(self._locked.get(ip, 0.0), self._locked.get((account_cf, ip), 0.0))
        return max(0.0, until - now)

    def _recent(self, table: dict, key, now: float) -> deque[float]:
        q = bounded_setdefault(table, key)
        while q and now - q[0] > self.window:
            q.popleft()
        return q

    def begin(self, ip: str, account_cf: str, now: float) -> float:
        """Start a password check for ``account_cf`` from ``ip``: the seconds to wait
        (> 0: refused, nothing counted), or 0 and the attempt is counted as a
        failure until :meth:`success` or :meth:`abandon` says otherwise.

        Counting the attempt before the check (which runs off the loop) means
        checks in flight at once cannot get more guesses at one account past
        the limit than sequential ones: with ``per_account`` attempts
        unanswered, the next is refused until one of them is settled. (The
        per-address count still counts answers only, so that a bouncer logging
        many accounts in at once is not held up; its overshoot is bounded by
        ``max_per_ip`` connections.)
        """
        wait = self.locked_for(ip, account_cf, now)
        if wait > 0:
            return wait
        key = address_key(ip, self.ipv6_prefix)
        by_acct = self._recent(self._fail_acct, (account_cf, key), now)
        if len(by_acct) >= self.per_account:
            return 1.0  # the limit is reached by attempts still being checked
        by_acct.append(now)
        return 0.0

    def abandon(self, ip: str, account_cf: str) -> None:
        """An attempt counted by :meth:`begin` was not checked after all (the database
        failed): it no longer counts."""
        q = self._fail_acct.get((account_cf, address_key(ip, self.ipv6_prefix)))
        if q:
            q.pop()

    def failure(self, ip: str, account_cf: str, now: float, begun: bool = False) -> float:
        """Record a wrong password (``begun``: the attempt counted by :meth:`begin`);
        return the delay (seconds) before answering it."""
        ip = address_key(ip, self.ipv6_prefix)
        self.failures_total += 1
        by_ip = self._recent(self._fail_ip, ip, now)
        by_acct = self._recent(self._fail_acct, (account_cf, ip), now)
        by_ip.append(now)
        if not begun or not by_acct:
            by_acct.append(now)
        if len(by_ip) >= self.per_ip:
            self._lock(ip, now + self.lockout)
        if len(by_acct) >= self.per_account:
            self._lock((account_cf, ip), now + self.lockout)
        return min(self.delay_max, 0.5 * len(by_acct))

    def _lock(self, key: object, until: float) -> None:
        if key not in self._locked and len(self._locked) >= MAX_TRACKED:
            del self._locked[next(iter(self._locked))]
        self._locked[key] = until

    def success(self, ip: str, account_cf: str, begun: bool = False) -> None:
        """A right password: forget this address's failures for the account (and
        the attempt :meth:`begin` counted; ``begun`` is for symmetry)."""
        ip = address_key(ip, self.ipv6_prefix)
        self._fail_acct.pop((account_cf, ip), None)

    def prune(self, now: float) -> None:
        """Drop expired entries (call now and then; keeps memory bounded)."""
        tables: tuple[dict, dict] = (self._fail_ip, self._fail_acct)
        for table in tables:
            expired = [k for k, q in table.items() if not q or now - q[-1] > self.window]
            for k in expired:
                del table[k]
        for lock in [k for k, until in self._locked.items() if until <= now]:
            del self._locked[lock]


class RegistrationThrottle:
    """New accounts per address: at most ``per_ip`` within ``window`` seconds.

    Counts per :func:`address_key` (an IPv6 /``ipv6_prefix`` network is one
    address). Every way of creating an account asks :meth:`reserve` before it
    starts the (off-loop) creation and :meth:`refund` if no account was
    created after all (the name was taken, the database failed), so that
    creations running at once cannot overshoot the limit. ``per_ip = 0``
    allows no new account at all. Config: ``[accounts] registrations_per_ip``,
    ``registrations_window``, ``[limits] ipv6_prefix``.
    """

    def __init__(self, accounts: AccountsSection, limits: LimitsSection) -> None:
        self._made: dict[str, deque[float]] = {}
        self.refused_total = 0
        self.configure(accounts, limits)

    def configure(self, accounts: AccountsSection, limits: LimitsSection) -> None:
        """Apply (re)loaded settings; the creations counted so far are kept."""
        self.per_ip = accounts.registrations_per_ip
        self.window = accounts.registrations_window
        self.ipv6_prefix = limits.ipv6_prefix

    def _recent(self, ip: str, now: float) -> deque[float]:
        q = bounded_setdefault(self._made, address_key(ip, self.ipv6_prefix))
        while q and now - q[0] >= self.window:
            q.popleft()
        return q

    def wait(self, ip: str, now: float) -> float:
        """Seconds until ``ip`` may create an account; 0.0 if it may now.

        With ``per_ip = 0`` this is ``window`` (there is never room).
        """
        if self.per_ip <= 0:
            return self.window
        q = self._recent(ip, now)
        if len(q) < self.per_ip:
            return 0.0
        return max(0.0, q[0] + self.window - now)

    def reserve(self, ip: str, now: float) -> float:
        """Count one account creation from ``ip`` if there is room and return 0.0;
        otherwise count nothing and return the seconds to wait (> 0)."""
        wait = self.wait(ip, now)
        if wait > 0:
            self.refused_total += 1
            return wait
        self._recent(ip, now).append(now)
        return 0.0

    def refund(self, ip: str, now: float) -> None:
        """Forget the latest creation counted for ``ip`` (it did not create an account)."""
        q = self._recent(ip, now)
        if q:
            q.pop()

    def prune(self, now: float) -> None:
        """Drop addresses with no creation in the window (keeps memory bounded)."""
        for key in [k for k, q in self._made.items() if not q or now - q[-1] >= self.window]:
            del self._made[key]
