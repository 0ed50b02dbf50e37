"""Who the daemon's HTTP server lets in, and when a connection counts against `max_clients`.

A connection is unauthenticated until its request head is read: until then it holds only a pre-auth place,
PREAUTH_PER_ADDRESS per client address (an IPv6 client by its /64: one host has many addresses there) and
PREAUTH_TOTAL in all, and its head must arrive within PREAUTH_HEAD_TIMEOUT_S. New connections from one address
are also rate-bounded per address (CONNECTIONS_PER_S, CONNECTIONS_BURST). Only once the head is read and the
request authenticated (or public) does it take one of the `max_clients` slots; an unauthenticated flood therefore
never holds a slot, and a token holder's request is answered while one runs. Pure bookkeeping under one lock: no
I/O, so it is tested without sockets.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict

CONNECTIONS_PER_S, CONNECTIONS_BURST = 50.0, 100  # new connections accepted per second from one address
PREAUTH_PER_ADDRESS = 4  # connections one address may hold whose request head is not read yet
PREAUTH_TOTAL = 32  # the same, over every address
PREAUTH_HEAD_TIMEOUT_S = 2.0  # the request line and headers must arrive within this (slowloris)
MAX_ADDRESSES = 1024  # rate buckets kept (the least recently seen address is forgotten first)


class Bucket:
    """A token bucket: `take()` is True at most `rate` times a second on average, `burst` at once."""

    def __init__(self, rate: float, burst: int, now: float | None = None) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.at = float(burst), time.monotonic() if now is None else now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


def client_key(host: str) -> str:
    """The unit a client is counted by: an IPv4 address, or an IPv6 address's /64 (an IPv4-mapped one as IPv4)."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


class Admission:
    """Pre-auth places per address and in all, a rate bucket per address, and the `max_clients` slots."""

    def __init__(self, max_clients: int, *, per_address: int = PREAUTH_PER_ADDRESS, total: int = PREAUTH_TOTAL,
                 rate: float = CONNECTIONS_PER_S, burst: int = CONNECTIONS_BURST) -> None:  # fmt: skip
        self.max_clients, self.per_address, self.total = max_clients, per_address, total
        self.rate, self.burst = rate, burst
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()
        self._preauth: dict[str, int] = {}
        self.preauth = 0  # connections whose head is not read yet
        self.served = 0  # connections holding a slot

    def arrive(self, host: str, now: float) -> str | None:
        """A new connection from `host`: its key when it may be read (a pre-auth place is taken), else None."""
        key = client_key(host)
        with self._lock:
            bucket = self._buckets.pop(key, None) or Bucket(self.rate, self.burst, now)
            self._buckets[key] = bucket  # most recently seen last
            while len(self._buckets) > MAX_ADDRESSES:
                self._buckets.popitem(last=False)
            held = self._preauth.get(key, 0)
            if held >= self.per_address or self.preauth >= self.total or not bucket.take(now):
                return None
            self._preauth[key] = held + 1
            self.preauth += 1
            return key

    def head_read(self, key: str) -> None:
        """The connection's head is read (or it ended before): its pre-auth place is free."""
        with self._lock:
            held = self._preauth.get(key, 0) - 1
            if held > 0:
                self._preauth[key] = held
            else:
                self._preauth.pop(key, None)
            self.preauth -= 1

    def take_slot(self) -> bool:
        """An authenticated (or public) request: one of the `max_clients` slots, False when all are held."""
        with self._lock:
            if self.served >= self.max_clients:
                return False
            self.served += 1
            return True

    def free_slot(self) -> None:
        with self._lock:
            self.served -= 1
