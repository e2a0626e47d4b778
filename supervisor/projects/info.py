"""What the store reports about repos and worktrees: plain, immutable snapshots for the API.

Each has `as_json()` giving JSON-ready values (paths and names as strings).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from .names import RepoName


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
    size: int | None  # bytes on disk; None: not measured (a new worktree, whose files are HEAD's)
    last_activity: float  # epoch seconds
    ignored: tuple[str, ...] = ()  # ignored files and directories ("build/") that are not regenerable caches
    nested: tuple[str, ...] = ()  # untracked directories holding a repository of their own
    submodules: tuple[str, ...] = ()  # submodules holding work on no remote, each with what it holds

    @property
    def key(self) -> str:
        """`owner/name/session_id`, unique across the store."""
        return f"{self.repo}/{self.session_id}"

    @property
    def at_risk(self) -> list[str]:
        """What deleting the worktree would lose, one phrase each; empty: nothing."""
        return describe_work(
            unpushed=self.unpushed,
            changed=self.changed_files,
            ignored=self.ignored,
            nested=self.nested,
            submodules=self.submodules,
        )

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
            "ignored": list(self.ignored),
            "nested": list(self.nested),
            "submodules": list(self.submodules),
            "at_risk": self.at_risk,
        }


@dataclass(frozen=True)
class DeleteResult:
    """What `delete_worktree` did."""

    path: Path
    # in the clone, refs/dancodes/backup/<session id>/worktree: the worktree's files as a commit on top of
    # its HEAD (or HEAD itself); None: nothing was at risk
    backup_ref: str | None
    branch_deleted: str | None  # the local branch removed with the worktree
    # every ref the backup made: backup_ref, and the history of submodules and nested repos under
    # refs/dancodes/backup/<session id>/submodules/<path>.git/ and .../nested/<path>.git/
    backup_refs: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "backup_ref": self.backup_ref,
            "backup_refs": list(self.backup_refs),
            "branch_deleted": self.branch_deleted,
        }


@dataclass(frozen=True)
class RepoDeleteResult:
    """What `delete_repo` did."""

    path: Path
    worktrees: list[DeleteResult]
    # a bare repo holding every ref of the clone, each stash on a ref of its own; None: nothing was at risk
    backup: Path | None

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


def describe_work(
    *,
    unpushed: int = 0,
    changed: int = 0,
    ignored: Sequence[str] = (),
    nested: Sequence[str] = (),
    submodules: Sequence[str] = (),
) -> list[str]:
    """Work at risk as phrases for a message: "2 commits on no remote", "ignored files (.env, build/)"."""
    parts = []
    if unpushed:
        parts.append(f"{plural(unpushed, 'commit')} on no remote")
    if changed:
        parts.append(plural(changed, "uncommitted change"))
    if ignored:
        parts.append(f"ignored files ({_some(ignored)})")
    if nested:
        parts.append(f"{'nested repos' if len(nested) > 1 else 'nested repo'} {_some(nested)}")
    parts += [f"submodule {sub}" for sub in submodules]
    return parts


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _some(names: Sequence[str], shown: int = 3) -> str:
    """The first few names; a message names what is at risk, it need not list a thousand files."""
    text = ", ".join(names[:shown])
    return f"{text} and {len(names) - shown} more" if len(names) > shown else text
