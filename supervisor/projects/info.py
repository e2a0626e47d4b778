"""What the store reports about repos and worktrees: plain, immutable snapshots for the API.

Each has `as_json()` giving JSON-ready values (paths and names as strings).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from supervisor.projects.names import RepoName


@dataclass(frozen=True)
class RepoInfo:
    """A clone under `repos_dir`."""

    repo: RepoName
    path: Path
    default_branch: str | None  # None: the remote advertised no HEAD and has neither main nor master
    head: str | None  # short sha of the clone's HEAD; None in an empty repo
    worktrees: int
    last_fetch: float | None  # epoch seconds: mtime of FETCH_HEAD, which the clone writes too

    def as_json(self) -> dict[str, Any]:
        return {
            "repo": str(self.repo),
            "owner": self.repo.owner,
            "name": self.repo.name,
            "path": str(self.path),
            "default_branch": self.default_branch,
            "head": self.head,
            "worktrees": self.worktrees,
            "last_fetch": self.last_fetch,
        }


@dataclass(frozen=True)
class WorktreeInfo:
    """One chat's worktree under `worktrees_dir`."""

    repo: RepoName
    session_id: str
    path: Path
    branch: str | None  # None: detached HEAD
    head: str | None  # short sha
    dirty: bool  # uncommitted changes, untracked files included, ignored files not
    changed_files: int
    unpushed: int  # commits reachable from HEAD and from no refs/remotes/* ref
    size: int  # bytes on disk
    last_activity: float  # epoch seconds

    @property
    def key(self) -> str:
        """`owner/name/session_id`, unique across the store."""
        return f"{self.repo}/{self.session_id}"

    def as_json(self) -> dict[str, Any]:
        return {
            "repo": str(self.repo),
            "session_id": self.session_id,
            "path": str(self.path),
            "branch": self.branch,
            "head": self.head,
            "dirty": self.dirty,
            "changed_files": self.changed_files,
            "unpushed": self.unpushed,
            "size": self.size,
            "last_activity": self.last_activity,
        }


@dataclass(frozen=True)
class DeleteResult:
    """What `delete_worktree` did."""

    path: Path
    backup_ref: str | None  # in the repo, e.g. refs/dancodes/backup/<session id>; None: nothing was at risk
    branch_deleted: str | None  # the local branch removed with the worktree

    def as_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "backup_ref": self.backup_ref, "branch_deleted": self.branch_deleted}


@dataclass(frozen=True)
class RepoDeleteResult:
    """What `delete_repo` did."""

    path: Path
    worktrees: list[DeleteResult]
    backup: Path | None  # a bare repo holding every ref that was at risk; None: nothing was

    def as_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "worktrees": [w.as_json() for w in self.worktrees],
            "backup": str(self.backup) if self.backup else None,
        }


class RepoUsage(TypedDict):
    repo: str
    size: int


class WorktreeUsage(TypedDict):
    repo: str
    session_id: str
    size: int


class DiskUsage(TypedDict):
    """Bytes on disk under the projects directory; the API adds the volume's total, used and free."""

    repos: list[RepoUsage]
    worktrees: list[WorktreeUsage]
    repos_total: int
    worktrees_total: int
    backups_total: int
    total: int
