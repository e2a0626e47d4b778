"""Which worktrees GC may delete: pure decisions from worktree state, opencode's sessions and the fetch.

A worktree is kept while its chat runs or was active within `idle_days`; otherwise it is a
candidate. A candidate of a repo whose remote could not be fetched in this run is kept, forced or
not: "on a remote" is then only what the remote had at an older fetch, and a branch deleted there
since would take its commits with it at the next fetch. A candidate holding work (commits on no
remote, uncommitted or ignored files, submodule commits, nested repos) is kept unless forced, in
which case it is deleted with a backup. `plan_gc` decides; the housekeeper carries a plan out (a
dry run is a plan that is never carried out).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .info import DeleteResult, WorktreeInfo
from .names import RepoName

DAY = 86400.0


@dataclass(frozen=True)
class GcDecision:
    worktree: WorktreeInfo
    action: Literal["delete", "keep"]
    reason: str  # "session busy", "session active", "session gone", "idle 20 days but 2 commits on no remote"
    backup: bool  # deleting needs force: work on no remote is saved as backup refs first

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
    """What carrying out one "delete" decision did: `deleted`, or the `error` that kept the worktree."""

    decision: GcDecision
    deleted: DeleteResult | None
    error: str | None

    @property
    def name(self) -> str:
        return self.decision.worktree.key

    def as_json(self) -> dict[str, Any]:
        return {
            **self.decision.as_json(),
            "deleted": self.deleted.as_json() if self.deleted else None,
            "error": self.error,
        }


def plan_gc(
    worktrees: list[WorktreeInfo],
    sessions: Mapping[str, float],
    busy: set[str],
    *,
    now: float,
    idle_days: float,
    force: bool,
    grace_seconds: float = 0.0,
    unreachable: Mapping[RepoName, str] | None = None,
) -> list[GcDecision]:
    """Decide for each worktree. `sessions` maps opencode session ids to their last update in epoch
    seconds (opencode reports milliseconds: divide first); `busy` holds the ids of running chats;
    `unreachable` maps the repos whose fetch failed in this run to the error.
    A worktree whose chat is missing from `sessions` but that was active within `grace_seconds` is
    kept: its chat may be too new to be listed yet."""
    unreachable = unreachable or {}
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
        if wt.repo in unreachable:
            reason = f"{why} but remote unreachable: {unreachable[wt.repo]}"
            decisions.append(GcDecision(wt, "keep", reason, backup=False))
            continue
        at_risk = "; ".join(wt.at_risk)
        if not at_risk:
            decisions.append(GcDecision(wt, "delete", why, backup=False))
        elif force:
            decisions.append(GcDecision(wt, "delete", f"{why}; backing up {at_risk}", backup=True))
        else:
            decisions.append(GcDecision(wt, "keep", f"{why} but {at_risk}", backup=False))
    return decisions
