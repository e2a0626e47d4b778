"""Repos and worktrees on disk: the git layer behind /admin/repos, /admin/worktrees and GC.

Blocking code, called from trio worker threads. Importing this package does not load pygit2
(about 12 MB of RSS): the store imports it on first use.
"""

from .gc import GcDecision, GcResult, plan_gc
from .info import DeleteResult, DiskUsage, RepoDeleteResult, RepoInfo, WorktreeInfo
from .names import RepoName, inside, validate_branch, validate_session_id
from .progress import CloneProgress
from .store import ProjectStore

__all__ = [
    "CloneProgress",
    "DeleteResult",
    "DiskUsage",
    "GcDecision",
    "GcResult",
    "ProjectStore",
    "RepoDeleteResult",
    "RepoInfo",
    "RepoName",
    "WorktreeInfo",
    "inside",
    "plan_gc",
    "validate_branch",
    "validate_session_id",
]
