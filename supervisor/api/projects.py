"""The /admin routes for repos, worktrees, disk and GC, plus the user's GitHub repos.

git runs in worker threads (libgit2 blocks); names are validated before any path is built from
them, and every error is a `ProjectError` or `UpstreamError` carrying its HTTP status.
"""

from __future__ import annotations

import functools
import os
import shutil
from typing import TYPE_CHECKING, Any

import structlog
import trio
from quart import Blueprint
from quart_schema import validate_querystring, validate_request, validate_response

from .. import github
from ..errors import Conflict, GitHubError, UpstreamError
from ..projects.names import RepoName, validate_branch, validate_session_id
from .guard import Json, current_context, require_auth
from .openapi import path_parameters
from .responses import (
    CloneFailed,
    Committed,
    DiskReport,
    GcReport,
    GitHubRepoList,
    PullRequestOpened,
    Pushed,
    RepoDeleted,
    RepoList,
    RepoStatus,
    WorktreeCreated,
    WorktreeDeleted,
    WorktreeDetail,
    WorktreeDiff,
    WorktreeList,
    can_fail,
)
from .schemas import (
    NAME,
    OWNER,
    SESSION_ID,
    CloneRequest,
    CommitRequest,
    ForceQuery,
    GcRequest,
    PullRequestRequest,
    PushRequest,
    WorktreeRequest,
)

if TYPE_CHECKING:
    from ..projects.diff import WorktreeDiff as WorktreeDiffData
    from ..projects.store import CloneProgress

log = structlog.get_logger("dancodes.api")

projects = Blueprint("projects", __name__, url_prefix="/admin")
projects.before_request(require_auth)


def _clone_json(repo: RepoName, progress: CloneProgress) -> dict[str, Any]:
    return {"repo": str(repo), **progress.as_json()}


@projects.get("/repos")
@validate_response(RepoList)
@can_fail(401)
async def list_repos() -> Json:
    """Cloned repos, and the clones running or recently failed with their progress."""
    context = current_context()
    repos = await trio.to_thread.run_sync(context.store.list_repos)
    return {
        "repos": [r.as_json() for r in repos],
        "clones": [_clone_json(repo, p) for repo, p in context.clones.listed()],
    }


@projects.post("/repos/clone")
@validate_request(CloneRequest)
@validate_response(RepoStatus, 200)
@validate_response(RepoStatus, 201)
@validate_response(RepoStatus, 202)
@validate_response(CloneFailed, 502)
@can_fail(400, 401, 403, 413)
async def clone(data: CloneRequest) -> Json:
    """Start a clone (202 with its progress); an existing repo answers 200, `wait` answers when done."""
    context = current_context()
    repo = RepoName.parse(data.repo)
    if context.store.exists(repo) and context.clones.get(repo) is None:
        info = await trio.to_thread.run_sync(context.store.repo, repo)
        return {"repo": info.as_json(), "clone": None}, 200
    progress = context.clones.start(repo)
    if not data.wait:
        return {"repo": None, "clone": _clone_json(repo, progress)}, 202
    await context.clones.wait(repo)
    if progress.phase == "failed":
        return {
            "error": progress.error or f"clone of {repo} failed",
            "clone": _clone_json(repo, progress),
        }, 502
    info = await trio.to_thread.run_sync(context.store.repo, repo)
    return {"repo": info.as_json(), "clone": _clone_json(repo, progress)}, 201


@projects.get("/repos/<owner>/<name>")
@path_parameters(owner=OWNER, name=NAME)
@validate_response(RepoStatus, 200)
@validate_response(RepoStatus, 202)
@can_fail(400, 401, 404)
async def get_repo(owner: str, name: str) -> Json:
    context = current_context()
    repo = RepoName(owner, name)
    progress = context.clones.get(repo)
    if progress is not None:
        return {"repo": None, "clone": _clone_json(repo, progress)}, 202
    info = await trio.to_thread.run_sync(context.store.repo, repo)
    return {"repo": info.as_json(), "clone": None}


@projects.delete("/repos/<owner>/<name>")
@path_parameters(owner=OWNER, name=NAME)
@validate_querystring(ForceQuery)
@validate_response(RepoDeleted)
@can_fail(400, 401, 403, 404, 409, 502)
async def delete_repo(owner: str, name: str, query_args: ForceQuery) -> Json:
    """Delete a clone; refused while it has worktrees unless `force` (which backs their work up)."""
    context = current_context()
    repo = RepoName(owner, name)
    progress = context.clones.get(repo)
    if progress is not None and progress.phase not in ("done", "failed"):
        progress.cancel()
        await context.clones.wait(repo)
        return {"deleted": str(repo), "cancelled_clone": True}
    if query_args.force:
        for wt in await trio.to_thread.run_sync(context.store.list_worktrees):
            if wt.repo == repo:
                await context.housekeeper.delete_worktree(repo, wt.session_id, force=True)
    result = await trio.to_thread.run_sync(lambda: context.store.delete_repo(repo, force=query_args.force))
    return {"deleted": str(repo), **result.as_json()}


@projects.get("/repos/github")
@validate_response(GitHubRepoList)
@can_fail(401, 502, 503)
async def github_repos() -> Json:
    """The user's GitHub repos, newest push first, each marked if it is cloned here."""
    context = current_context()
    repos = await github.list_repos(
        context.loaded.config.git.github_api,
        token=os.environ.get("GITHUB_TOKEN") or None,
        user=os.environ.get("GITHUB_USER") or None,
    )
    cloned = {str(r.repo) for r in await trio.to_thread.run_sync(context.store.list_repos)}
    return {"repos": [{**r.as_json(), "cloned": r.full_name in cloned} for r in repos]}


@projects.post("/worktrees")
@validate_request(WorktreeRequest)
@validate_response(WorktreeCreated, 201)
@can_fail(400, 401, 403, 404, 409, 413, 502)
async def create_worktree(data: WorktreeRequest) -> Json:
    """A worktree for one chat, on a new branch from a freshly fetched origin default branch.

    If opencode knows the chat, the chat is moved into the worktree (`session_moved`): opencode
    runs a chat's turns in the directory stored on it, not the one a request names.
    """
    context = current_context()
    repo = RepoName.parse(data.repo)
    session_id = validate_session_id(data.session_id)
    branch = validate_branch(data.branch) if data.branch is not None else None
    info = await trio.to_thread.run_sync(lambda: context.store.create_worktree(repo, session_id, branch))
    try:
        # the chat was made in the clone; its turns must run in its worktree from now on
        await context.opencode.move_session(session_id, str(info.path))
    except UpstreamError as exc:
        moved = False
        log.warning("session_not_moved", session_id=session_id, error=str(exc))
    else:
        moved = True
    return {"worktree": info.as_json(), "session_moved": moved}, 201


@projects.get("/worktrees")
@validate_response(WorktreeList)
@can_fail(401)
async def list_worktrees() -> Json:
    worktrees = await trio.to_thread.run_sync(current_context().store.list_worktrees)
    return {"worktrees": [wt.as_json() for wt in worktrees]}


@projects.get("/worktrees/<owner>/<name>/<session_id>")
@path_parameters(owner=OWNER, name=NAME, session_id=SESSION_ID)
@validate_response(WorktreeDetail)
@can_fail(400, 401, 404)
async def get_worktree(owner: str, name: str, session_id: str) -> Json:
    repo, sid = RepoName(owner, name), validate_session_id(session_id)
    info = await trio.to_thread.run_sync(current_context().store.worktree, repo, sid)
    return {"worktree": info.as_json()}


@projects.get("/worktrees/<owner>/<name>/<session_id>/diff")
@path_parameters(owner=OWNER, name=NAME, session_id=SESSION_ID)
@validate_response(WorktreeDiff)
@can_fail(400, 401, 404, 502)
async def worktree_diff(owner: str, name: str, session_id: str) -> Json:
    """The chat's whole change against the merge-base with origin's default branch, as a stat and a
    unified patch (capped, with `truncated`): commits since then, uncommitted and untracked files."""
    repo, sid = RepoName(owner, name), validate_session_id(session_id)
    diff = await trio.to_thread.run_sync(current_context().store.diff, repo, sid)
    return diff.as_json()


@projects.post("/worktrees/<owner>/<name>/<session_id>/commit")
@path_parameters(owner=OWNER, name=NAME, session_id=SESSION_ID)
@validate_request(CommitRequest)
@validate_response(Committed, 201)
@can_fail(400, 401, 403, 404, 409, 502)
async def commit_worktree(owner: str, name: str, session_id: str, data: CommitRequest) -> Json:
    """Commit everything the agent left uncommitted, on the chat's branch, as the agent's identity;
    409 when there is nothing to commit."""
    repo, sid = RepoName(owner, name), validate_session_id(session_id)
    context = current_context()
    message = (data.message or "").strip() or await _chat_title(sid)
    identity = context.agent_identity
    done = await trio.to_thread.run_sync(
        functools.partial(context.store.commit_all, repo, sid, message, (identity.name, identity.email))
    )
    log.info("worktree_committed", repo=str(repo), session_id=sid, commit=done["commit"])
    return done, 201


@projects.post("/worktrees/<owner>/<name>/<session_id>/push")
@path_parameters(owner=OWNER, name=NAME, session_id=SESSION_ID)
@validate_request(PushRequest)
@validate_response(Pushed)
@can_fail(400, 401, 403, 404, 409, 502)
async def push_worktree(owner: str, name: str, session_id: str, data: PushRequest) -> Json:
    """Push the chat's branch to origin with the token; a non-fast-forward is 409 unless `force`."""
    repo, sid = RepoName(owner, name), validate_session_id(session_id)
    store = current_context().store
    done = await trio.to_thread.run_sync(functools.partial(store.push, repo, sid, force=data.force))
    log.info("worktree_pushed", repo=str(repo), session_id=sid, branch=done["branch"], forced=data.force)
    return done


@projects.post("/worktrees/<owner>/<name>/<session_id>/pr")
@path_parameters(owner=OWNER, name=NAME, session_id=SESSION_ID)
@validate_request(PullRequestRequest)
@validate_response(PullRequestOpened)
@can_fail(400, 401, 403, 404, 409, 422, 502, 503)
async def open_pull_request(owner: str, name: str, session_id: str, data: PullRequestRequest) -> Json:
    """Push the chat's branch if needed, then open its PR on GitHub (or answer the open one)."""
    repo, sid = RepoName(owner, name), validate_session_id(session_id)
    context = current_context()
    token = os.environ.get("GITHUB_TOKEN")
    if not token:
        raise GitHubError("set GITHUB_TOKEN to open pull requests", status=503)
    diff = await trio.to_thread.run_sync(context.store.diff, repo, sid)
    if diff.branch is None:
        raise Conflict(f"worktree {sid} of {repo} is not on a branch")
    await trio.to_thread.run_sync(functools.partial(context.store.push, repo, sid, force=False))
    base = data.base or diff.base_branch
    if base is None:
        raise Conflict(f"repo {repo} has no default branch on origin to open a pull request into")
    pull = await github.open_pull(
        context.loaded.config.git.github_api,
        token=token,
        owner=repo.owner,
        name=repo.name,
        head=diff.branch,
        base=base,
        title=(data.title or "").strip() or await _chat_title(sid),
        body=data.body if data.body is not None else _summary(diff),
        draft=data.draft,
    )
    log.info("pull_request", repo=str(repo), session_id=sid, number=pull.number, created=pull.created)
    return pull.as_json()


def _summary(diff: WorktreeDiffData) -> str:
    """A PR body from the chat's change: its commit subjects, then a diff stat."""
    lines = [f"- {c.subject}" for c in reversed(diff.commits)]
    stat = [
        f"    {f.path} | +{f.additions} -{f.deletions}" + (" (binary)" if f.binary else "")
        for f in diff.files
    ]
    total = sum(f.additions for f in diff.files), sum(f.deletions for f in diff.files)
    stat.append(f"    {len(diff.files)} files changed, +{total[0]} -{total[1]}")
    return "\n".join(["Commits:", *lines, "", "Changes:", *stat, "", "Opened from dancodes."])


async def _chat_title(session_id: str) -> str:
    """The chat's title from opencode, for a commit message; a plain one when opencode cannot say."""
    return await current_context().opencode.title(session_id) or f"Changes from chat {session_id}"


@projects.delete("/worktrees/<owner>/<name>/<session_id>")
@path_parameters(owner=OWNER, name=NAME, session_id=SESSION_ID)
@validate_querystring(ForceQuery)
@validate_response(WorktreeDeleted)
@can_fail(400, 401, 403, 404, 409, 502)
async def delete_worktree(owner: str, name: str, session_id: str, query_args: ForceQuery) -> Json:
    """Dispose the chat's opencode instance, then delete; work on no remote needs `force` (backed up)."""
    repo, sid = RepoName(owner, name), validate_session_id(session_id)
    return {"deleted": await current_context().housekeeper.delete_worktree(repo, sid, force=query_args.force)}


@projects.get("/disk")
@validate_response(DiskReport)
@can_fail(401)
async def disk() -> Json:
    """The volume's total, used and free bytes, and the size of each repo and worktree."""
    context = current_context()
    usage = shutil.disk_usage(context.loaded.paths.data_dir)
    sizes = await trio.to_thread.run_sync(context.store.disk_usage)
    return {"volume": {"total": usage.total, "used": usage.used, "free": usage.free}, **sizes}


@projects.post("/gc")
@validate_request(GcRequest)
@validate_response(GcReport)
@can_fail(400, 401, 403, 413, 502)
async def gc(data: GcRequest) -> Json:
    """Prune worktrees whose chat is gone or idle, never losing work; `dry_run` changes nothing."""
    report = await current_context().housekeeper.gc(dry_run=data.dry_run, force=data.force)
    return report.as_json()
