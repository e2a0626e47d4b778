"""The repos and worktrees on disk: clone, fetch, list, create and delete, never losing work.

`repos_dir/owner__name` holds regular clones, `worktrees_dir/owner__name__<session id>` one git
worktree per chat. Every method blocks (the API calls them through `trio.to_thread.run_sync`) and
may run in several threads at once: operations on one repo are serialised by that repo's lock,
listings take no lock and skip what vanishes under them.

pygit2 is imported on first use (through `_git`), not with this module.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..agent import OwnedByAgent, acting_as_daemon, as_agent
from ..errors import Conflict, GitFailed, InvalidName, NotFound
from .info import (
    DeleteResult,
    DiskUsage,
    RepoDeleteResult,
    RepoInfo,
    RepoUsage,
    WorktreeInfo,
    WorktreeUsage,
    describe_work,
)
from .info import plural as _plural
from .names import (
    RepoName,
    inside,
    parse_worktree_slug,
    validate_branch,
    validate_session_id,
    worktree_slug,
)
from .progress import CloneProgress

if TYPE_CHECKING:
    import pygit2

    from .diff import WorktreeDiff
    from .gitcli import Runner

__all__ = ["BRANCH_PREFIX", "CloneProgress", "ProjectStore"]

BRANCH_PREFIX = "dancodes/"
_TEMP_PREFIX = ".clone-"


class ProjectStore(OwnedByAgent):
    """Clones under `repos_dir`, worktrees under `worktrees_dir`, backups of deleted clones beside them.

    `remote_url` is a template such as `https://github.com/{owner}/{name}.git`; `token`, when set,
    is offered to https remotes only, through libgit2's credential callback, and never written to
    a clone's config.

    The trees belong to the agent (`self.agent`, set by the daemon when it runs the agent as its own
    user): every public method that touches them runs with the agent's file-system identity.
    """

    def __init__(
        self,
        repos_dir: Path,
        worktrees_dir: Path,
        remote_url: str,
        token: str | None,
        *,
        run_command: Runner,
    ) -> None:
        self.repos_dir = repos_dir
        self.worktrees_dir = worktrees_dir
        self.backups_dir = repos_dir.parent / "backups"
        self._remote_url = remote_url
        self._token = token or None
        self._locks: dict[str, threading.RLock] = {}
        self._locks_guard = threading.Lock()
        #: runs the git command that checks a new worktree's files out (`gitcli`): inside the daemon,
        #: through its reaper
        self.run_command = run_command

    #: the agent's home: where the daemon's git reads its global config (set with `agent`)
    git_home: Path | None = None

    def load_modules(self) -> None:
        from . import _git, diff  # noqa: F401 - pygit2 and what it imports

        if self.git_home is not None:
            _git.use_home(self.git_home)

    # -- names and paths ---------------------------------------------------------------------

    def url(self, repo: RepoName) -> str:
        """The clone URL, without credentials: this is what the clone's config keeps."""
        return self._remote_url.format(owner=repo.owner, name=repo.name)

    def repo_path(self, repo: RepoName) -> Path:
        return inside(self.repos_dir, self.repos_dir / repo.slug, "repo")

    def worktree_path(self, repo: RepoName, session_id: str) -> Path:
        return inside(self.worktrees_dir, self.worktrees_dir / worktree_slug(repo, session_id), "worktree")

    @contextmanager
    def _locked(self, repo: RepoName) -> Iterator[None]:
        with self._locks_guard:
            lock = self._locks.setdefault(repo.slug, threading.RLock())
        with lock:
            yield

    @contextmanager
    def _git_errors(self, action: str) -> Iterator[None]:
        """pygit2's and the file system's errors as GitFailed; ours pass through."""
        import pygit2

        try:
            yield
        except (pygit2.GitError, OSError) as exc:
            raise self._failed(action, exc) from None

    def _scrub(self, text: str) -> str:
        text = " ".join(text.split())  # one line
        if self._token:
            text = text.replace(self._token, "***")
        return text

    def _failed(self, action: str, exc: BaseException) -> GitFailed:
        from . import _git as git

        if isinstance(exc, git.AuthRejected):
            return GitFailed(f"{action} failed: the remote rejected the GitHub token")
        reason = self._scrub(str(exc)) or type(exc).__name__
        return GitFailed(f"{action} failed: {reason}")

    # -- repos -------------------------------------------------------------------------------

    def exists(self, repo: RepoName) -> bool:
        """Whether the clone is on disk (a clone in progress is not, until it is complete)."""
        return self.repo_path(repo).is_dir()

    @as_agent
    def clone(self, repo: RepoName, progress: CloneProgress | None = None) -> RepoInfo:
        """Clone into a temporary directory beside the target and rename it into place, so a failed
        or cancelled clone leaves nothing behind."""
        import pygit2

        from . import _git as git

        progress = progress if progress is not None else CloneProgress()
        with self._locked(repo), self._git_errors(f"clone of {repo}"):
            path = self.repo_path(repo)
            if path.exists():
                progress.finish(f"{repo} is already cloned")
                raise Conflict(f"repo {repo} is already cloned")
            self.repos_dir.mkdir(parents=True, exist_ok=True)
            mine = re.compile(rf"{re.escape(_TEMP_PREFIX + repo.slug)}-[0-9a-f]{{8}}")
            for entry in _scandir(self.repos_dir):
                if mine.fullmatch(entry.name):
                    # left by a daemon killed mid-clone: this repo's lock is held, so it is no one's
                    _rmtree(Path(entry.path))
            temp = inside(
                self.repos_dir,
                self.repos_dir / f"{_TEMP_PREFIX}{repo.slug}-{secrets.token_hex(4)}",
                "clone",
            )
            try:
                git.clone(self.url(repo), temp, self._token, progress)
                if progress.cancelled:  # cancelled during the checkout, which has no callback
                    raise git.Cancelled  # noqa: TRY301 - one cleanup path for every way out
                os.rename(temp, path)
            except BaseException as exc:
                _rmtree(temp)
                if isinstance(exc, git.Cancelled):
                    progress.finish("cancelled")
                    raise GitFailed(f"clone of {repo} was cancelled") from None
                if isinstance(exc, pygit2.GitError | git.AuthRejected | OSError):
                    error = self._failed(f"clone of {repo}", exc)
                    progress.finish(str(error))
                    raise error from None
                progress.finish(f"clone of {repo} failed")
                raise
            progress.finish()
            return self._repo_info(repo, path, self._worktree_counts())

    @as_agent
    def list_repos(self) -> list[RepoInfo]:
        import pygit2

        counts = self._worktree_counts()
        infos = []
        for repo, path in self._repo_dirs():
            try:
                infos.append(self._repo_info(repo, path, counts))
            except (OSError, pygit2.GitError):
                continue  # deleted or half-written under us
        return infos

    @as_agent
    def repo(self, repo: RepoName) -> RepoInfo:
        import pygit2

        path = self._existing_repo(repo)
        try:
            return self._repo_info(repo, path, self._worktree_counts())
        except pygit2.GitError as exc:
            raise self._failed(f"reading {repo}", exc) from None

    @as_agent
    def fetch(self, repo: RepoName) -> RepoInfo:
        """Fetch origin (pruning branches gone upstream) and refresh origin/HEAD."""
        with self._locked(repo), self._git_errors(f"fetch of {repo}"):
            path = self._existing_repo(repo)
            self._fetch(repo, path)
            return self._repo_info(repo, path, self._worktree_counts())

    @as_agent
    def delete_repo(self, repo: RepoName, *, force: bool = False) -> RepoDeleteResult:
        """Delete a clone. Without force: refused while it has worktrees or holds work that is on no
        remote (a branch, tag or notes ref reaching a commit no remote-tracking ref reaches, a stash,
        a backup, the clone's own files). With force: its worktrees are deleted (backed up into the
        clone's refs), then every ref of the clone, each stash on a ref of its own, is pushed into a
        new bare repo `backups/owner__name-<time>.git` beside `repos_dir`, and only then is the clone
        removed. Nothing at risk: no backup."""
        import pygit2

        from . import _git as git

        with self._locked(repo), self._git_errors(f"deleting {repo}"):
            path = self._existing_repo(repo)
            sessions = self._session_ids(repo)
            if sessions and not force:
                shown = ", ".join(sessions[:5]) + (", ..." if len(sessions) > 5 else "")
                raise Conflict(
                    f"repo {repo} still has {_plural(len(sessions), 'worktree')} ({shown}); "
                    "pass force to back them up and delete"
                )
            if not force:
                with git.opened(path) as clone:
                    risk = [*git.ref_risks(clone).values(), *self._clone_files_at_risk(clone)]
                    # the user's own refs first: our backups are many and named after sessions
                    risk.sort(key=lambda text: text.startswith("backup "))
                if risk:
                    shown = "; ".join(risk[:5]) + (f"; and {len(risk) - 5} more" if len(risk) > 5 else "")
                    raise Conflict(
                        f"repo {repo} holds work on no remote ({shown}); pass force to back it up and delete"
                    )
            results = [self._delete_worktree(repo, sid, force=True) for sid in sessions]
            backup = None
            with git.opened(path) as clone:
                if self._clone_files_at_risk(clone) or "HEAD" in git.ref_risks(clone):
                    prefix = git.free_backup_prefix(clone, "clone")
                    git.back_up_checkout(clone, clone, prefix, "dancodes backup of the clone's working tree")
                git.name_stashes(clone)
                if git.ref_risks(clone):
                    # everything, not only what is at risk: remote-tracking refs too, since the remote
                    # may have lost a branch since the last fetch; symbolic refs follow their targets
                    refs = sorted(
                        name
                        for name in clone.references
                        if clone.references[name].type == pygit2.enums.ReferenceType.DIRECT
                    )
                    self.backups_dir.mkdir(parents=True, exist_ok=True)
                    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
                    backup = inside(self.backups_dir, self.backups_dir / f"{repo.slug}-{stamp}.git", "backup")
                    try:
                        git.push_refs(clone, backup, refs)
                    except (pygit2.GitError, OSError) as exc:
                        _rmtree(backup)
                        raise self._failed(f"backing up {repo}", exc) from None
            _rmtree(path)
            return RepoDeleteResult(path=path, worktrees=results, backup=backup)

    # -- worktrees ---------------------------------------------------------------------------

    @as_agent
    def create_worktree(self, repo: RepoName, session_id: str, branch: str | None = None) -> WorktreeInfo:
        """A worktree for one chat on `branch` (default `dancodes/<session id>`), from a fresh fetch:
        an existing local branch is reused (fast-forwarded when origin is strictly ahead), else one
        is made from origin/<branch> (tracking it) when that exists, else from origin/<default>."""
        from . import _git as git

        validate_session_id(session_id)
        branch = validate_branch(branch if branch is not None else f"{BRANCH_PREFIX}{session_id}")
        with self._locked(repo), self._git_errors(f"adding worktree {session_id} to {repo}"):
            path = self._existing_repo(repo)
            wt_path = self.worktree_path(repo, session_id)
            if os.path.lexists(wt_path):
                raise Conflict(f"worktree for session {session_id} of {repo} exists already")
            self._fetch(repo, path)
            with git.opened(path) as clone:
                if session_id in clone.list_worktrees():
                    if not clone.lookup_worktree(session_id).is_prunable:
                        raise Conflict(f"repo {repo} already has a worktree named {session_id}")
                    git.prune_worktree(clone, session_id)  # its directory is gone: stale metadata
                self.worktrees_dir.mkdir(parents=True, exist_ok=True)
                local, created = self._branch_for(clone, repo, branch)
                try:
                    # it makes the directory (refusing one that exists) and, failing, removes what it made
                    gitdir = git.register_worktree(clone, session_id, wt_path, local.branch_name)
                    try:
                        self._check_out(gitdir, wt_path)
                    except BaseException:
                        _rmtree(wt_path)
                        git.prune_worktree(clone, session_id)
                        raise
                except BaseException:
                    if created:
                        local.delete()
                    raise
                return self._new_worktree_info(repo, session_id, wt_path, gitdir, clone, local)

    @as_agent
    def list_worktrees(self) -> list[WorktreeInfo]:
        import pygit2

        infos = []
        for repo, session_id, path in self._worktree_dirs():
            try:
                infos.append(self._worktree_info(repo, session_id, path))
            except (OSError, pygit2.GitError):
                continue  # deleted under us, or broken: worktree() names the problem
        return infos

    @as_agent
    def worktree_dirs(self) -> list[tuple[RepoName, str, Path]]:
        """Every chat's worktree as (repo, session id, path), read from the directory names alone."""
        return list(self._worktree_dirs())

    @as_agent
    def worktree(self, repo: RepoName, session_id: str) -> WorktreeInfo:
        import pygit2

        path = self._existing_worktree(repo, session_id)
        try:
            return self._worktree_info(repo, session_id, path)
        except pygit2.GitError as exc:
            raise self._failed(f"reading worktree {session_id} of {repo}", exc) from None

    @as_agent
    def diff(self, repo: RepoName, session_id: str) -> WorktreeDiff:
        """The chat's whole change against the merge-base with origin's default branch (see
        `supervisor.projects.diff`), from the last fetch."""
        import pygit2

        from . import _git as git
        from .diff import worktree_diff

        path = self._existing_worktree(repo, session_id)
        try:
            with git.opened(path) as wt:
                return worktree_diff(wt)
        except (pygit2.GitError, OSError) as exc:
            raise self._failed(f"reading the diff of worktree {session_id} of {repo}", exc) from None

    @as_agent
    def commit_all(
        self, repo: RepoName, session_id: str, message: str, author: tuple[str, str]
    ) -> dict[str, Any]:
        """Commit everything the agent left uncommitted in the chat's worktree, on its branch."""
        import pygit2

        from . import _git as git

        path = self._existing_worktree(repo, session_id)
        with self._locked(repo):
            try:
                with git.opened(path) as wt:
                    if wt.index.conflicts is not None:
                        raise Conflict(f"worktree {session_id} of {repo} has unresolved merge conflicts")
                    files = len(git.scan(wt).changes)
                    oid = git.commit_all(wt, message, *author)
                    return {"commit": str(oid)[:12], "branch": git.head_branch(wt), "files": files}
            except git.NothingToCommit:
                raise Conflict(f"worktree {session_id} of {repo} has nothing to commit") from None
            except pygit2.GitError as exc:
                raise self._failed(f"committing in worktree {session_id} of {repo}", exc) from None

    @as_agent
    def push(self, repo: RepoName, session_id: str, *, force: bool = False) -> dict[str, Any]:
        """Push the chat's branch to origin (the URL the daemon builds, with the token). A branch
        origin has moved past is refused (Conflict) unless `force`, which first fetches and then
        overwrites what that fetch saw."""
        import pygit2

        from . import _git as git

        path = self._existing_worktree(repo, session_id)
        with self._locked(repo):
            with git.opened(path) as wt:
                branch = git.head_branch(wt)
                head = git.head_commit(wt)
            if branch is None or head is None:
                raise Conflict(f"worktree {session_id} of {repo} is not on a branch with a commit")
            clone_path = self._existing_repo(repo)
            if force:
                self._fetch(repo, clone_path)  # the lease: what we overwrite is what we just saw
            try:
                with git.opened(clone_path) as clone:
                    git.push_branch(clone, self.url(repo), self._token, branch, force=force)
            except git.PushRejected as exc:
                raise Conflict(
                    f"push of {branch} to {repo} refused: {self._scrub(exc.reason)}; pass force to overwrite"
                ) from None
            except (pygit2.GitError, git.AuthRejected, OSError) as exc:
                raise self._failed(f"push of {branch} to {repo}", exc) from None
            return {"branch": branch, "commit": head.short_id, "forced": force}

    def _existing_worktree(self, repo: RepoName, session_id: str) -> Path:
        validate_session_id(session_id)
        path = self.worktree_path(repo, session_id)
        if not path.is_dir():
            raise NotFound(f"no worktree for session {session_id} of {repo}")
        return path

    @as_agent
    def delete_worktree(self, repo: RepoName, session_id: str, *, force: bool = False) -> DeleteResult:
        """Remove a worktree, its metadata and its `dancodes/...` branch. Uncommitted changes or
        commits on no remote refuse the delete unless `force`, which first saves them as
        `refs/dancodes/backup/<session id>` in the clone."""
        validate_session_id(session_id)
        with self._locked(repo), self._git_errors(f"deleting worktree {session_id} of {repo}"):
            return self._delete_worktree(repo, session_id, force=force)

    @as_agent
    def disk_usage(self) -> DiskUsage:
        repos: list[RepoUsage] = [{"repo": str(repo), "size": _du(path)} for repo, path in self._repo_dirs()]
        worktrees: list[WorktreeUsage] = [
            {"repo": str(repo), "session_id": sid, "size": _du(path)}
            for repo, sid, path in self._worktree_dirs()
        ]
        repos_total = sum(r["size"] for r in repos)
        worktrees_total = sum(w["size"] for w in worktrees)
        backups_total = _du(self.backups_dir) if self.backups_dir.is_dir() else 0
        return {
            "repos": repos,
            "worktrees": worktrees,
            "repos_total": repos_total,
            "worktrees_total": worktrees_total,
            "backups_total": backups_total,
            "total": repos_total + worktrees_total + backups_total,
        }

    # -- internals ---------------------------------------------------------------------------

    def _existing_repo(self, repo: RepoName) -> Path:
        path = self.repo_path(repo)
        if not path.is_dir():
            raise NotFound(f"repo {repo} is not cloned")
        return path

    def _repo_dirs(self) -> Iterator[tuple[RepoName, Path]]:
        for entry in _scandir(self.repos_dir):
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue  # clones in progress, and anything we did not make
            try:
                repo = RepoName.from_slug(entry.name)
            except InvalidName:
                continue
            yield repo, Path(entry.path)

    def _worktree_dirs(self) -> Iterator[tuple[RepoName, str, Path]]:
        for entry in _scandir(self.worktrees_dir):
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                repo, session_id = parse_worktree_slug(entry.name)
            except InvalidName:
                continue
            yield repo, session_id, Path(entry.path)

    def _worktree_counts(self) -> dict[RepoName, int]:
        counts: dict[RepoName, int] = {}
        for repo, _, _ in self._worktree_dirs():
            counts[repo] = counts.get(repo, 0) + 1
        return counts

    def _session_ids(self, repo: RepoName) -> list[str]:
        """Worktrees of `repo`: directories on disk and metadata in the clone, either alone."""
        from . import _git as git

        found = {sid for r, sid, _ in self._worktree_dirs() if r == repo}
        with git.opened(self.repo_path(repo)) as clone:
            for name in clone.list_worktrees():
                try:
                    found.add(validate_session_id(name))
                except InvalidName:
                    continue  # not one of ours (added by hand): it goes with the clone
        return sorted(found)

    def _repo_info(self, repo: RepoName, path: Path, counts: dict[RepoName, int]) -> RepoInfo:
        from . import _git as git

        with git.opened(path) as clone:
            fetch_head = Path(clone.path) / "FETCH_HEAD"
            try:
                last_fetch: float | None = fetch_head.stat().st_mtime
            except FileNotFoundError:
                last_fetch = None
            return RepoInfo(
                repo=repo,
                path=path,
                default_branch=git.default_branch(clone),
                head=git.short_id(clone),
                worktrees=counts.get(repo, 0),
                last_fetch=last_fetch,
            )

    def _fetch(self, repo: RepoName, path: Path) -> None:
        import pygit2

        from . import _git as git

        try:
            with git.opened(path) as clone:
                git.fetch(clone, self.url(repo), self._token)
        except (pygit2.GitError, git.AuthRejected, KeyError, OSError) as exc:
            raise self._failed(f"fetch of {repo}", exc) from None

    def _branch_for(
        self, clone: pygit2.Repository, repo: RepoName, branch: str
    ) -> tuple[pygit2.Branch, bool]:
        """The local branch to check out, and whether it was made here."""
        import pygit2

        from . import _git as git

        upstream = clone.branches.remote.get(f"{git.ORIGIN}/{branch}")
        local = clone.branches.local.get(branch)
        if local is not None:
            holder = git.branch_holder(clone, branch)
            if holder == "":
                # the clone itself has it checked out (e.g. main right after the clone): detach the
                # clone's HEAD at the same commit, which changes no file, to free the branch
                clone.set_head(clone.head.target)
            elif holder is not None:
                raise Conflict(f"branch {branch} of {repo} is checked out by session {holder}")
            if upstream is not None and clone.descendant_of(upstream.target, local.target):
                local.set_target(upstream.target, "dancodes: fast-forward to origin")
            return local, False
        if upstream is not None:
            local = clone.branches.local.create(branch, upstream.peel(pygit2.Commit))
            local.upstream = upstream
            return local, True
        default = git.default_branch(clone)
        start = clone.branches.remote.get(f"{git.ORIGIN}/{default}") if default else None
        if start is None:
            raise Conflict(f"repo {repo} has no default branch on origin to start {branch} from")
        local = clone.branches.local.create(branch, start.peel(pygit2.Commit))
        git.track_same_name(clone, branch)
        return local, True

    def _check_out(self, gitdir: Path, workdir: Path) -> None:
        from . import gitcli

        user = (self.agent.uid, self.agent.gid) if self.agent is not None else None
        try:
            gitcli.check_out(self.run_command, gitdir, workdir, user=user, home=self.git_home)
        except gitcli.CommandFailed as exc:
            raise GitFailed(f"checking out {workdir.name} failed: {self._scrub(str(exc))}") from None

    def _new_worktree_info(
        self,
        repo: RepoName,
        session_id: str,
        path: Path,
        gitdir: Path,
        clone: pygit2.Repository,
        branch: pygit2.Branch,
    ) -> WorktreeInfo:
        """A worktree just checked out holds its HEAD's files and nothing else: no change, no ignored
        file, no nested repo, no initialised submodule. Only what creating it did not establish is
        read (the commits on no remote, when a local branch was reused); its size is not measured,
        which would walk every file again (`size` is None; a listing or `GET /admin/disk` measures it).
        """
        import pygit2

        from . import _git as git

        head = clone.references[branch.name].peel(pygit2.Commit)  # as moved by a fast-forward
        return WorktreeInfo(
            repo=repo,
            session_id=session_id,
            path=path,
            branch=branch.branch_name,
            head=head.short_id,
            dirty=False,
            changed_files=0,
            unpushed=git.unpushed(clone, [head.id]),
            size=None,
            last_activity=_last_activity(path, gitdir),
        )

    def _worktree_info(self, repo: RepoName, session_id: str, path: Path) -> WorktreeInfo:
        from . import _git as git

        with git.opened(path) as wt:
            return self._read_worktree(repo, session_id, path, wt)

    def _read_worktree(
        self, repo: RepoName, session_id: str, path: Path, wt: pygit2.Repository
    ) -> WorktreeInfo:
        """The worktree's state and the work it holds: what GC plans from and a delete re-checks."""
        from . import _git as git

        head = git.head_commit(wt)
        found = git.scan(wt)
        return WorktreeInfo(
            repo=repo,
            session_id=session_id,
            path=path,
            branch=git.head_branch(wt),
            head=head.short_id if head is not None else None,
            dirty=bool(found.changes),
            changed_files=len(found.changes),
            unpushed=git.unpushed(wt, [head.id] if head is not None else []),
            size=_du(path),
            last_activity=_last_activity(path, Path(wt.path)),
            ignored=tuple(found.ignored),
            nested=tuple(p.rstrip("/") for p in found.nested),
            submodules=tuple(git.submodule_risks(wt)),
        )

    def _delete_worktree(self, repo: RepoName, session_id: str, *, force: bool) -> DeleteResult:
        import pygit2

        from . import _git as git

        path = self.worktree_path(repo, session_id)
        clone_path = self._existing_repo(repo)
        with git.opened(clone_path) as clone:
            registered = session_id in clone.list_worktrees()
            if not path.is_dir():
                if not registered:
                    raise NotFound(f"no worktree for session {session_id} of {repo}")
                git.prune_worktree(clone, session_id)  # metadata whose directory is already gone
                return DeleteResult(path=path, backup_ref=None, branch_deleted=None)
            if not registered:
                # a directory whose git metadata is gone: its state cannot be read nor backed up
                if not force:
                    raise Conflict(
                        f"worktree {session_id} of {repo} has lost its git metadata; "
                        "pass force to delete it anyway"
                    )
                _rmtree(path)
                return DeleteResult(path=path, backup_ref=None, branch_deleted=None)
            backup_ref, backup_refs = None, []
            with git.opened(path) as wt:
                # read again under the lock: a plan made earlier must not delete work made since
                info = self._read_worktree(repo, session_id, path, wt)
                branch = info.branch
                if info.at_risk:
                    if not force:
                        raise Conflict(
                            f"worktree {session_id} of {repo} has {'; '.join(info.at_risk)}; "
                            "pass force to back it up and delete"
                        )
                    prefix = git.free_backup_prefix(clone, session_id)
                    backup_refs = git.back_up_checkout(
                        clone, wt, prefix, f"dancodes backup of worktree {session_id}"
                    )
                    backup_ref = f"{prefix}worktree"
            _rmtree(path)
            git.prune_worktree(clone, session_id)
            deleted = None
            if branch is not None and branch.startswith(BRANCH_PREFIX):
                local = clone.branches.local.get(branch)
                # its commits are on a remote or in the backup ref by now
                if local is not None and git.branch_holder(clone, branch) is None:
                    try:
                        local.delete()
                        deleted = branch
                    except pygit2.GitError:
                        deleted = None
            return DeleteResult(
                path=path, backup_ref=backup_ref, branch_deleted=deleted, backup_refs=tuple(backup_refs)
            )

    def _clone_files_at_risk(self, clone: pygit2.Repository) -> list[str]:
        """What the clone's own checkout holds in files and submodules (agents work in worktrees,
        but anyone may have edited the clone)."""
        from . import _git as git

        found = git.scan(clone)
        risks = describe_work(
            changed=len(found.changes),
            ignored=found.ignored,
            nested=[p.rstrip("/") for p in found.nested],
            submodules=git.submodule_risks(clone),
        )
        return [f"{risk} in the clone" for risk in risks]


def _scandir(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)
    except FileNotFoundError:
        return []


def _du(root: Path) -> int:
    """Bytes allocated on disk under `root`, symlinks not followed, vanished files skipped."""
    total = 0
    stack = [str(root)]
    while stack:
        top = stack.pop()
        try:
            total += os.lstat(top).st_blocks * 512
            with os.scandir(top) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            total += entry.stat(follow_symlinks=False).st_blocks * 512
                    except FileNotFoundError:
                        continue
        except (FileNotFoundError, NotADirectoryError):
            continue
    return total


def _last_activity(path: Path, gitdir: Path) -> float:
    """Newest mtime among the worktree's git HEAD, index and reflog and its top-level entries:
    cheap, and moved by commits, checkouts and most edits."""
    newest = 0.0
    candidates = [gitdir / "HEAD", gitdir / "index", gitdir / "logs" / "HEAD", path]
    candidates += [Path(e.path) for e in _scandir(path)]
    for candidate in candidates:
        try:
            newest = max(newest, os.lstat(candidate).st_mtime)
        except FileNotFoundError:
            continue
    return newest


def _rmtree(path: Path) -> None:
    """Remove a tree even where a tool left read-only directories (Go's module cache does)."""

    def retry(func: Callable[..., Any], name: str, _exc: object) -> None:
        parent = os.path.dirname(name)
        try:
            os.chmod(parent, os.stat(parent).st_mode | stat.S_IWUSR | stat.S_IXUSR)
            func(name)
        except FileNotFoundError:
            pass

    if os.path.lexists(path):
        if os.path.islink(path):
            os.unlink(path)
        else:
            with acting_as_daemon():  # files root made by hand in a worktree go too
                shutil.rmtree(path, onerror=retry)
