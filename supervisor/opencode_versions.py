"""Which opencode the daemon runs, and changing it: update (install, contract check, switch) and rollback.

    update V    V installed beside the current one (npm, exact; no V: the registry's latest), then the
                contract check (supervisor.opencode_contract) against a copy of the state; only when it
                passes: the selection recorded (current V, previous the old one), the opencode service's
                argv[0] pointed at V's folder and the service restarted. The chats are readable after:
                the state folder is the same.
    rollback    the same switch to the previous version (checked again: the newer one may have migrated
                the db), current and previous swapped.

A switch whose restart does not bring the new version up healthy is undone at once (back to the old
version, restarted): the caller gets the reason, the phone keeps an opencode. One change at a time; the
store keeps the current, the previous and the pin (each version is ~350 MB), nothing else.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import trio

from . import opencode_install
from .agent import AgentUser, check_reachable
from .errors import DancodesError, UpdateRefused
from .layout import Layout
from .opencode import OpencodeClient
from .opencode_install import Selection, Store, exact_version, installed_bin
from .reaper import Reaper
from .service import RESTING, Launch, Service, State

log = structlog.get_logger("dancodes.opencode")


@dataclass(frozen=True)
class Hooks:
    """What a switch needs of the daemon."""

    service: Callable[[], Service | None]  # the opencode service, when one is configured
    launch: Callable[[], Launch]  # the environment and user a start of it gets
    agent: Callable[[], AgentUser | None]
    use_bin_dir: Callable[[Path], None]  # where its argv[0] is looked up from now on
    client: OpencodeClient  # the daemon's own client of the live opencode


class OpencodeVersions:
    """The opencode versions of one data dir: the one running, the one before, the ones on disk."""

    def __init__(
        self,
        *,
        install: Layout,
        data_dir: Path,
        reaper: Reaper,
        environ: Mapping[str, str],
        hooks: Hooks,
    ) -> None:
        self.install = install
        self.data_dir = data_dir
        self.store = Store(data_dir)
        self.reaper = reaper
        self.environ = environ
        self.hooks = hooks
        #: the version the opencode service runs (None until `choose` ran: no service runs opencode)
        self.current: str | None = None
        self.bin_dir: Path | None = None  # the folder holding it
        self._changing = trio.Lock()

    async def choose(self) -> Path:
        """At daemon start: the selected version when installed whole, else the pin (installed if need be);
        the folder holding it."""
        # what a daemon killed mid-update left: a half-installed version, a contract check's state copy
        self.store.discard_partial()
        for leftover in self.data_dir.glob(f"{opencode_install.CHECK_SCRATCH}*"):
            shutil.rmtree(leftover, ignore_errors=True)
        self.current, self.bin_dir = await opencode_install.ensure_selected(
            self.install, self.data_dir, self.reaper, self.environ
        )
        log.info("opencode_version", version=self.current, bin_dir=str(self.bin_dir))
        return self.bin_dir

    def _use(self, version: str, bin_dir: Path) -> None:
        self.current, self.bin_dir = version, bin_dir
        self.hooks.use_bin_dir(bin_dir)

    @property
    def pinned(self) -> str:
        return opencode_install.pinned_version(self.install.opencode_pin)

    @property
    def changing(self) -> bool:
        return self._changing.locked()

    def describe(self) -> dict[str, Any]:
        """The body of GET /admin/opencode."""
        selection = self.store.selection()
        installed = {v: self.store.prefix(v) for v in self.store.versions()}
        pin_bin = installed_bin(self.install, self.store, self.pinned)
        if pin_bin is not None and self.pinned not in installed:
            installed[self.pinned] = pin_bin.parent.parent  # the checkout's own npm ci of the pin
        return {
            "current": self.current,
            "previous": selection.previous,
            "pinned": self.pinned,
            "installed": [
                {"version": v, "path": str(installed[v])}
                for v in sorted(installed, key=opencode_install.version_key)
            ],
            "changing": self.changing,
        }

    async def update(self, version: str | None) -> dict[str, Any]:
        """Install `version` (None: the registry's latest), check it, switch to it; the new description."""
        if version is not None:
            exact_version(version)
        async with self._lock():
            old = self._running()
            if version is None:
                version = await opencode_install.latest_version(self.reaper, self.environ)
            if version == old:
                raise UpdateRefused(f"opencode {version} is already the current version")
            bin_dir = installed_bin(self.install, self.store, version)
            if bin_dir is None:
                bin_dir = await self.store.install_version(version, self.reaper, self.environ)
            try:
                await self._check(version, bin_dir)
            except UpdateRefused:
                self._prune()  # a refused candidate is not kept: ~350 MB
                raise
            await self._switch(old, version, bin_dir, previous=old)
        return self.describe()

    async def rollback(self) -> dict[str, Any]:
        """Switch back to the previous version (checked again first); the new description."""
        async with self._lock():
            old = self._running()
            previous = self.store.selection().previous
            if previous is None or previous == old:
                raise UpdateRefused("there is no previous opencode version to roll back to")
            bin_dir = installed_bin(self.install, self.store, previous)
            if bin_dir is None:
                raise UpdateRefused(
                    f"the previous opencode {previous} is no longer installed whole: "
                    f"`dancodes-ctl opencode update {previous}` installs it again"
                )
            await self._check(previous, bin_dir)
            await self._switch(old, previous, bin_dir, previous=old)
        return self.describe()

    # -- the steps ------------------------------------------------------------------------------

    def _lock(self) -> trio.Lock:
        if self._changing.locked():
            raise UpdateRefused("an opencode update or rollback is already running")
        return self._changing

    def _running(self) -> str:
        if self.current is None or self.hooks.service() is None:
            raise UpdateRefused("no service runs opencode here: nothing to update or roll back")
        return self.current

    async def _check(self, version: str, bin_dir: Path) -> None:
        from . import opencode_contract  # httpx and sqlite3: only for an update

        agent = self.hooks.agent()
        if agent is not None:  # opencode runs as the agent: it must reach the binary
            try:
                check_reachable(bin_dir, agent, "opencode's folder")
            except DancodesError as exc:
                raise UpdateRefused(str(exc)) from None
        launch = self.hooks.launch()
        candidate = opencode_contract.Candidate(version=version, bin_dir=bin_dir, env=launch.env, user=agent)
        await opencode_contract.check(
            candidate,
            state_dir=self.data_dir / "opencode",
            scratch_parent=self.data_dir,
            reaper=self.reaper,
        )

    async def _switch(self, old: str, new: str, bin_dir: Path, *, previous: str) -> None:
        """Record `new` as current, point the service at it and restart it; undone when it does not come up
        healthy as `new`. Not cancelled half-way: a caller gone leaves the daemon in one state or another."""
        with trio.CancelScope(shield=True):
            old_bin, old_selection = self.bin_dir, self.store.selection()
            self.store.select(Selection(current=new, previous=previous))
            self._use(new, bin_dir)
            log.info("opencode_switching", version=new, previous=old)
            failure = await self._restart(new)
            if failure is None:
                self._prune()
                log.info("opencode_switched", version=new, previous=old)
                return
            log.error("opencode_switch_failed", version=new, error=failure)
            self.store.select(old_selection)
            if old_bin is not None:
                self._use(old, old_bin)
            back = await self._restart(old)
            if back is not None:
                log.error("opencode_switch_back_failed", version=old, error=back)
            self._prune()
            raise UpdateRefused(f"opencode {new} passed the check but {failure}: back on {old}")

    async def _restart(self, version: str) -> str | None:
        """Restart the service if it runs (a stopped one starts on the new version when started);
        what went wrong, or None."""
        svc = self.hooks.service()
        if svc is None or svc.state in RESTING:
            return None
        await svc.stop()
        await svc.start_and_wait(timeout=min(svc.config.probe.start_timeout, 60.0) + 1.0)
        if svc.state != State.RUNNING:
            return f"did not start under the service ({svc.reason or svc.state})"
        try:
            health = await self.hooks.client.health()
        except DancodesError as exc:
            return f"did not answer after its start ({exc})"
        if health.get("version") != version:
            return f"the service runs {str(health.get('version'))[:40]!r} instead"
        return None

    def _prune(self) -> None:
        selection = self.store.selection()
        keep = {self.pinned, *(v for v in (self.current, selection.previous) if v)}
        self.store.prune(keep)
