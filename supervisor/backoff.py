"""Restart pacing: exponential backoff with jitter, and crash-loop detection over a window.

Pure arithmetic on monotonic timestamps handed in by the caller, so it is tested without a clock.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from supervisor.config import RestartPolicy


@dataclass
class Backoff:
    """Counts failures; says how long to wait before the next start, and when a crash loop began."""

    policy: RestartPolicy
    rng: random.Random = field(default_factory=random.Random)
    consecutive: int = 0
    _recent: deque[float] = field(default_factory=deque)

    def record_failure(self, now: float) -> None:
        self.consecutive += 1
        self._recent.append(now)
        while self._recent and self._recent[0] < now - self.policy.crash_loop_window:
            self._recent.popleft()

    def reset(self) -> None:
        """The service stayed healthy for the stable period: start over from the initial delay."""
        self.consecutive = 0
        self._recent.clear()

    @property
    def crash_looping(self) -> bool:
        return len(self._recent) >= self.policy.crash_loop_failures

    def delay(self) -> float:
        """Seconds to wait before the next start after `consecutive` failures."""
        if self.consecutive == 0:
            return 0.0
        base = min(self.policy.backoff_max, self.policy.backoff_initial * 2 ** (self.consecutive - 1))
        spread = self.policy.backoff_jitter
        return base * (1 + self.rng.uniform(-spread, spread))
