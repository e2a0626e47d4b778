"""Live orphans: processes reparented to the daemon that it did not start; listing and killing them.

A tool process that opencode started in its own session outlives opencode and comes back to the
daemon (PID 1 or subreaper). Each service runs with `DANCODES_SERVICE` and `DANCODES_SERVICE_RUN`
in its environment, which its descendants inherit, so an orphan says which service run made it.

Killing is guarded: never the daemon, never a managed service, never a process outside the
daemon's own tree. Processes are only signalled and polled here; the reaper collects them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psutil
import trio

from .errors import KillRefused, NoSuchProcess


@dataclass(frozen=True, slots=True)
class Orphan:
    pid: int
    cmdline: list[str]
    age: float  # seconds
    cpu: float  # CPU seconds used, user + system
    rss: int  # bytes
    service: str | None  # the service it most likely came from
    service_run: str | None  # which run of that service

    def as_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "cmdline": self.cmdline,
            "age": round(self.age, 1),
            "cpu": round(self.cpu, 2),
            "rss": self.rss,
            "service": self.service,
            "service_run": self.service_run,
        }


def list_orphans(managed: Iterable[int], *, daemon_pid: int | None = None) -> list[Orphan]:
    """Live children of the daemon that it did not spawn itself (zombies are the reaper's)."""
    me = psutil.Process(daemon_pid or os.getpid())
    ours = set(managed)
    found: list[Orphan] = []
    now = time.time()
    for proc in me.children(recursive=False):
        if proc.pid in ours:
            continue
        try:
            with proc.oneshot():
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                cpu = proc.cpu_times()
                service, run = _origin(proc)
                found.append(
                    Orphan(
                        pid=proc.pid,
                        cmdline=proc.cmdline() or [proc.name()],
                        age=max(0.0, now - proc.create_time()),
                        cpu=cpu.user + cpu.system,
                        rss=proc.memory_info().rss,
                        service=service,
                        service_run=run,
                    )
                )
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return sorted(found, key=lambda o: o.pid)


def _origin(proc: psutil.Process) -> tuple[str | None, str | None]:
    try:
        env = proc.environ()
    except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return None, None
    return env.get("DANCODES_SERVICE"), env.get("DANCODES_SERVICE_RUN")


def check_killable(pid: int, services: Mapping[int, str], *, daemon_pid: int | None = None) -> psutil.Process:
    """The process for `pid` if the daemon may kill it; else NoSuchProcess or KillRefused."""
    me = daemon_pid or os.getpid()
    if pid == me:
        raise KillRefused(f"refusing to kill pid {pid}: it is the daemon itself", pid=pid)
    if pid in services:
        raise KillRefused(
            f"refusing to kill pid {pid}: it is the managed service '{services[pid]}' (use restart or stop)",
            pid=pid,
        )
    try:
        proc = psutil.Process(pid)
        ancestors = {p.pid for p in proc.parents()}
        if proc.status() == psutil.STATUS_ZOMBIE:
            raise NoSuchProcess(f"no live process with pid {pid}", pid=pid)
    except psutil.NoSuchProcess:
        raise NoSuchProcess(f"no live process with pid {pid}", pid=pid) from None
    if me not in ancestors:
        raise KillRefused(f"refusing to kill pid {pid}: it is not a descendant of the daemon", pid=pid)
    return proc


async def kill_tree(proc: psutil.Process, *, grace: float = 1.0) -> list[int]:
    """SIGTERM the process and its descendants, SIGKILL what is left after `grace`; return their pids."""
    try:
        tree = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    pids = [p.pid for p in tree]
    for p in tree:
        _signal(p, signal.SIGTERM)
        _signal(p, signal.SIGCONT)
    deadline = trio.current_time() + grace
    while trio.current_time() < deadline and any(_alive(p) for p in tree):
        await trio.sleep(0.02)
    for p in tree:
        if _alive(p):
            _signal(p, signal.SIGKILL)
    return pids


def _signal(proc: psutil.Process, sig: int) -> None:
    with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
        proc.send_signal(sig)  # psutil checks the pid was not reused since `proc` was made


def _alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
