"""Failed sign-ins slow down where they come from, never the account they aim at.

A lock per user name let anyone keep a safety officer out by typing five wrong passwords.
Here every failure is charged to the client address and to the (address, user name) pair:
a few tries are free, then each further try waits twice as long (2 s, 4 s, ... up to
15 minutes), and a key quiet for 15 minutes after its wait is forgotten. The right password
from another address is never refused; from the hammering address it waits like any
guess (a guesser must not learn that a guess was right).

Pure, with an injected clock. Memory is bounded: each table keeps at most `max_keys` keys,
dropping the longest-quiet first, so an attacker rotating user names or addresses cannot
grow it (dropping a key only forgets failures, it never refuses anyone).
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

FREE_PER_USER = 5  # failures free of delay per address and user name
FREE_PER_ADDRESS = 20  # per address, over every user name (a control room shares one)
FIRST_DELAY = timedelta(seconds=2)
MAX_DELAY = timedelta(minutes=15)
QUIET = timedelta(minutes=15)  # after its wait, a key quiet this long is forgotten
MAX_KEYS = 10_000


@dataclass
class _Failures:
    count: int
    last: datetime


class Backoff:
    """Failures per key, and how long the next try must wait."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        free: int,
        *,
        first: timedelta = FIRST_DELAY,
        cap: timedelta = MAX_DELAY,
        quiet: timedelta = QUIET,
        max_keys: int = MAX_KEYS,
    ):
        self._clock = clock
        self.free, self.first, self.cap, self.quiet = free, first, cap, quiet
        self.max_keys = max_keys
        # oldest failure first: expiry and eviction look at the front only
        self._keys: OrderedDict[str, _Failures] = OrderedDict()

    def delay(self, count: int) -> timedelta:
        """The wait after `count` failures."""
        if count < self.free:
            return timedelta(0)
        return min(self.cap, self.first * 2 ** min(count - self.free, 32))

    def _expired(self, f: _Failures, now: datetime) -> bool:
        return now - f.last > self.delay(f.count) + self.quiet

    def _prune(self, now: datetime) -> None:
        while self._keys:
            f = next(iter(self._keys.values()))
            if not self._expired(f, now) and len(self._keys) <= self.max_keys:
                return
            self._keys.popitem(last=False)

    def wait(self, key: str) -> float:
        """Seconds until `key` may try again (0: now)."""
        now = self._clock()
        self._prune(now)
        f = self._keys.get(key)
        if f is None:
            return 0.0
        return max(0.0, (f.last + self.delay(f.count) - now).total_seconds())

    def failed(self, key: str) -> None:
        now = self._clock()
        f = self._keys.pop(key, None)
        if f is None or self._expired(f, now):
            f = _Failures(0, now)
        f.count, f.last = f.count + 1, now
        self._keys[key] = f  # to the back: the most recent failure
        self._prune(now)

    def forget(self, key: str) -> None:
        self._keys.pop(key, None)

    def __len__(self) -> int:
        return len(self._keys)


def address_key(host: str) -> str:
    """The address failures are charged to: an IPv4 address, or an IPv6 /64 (one machine
    can take any address of its /64)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]  # not an address (a test client, a Unix socket): as it is
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class SigninGuard:
    """Backoff per address and per (address, user name); thread-safe."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        free_per_user: int = FREE_PER_USER,
        free_per_address: int = FREE_PER_ADDRESS,
        max_keys: int = MAX_KEYS,
    ):
        self.by_address = Backoff(clock, free_per_address, max_keys=max_keys)
        self.by_pair = Backoff(clock, free_per_user, max_keys=max_keys)
        self._lock = threading.Lock()

    @staticmethod
    def _keys(host: str, username: str) -> tuple[str, str]:
        addr = address_key(host)
        return addr, f"{addr} {username.casefold()}"

    def retry_after(self, host: str, username: str) -> int:
        """Whole seconds to wait before this try is looked at (0: now)."""
        addr, pair = self._keys(host, username)
        with self._lock:
            wait = max(self.by_address.wait(addr), self.by_pair.wait(pair))
        return math.ceil(wait)

    def failed(self, host: str, username: str) -> None:
        addr, pair = self._keys(host, username)
        with self._lock:
            self.by_address.failed(addr)
            self.by_pair.failed(pair)

    def succeeded(self, host: str, username: str) -> None:
        """The pair starts afresh; the address keeps its count (signing in to one's own
        account between guesses at another must not reset the guesser)."""
        _, pair = self._keys(host, username)
        with self._lock:
            self.by_pair.forget(pair)
