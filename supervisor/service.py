"""One supervised service: its state machine, restart policy, health watch and stop sequence.

States (supervisord's names, driven by trio's monotonic clock):

    stopped ─start─▶ starting ─ready─▶ running ◀─probe ok─▶ unhealthy
        ▲               │                 │                    │ N failures
        │               └──── exit ───────┴──── exit ──────────┴──▶ backoff ─delay─▶ starting
        └─ stop ── stopping ◀─ stop (from any live state)            │ crash loop
                                                                    ▼
                                     exited (policy says no restart)   fatal (until started again)

`supervise` runs for the life of the daemon in its nursery; `start`, `stop` and `restart` steer it.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx
import structlog
import trio

from . import http
from .backoff import Backoff
from .config import ServiceConfig
from .errors import SpawnError
from .layout import resolve_executable
from .logs import ServiceLog, Stream
from .memory import Measured
from .ports import busy_reason
from .probe import HttpProbe
from .reaper import ExitStatus, Reaper
from .spawn import Child, spawn


class State(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    UNHEALTHY = "unhealthy"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    EXITED = "exited"
    FATAL = "fatal"


#: States in which the service will not run again until someone starts it.
RESTING = frozenset({State.STOPPED, State.EXITED, State.FATAL})
#: States a service only passes through.
TRANSIENT = frozenset({State.STARTING, State.STOPPING})


@dataclass(frozen=True)
class Launch:
    """What one run of a service starts with, worked out just before it starts (by `Service.prepare`).

    The environment and the user are runtime values (the agent's allowlist, a merged opencode config,
    a generated password), so they are computed per start rather than stored in the config.
    """

    env: Mapping[str, str]
    user: tuple[int, int] | None = None  # (uid, gid) to run as; None: the daemon's own
    headers: Mapping[str, str] = field(default_factory=dict)  # sent with its probes and dispose call


def plain_launch(config: ServiceConfig) -> Launch:
    """The daemon's environment with the service's own `env` on top, as the daemon's own user."""
    return Launch(env={**os.environ, **config.env})


_START_RETRY = 0.1  # seconds between readiness probes while starting
_DRAIN = 0.5  # seconds to read what a dead child left in its pipes; orphans may hold them open


class Service:
    """Runs one service's process again and again, as its restart policy says."""

    def __init__(
        self,
        name: str,
        config: ServiceConfig,
        *,
        reaper: Reaper,
        log: ServiceLog,
        search_path: Callable[[], str],
        prepare: Callable[[ServiceConfig], Launch] = plain_launch,
        describe_port: Callable[[int], str] | None = None,
    ) -> None:
        """`prepare` gives each start its environment and user; it may raise SpawnError (shown as the
        reason the start failed)."""
        self.name = name
        self.config = config
        self.output = log
        self._reaper = reaper
        self._search_path = search_path  # where argv[0] is looked up (supervisor.layout)
        self._prepare = prepare
        self._launch = Launch(env={})
        self._describe_port = describe_port or (lambda port: f"services.{name}.owns_ports")
        self._log = structlog.get_logger("dancodes.service").bind(service=name)

        self.state = State.STOPPED
        self.reason: str | None = None
        self.pid: int | None = None
        self.run_id: str | None = None
        self.healthy: bool | None = None
        self.started_at: float | None = None
        self.healthy_since: float | None = None
        self.starts = 0
        self._attempts = 0  # starts tried, including those that failed to spawn
        self._spawned_at = 0.0  # wall clock, to match output lines of the current run
        self.last_exit: ExitStatus | None = None
        self.last_exit_at: float | None = None  # wall clock, for people
        #: Set once the service is first ready, or has first failed to start: what dependents wait for.
        self.settled = trio.Event()

        self._want = False
        self._next_delay = 0.0
        self._backoff = Backoff(config.restart)
        self._command = trio.Event()
        self._transition = trio.Event()
        self._scope: trio.CancelScope | None = None
        self._listeners: list[Callable[[Service], None]] = []
        self._spawn_listeners: list[Callable[[Service], None]] = []
        self.memory = Measured()  # what the memory watch measured (supervisor.memory)

    # -- steering --------------------------------------------------------------------------

    def start(self) -> None:
        """Run the service (again); a fatal or exited service starts over with a fresh backoff."""
        if self._want and self.state not in RESTING:
            if self.state == State.BACKOFF:  # asked to start now: skip the rest of the delay
                self._next_delay = 0.0
                self._poke()
            return
        self._want = True
        self._next_delay = 0.0
        self._backoff.reset()
        self._poke()

    async def start_and_wait(self, timeout: float) -> None:
        """Start, then wait (at most `timeout`) until that start has played out: running, or failed."""
        if self._want and self.state in (State.RUNNING, State.UNHEALTHY):
            return
        attempt = self._attempts
        self.start()
        with trio.move_on_after(timeout):
            await self.wait_until(
                lambda s: not s._want or (s._attempts > attempt and s.state not in TRANSIENT)
            )

    async def stop(self) -> None:
        """Stop the process with its stop sequence and keep it stopped; returns once it is."""
        self._want = False
        self._poke()
        await self.wait_until(lambda s: s.state in RESTING)

    async def restart(self) -> None:
        await self.stop()
        self.start()

    def reconfigure(self, config: ServiceConfig) -> None:
        """Use `config` from the next start on."""
        self.config = config
        self._backoff.policy = config.restart

    async def wait_until(self, predicate: Callable[[Service], bool]) -> None:
        while not predicate(self):
            await self._transition.wait()

    def on_change(self, listener: Callable[[Service], None]) -> None:
        self._listeners.append(listener)

    def on_spawn(self, listener: Callable[[Service], None]) -> None:
        """Call `listener` right after each process is spawned (pid and run_id are set)."""
        self._spawn_listeners.append(listener)

    @property
    def uptime(self) -> float | None:
        if self.pid is None or self.started_at is None:
            return None
        return trio.current_time() - self.started_at

    def as_json(self) -> dict[str, Any]:
        uptime = self.uptime
        return {
            "name": self.name,
            "state": str(self.state),
            "pid": self.pid,
            "uptime": None if uptime is None else round(uptime, 3),
            "restarts": max(0, self.starts - 1),
            "healthy": self.healthy,
            "reason": self.reason,
            "policy": self.config.restart.policy,
            "run": self.run_id,
            "last_exit": None
            if self.last_exit is None
            else {**self.last_exit.as_json(), "at": self.last_exit_at},
            # the ceiling (supervisor.memory): the tree's RSS as last measured, the limits, its restarts
            "memory_mb": None if self.memory.rss_mb is None else round(self.memory.rss_mb, 1),
            "memory_limit_mb": self.config.memory_limit_mb,
            "memory_hard_limit_mb": self.config.memory_hard_limit_mb,
            "memory_restarts": self.memory.restarts,
            "memory_note": self.memory.note,
            "memory_checked_at": self.memory.checked_at,
        }

    # -- the supervise loop ---------------------------------------------------------------------

    async def supervise(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            self._command = trio.Event()
            if not self._want:
                if self.state not in RESTING:
                    self._set(State.STOPPED)
                await self._command.wait()
                continue
            if self._next_delay > 0:
                self._set(State.BACKOFF, self.reason)
                with trio.CancelScope() as self._scope:
                    await trio.sleep(self._next_delay)
                self._scope = None
                if not self._want:
                    continue
            await self._run_once()

    def _poke(self) -> None:
        self._command.set()
        if self._scope is not None:
            self._scope.cancel()

    def _set(self, state: State, reason: str | None = None) -> None:
        changed = state != self.state or reason != self.reason
        self.state, self.reason = state, reason
        if changed:
            self._log.info("state", state=str(state), reason=reason, pid=self.pid)
            for listener in self._listeners:
                listener(self)
        self._transition.set()
        self._transition = trio.Event()

    async def _run_once(self) -> None:
        self._attempts += 1
        self._set(State.STARTING)
        taken = self._taken_port()
        if taken is not None:  # starting anyway would share the port (SO_REUSEPORT) or crash on it
            self._finish(None, failure=taken)
            return
        try:
            child = self._spawn()
        except SpawnError as exc:
            self._finish(None, failure=str(exc))
            return
        for listener in self._spawn_listeners:
            listener(self)
        failure: str | None = None
        try:
            async with trio.open_nursery() as pumps:
                pumps.start_soon(self._pump, child.stdout, "stdout")
                pumps.start_soon(self._pump, child.stderr, "stderr")
                try:
                    with trio.CancelScope() as self._scope:
                        failure = await self._watch(child)
                finally:
                    self._scope = None
                    if child.alive:
                        with trio.CancelScope(shield=True):
                            await self._terminate(child, failure)
                    # helpers in the service's process group die with it
                    child.signal_group(signal.SIGKILL)
                    pumps.cancel_scope.deadline = trio.current_time() + _DRAIN
        finally:
            self.pid = None
        self._finish(child.status, failure=failure)

    def _spawn(self) -> Child:
        argv = list(self.config.argv)
        exe = resolve_executable(argv[0], self._search_path())
        if exe is None:
            raise SpawnError(f"executable '{argv[0]}' not found")
        argv[0] = exe
        self._launch = launch = self._prepare(self.config)
        self.run_id = uuid.uuid4().hex[:12]
        env = dict(launch.env)
        env["DANCODES_SERVICE"] = self.name
        env["DANCODES_SERVICE_RUN"] = self.run_id
        child = spawn(self._reaper, argv, env=env, cwd=self.config.cwd, user=launch.user)
        self.pid = child.pid
        self.starts += 1
        self.started_at = trio.current_time()
        self._spawned_at = time.time()
        self.healthy = None
        self.healthy_since = None
        self._log.info("spawned", pid=child.pid, argv=argv, run=self.run_id)
        return child

    def _taken_port(self) -> str | None:
        """Why this start must not happen: a port the service owns is held by someone else."""
        for port in self.config.owned_ports():
            reason = busy_reason(port, self._describe_port(port))
            if reason is not None:
                return reason
        return None

    async def _watch(self, child: Child) -> str | None:
        """Wait for readiness, then watch health; return why to stop it, or None once it exited."""
        probe_cfg = self.config.probe
        probe = HttpProbe(probe_cfg, headers=self._launch.headers) if probe_cfg.url else None
        try:
            ready = await self._wait_ready(child, probe)
            if not child.alive:
                return None
            if not ready:
                return f"not ready after {probe_cfg.start_timeout:g}s"
            self.healthy = True
            self.healthy_since = trio.current_time()
            self._set(State.RUNNING)
            self.settled.set()
            failures = 0
            while True:
                with trio.move_on_after(probe_cfg.interval):
                    await child.wait()
                    return None
                if probe is None:
                    continue
                result = await probe.check()
                if not child.alive:
                    return None
                if result.ok:
                    if failures:
                        self._log.info("probe_recovered", after_failures=failures)
                    failures = 0
                    if not self.healthy:
                        self.healthy = True
                        self.healthy_since = trio.current_time()
                        self._set(State.RUNNING)
                    continue
                failures += 1
                self.healthy = False
                self.healthy_since = None
                detail = f"probe failed {failures}/{probe_cfg.failures}: {result.detail}"
                self._set(State.UNHEALTHY, detail)
                if failures >= probe_cfg.failures:
                    return f"unhealthy: {detail}"
        finally:
            if probe is not None:
                await probe.aclose()

    async def _wait_ready(self, child: Child, probe: HttpProbe | None) -> bool:
        cfg = self.config.probe
        if probe is None:
            with trio.move_on_after(cfg.start_seconds):
                await child.wait()
                return False
            return True
        with trio.move_on_after(cfg.start_timeout):
            while child.alive:
                if (await probe.check(cfg.ready_timeout)).ok:
                    return True
                with trio.move_on_after(_START_RETRY):
                    await child.wait()
        return False

    async def _terminate(self, child: Child, failure: str | None) -> None:
        """The stop sequence: dispose, stop signal to the group, grace, SIGKILL."""
        self._set(State.STOPPING, failure)
        grace = self.config.stop_grace
        if failure is None and self.healthy and self.config.dispose_url:
            await self._dispose(timeout=min(1.0, grace / 2))
        child.signal_group(signal.Signals[self.config.stop_signal])
        child.signal_group(signal.SIGCONT)  # a stopped process cannot act on SIGTERM otherwise
        with trio.move_on_after(grace):
            await child.wait()
            return
        self._log.warning("stop_grace_expired", pid=child.pid, grace=grace)
        child.signal_group(signal.SIGKILL)
        with trio.move_on_after(5):
            await child.wait()

    async def _dispose(self, *, timeout: float) -> None:
        assert self.config.dispose_url is not None
        with trio.move_on_after(timeout):
            try:
                async with http.client(timeout=timeout, headers=dict(self._launch.headers)) as client:
                    await client.post(self.config.dispose_url)
                    return
            except httpx.HTTPError as exc:
                self._log.warning("dispose_failed", error=str(exc) or type(exc).__name__)
                return
        self._log.warning("dispose_timed_out", timeout=timeout)

    def _finish(self, status: ExitStatus | None, *, failure: str | None) -> None:
        """Decide what follows an exit: rest, back off, or give up."""
        now = trio.current_time()
        if status is not None:
            self.last_exit = status
            self.last_exit_at = time.time()
        stable = (
            self.healthy_since is not None and now - self.healthy_since >= self.config.restart.stable_after
        )
        self.healthy = None
        self.healthy_since = None
        if not self._want:
            self._set(State.STOPPED)
            return
        why = failure or self._describe_exit(status)
        failed = failure is not None or status is None or not status.success
        policy = self.config.restart
        if policy.policy == "never" or (policy.policy == "on-failure" and not failed):
            self._want = False
            self.settled.set()
            self._set(State.EXITED, why)
            return
        if stable:
            self._backoff.reset()
        self._backoff.record_failure(now)
        if self._backoff.crash_looping:
            loop = (
                f"crash loop: {self._backoff.policy.crash_loop_failures} failures in "
                f"{self._backoff.policy.crash_loop_window:g}s"
            )
            if policy.on_crash_loop == "fatal":
                self._want = False
                self.settled.set()
                self._set(State.FATAL, f"{loop}; last: {why}")
                return
            why = f"{loop}, retrying every {self._backoff.slow_delay():g}s; last: {why}"
        self._next_delay = self._backoff.pause()
        if self._next_delay > 0:
            self._log.info(
                "backoff",
                delay=round(self._next_delay, 3),
                failures=self._backoff.consecutive,
                crash_loop=self._backoff.crash_looping,
            )
        if failed:
            self.settled.set()
        self._set(State.BACKOFF if self._next_delay > 0 else State.STARTING, why)

    def _describe_exit(self, status: ExitStatus | None) -> str:
        if status is None:
            return "lost track of the process"
        text = status.describe()
        last = self.output.last_line("stderr", since=self._spawned_at) if not status.success else None
        return f"{text}: {last[:200]}" if last else text

    async def _pump(self, stream: trio.lowlevel.FdStream, name: Stream) -> None:
        pending = b""
        async with stream:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    break
                pending += data
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    self.output.append(name, raw.decode(errors="replace").rstrip("\r"))
                if len(pending) > 65536:
                    self.output.append(name, pending.decode(errors="replace"))
                    pending = b""
        if pending:
            self.output.append(name, pending.decode(errors="replace").rstrip("\r"))
