"""Clones running in the background, one per repo at a time, with progress the API can show.

A clone of a big repo takes minutes on a phone's patience, so `POST /admin/repos/clone` starts
one here and answers at once; the app polls `GET /admin/repos` for the progress. The clone
itself runs in a worker thread (libgit2 blocks); cancelling the task, as a daemon shutdown
does, abandons the thread and tells it to abort, and the store leaves nothing half-written.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog
import trio

from ..errors import Conflict, DancodesError

if TYPE_CHECKING:
    from .names import RepoName
    from .store import CloneProgress, ProjectStore

log = structlog.get_logger("dancodes.clones")

FAILED_KEPT_FOR = 3600.0  # seconds a failed clone stays listed, so the phone can show why


class Clones:
    """Start clones, report their progress; `run` hosts them in the daemon's nursery."""

    def __init__(self, store: ProjectStore) -> None:
        self.store = store
        self._progress: dict[str, tuple[RepoName, CloneProgress]] = {}
        self._done: dict[str, trio.Event] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def get(self, repo: RepoName) -> CloneProgress | None:
        found = self._progress.get(str(repo))
        return found[1] if found else None

    def listed(self) -> list[tuple[RepoName, CloneProgress]]:
        """Running clones and recent failures; finished ones show up as repos instead."""
        now = time.time()
        for key, (_, progress) in list(self._progress.items()):
            if progress.phase == "failed" and now - progress.started > FAILED_KEPT_FOR:
                del self._progress[key]
        return list(self._progress.values())

    def start(self, repo: RepoName) -> CloneProgress:
        """Start a clone of `repo`, or return the one already running. Conflict if it is on disk."""
        from .store import CloneProgress

        key = str(repo)
        running = self._progress.get(key)
        if running is not None and running[1].phase not in ("done", "failed"):
            return running[1]
        if self.store.exists(repo):
            raise Conflict(f"repo {repo} is cloned already")
        if self._nursery is None:
            raise RuntimeError("Clones.run is not running")
        progress = CloneProgress()
        self._progress[key] = (repo, progress)
        self._done[key] = done = trio.Event()
        self._nursery.start_soon(self._clone, repo, progress, done)
        return progress

    async def wait(self, repo: RepoName) -> None:
        done = self._done.get(str(repo))
        if done is not None:
            await done.wait()

    async def _clone(self, repo: RepoName, progress: CloneProgress, done: trio.Event) -> None:
        log.info("clone_started", repo=str(repo))
        try:
            await trio.to_thread.run_sync(self.store.clone, repo, progress, abandon_on_cancel=True)
        except trio.Cancelled:
            progress.cancel()  # the abandoned thread aborts the clone; the store leaves nothing behind
            raise
        except DancodesError as exc:
            progress.phase, progress.error = "failed", str(exc)
            log.warning("clone_failed", repo=str(repo), error=str(exc))
        else:
            del self._progress[str(repo)]  # the repo lists itself from now on
            log.info("clone_done", repo=str(repo), seconds=round(time.time() - progress.started, 1))
        finally:
            done.set()
            self._done.pop(str(repo), None)
