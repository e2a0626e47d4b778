"""The daemon: ordered start, signals, config reload, the orphan policy and ordered stop.

async with trio.open_nursery() as nursery:
    reaper           the one waiter (supervisor.reaper)
    clones           background clones with progress (supervisor.projects.clones)
    app              /auth, /admin and the web app on 127.0.0.1 and the control socket, up first
    services         opencode, then Caddy once opencode is ready, then any others
    orphan policy    kills old orphans when configured
    housekeeper      worktree GC and idle opencode instances, on a schedule
SIGTERM/SIGINT → stop services in reverse order, kill leftover orphans, stop the app, exit 0
SIGHUP         → reload the config; a bad one is logged and the running one kept
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from typing import Any

import psutil
import structlog
import trio

from supervisor import __version__
from supervisor.auth import AuthWall
from supervisor.auth.wall import PROXY_SECRET_ENV
from supervisor.chats import ChatBoard
from supervisor.config import LoadedConfig, load_config, start_order
from supervisor.datadir import lock_data_dir, prepare_data_dir, unlock_data_dir
from supervisor.errors import DancodesError
from supervisor.logs import Redactor, ServiceLog, secret_values
from supervisor.opencode import OpencodeClient
from supervisor.orphans import Orphan, check_killable, kill_tree, list_orphans
from supervisor.projects.clones import Clones
from supervisor.projects.housekeeping import Housekeeper
from supervisor.projects.store import ProjectStore
from supervisor.reaper import Mode, Reaper, become_reaper
from supervisor.service import RESTING, Service

log = structlog.get_logger("dancodes.daemon")

#: The service that is the public listener: it alone gets the proxy secret.
CADDY = "caddy"


class Daemon:
    """The state the app and the signal handlers act on; `run` drives it."""

    def __init__(self, loaded: LoadedConfig, *, mode: Mode | None = None) -> None:
        self.loaded = loaded
        self.mode: Mode | None = mode
        self.pid = os.getpid()
        self.reaper = Reaper(interval=loaded.config.daemon.reap_interval)
        self.services: dict[str, Service] = {}
        self.started_at = 0.0
        self.stopping = False
        self.auth = AuthWall.from_config(loaded, os.environ)  # MissingSecret: refuse to start
        self._redactor = Redactor([*secret_values(), self.auth.proxy_secret])
        self._nursery: trio.Nursery | None = None
        for name in start_order(loaded):
            self.services[name] = self._make_service(name)
        paths = loaded.paths
        self.store = ProjectStore(
            paths.repos_dir,
            paths.worktrees_dir,
            loaded.config.git.remote_url,
            token=os.environ.get("GITHUB_TOKEN") or None,
        )
        self.clones = Clones(self.store)
        self.opencode = OpencodeClient(f"http://127.0.0.1:{loaded.config.ports.opencode}")
        self.chats = ChatBoard(self.opencode)
        self.housekeeper = Housekeeper(self.store, self.opencode, lambda: self.loaded.config.gc)

    def _make_service(self, name: str) -> Service:
        cfg = self.loaded.config
        return Service(
            name,
            cfg.services[name],
            reaper=self.reaper,
            home=self.loaded.paths.home,
            log=ServiceLog(name, cfg.daemon.log_tail, self._redactor),
            environ=self._proxy_environ() if name == CADDY else None,
        )

    def _proxy_environ(self) -> dict[str, str]:
        """Caddy's environment: the daemon's, plus the secret it adds to what it forwards to the app.

        Only Caddy gets it (the app trusts X-Forwarded-For on requests that carry it); never opencode.
        """
        return {**os.environ, PROXY_SECRET_ENV: self.auth.proxy_secret}

    # -- what the API reads -------------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, Any]]:
        # a required service that the config disables is not waited for
        required = [n for n in self.loaded.config.daemon.health_requires if n in self.services]
        ok = not self.stopping and all(self.services[name].healthy is True for name in required)
        return ok, {
            "status": "ok" if ok else "degraded",
            "daemon": {
                "pid": self.pid,
                "mode": self.mode,
                "version": __version__,
                "uptime": round(trio.current_time() - self.started_at, 3),
                "stopping": self.stopping,
                "orphans_reaped": self.reaper.orphans_reaped,
            },
            "services": {name: svc.as_json() for name, svc in self.services.items()},
            "disk": self.disk(),
        }

    def disk(self) -> dict[str, int]:
        """The volume holding data_dir: total, used and free bytes."""
        usage = shutil.disk_usage(self.loaded.paths.data_dir)
        return {"total": usage.total, "used": usage.used, "free": usage.free}

    def service_pids(self) -> dict[int, str]:
        return {svc.pid: name for name, svc in self.services.items() if svc.pid is not None}

    def orphans(self) -> list[Orphan]:
        return list_orphans(self.reaper.children, daemon_pid=self.pid)

    async def kill(self, pid: int) -> list[int]:
        proc = check_killable(pid, self.service_pids(), daemon_pid=self.pid)
        killed = await kill_tree(proc)
        log.info("process_killed", pid=pid, pids=killed)
        return killed

    async def kill_orphans(self, orphans: list[Orphan] | None = None) -> list[int]:
        killed: list[int] = []
        for orphan in self.orphans() if orphans is None else orphans:
            try:
                killed += await self.kill(orphan.pid)
            except DancodesError:
                continue  # gone meanwhile, or no longer ours
        return killed

    # -- running --------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[Daemon] = trio.TASK_STATUS_IGNORED) -> None:
        prepare_data_dir(self.loaded.paths)
        lock = lock_data_dir(self.loaded.paths)
        try:
            await self._run(task_status)
        finally:
            unlock_data_dir(lock)

    async def _run(self, task_status: trio.TaskStatus[Daemon]) -> None:
        from supervisor.api.server import serve_app  # the web stack loads only for a daemon

        if self.mode is None:
            self.mode = become_reaper()
        self.started_at = trio.current_time()
        log.info(
            "daemon_starting",
            pid=self.pid,
            mode=self.mode,
            version=__version__,
            data_dir=str(self.loaded.paths.data_dir),
            config=str(self.loaded.source or "defaults"),
        )
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(self.reaper.run)
                await nursery.start(self.clones.run)
                app_stop = trio.Event()
                await nursery.start(serve_app, self, app_stop)
                for svc in self.services.values():
                    await nursery.start(svc.supervise)
                    nursery.start_soon(self._start_when_ready, svc)
                nursery.start_soon(self._orphan_policy)
                await nursery.start(self.housekeeper.run)
                await nursery.start(self.chats.run)
                ports = self.loaded.config.ports
                log.info(
                    "daemon_ready",
                    url=f"http://localhost:{ports.public}",
                    app=f"http://127.0.0.1:{ports.app}",
                    control=str(self.loaded.paths.control_socket),
                )
                task_status.started(self)
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        await self.reload()
                        continue
                    log.info("signal", signal=signal.Signals(signum).name)
                    break
                await self.shutdown()
                app_stop.set()  # hypercorn drains its connections (graceful_timeout) and returns
                # collect the last exit statuses, so nothing we started is left a zombie
                with trio.move_on_after(2):
                    while self.reaper.children:
                        await trio.sleep(0.02)
                nursery.cancel_scope.cancel()  # the reaper, clones and schedules run until cancelled
        with trio.CancelScope(shield=True):
            await self.opencode.aclose()
        log.info("daemon_stopped")

    async def _start_when_ready(self, svc: Service) -> None:
        for dep in svc.config.after:
            other = self.services.get(dep)
            if other is not None:
                await other.settled.wait()
                if other.healthy is not True:
                    log.warning(
                        "starting_without_dependency",
                        service=svc.name,
                        dependency=dep,
                        dependency_state=str(other.state),
                    )
        if not self.stopping:
            svc.start()

    async def shutdown(self) -> None:
        """Stop services in reverse start order and kill the orphans left, within stop_timeout."""
        self.stopping = True
        budget = self.loaded.config.daemon.stop_timeout
        started = trio.current_time()
        with trio.move_on_after(max(0.5, budget - 0.5)) as scope:
            for svc in reversed(list(self.services.values())):
                await svc.stop()
        if scope.cancelled_caught:
            log.warning("stop_timeout_expired", timeout=budget)
            for svc in self.services.values():
                if svc.pid is not None:
                    _kill_group(svc.pid)
        orphans = self.orphans()
        if orphans:
            log.info("killing_orphans", pids=[o.pid for o in orphans])
            remaining = max(0.1, budget - (trio.current_time() - started) - 0.2)
            with trio.move_on_after(remaining):
                await self.kill_orphans(orphans)
        # the budget is spent: whatever still runs below the daemon goes now
        for proc in psutil.Process(self.pid).children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()

    async def reload(self) -> None:
        """Re-read the config; apply service changes; keep the running config if the new one is bad."""
        try:
            loaded = load_config(self.loaded.source)
        except DancodesError as exc:
            log.error("config_reload_failed", error=str(exc))
            return
        old = self.loaded
        unchanged_outside_services = (
            loaded.config.ports == old.config.ports
            and loaded.paths == old.paths
            and loaded.config.app == old.config.app
        )
        if not unchanged_outside_services:
            log.warning("config_reload_partial", detail="ports, data_dir and app settings apply on restart")
        self.loaded = loaded
        new_services = loaded.config.services
        assert self._nursery is not None
        for name, svc in list(self.services.items()):
            cfg = new_services.get(name)
            if cfg is None or not cfg.enabled:
                await svc.stop()
                del self.services[name]
                log.info("service_removed", service=name)
            elif cfg != svc.config:
                svc.reconfigure(cfg)
                if svc.state not in RESTING:
                    await svc.restart()
                log.info("service_reconfigured", service=name)
        for name in start_order(loaded):
            if name not in self.services:
                svc = self._make_service(name)
                self.services[name] = svc
                await self._nursery.start(svc.supervise)
                self._nursery.start_soon(self._start_when_ready, svc)
                log.info("service_added", service=name)
        self.housekeeper.reschedule()
        log.info("config_reloaded", config=str(loaded.source or "defaults"))

    async def _orphan_policy(self) -> None:
        while True:
            await trio.sleep(self.loaded.config.orphans.check_interval)
            policy = self.loaded.config.orphans
            if policy.kill_after_minutes <= 0:
                continue
            runs = {name: svc.run_id for name, svc in self.services.items()}
            for orphan in self.orphans():
                if orphan.age < policy.kill_after_minutes * 60:
                    continue
                if (
                    policy.only_if_service_restarted
                    and orphan.service in runs
                    and runs[orphan.service] == orphan.service_run
                ):
                    continue
                try:
                    killed = await self.kill(orphan.pid)
                except DancodesError:
                    continue  # gone meanwhile, or no longer ours
                log.info(
                    "orphan_killed_by_policy",
                    pid=orphan.pid,
                    pids=killed,
                    age=round(orphan.age),
                    service=orphan.service,
                )


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
