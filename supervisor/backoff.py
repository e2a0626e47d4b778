"""Restart pacing: exponential backoff with jitter, and crash-loop detection over a window.

Pure arithmetic on monotonic timestamps handed in by the caller, so it is tested without a clock.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from .config import RestartPolicy


@dataclass
class Backoff:
    """Counts failures; says how long to wait before the next start, and when a crash loop began."""

    policy: RestartPolicy
    rng: random.Random = field(default_factory=random.Random)
    consecutive: int = 0
    _recent: deque[float] = field(default_factory=deque)
    _looping: bool = False

    def record_failure(self, now: float) -> None:
        self.consecutive += 1
        self._recent.append(now)
        while self._recent and self._recent[0] < now - self.policy.crash_loop_window:
            self._recent.popleft()
        # once in a crash loop, it stays one until the service proves stable (reset)
        self._looping = self._looping or len(self._recent) >= self.policy.crash_loop_failures

    def reset(self) -> None:
        """The service stayed healthy for the stable period: start over from the initial delay."""
        self.consecutive = 0
        self._recent.clear()
        self._looping = False

    @property
    def crash_looping(self) -> bool:
        return self._looping

    def delay(self) -> float:
        """Seconds to wait before the next start after `consecutive` failures.

        The first failure after a stable run restarts at once, as supervisord does: one crash is
        not a pattern, and a service's downtime is what the user feels. Then it doubles from
        `backoff_initial` up to `backoff_max`. Jitter spreads it, but never past `backoff_max`:
        that is the longest a service waits between two tries, whatever happens.
        """
        if self.consecutive <= 1:
            return 0.0
        cap = self.policy.backoff_max
        base = min(cap, self.policy.backoff_initial * 2 ** (self.consecutive - 2))
        spread = self.policy.backoff_jitter
        return float(min(cap, base * (1 + self.rng.uniform(-spread, spread))))

    def slow_delay(self) -> float:
        """The pause between retries once in a crash loop ("slow" mode): `slow_retry`, else `backoff_max`.

        Never more than `backoff_max` (the config refuses a longer slow_retry; this holds anyway).
        """
        cap = self.policy.backoff_max
        return float(min(cap, self.policy.slow_retry or cap))

    def pause(self) -> float:
        """Seconds before the next try: the slow pace once in a crash loop, else the backoff."""
        return self.slow_delay() if self._looping else self.delay()
