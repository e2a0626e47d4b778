"""The daemon: ordered start, signals, config reload, the orphan policy and ordered stop.

Before anything starts: the data_dir's lock, then whatever a predecessor killed with SIGKILL left
running is ended (supervisor.predecessors), then every port the daemon and its services must own is
checked free (supervisor.ports); a taken one is a one-line refusal.

async with trio.open_nursery() as nursery:
    reaper           the one waiter (supervisor.reaper)
    clones           background clones with progress (supervisor.projects.clones)
    app              /auth, /admin and the web app on 127.0.0.1 and the control socket, up first
    services         opencode, then Caddy once opencode is ready, then any others
    orphan policy    kills old orphans when configured
    housekeeper      worktree GC and idle opencode instances, on a schedule
    chats            opencode's /global/event: every chat's status (supervisor.chats)
    notifier         web push: VAPID keys if missing, then a push for each chat that ends, fails or waits
SIGTERM/SIGINT → stop services in reverse order, kill leftover orphans, stop the app, exit 0
SIGHUP         → reload the config; a bad one is logged and the running one kept
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import psutil
import structlog
import trio

from . import (
    __version__,
    agent,
    agent_git,
    files,
    github,
    opencode_config,
    proxy,
    secretstore,
    tls,
)
from .agent import AgentUser, agent_environment
from .auth import AuthWall
from .auth.origin import configured_origin
from .auth.wall import PROXY_SECRET_ENV
from .chats import ChatBoard, Resume
from .config import LoadedConfig, ServiceConfig, load_config, start_order
from .datadir import lock_data_dir, prepare_data_dir, unlock_data_dir
from .errors import DancodesError, DataDirError
from .layout import search_path
from .logs import Redactor, ServiceLog, secret_values
from .memory import MemoryWatch
from .opencode import OpencodeClient, basic_auth
from .opencode_versions import Hooks, OpencodeVersions
from .orphans import Orphan, check_killable, kill_tree, list_orphans
from .ports import check_free, daemon_ports, port_label
from .predecessors import RECORD_FILE, Recorder, end_predecessors
from .projects import gitcli
from .projects.clones import Clones
from .projects.housekeeping import Housekeeper
from .projects.store import ProjectStore
from .push.notifier import Notifier
from .reaper import Mode, Reaper, become_reaper
from .recent import Recent
from .service import RESTING, Launch, Service
from .settings import discard_temp_files
from .spawn import spawn

if TYPE_CHECKING:
    from .typing import AdminContext

log = structlog.get_logger("dancodes.daemon")

#: How long after a request through the wall opencode counts as in use (no memory restart under it).
REQUEST_QUIET_SECONDS = 3.0

#: A service's settings that apply to the running process as they change: no restart for them.
LIVE_SERVICE_KEYS = ("memory_limit_mb", "memory_hard_limit_mb", "resume")

#: The service that is the public listener: it alone gets the proxy secret.
CADDY = "caddy"
OPENCODE = "opencode"


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
        self._client_address()  # a bad $DANCODES_PROXY_TRUSTED refuses to start, not Caddy later
        self._tls_env()  # so does acme without a domain
        self._redactor = Redactor([*secret_values(), self.auth.proxy_secret])
        self._nursery: trio.Nursery | None = None
        #: set by `run`: the agent's own user (None: it shares ours), opencode's server password
        self.agent_user: AgentUser | None = None
        self.agent_identity = agent_git.Identity(agent_git.LOCAL_NAME, agent_git.LOCAL_EMAIL, "local")
        self.opencode_password = ""
        self._recorder: Recorder | None = None
        #: where services' argv[0] is looked up: the venv, the install's opencode, $PATH (`run` adds the
        #: pinned opencode's folder once it is found or installed)
        self._search_path = search_path(*self._node_bin())
        self._opencode_ready = trio.Event()
        #: why the daemon stops by itself (the pinned opencode could not be installed); raised by `run`
        self.failure: DancodesError | None = None
        self._wake: trio.MemorySendChannel[int | None] | None = None
        #: the recent past that "why is this chat stuck?" shows (supervisor.recent)
        self.recent = Recent()
        for name in start_order(loaded):
            self.services[name] = self._make_service(name)
        paths = loaded.paths
        self.store = ProjectStore(
            paths.repos_dir,
            paths.worktrees_dir,
            loaded.config.git.remote_url,
            token=os.environ.get("GITHUB_TOKEN") or None,
            run_command=gitcli.through_reaper(self.reaper),  # git's exit is the reaper's to collect
        )
        self.clones = Clones(self.store)
        self.opencode = OpencodeClient(f"http://127.0.0.1:{loaded.config.ports.opencode}")
        self.chats = ChatBoard(
            self.opencode, record=paths.data_dir / "chats.json", resume=self._resume_policy
        )
        self.chats.observers.append(self.recent.on_event)
        #: which opencode runs, and `dancodes-ctl opencode update/rollback` (supervisor.opencode_versions)
        self.opencode_versions = OpencodeVersions(
            install=paths.layout,
            data_dir=paths.data_dir,
            reaper=self.reaper,
            environ=os.environ,
            hooks=Hooks(
                service=lambda: self.services.get(OPENCODE),
                launch=lambda: self._launch(OPENCODE, self.services[OPENCODE].config),
                agent=lambda: self.agent_user,
                use_bin_dir=self._use_opencode_bin,
                client=self.opencode,
            ),
        )
        self.housekeeper = Housekeeper(
            self.store,
            self.opencode,
            lambda: self.loaded.config.gc,
            busy_chats=self.chats.running,
        )
        self.notifier = Notifier(
            reaper=self.reaper,
            secrets_dir=paths.secrets_dir,
            push_dir=paths.push_dir,
            worktrees_dir=paths.worktrees_dir,
            store=self.store,
            opencode=self.opencode,
            settings=lambda: self.loaded.config.push,
            origin=lambda: self.auth.origin,
        )
        self.chats.listeners.append(self.notifier.on_transition)
        self.memory = MemoryWatch(
            lambda: self.services,
            busy=self._opencode_in_use,
            interval=lambda: self.loaded.config.daemon.memory_interval,
        )
        self.chats.listeners.append(
            lambda _change: self.memory.poke()
        )  # a turn ended: a restart may wait on it

    def _opencode_in_use(self) -> bool:
        """Not the moment for the memory ceiling's restart: a chat is in a turn, or a request came through the
        wall a moment ago (a new chat being made, a page loading: a restart under it would fail it)."""
        return bool(self.chats.running()) or time.monotonic() - self.auth.last_request < REQUEST_QUIET_SECONDS

    def _resume_policy(self) -> Resume:
        opencode = self.loaded.config.services.get(OPENCODE)
        return opencode.resume if opencode is not None else "mark"

    def _make_service(self, name: str) -> Service:
        cfg = self.loaded.config
        svc = Service(
            name,
            cfg.services[name],
            reaper=self.reaper,
            search_path=lambda: self._search_path,
            log=ServiceLog(name, cfg.daemon.log_tail, self._redactor),
            prepare=lambda config: self._launch(name, config),
            describe_port=lambda port: port_label(self.loaded, port, name),
        )
        svc.on_spawn(self._record_spawn)
        self.recent.watch(svc)
        return svc

    def _record_spawn(self, svc: Service) -> None:
        if self._recorder is not None and svc.pid is not None and svc.run_id is not None:
            self._recorder.spawned(svc.name, svc.pid, svc.run_id)

    def _launch(self, name: str, config: ServiceConfig) -> Launch:
        """What a start of service `name` gets: the agent's allowlisted environment and user for an
        agent service, the daemon's environment otherwise; opencode's password where it is needed."""
        loaded = self.loaded
        if config.agent:
            env = agent_environment(
                os.environ,
                extra=tuple(loaded.config.agent.env),
                user=self.agent_user,
                home=loaded.paths.agent_home,
            )
        else:
            env = dict(os.environ)
        if config.agent:
            git = loaded.config.git
            env.update(self.agent_identity.env())
            env.update(
                agent_git.credential_env(
                    os.environ.get("GITHUB_TOKEN"), git.remote_url, agent_token=git.agent_token
                )
            )
        env.update(config.env)
        user = (self.agent_user.uid, self.agent_user.gid) if config.agent and self.agent_user else None
        headers: dict[str, str] = {}
        if name == OPENCODE:
            env["OPENCODE_SERVER_PASSWORD"] = self.opencode_password
            env.pop("OPENCODE_SERVER_USERNAME", None)  # the daemon and Caddy use opencode's default
            env.pop("OPENCODE_CONFIG", None)  # merged into the content below: the agent need not read it
            env["OPENCODE_CONFIG_CONTENT"] = opencode_config.compose(
                conf_dir=loaded.paths.conf_dir,
                data_dir=loaded.paths.data_dir,
                plugins_dir=loaded.paths.plugins_dir,
                environ=os.environ,
            )
            headers["Authorization"] = basic_auth(self.opencode_password)
        elif name == CADDY:
            # Caddy puts it on every request it proxies to opencode, after the wall let it through
            env["DANCODES_OPENCODE_AUTH"] = basic_auth(self.opencode_password)
            # and this on what it forwards to the app, which then trusts its X-Forwarded-For;
            # Caddy's alone, never the agent's
            env[PROXY_SECRET_ENV] = self.auth.proxy_secret
            # the proxies whose word on the client's address Caddy believes ([proxy])
            env.update(self._client_address().caddy_env())
            env.update(self._tls_env())  # how it speaks: plain HTTP, Caddy's local CA, or ACME ([tls])
        return Launch(env=env, user=user, headers=headers)

    def _tls_env(self) -> dict[str, str]:
        config = self.loaded.config
        origin = configured_origin(config.app.public_origin, os.environ) or ""
        return tls.caddy_env(config.tls.mode, config.tls.domain, origin, config.ports.public)

    def _client_address(self) -> proxy.ClientAddressPolicy:
        settings = self.loaded.config.proxy
        return proxy.resolve(settings.trusted, settings.client_ip_header, os.environ)

    # -- what the API reads -------------------------------------------------------------------

    @property
    def orphans_reaped(self) -> int:
        return self.reaper.orphans_reaped

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
        paths = self.loaded.paths
        prepare_data_dir(paths)
        lock = lock_data_dir(paths)
        try:
            # the lock says the last daemon here is gone; what it started may not be
            await end_predecessors(paths.run_dir / RECORD_FILE)
            discard_temp_files(paths.data_dir)
            check_free(daemon_ports(self.loaded))  # ListenError: refuse to start
            self._recorder = Recorder(paths.run_dir / RECORD_FILE)
            await self._run(task_status)
        finally:
            unlock_data_dir(lock)

    async def _prepare_agent(self) -> None:
        """The agent's user (created if missing) and what it owns; opencode's password. Runs once the
        reaper does (useradd is a child like any other) and before any service starts."""
        paths = self.loaded.paths
        name = self.loaded.config.agent.user
        user = None
        if not agent.boundary_off(name):
            user = agent.find_user(name)
            if user is None:
                await self._create_agent_user(name)
                user = agent.find_user(name)
            if user is None:
                raise DataDirError(f"the agent user {name} is still missing after useradd")
            agent.check_reachable(paths.data_dir, user)
            agent.give_to_agent(
                user,
                [
                    paths.agent_home,
                    paths.data_dir / "opencode",  # its XDG state: the SQLite db, config, plugins
                    paths.repos_dir,
                    paths.worktrees_dir,
                    self.store.backups_dir,
                ],
                private=(paths.agent_home,),
            )
        else:
            paths.agent_home.mkdir(mode=0o700, exist_ok=True)
        self.agent_user = self.store.agent = user
        self._copy_plugins()
        self.store.git_home = paths.agent_home
        self.opencode_password = secretstore.load_or_make(paths.secrets_dir, secretstore.OPENCODE_PASSWORD)
        self._redactor.secrets.append(self.opencode_password)
        self.opencode.authenticate(self.opencode_password)
        await self._choose_agent_identity()
        log.info("agent_boundary", user=user.name if user else None, uid=user.uid if user else os.geteuid())

    def _copy_plugins(self) -> None:
        """Our opencode plugins, copied into the data dir: opencode runs as the agent, which may not reach
        the install (a pipx venv under /root); there, only the daemon may change them."""
        paths = self.loaded.paths
        paths.plugins_dir.mkdir(mode=0o755, exist_ok=True)
        os.chmod(paths.plugins_dir, 0o755)  # noqa: S103 - the agent reads them, whatever the umask
        for name in opencode_config.PLUGINS:
            files.write_whole(paths.plugins_dir / name, (paths.conf_dir / name).read_text(), mode=0o644)

    def _node_bin(self) -> list[Path]:
        node_bin = self.loaded.paths.layout.node_bin
        return [node_bin] if node_bin is not None else []

    def _runs_opencode(self) -> bool:
        return any(svc.config.argv[:1] == ["opencode"] for svc in self.services.values())

    def _use_opencode_bin(self, found: Path) -> None:
        self._search_path = search_path(found, *self._node_bin())

    async def _install_opencode(self) -> None:
        """The selected opencode (`dancodes-ctl opencode update`), else the pinned one, found or installed
        (supervisor.opencode_install), before a service that runs it starts; when it cannot be had, the
        daemon stops with the reason."""
        if not self._runs_opencode():
            self._opencode_ready.set()
            return
        try:
            found = await self.opencode_versions.choose()
            if self.agent_user is not None:  # opencode runs as the agent
                agent.check_reachable(found, self.agent_user, "opencode's folder")
        except DancodesError as exc:
            log.error("opencode_unavailable", error=str(exc))
            self.failure = exc
            if self._wake is not None:
                self._wake.send_nowait(None)
            return
        self._use_opencode_bin(found)
        self._opencode_ready.set()

    async def _forward_signals(
        self, signals: AsyncIterator[int], wake: trio.MemorySendChannel[int | None]
    ) -> None:
        async for signum in signals:
            await wake.send(signum)

    async def _choose_agent_identity(self) -> None:
        git = self.loaded.config.git
        token = os.environ.get("GITHUB_TOKEN")
        if token:
            self._redactor.secrets.append(agent_git.token_header(token).partition("Basic ")[2])
        user = None
        if token and not (git.user_name and git.user_email):
            user = await github.get_user(git.github_api, token)
        self.agent_identity = agent_git.choose_identity(git.user_name, git.user_email, user)
        log.info(
            "agent_git_identity",
            name=self.agent_identity.name,
            email=self.agent_identity.email,
            source=self.agent_identity.source,
            token=bool(token) and git.agent_token,
        )

    async def _create_agent_user(self, name: str) -> None:
        child = spawn(self.reaper, agent.useradd_argv(name, self.loaded.paths.agent_home), env=os.environ)
        errors = b""
        async with child.stdout, child.stderr:
            while chunk := await child.stderr.receive_some(4096):
                errors += chunk
        status = await child.wait()
        if not status.success:
            reason = " ".join(errors.decode(errors="replace").split()) or status.describe()
            raise DataDirError(f"cannot create the agent user {name}: {reason}")
        log.info("agent_user_created", user=name)

    async def _run(self, task_status: trio.TaskStatus[Daemon]) -> None:
        from .api.server import serve_app  # the web stack loads only for a daemon

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
                await self._prepare_agent()
                await nursery.start(self.clones.run)
                app_stop = trio.Event()
                context: AdminContext = self  # the API sees the daemon through this alone
                await nursery.start(serve_app, context, app_stop)
                self._wake, wakes = trio.open_memory_channel[int | None](16)
                nursery.start_soon(self._forward_signals, signals, self._wake)
                nursery.start_soon(self._install_opencode)
                for svc in self.services.values():
                    await nursery.start(svc.supervise)
                    nursery.start_soon(self._start_when_ready, svc)
                nursery.start_soon(self._orphan_policy)
                await nursery.start(self.housekeeper.run)
                await nursery.start(self.chats.run)
                await nursery.start(self.notifier.run)
                await nursery.start(self.memory.run)
                ports = self.loaded.config.ports
                log.info(
                    "daemon_ready",
                    url=f"http://localhost:{ports.public}",
                    app=f"http://127.0.0.1:{ports.app}",
                    control=str(self.loaded.paths.control_socket),
                )
                task_status.started(self)
                async for signum in wakes:  # a signal, or None: a failure stops the daemon
                    if signum == signal.SIGHUP:
                        await self.reload()
                        continue
                    if signum is not None:
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
        if self.failure is not None:
            raise self.failure

    async def _start_when_ready(self, svc: Service) -> None:
        if svc.config.argv[:1] == ["opencode"]:
            await self._opencode_ready.wait()
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
            and loaded.config.proxy == old.config.proxy  # Caddy gets it in its environment at start
            and loaded.config.tls == old.config.tls
        )
        if not unchanged_outside_services:
            detail = "ports, data_dir, app, proxy and tls settings apply on restart"
            log.warning("config_reload_partial", detail=detail)
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
                limits_only = cfg == msgspec.structs.replace(
                    svc.config, **{key: getattr(cfg, key) for key in LIVE_SERVICE_KEYS}
                )
                svc.reconfigure(cfg)
                if limits_only:  # the memory ceiling and resume apply at once, without a restart
                    self.memory.poke()
                elif svc.state not in RESTING:
                    await svc.restart()
                log.info("service_reconfigured", service=name, restarted=not limits_only)
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
