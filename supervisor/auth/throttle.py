"""Per-client brute-force throttle for the login form: a few free tries, then doubling lockouts.

A client that came through Caddy (the request carries the proxy secret, `AuthWall.from_proxy`) is
the last address in `X-Forwarded-For`: Caddy replaces whatever the client sent with the one address
it vouches for, its peer's, or behind a trusted proxy the client that proxy names (supervisor.proxy).
A client that reached the app's loopback port directly is keyed by its own peer address under
"direct:" (`direct_key`): whatever X-Forwarded-For it sends, it shares no bucket with anyone who came
through Caddy, the owner included. The control socket is "local". An IPv6 client is keyed by its /64,
the block one device or household gets, so hopping addresses inside it gains nothing.

Memory stays bounded: at most `max_clients` entries, the least recently failed evicted first, and
entries whose lockout ended more than `forget_after` seconds ago are dropped.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

LOCAL = "local"
DIRECT = "direct:"


def client_key(forwarded_for: str | None) -> str:
    """The throttle key for a request's `X-Forwarded-For` value."""
    if not forwarded_for or not forwarded_for.strip():
        return LOCAL
    last = forwarded_for.rsplit(",", 1)[-1].strip()
    try:
        address = ipaddress.ip_address(last)
    except ValueError:
        return last[:64] or LOCAL
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def direct_key(peer: str | None) -> str:
    """The throttle key of a client that reached the app's TCP port without Caddy."""
    return DIRECT + (peer or "unknown")[:64]


@dataclass
class _Entry:
    failures: int = 0
    locked_until: float = 0.0  # monotonic seconds; the last failure's time while the tries are free


@dataclass(frozen=True)
class Failure:
    """A wrong password's consequence: the client's failure count, and the lockout it started (0: none)."""

    failures: int
    lockout: float


class Throttle:
    """Counts wrong passwords per client on a monotonic clock; all methods are synchronous and quick."""

    def __init__(
        self,
        *,
        free_attempts: int,
        lockout_initial: float,
        lockout_max: float,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
        forget_after: float = 3600.0,
    ) -> None:
        self.free_attempts = free_attempts
        self.lockout_initial = lockout_initial
        self.lockout_max = lockout_max
        self.max_clients = max_clients
        self.forget_after = forget_after
        self._clock = clock
        self._clients: OrderedDict[str, _Entry] = OrderedDict()  # least recently failed first

    def __len__(self) -> int:
        return len(self._clients)

    def retry_after(self, client: str) -> float:
        """Seconds the client must still wait before a password is even looked at; 0.0 when it may try."""
        entry = self._clients.get(client)
        if entry is None:
            return 0.0
        return max(0.0, entry.locked_until - self._clock())

    def failed(self, client: str) -> Failure:
        now = self._clock()
        self._forget_stale(now)
        entry = self._clients.pop(client, None) or _Entry()
        self._clients[client] = entry  # to the end: the most recently failed
        entry.failures += 1
        over = entry.failures - self.free_attempts
        # the exponent is capped so a long siege cannot overflow the float
        lockout = min(self.lockout_initial * 2 ** min(over - 1, 64), self.lockout_max) if over > 0 else 0.0
        entry.locked_until = now + lockout
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)
        return Failure(failures=entry.failures, lockout=lockout)

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)

    def _forget_stale(self, now: float) -> None:
        # least recently failed first; stop at the first one still worth keeping: the rest failed later,
        # so they are kept too, or only outlive their time until the ones in front of them go
        while self._clients:
            entry = next(iter(self._clients.values()))
            if now - entry.locked_until < self.forget_after:
                break
            self._clients.popitem(last=False)
