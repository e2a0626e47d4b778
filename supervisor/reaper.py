"""The one waiter: the only code in the daemon that calls `waitpid`.

A PID 1 (or a child subreaper) must reap every orphan that the kernel hands it. If anything else
in the process waited too, the two would steal each other's exit statuses, and CPython would then
report a crashed child as returncode 0. So every child the daemon starts is registered here before
the next checkpoint (see `supervisor.spawn`), one task wakes on SIGCHLD and on a slow timer, reaps
everything that has exited, hands each status to the owner of that pid, and logs the rest as
reaped orphans.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import structlog
import trio

log = structlog.get_logger("dancodes.reaper")

PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How a process ended: `code` as `os.waitstatus_to_exitcode` gives it (negative: killed by a signal)."""

    code: int

    @property
    def signal(self) -> str | None:
        if self.code >= 0:
            return None
        try:
            return signal.Signals(-self.code).name
        except ValueError:
            return f"signal {-self.code}"

    @property
    def success(self) -> bool:
        return self.code == 0

    def describe(self) -> str:
        if self.code >= 0:
            return f"exited with status {self.code}"
        return f"killed by {self.signal}"

    def as_json(self) -> dict[str, object]:
        return {
            "code": self.code if self.code >= 0 else None,
            "signal": self.signal,
            "description": self.describe(),
        }


class ChildExit:
    """The exit of one registered child: set once by the reaper, awaited by its owner."""

    __slots__ = ("_event", "_on_exit", "pid", "status")

    def __init__(self, pid: int, on_exit: Callable[[ExitStatus], None] | None = None) -> None:
        self.pid = pid
        self.status: ExitStatus | None = None
        self._event = trio.Event()
        self._on_exit = on_exit

    def _set(self, status: ExitStatus) -> None:
        self.status = status
        if self._on_exit is not None:
            self._on_exit(status)
        self._event.set()

    async def wait(self) -> ExitStatus:
        await self._event.wait()
        assert self.status is not None
        return self.status


class Reaper:
    """Owns every exit status in this process. Start `run` in a nursery before spawning anything."""

    def __init__(self, *, interval: float = 1.0) -> None:
        self.interval = interval
        self.orphans_reaped = 0
        self._children: dict[int, ChildExit] = {}

    def register(self, pid: int, on_exit: Callable[[ExitStatus], None] | None = None) -> ChildExit:
        """Claim the exit status of `pid`; call it before the next checkpoint after the spawn.

        `on_exit` runs synchronously in the reaper the moment the status is collected.
        """
        waiter = ChildExit(pid, on_exit)
        self._children[pid] = waiter
        return waiter

    @property
    def children(self) -> frozenset[int]:
        """The registered pids that have not exited yet."""
        return frozenset(self._children)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with trio.open_signal_receiver(signal.SIGCHLD) as signals:
            task_status.started()
            while True:
                self.reap()
                # SIGCHLDs coalesce, and one may land between reap() and here: the timer covers it.
                with trio.move_on_after(self.interval):
                    await signals.__anext__()

    def reap(self) -> int:
        """Collect every exited child now; return how many."""
        count = 0
        while True:
            try:
                pid, raw = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return count
            if pid == 0:
                return count
            count += 1
            status = ExitStatus(os.waitstatus_to_exitcode(raw))
            waiter = self._children.pop(pid, None)
            if waiter is not None:
                waiter._set(status)
            else:
                self.orphans_reaped += 1
                log.info("orphan_reaped", pid=pid, status=status.describe())


Mode = Literal["pid1", "subreaper"]


def become_reaper() -> Mode:
    """Make orphans come back to this process: it is PID 1 already, or it asks to be a subreaper."""
    if os.getpid() == 1:
        return "pid1"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(err)}")
    return "subreaper"
