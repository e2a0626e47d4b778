"""A chat's whole change, as the phone reads it before it pushes: against the merge-base with origin's
default branch, its commits since then and what is still uncommitted or untracked, in one diff.

Imported only by the store, in a worker thread (it needs pygit2). The patch is capped: a big one keeps
its first `max_patch_bytes` and says so (`truncated`), while the stat always lists every file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pygit2
from pygit2.enums import DeltaStatus, DiffOption

from . import _git as git

#: 1 MB of patch text: far more than a phone shows, little for the daemon to hold
MAX_PATCH_BYTES = 1 << 20
MAX_COMMITS = 250  # listed since the base: a PR's summary, not a log
_STATUS = {
    DeltaStatus.ADDED: "added",
    DeltaStatus.DELETED: "deleted",
    DeltaStatus.MODIFIED: "modified",
    DeltaStatus.RENAMED: "renamed",
    DeltaStatus.COPIED: "copied",
    DeltaStatus.TYPECHANGE: "typechange",
    DeltaStatus.UNTRACKED: "added",
}


@dataclass(frozen=True)
class FileChange:
    path: str
    old_path: str | None  # set when renamed
    status: str  # added | deleted | modified | renamed | copied | typechange
    additions: int
    deletions: int
    binary: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "old_path": self.old_path,
            "status": self.status,
            "additions": self.additions,
            "deletions": self.deletions,
            "binary": self.binary,
        }


@dataclass(frozen=True)
class CommitLine:
    id: str  # abbreviated
    subject: str

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "subject": self.subject}


@dataclass(frozen=True)
class WorktreeDiff:
    branch: str | None
    base: str | None  # the merge-base commit; None when origin has no default branch in common
    base_branch: str | None  # origin's default branch the base was taken from
    commits: list[CommitLine]  # since the base, newest first
    files: list[FileChange]
    patch: str
    truncated: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "branch": self.branch,
            "base": self.base,
            "base_branch": self.base_branch,
            "commits": [c.as_json() for c in self.commits],
            "files": [f.as_json() for f in self.files],
            "additions": sum(f.additions for f in self.files),
            "deletions": sum(f.deletions for f in self.files),
            "patch": self.patch,
            "truncated": self.truncated,
        }


def worktree_diff(wt: pygit2.Repository, *, max_patch_bytes: int = MAX_PATCH_BYTES) -> WorktreeDiff:
    """The change of the worktree `wt` since its merge-base with origin's default branch."""
    default = git.default_branch(wt)
    head = git.head_commit(wt)
    base: pygit2.Commit | None = None
    if default is not None and head is not None:
        upstream = wt.references.get(f"refs/remotes/{git.ORIGIN}/{default}")
        if upstream is not None:
            found = wt.merge_base(head.id, upstream.peel(pygit2.Commit).id)
            base = wt[found].peel(pygit2.Commit) if found is not None else None
    flags = (
        DiffOption.INCLUDE_UNTRACKED
        | DiffOption.RECURSE_UNTRACKED_DIRS
        | DiffOption.SHOW_UNTRACKED_CONTENT
        | DiffOption.INCLUDE_TYPECHANGE
    )
    # nothing in common with origin (or no origin): all of it is the change
    tree = base.tree if base is not None else _empty_tree(wt)
    diff = tree.diff_to_workdir(flags)
    diff.find_similar()
    files: list[FileChange] = []
    pieces: list[str] = []
    size = 0
    truncated = False
    for patch in diff:
        if patch is None:
            continue
        delta = patch.delta
        _, additions, deletions = patch.line_stats
        renamed = delta.status in (DeltaStatus.RENAMED, DeltaStatus.COPIED)
        files.append(
            FileChange(
                path=delta.new_file.path,
                old_path=delta.old_file.path if renamed else None,
                status=_STATUS.get(delta.status, "modified"),
                additions=additions,
                deletions=deletions,
                binary=bool(delta.is_binary),
            )
        )
        if truncated:
            continue
        text = patch.text or ""
        if size + len(text.encode()) > max_patch_bytes:
            truncated = True
            continue
        pieces.append(text)
        size += len(text.encode())
    commits: list[CommitLine] = []
    if head is not None:
        walker = wt.walk(head.id)
        if base is not None:
            walker.hide(base.id)
        for commit in walker:
            commits.append(CommitLine(commit.short_id, commit.message.split("\n", 1)[0]))
            if len(commits) >= MAX_COMMITS:
                break
    return WorktreeDiff(
        branch=git.head_branch(wt),
        base=base.short_id if base is not None else None,
        base_branch=default,
        commits=commits,
        files=files,
        patch="".join(pieces),
        truncated=truncated,
    )


def _empty_tree(wt: pygit2.Repository) -> pygit2.Tree:
    tree = wt[wt.TreeBuilder().write()]
    assert isinstance(tree, pygit2.Tree)
    return tree
