"""Services a predecessor daemon left running: recorded while they run, ended by the next daemon.

Outside PID 1 a daemon killed with SIGKILL takes nothing with it: opencode and Caddy run in sessions
of their own and keep serving (and holding their ports), and so do the tools opencode started. So the
daemon keeps `<run_dir>/services.json`: each service's pid with its start time (clock ticks after
boot, field 22 of /proc/<pid>/stat: a pid reused later has another), and every run id it gave a
service (`DANCODES_SERVICE_RUN`, which all of that run's descendants inherit). The next daemon on the
same data_dir, once it holds the data_dir's lock (so the predecessor is surely gone), ends:

- each recorded service still running with the recorded start time, and its process group;
- every process whose environment carries one of the recorded run ids (tools of the old opencode).

Never itself or its ancestors, never a process started after it, never a pid whose start time does
not match, and nothing from another boot (the record names the boot it was made in). `select` is the
pure decision; the rest reads /proc and signals through pidfds, so a pid that is reused between the
check and the signal is never hit. Linux only, like the daemon.
"""

from __future__ import annotations

import contextlib
import os
import select as _select
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import structlog
import trio

log = structlog.get_logger("dancodes.predecessors")

#: In the run dir: the services of the daemon that holds (or last held) the data_dir.
RECORD_FILE = "services.json"
#: Run ids kept: enough for a long life of restarts, small enough to rewrite at every spawn.
MAX_RUNS = 256
_RUN_VAR = b"DANCODES_SERVICE_RUN="


class RecordedService(msgspec.Struct, kw_only=True):
    pid: int
    start: int  # clock ticks after boot when the process started
    run: str


class Record(msgspec.Struct, kw_only=True):
    boot_id: str
    daemon_pid: int
    services: dict[str, RecordedService] = msgspec.field(default_factory=dict)
    runs: list[str] = msgspec.field(default_factory=list)  # oldest first


@dataclass(frozen=True, slots=True)
class Seen:
    """A process as /proc shows it."""

    pid: int
    ppid: int
    pgrp: int
    start: int
    zombie: bool
    run: str | None  # DANCODES_SERVICE_RUN in its environment


@dataclass(frozen=True, slots=True)
class Target:
    pid: int
    start: int
    group: bool  # a recorded service leading its process group: the group goes with it
    why: str  # the service it was, or the run it came from


def select(record: Record, processes: Iterable[Seen], *, me: int) -> list[Target]:
    """The processes of `record` that are still alive, minus `me`, its ancestors and anything newer."""
    by_pid = {p.pid: p for p in processes}
    spare = {me}
    cursor = by_pid.get(me)
    while cursor is not None and cursor.ppid not in spare:
        spare.add(cursor.ppid)
        cursor = by_pid.get(cursor.ppid)
    mine = by_pid.get(me)
    newest = mine.start if mine is not None else None

    def eligible(p: Seen) -> bool:
        return p.pid not in spare and not p.zombie and (newest is None or p.start <= newest)

    found: dict[int, Target] = {}
    for name, svc in record.services.items():
        p = by_pid.get(svc.pid)
        if p is not None and p.start == svc.start and eligible(p):
            found[p.pid] = Target(p.pid, p.start, group=p.pgrp == p.pid, why=name)
    leaders = {t.pid: t.why for t in found.values() if t.group}
    runs = set(record.runs) | {svc.run for svc in record.services.values()}
    for p in by_pid.values():
        if p.pid in found or not eligible(p):
            continue
        if p.pgrp in leaders:
            found[p.pid] = Target(p.pid, p.start, group=False, why=f"group of {leaders[p.pgrp]}")
        elif p.run is not None and p.run in runs:
            found[p.pid] = Target(p.pid, p.start, group=False, why=f"run {p.run}")
    return sorted(found.values(), key=lambda t: t.pid)


# -- /proc ------------------------------------------------------------------------------------------


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, pgrp, start ticks) of `pid`, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return fields[0], int(fields[1]), int(fields[2]), int(fields[19])


def start_ticks(pid: int) -> int | None:
    stat = _stat(pid)
    return None if stat is None else stat[3]


def _run_of(pid: int) -> str | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    for item in environ.split(b"\0"):
        if item.startswith(_RUN_VAR):
            return item[len(_RUN_VAR) :].decode(errors="replace")
    return None


def processes() -> list[Seen]:
    seen = []
    for entry in os.listdir("/proc"):
        if not entry.isdecimal():
            continue
        pid = int(entry)
        stat = _stat(pid)
        if stat is None:
            continue
        state, ppid, pgrp, start = stat
        seen.append(Seen(pid, ppid, pgrp, start, zombie=state in ("Z", "X"), run=_run_of(pid)))
    return seen


# -- the record -------------------------------------------------------------------------------------


def read_record(path: Path) -> Record | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("service_record_unreadable", path=str(path), error=exc.strerror or str(exc))
        return None
    try:
        return msgspec.json.decode(data, type=Record)
    except msgspec.DecodeError as exc:
        log.warning("service_record_unreadable", path=str(path), error=str(exc))
        return None


class Recorder:
    """Keeps the record of this daemon's services up to date; told of every spawn."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.record = Record(boot_id=boot_id(), daemon_pid=os.getpid())
        self._write()

    def spawned(self, name: str, pid: int, run: str) -> None:
        start = start_ticks(pid)
        if start is not None:  # else it is gone already: nothing to end later
            self.record.services[name] = RecordedService(pid=pid, start=start, run=run)
        self.record.runs.append(run)
        del self.record.runs[:-MAX_RUNS]
        self._write()

    def _write(self) -> None:
        tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        try:
            tmp.write_bytes(msgspec.json.encode(self.record))
            os.replace(tmp, self.path)
        except OSError as exc:
            # the service runs anyway; only a successor's clean-up would miss it
            with contextlib.suppress(OSError):
                tmp.unlink()
            log.warning("service_record_failed", path=str(self.path), error=exc.strerror or str(exc))


# -- ending them ------------------------------------------------------------------------------------


class _Handle:
    """A target pinned by a pidfd: signals reach that process or nothing, never a reused pid."""

    def __init__(self, target: Target, fd: int) -> None:
        self.target = target
        self.fd = fd

    @classmethod
    def open(cls, target: Target) -> _Handle | None:
        try:
            fd = os.pidfd_open(target.pid)
        except OSError:
            return None  # gone already
        if start_ticks(target.pid) != target.start:  # checked once the fd holds the process
            os.close(fd)
            return None
        return cls(target, fd)

    def exited(self) -> bool:
        poller = _select.poll()
        poller.register(self.fd, _select.POLLIN)
        return bool(poller.poll(0))

    def signal(self, sig: signal.Signals) -> None:
        if self.target.group and not self.exited():  # the leader lives: its group id is still its own
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.target.pid, sig)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            signal.pidfd_send_signal(self.fd, sig)

    async def wait(self) -> None:
        await trio.lowlevel.wait_readable(self.fd)

    def close(self) -> None:
        os.close(self.fd)


async def end_predecessors(path: Path, *, grace: float = 2.0) -> list[int]:
    """End what the record at `path` left running: SIGTERM, `grace` seconds, then SIGKILL.

    Returns the pids ended. Call it holding the data_dir's lock, before starting any service.
    """
    record = read_record(path)
    if record is None or record.boot_id != boot_id():
        return []
    targets = select(record, processes(), me=os.getpid())
    handles = [h for h in (_Handle.open(t) for t in targets) if h is not None]
    if not handles:
        return []
    try:
        for h in handles:
            h.signal(signal.SIGTERM)
            h.signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        left = await _wait_all(handles, grace)
        for h in left:
            h.signal(signal.SIGKILL)
        stuck = await _wait_all(left, grace)
    finally:
        for h in handles:
            h.close()
    log.warning(
        "predecessor_killed",
        daemon_pid=record.daemon_pid,
        pids=[h.target.pid for h in handles],
        what=[f"{h.target.pid} ({h.target.why})" for h in handles],
        sigkill=[h.target.pid for h in left],
        still_alive=[h.target.pid for h in stuck],
    )
    return [h.target.pid for h in handles]


async def _wait_all(handles: list[_Handle], timeout: float) -> list[_Handle]:
    """Wait until every handle's process has exited, at most `timeout`; return those still running."""
    with trio.move_on_after(timeout):
        async with trio.open_nursery() as nursery:
            for h in handles:
                nursery.start_soon(h.wait)
    return [h for h in handles if not h.exited()]
