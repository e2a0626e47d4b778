"""A clone's progress, written by the git thread and read by the API from another thread.

Plain attribute writes of ints and strings are atomic under the GIL, so readers need no lock;
they may see counters from two consecutive updates, which is fine for a progress bar.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Phase = Literal["connecting", "receiving", "resolving", "checkout", "done", "failed"]


@dataclass
class CloneProgress:
    phase: Phase = "connecting"
    received_objects: int = 0
    total_objects: int = 0
    indexed_deltas: int = 0
    total_deltas: int = 0
    received_bytes: int = 0
    started: float = field(default_factory=time.time)
    finished: float | None = None
    error: str | None = None
    # Called in the git thread after each update; must be quick and must not raise.
    on_update: Callable[[CloneProgress], None] | None = field(default=None, repr=False, compare=False)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def cancel(self) -> None:
        """Ask the clone to stop: the next transfer callback aborts it and the clone leaves nothing."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def update(
        self,
        *,
        received_objects: int,
        total_objects: int,
        indexed_deltas: int,
        total_deltas: int,
        received_bytes: int,
    ) -> None:
        """Record libgit2's transfer counters and derive the phase from them."""
        self.received_objects = received_objects
        self.total_objects = total_objects
        self.indexed_deltas = indexed_deltas
        self.total_deltas = total_deltas
        self.received_bytes = received_bytes
        if total_objects and received_objects < total_objects:
            self.phase = "receiving"
        elif indexed_deltas < total_deltas:
            self.phase = "resolving"
        else:
            # libgit2 reports no checkout progress through pygit2's clone; once every object is
            # in, what remains is the checkout.
            self.phase = "checkout"
        self._notify()

    def finish(self, error: str | None = None) -> None:
        self.error = error
        self.phase = "failed" if error else "done"
        self.finished = time.time()
        self._notify()

    def as_json(self) -> dict[str, object]:
        return {
            "phase": self.phase,
            "received_objects": self.received_objects,
            "total_objects": self.total_objects,
            "indexed_deltas": self.indexed_deltas,
            "total_deltas": self.total_deltas,
            "received_bytes": self.received_bytes,
            "started": self.started,
            "finished": self.finished,
            "error": self.error,
            "cancelled": self.cancelled,
        }

    def _notify(self) -> None:
        if self.on_update is not None:
            self.on_update(self)
