"""The memory ceiling of a service: `services.<name>.memory_limit_mb` and `memory_hard_limit_mb`.

opencode's RSS only grows (DESIGN §2: 314 MB idle, 1-4 GB after a day or two upstream, then a wedge); on a
1 GB machine the bound is a restart. What is measured is the RSS of the service's whole process tree (its
LSP and MCP children and the agent's tools count: they are what the machine runs out of).

`decide` is the one place the rule is applied, pure:

    no limit, or nothing measured              ok
    over a limit at the first measure of a run exempt for that run: reported, never restarted (a fresh
                                               process over the limit would be restarted forever)
    over the hard limit, twice in a row        restart now, even mid-turn (once could be a child's spike)
    over the limit while a chat is in a turn   wait (the restart happens the moment none is)
    over the limit, no turn running            restart
    else                                       ok

`MemoryWatch` measures every `daemon.memory_interval` seconds, and at once when a chat's status changes (a
turn that ends may be the moment a waiting restart happens), and carries the verdicts out.
"""

from __future__ import annotations

import contextlib
import ctypes
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

import psutil
import structlog
import trio

from .config import ServiceConfig

log = structlog.get_logger("dancodes.memory")

Action = Literal["ok", "exempt", "wait", "restart"]
MB = 1024 * 1024


@dataclass(frozen=True)
class Verdict:
    action: Action
    note: str | None  # what status shows, None when all is well


def decide(
    rss_mb: float | None,
    limit: float | None,
    hard: float | None,
    *,
    busy: bool,
    first_of_run: bool,
    over_hard_before: bool = False,
) -> Verdict:
    """What to do about a service whose process tree uses `rss_mb` (see the module's table)."""
    if rss_mb is None or (limit is None and hard is None):
        return Verdict("ok", None)
    over_hard = hard is not None and rss_mb > hard
    over = over_hard or (limit is not None and rss_mb > limit)
    if not over:
        return Verdict("ok", None)
    key, value = ("memory_hard_limit_mb", hard) if over_hard else ("memory_limit_mb", limit)
    past = f"{rss_mb:.0f} MB is past {key} ({value:g} MB)"
    if first_of_run:
        return Verdict("exempt", f"{past} since it started: not restarted again (raise {key})")
    if over_hard and (over_hard_before or not busy):
        return Verdict("restart", f"{past}: restarted, even mid-turn")
    if busy:
        return Verdict("wait", f"{past}: restarting once no chat is in a turn")
    return Verdict("restart", f"{past}: restarted while no chat was in a turn")


def tree_rss_mb(pid: int) -> float | None:
    """The RSS of `pid` and every descendant, in MB; None when `pid` is gone."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):  # a child that ended meanwhile
            total += proc.memory_info().rss
    return total / MB


#: how often the daemon hands the heap pages it freed back to the system (`release_freed_heap`); a trim of
#: the daemon's small heap costs well under a millisecond
TRIM_EVERY = 10.0


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None)
        trim: Callable[[int], int] = libc.malloc_trim  # glibc's; musl has none
    except (OSError, AttributeError):
        return None
    return trim


_TRIM = _malloc_trim()


def release_freed_heap() -> None:
    """glibc keeps the pages Python frees for reuse: over months a daemon's RSS would be its peak, not its
    need. `malloc_trim(0)` gives them back (~0.7 MB after start-up, more after a burst of work)."""
    if _TRIM is not None:
        _TRIM(0)


class Measured:
    """What the watch knows of one service; shown in its status (`Service.as_json`)."""

    def __init__(self) -> None:
        self.rss_mb: float | None = None
        self.note: str | None = None
        self.restarts = 0  # restarts the ceiling made
        self.run: str | None = None  # the run measured last
        self.exempt_run: str | None = None  # a run over a limit from its first measure: never restarted
        self.waiting = False  # a restart waits for the turns to end (logged once)
        self.checked_at: float | None = None  # epoch seconds of the last measure
        self.over_hard = False  # the last measure was past the hard limit


class Watched(Protocol):
    """What the watch needs of a service (supervisor.service.Service)."""

    name: str
    config: ServiceConfig
    pid: int | None
    run_id: str | None
    memory: Measured

    @property
    def state(self) -> str: ...

    async def restart(self) -> None: ...


class MemoryWatch:
    """Measures each service with a `Measured` and restarts it as `decide` says."""

    def __init__(
        self,
        services: Callable[[], Mapping[str, Watched]],
        busy: Callable[[], bool],
        interval: Callable[[], float],
    ) -> None:
        self._services = services
        self._busy = busy
        self._interval = interval
        self._wake = trio.Event()

    def poke(self) -> None:
        """Measure now (a chat's status changed: a waiting restart may go ahead)."""
        self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        trimmed = trio.current_time() - TRIM_EVERY + 2.0  # the first a moment after start-up, once it settled
        while True:
            for svc in list(self._services().values()):
                await self.check(svc)
            if trio.current_time() - trimmed >= TRIM_EVERY:
                release_freed_heap()
                trimmed = trio.current_time()
            with trio.move_on_after(self._interval()):
                await self._wake.wait()
            self._wake = trio.Event()

    async def check(self, svc: Watched) -> Verdict:
        """Measure `svc` and act on the verdict; the verdict."""
        seen = svc.memory
        if svc.pid is None or svc.state not in ("running", "unhealthy"):  # starting: not yet its size
            if svc.pid is None:
                seen.rss_mb, seen.note, seen.waiting = None, None, False
            return Verdict("ok", seen.note)
        # inline: a handful of /proc reads (well under a millisecond), and no worker thread whose malloc
        # arena would cost the daemon's idle RSS about a megabyte
        rss = tree_rss_mb(svc.pid)
        first = seen.run != svc.run_id
        seen.run, seen.rss_mb, seen.checked_at = svc.run_id, rss, time.time()
        cfg = svc.config
        busy = self._busy()
        over_hard_before = seen.over_hard and not first
        seen.over_hard = (
            rss is not None and cfg.memory_hard_limit_mb is not None and rss > cfg.memory_hard_limit_mb
        )
        verdict = decide(
            rss,
            cfg.memory_limit_mb,
            cfg.memory_hard_limit_mb,
            busy=busy,
            first_of_run=first,
            over_hard_before=over_hard_before,
        )
        if seen.exempt_run == svc.run_id and verdict.action != "ok":
            # over since its first measure: reported while it stays over, never restarted
            verdict = decide(rss, cfg.memory_limit_mb, cfg.memory_hard_limit_mb, busy=busy, first_of_run=True)
        seen.note = verdict.note
        if verdict.action == "exempt" and seen.exempt_run != svc.run_id:
            seen.exempt_run = svc.run_id
            log.warning("memory_over_at_start", service=svc.name, rss_mb=round(rss or 0), note=verdict.note)
        elif verdict.action == "wait" and not seen.waiting:
            log.info("memory_restart_waiting", service=svc.name, rss_mb=round(rss or 0), note=verdict.note)
        elif verdict.action == "restart":
            seen.restarts += 1
            log.warning(
                "memory_restart",
                service=svc.name,
                rss_mb=round(rss or 0),
                limit_mb=cfg.memory_limit_mb,
                hard_limit_mb=cfg.memory_hard_limit_mb,
                busy=busy,
                restarts=seen.restarts,
            )
            await svc.restart()
        seen.waiting = verdict.action == "wait"
        return verdict
