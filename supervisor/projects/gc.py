"""Which worktrees GC may delete: pure decisions from worktree state and opencode's sessions.

A worktree is kept while its chat runs or was active within `idle_days`; otherwise it is a
candidate, and a candidate holding work on no remote (commits or uncommitted changes) is still
kept unless forced, in which case it is deleted with a backup. `plan_gc` decides, `apply_gc`
carries a plan out; a dry run is a plan that is never applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from supervisor.errors import ProjectError
from supervisor.projects.info import DeleteResult, WorktreeInfo
from supervisor.projects.names import RepoName

DAY = 86400.0


@dataclass(frozen=True)
class GcDecision:
    worktree: WorktreeInfo
    action: Literal["delete", "keep"]
    reason: str  # "session busy", "session active", "session gone", "idle 20 days but 2 commits on no remote"
    backup: bool  # deleting needs force: work on no remote is saved as a backup ref first

    def as_json(self) -> dict[str, Any]:
        return {
            "repo": str(self.worktree.repo),
            "session_id": self.worktree.session_id,
            "path": str(self.worktree.path),
            "action": self.action,
            "reason": self.reason,
            "backup": self.backup,
        }


@dataclass(frozen=True)
class GcResult:
    decision: GcDecision
    deleted: DeleteResult | None
    error: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            **self.decision.as_json(),
            "deleted": self.deleted.as_json() if self.deleted else None,
            "error": self.error,
        }


class WorktreeDeleter(Protocol):
    def delete_worktree(self, repo: RepoName, session_id: str, *, force: bool = False) -> DeleteResult: ...


def plan_gc(
    worktrees: list[WorktreeInfo],
    sessions: Mapping[str, float],
    busy: set[str],
    *,
    now: float,
    idle_days: float,
    force: bool,
    grace_seconds: float = 0.0,
) -> list[GcDecision]:
    """Decide for each worktree. `sessions` maps opencode session ids to their last update in epoch
    seconds (opencode reports milliseconds: divide first); `busy` holds the ids of running chats.
    A worktree whose chat is missing from `sessions` but that was active within `grace_seconds` is
    kept: its chat may be too new to be listed yet."""
    decisions = []
    for wt in worktrees:
        sid = wt.session_id
        updated = sessions.get(sid)
        last = max(updated or 0.0, wt.last_activity)
        if sid in busy:
            decisions.append(GcDecision(wt, "keep", "session busy", backup=False))
            continue
        if updated is not None and now - last < idle_days * DAY:
            decisions.append(GcDecision(wt, "keep", "session active", backup=False))
            continue
        if updated is None and now - wt.last_activity < grace_seconds:
            decisions.append(GcDecision(wt, "keep", "new worktree", backup=False))
            continue
        why = "session gone" if updated is None else f"idle {int((now - last) // DAY)} days"
        at_risk = _at_risk(wt)
        if not at_risk:
            decisions.append(GcDecision(wt, "delete", why, backup=False))
        elif force:
            decisions.append(GcDecision(wt, "delete", f"{why}; backing up {at_risk}", backup=True))
        else:
            decisions.append(GcDecision(wt, "keep", f"{why} but {at_risk}", backup=False))
    return decisions


def apply_gc(store: WorktreeDeleter, decisions: list[GcDecision]) -> list[GcResult]:
    """Delete what the plan says, one worktree at a time; a failure is recorded and GC goes on.

    A worktree that gained work since the plan is refused by the store (Conflict) unless the
    decision already asked for a backup, so a stale plan never loses anything.
    """
    results = []
    for decision in decisions:
        if decision.action != "delete":
            continue
        wt = decision.worktree
        try:
            deleted = store.delete_worktree(wt.repo, wt.session_id, force=decision.backup)
        except (ProjectError, OSError) as exc:
            results.append(GcResult(decision, None, str(exc)))
        else:
            results.append(GcResult(decision, deleted, None))
    return results


def _at_risk(wt: WorktreeInfo) -> str:
    parts = []
    if wt.unpushed:
        parts.append(f"{wt.unpushed} commit{'' if wt.unpushed == 1 else 's'} on no remote")
    if wt.dirty:
        parts.append("uncommitted changes")
    return " and ".join(parts)
