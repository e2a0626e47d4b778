"""Worktree GC and the idle-instance janitor, on a schedule and on demand.

GC asks opencode which chats exist and when each was last active, takes the running chats from the
chat board (opencode's events), fetches each repo so "on a remote" is current, plans with
`supervisor.projects.gc.plan_gc`, and carries the plan out in `_apply`, the one path that deletes:
only what holds no work (or, when forced, after backing it up), never a worktree of a repo whose
fetch failed in this run. If opencode cannot say which chats exist, nothing is deleted. Before a
worktree goes, its chat is asked once more whether it runs, and its opencode instance is disposed,
so no watcher or tool keeps running in a directory that no longer exists.

The janitor disposes the opencode instance of a worktree whose chat has been idle for a while:
opencode never evicts per-directory instances, and each holds file watchers and LSP children.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
import trio

from ..errors import Conflict, DancodesError, OpencodeError

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..config import GcSettings
    from ..opencode import OpencodeClient
    from .gc import GcDecision, GcResult
    from .names import RepoName
    from .store import ProjectStore

log = structlog.get_logger("dancodes.gc")

JANITOR_INTERVAL = 60.0  # seconds between idle-instance checks


@dataclass
class GcReport:
    dry_run: bool
    force: bool
    decisions: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    backups: dict[str, str] = field(default_factory=dict)  # worktree -> its backup ref in the clone
    errors: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "force": self.force,
            "decisions": self.decisions,
            "deleted": self.deleted,
            "backups": self.backups,
            "errors": self.errors,
        }


class Housekeeper:
    """GC and the janitor. `settings` is read on every run, so a config reload applies at once;
    `busy_chats` gives the ids of the chats running a turn now, as opencode's events tell."""

    def __init__(
        self,
        store: ProjectStore,
        opencode: OpencodeClient,
        settings: Callable[[], GcSettings],
        busy_chats: Callable[[], set[str]],
    ) -> None:
        self.store = store
        self.opencode = opencode
        self.settings = settings
        self.busy_chats = busy_chats
        self._lock = trio.Lock()  # one GC or delete at a time
        self._disposed: dict[str, float] = {}  # directory -> when we last disposed its instance
        self._since = time.time()  # instances loaded before this were not ours to know of
        self._rescheduled = trio.Event()

    def reschedule(self) -> None:
        """The settings changed (a config reload): plan the next runs with the new intervals now."""
        self._rescheduled.set()

    async def gc(self, *, dry_run: bool, force: bool = False) -> GcReport:
        from .gc import plan_gc

        settings = self.settings()
        async with self._lock:
            sessions = await self.opencode.sessions()  # OpencodeError: delete nothing
            unreachable = await self._fetch_all()
            worktrees = await trio.to_thread.run_sync(self.store.list_worktrees)
            decisions = plan_gc(
                worktrees,
                {sid: s.updated for sid, s in sessions.items()},
                self.busy_chats(),
                now=time.time(),
                idle_days=settings.idle_days,
                grace_seconds=settings.new_worktree_grace_minutes * 60,
                force=force,
                unreachable=unreachable,
            )
            report = GcReport(dry_run=dry_run, force=force, decisions=[d.as_json() for d in decisions])
            if not dry_run:
                for result in await self._apply(decisions):
                    if result.deleted is None:
                        report.errors[result.name] = result.error or "not deleted"
                        continue
                    report.deleted.append(result.name)
                    if result.deleted.backup_ref is not None:
                        report.backups[result.name] = result.deleted.backup_ref
            log.info(
                "gc_done",
                dry_run=dry_run,
                force=force,
                worktrees=len(worktrees),
                deleted=len(report.deleted),
                kept=sum(1 for d in decisions if d.action == "keep"),
                unreachable=len(unreachable),
                errors=len(report.errors),
            )
            return report

    async def _fetch_all(self) -> dict[RepoName, str]:
        """Fetch every clone; the repos whose fetch failed, with the error. Their worktrees are kept:
        stale remote-tracking refs may still show as pushed a branch the remote has lost."""
        failed: dict[RepoName, str] = {}
        for repo in await trio.to_thread.run_sync(self.store.list_repos):
            try:
                await trio.to_thread.run_sync(self.store.fetch, repo.repo)
            except DancodesError as exc:
                failed[repo.repo] = str(exc)
                log.warning("gc_fetch_failed", repo=str(repo.repo), error=str(exc))
        return failed

    async def _apply(self, decisions: list[GcDecision]) -> list[GcResult]:
        """Carry out the plan's deletes one worktree at a time; a failure is recorded and GC goes on.

        The store reads the worktree again under its lock and refuses (Conflict) one that gained
        work since the plan unless the decision asked for a backup, so a stale plan loses nothing.
        """
        from .gc import GcResult

        results = []
        for decision in decisions:
            if decision.action != "delete":
                continue
            wt = decision.worktree
            try:
                # asking boots the instance, which is disposed next: the chat's own word, not the
                # board's, decides, since a turn may have started after the plan was made
                if wt.session_id in await self.opencode.busy(str(wt.path)):
                    raise Conflict(f"the chat of worktree {wt.key} started running again")
                await self.opencode.dispose(str(wt.path))
                delete = functools.partial(
                    self.store.delete_worktree, wt.repo, wt.session_id, force=decision.backup
                )
                deleted = await trio.to_thread.run_sync(delete)
            except DancodesError as exc:
                results.append(GcResult(decision, None, str(exc)))
                log.warning("gc_delete_failed", worktree=wt.key, error=str(exc))
            else:
                results.append(GcResult(decision, deleted, None))
        return results

    async def delete_worktree(self, repo: RepoName, session_id: str, *, force: bool) -> dict[str, Any]:
        """Delete one worktree on request: refused while its chat runs, unless forced (then aborted)."""
        async with self._lock:
            wt = await trio.to_thread.run_sync(self.store.worktree, repo, session_id)
            try:
                busy = session_id in await self.opencode.busy(str(wt.path))
            except OpencodeError:
                busy = False  # opencode down: no turn can be running
            else:
                if busy and not force:
                    raise Conflict(
                        f"the chat of worktree {repo}/{session_id} is running; stop it or pass force"
                    )
                if busy:
                    await self.opencode.abort(session_id, str(wt.path))
                await self.opencode.dispose(str(wt.path))
            result = await trio.to_thread.run_sync(
                functools.partial(self.store.delete_worktree, repo, session_id, force=force)
            )
            log.info("worktree_deleted", repo=str(repo), session_id=session_id, force=force)
            return result.as_json()

    async def dispose_idle(self) -> list[str]:
        """Dispose the instances of worktrees idle longer than the setting; returns their paths."""
        idle_after = self.settings().dispose_idle_minutes * 60
        if idle_after <= 0:
            return []
        sessions = await self.opencode.sessions()
        # by worktree, not by the session's own directory: a chat is created in the repo's clone,
        # before its worktree exists, and opencode keeps that directory on the session
        last_active: dict[str, float] = {}
        for path in await trio.to_thread.run_sync(self._worktree_dirs):
            session = sessions.get(path.name.rsplit("__", 1)[-1])
            if session is not None:
                last_active[str(path)] = session.updated
        now = time.time()
        disposed: list[str] = []
        for directory, last in last_active.items():
            if now - last < idle_after or last <= self._disposed.get(directory, self._since):
                continue  # still in use, or nothing happened there since we (or a restart) disposed it
            if await self.opencode.busy(directory):  # a long tool call need not touch the session
                continue
            await self.opencode.dispose(directory)
            self._disposed[directory] = now
            disposed.append(directory)
            log.info("instance_disposed", directory=directory, idle_minutes=round((now - last) / 60))
        return disposed

    def _worktree_dirs(self) -> list[Path]:
        root = self.store.worktrees_dir
        return [p for p in root.iterdir() if p.is_dir() and "__" in p.name] if root.is_dir() else []

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The schedule: GC every `interval_minutes`, the janitor about every minute."""
        task_status.started()
        last_gc = trio.current_time()
        while True:
            settings = self.settings()
            periods = [JANITOR_INTERVAL]
            if settings.interval_minutes > 0:
                periods.append(settings.interval_minutes * 60)
            if settings.dispose_idle_minutes > 0:
                periods.append(settings.dispose_idle_minutes * 30)
            with trio.move_on_after(max(0.5, min(periods))):
                await self._rescheduled.wait()
            if self._rescheduled.is_set():
                self._rescheduled = trio.Event()
                continue
            try:
                await self.dispose_idle()
            except DancodesError as exc:
                log.warning("janitor_skipped", error=str(exc))
            interval = self.settings().interval_minutes * 60
            if interval > 0 and trio.current_time() - last_gc >= interval:
                last_gc = trio.current_time()
                try:
                    await self.gc(dry_run=False)
                except DancodesError as exc:
                    log.warning("gc_skipped", error=str(exc))
