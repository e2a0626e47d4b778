"""The pygit2 calls behind the store, kept in one module the store imports only when it needs git.

pygit2 loads libgit2 and costs about 12 MB of RSS, so `import supervisor.projects` must not import
this module. Functions here take opened repositories or paths and raise `pygit2.GitError`; the
store turns that into the project errors, scrubbing the token.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pygit2
from pygit2.enums import (
    CheckoutStrategy,
    ConfigLevel,
    CredentialType,
    FetchPrune,
    FileMode,
    FileStatus,
    Option,
    ReferenceType,
    RepositoryOpenFlag,
)

from supervisor.projects.progress import CloneProgress

# The clones and worktrees belong to the agent's user while the daemon runs as root: libgit2 would
# refuse them as "not owned by current user". The daemon opens only paths it built itself from
# validated names, under its own data_dir, so the ownership check protects nothing here.
pygit2.option(Option.SET_OWNER_VALIDATION, False)


def use_home(home: Path) -> None:
    """Read the global git config from `home` (the agent's home), not the daemon's $HOME: the
    daemon's git then sees what the agent's git sees, and never trips over a /root it may not
    read while it acts as the agent."""
    pygit2.settings.search_path[ConfigLevel.GLOBAL] = str(home)
    pygit2.settings.search_path[ConfigLevel.XDG] = str(home / ".config" / "git")


ORIGIN = "origin"
BACKUP_PREFIX = "refs/dancodes/backup/"
SIGNATURE = ("dancodes", "dancodes@localhost")
_TOKEN_USER = "x-access-token"  # noqa: S105 - what GitHub expects as the user for a token over https


class Cancelled(Exception):
    """Raised inside a transfer callback to make libgit2 abort the clone."""


class AuthRejected(Exception):
    """The remote refused the token: libgit2 would otherwise ask for credentials again forever."""


class Callbacks(pygit2.RemoteCallbacks):
    """Credentials for https with a token, progress and cancellation for clones."""

    def __init__(self, token: str | None, progress: CloneProgress | None = None) -> None:
        super().__init__()
        self._token = token
        self._progress = progress
        self._asked = False

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: CredentialType
    ) -> pygit2.UserPass:
        if not self._token or not url.startswith("https://"):
            raise pygit2.Passthrough  # libgit2 then fails with "authentication required"
        if self._asked or not allowed_types & CredentialType.USERPASS_PLAINTEXT:
            raise AuthRejected
        self._asked = True
        return pygit2.UserPass(_TOKEN_USER, self._token)

    def sideband_progress(self, string: str) -> None:
        # the server's "Counting objects" phase comes before any transfer progress
        self._check_cancel()

    def transfer_progress(self, stats: pygit2.remotes.TransferProgress) -> None:
        self._check_cancel()
        if self._progress is not None:
            self._progress.update(
                received_objects=stats.received_objects,
                total_objects=stats.total_objects,
                indexed_deltas=stats.indexed_deltas,
                total_deltas=stats.total_deltas,
                received_bytes=stats.received_bytes,
            )

    def _check_cancel(self) -> None:
        if self._progress is not None and self._progress.cancelled:
            raise Cancelled


@contextmanager
def opened(path: Path) -> Iterator[pygit2.Repository]:
    """A repository opened for one operation and freed after it, so no file stays open.

    NO_SEARCH: a worktree whose `.git` is gone must fail, not open whatever repo lies above it.
    """
    repo = pygit2.Repository(str(path), RepositoryOpenFlag.NO_SEARCH)
    try:
        yield repo
    finally:
        repo.free()


def clone(url: str, dest: Path, token: str | None, progress: CloneProgress) -> None:
    repo = pygit2.clone_repository(url, str(dest), callbacks=Callbacks(token, progress))
    repo.free()


def fetch(repo: pygit2.Repository, token: str | None) -> None:
    """Fetch origin with prune, then point origin/HEAD where the remote's HEAD points."""
    remote = repo.remotes[ORIGIN]
    remote.fetch(prune=FetchPrune.PRUNE, callbacks=Callbacks(token))
    try:
        # the list the server advertised stays readable after the fetch disconnected
        heads = remote.list_heads(connect=False)
    except pygit2.GitError:
        return
    for head in heads:
        if head.name == "HEAD" and head.symref_target and head.symref_target.startswith("refs/heads/"):
            target = f"refs/remotes/{ORIGIN}/{head.symref_target.removeprefix('refs/heads/')}"
            if target in repo.references:
                repo.references.create(f"refs/remotes/{ORIGIN}/HEAD", target, force=True)


def default_branch(repo: pygit2.Repository) -> str | None:
    """origin/HEAD's target (fetch keeps it as the remote advertises), else main, else master."""
    prefix = f"refs/remotes/{ORIGIN}/"
    ref = repo.references.get(f"{prefix}HEAD")
    if ref is not None and ref.type == ReferenceType.SYMBOLIC:
        target = str(ref.target)
        if target.startswith(prefix) and target in repo.references:
            return target.removeprefix(prefix)
    for name in ("main", "master"):
        if f"{prefix}{name}" in repo.references:
            return name
    return None


def head_commit(repo: pygit2.Repository) -> pygit2.Commit | None:
    if repo.head_is_unborn:
        return None
    return repo.head.peel(pygit2.Commit)


def head_branch(repo: pygit2.Repository) -> str | None:
    if repo.head_is_detached or repo.head_is_unborn:
        return None
    return repo.head.shorthand


def short_id(repo: pygit2.Repository) -> str | None:
    commit = head_commit(repo)
    return commit.short_id if commit is not None else None


def changes(repo: pygit2.Repository) -> dict[str, FileStatus]:
    """Uncommitted changes, untracked files included, ignored ones not; reads without writing."""
    return {
        path: FileStatus(flags)
        for path, flags in repo.status(untracked_files="all", ignored=False).items()
        if flags != FileStatus.CURRENT and not flags & FileStatus.IGNORED
    }


def unpushed(repo: pygit2.Repository, tips: Iterable[pygit2.Oid]) -> int:
    """Commits reachable from `tips` and from no remote-tracking ref."""
    tips = list(tips)
    if not tips:
        return 0
    walker = repo.walk(None)
    for tip in tips:
        walker.push(tip)
    for name in repo.references:
        if name.startswith("refs/remotes/"):
            try:
                walker.hide(repo.references[name].peel(pygit2.Commit).id)
            except (pygit2.GitError, ValueError, KeyError):
                continue  # a dangling origin/HEAD or a ref to a non-commit hides nothing
    return sum(1 for _ in walker)


def snapshot(repo: pygit2.Repository, message: str) -> pygit2.Oid:
    """A commit of the whole working tree (tracked changes and untracked files, not ignored ones)
    whose parent is HEAD, made without moving HEAD or the branch and without touching the index.

    The tree is built in a separate in-memory index from blobs read off the disk, not with
    `add_all`: libgit2 refuses to add a nested repository (an agent's `git clone` inside the
    worktree), and a conflicted index cannot be written as a tree.
    """
    workdir = Path(repo.workdir)
    parent = head_commit(repo)
    index = pygit2.Index()
    if parent is not None:
        index.read_tree(parent.tree)
    for path in changes(repo):
        if path.endswith("/"):
            # an untracked directory libgit2 did not descend into: a nested repository
            for file in _files_under(workdir / path):
                rel = file.relative_to(workdir).as_posix()
                if not repo.path_is_ignored(rel):
                    _stage(repo, index, workdir, rel)
            continue
        full = workdir / path
        if not os.path.lexists(full):
            if path in index:
                index.remove(path)
        elif full.is_dir() and not full.is_symlink():
            # a submodule's changes belong to it; a file that became a directory lists its files
            if path in index and index[path].mode != FileMode.COMMIT:
                index.remove(path)
        else:
            _stage(repo, index, workdir, path)
    tree = index.write_tree(repo)
    signature = pygit2.Signature(*SIGNATURE)
    parents = [parent.id] if parent is not None else []
    return repo.create_commit(None, signature, signature, message, tree, parents)


def _stage(repo: pygit2.Repository, index: pygit2.Index, workdir: Path, path: str) -> None:
    full = workdir / path
    info = os.lstat(full)
    if stat.S_ISLNK(info.st_mode):
        oid = repo.create_blob(os.fsencode(os.readlink(full)))
        mode = FileMode.LINK
    elif stat.S_ISREG(info.st_mode):
        oid = repo.create_blob_fromdisk(str(full))
        mode = FileMode.BLOB_EXECUTABLE if info.st_mode & 0o111 else FileMode.BLOB
    else:
        return  # sockets and fifos hold no work
    index.add(pygit2.IndexEntry(path, oid, mode))


def _files_under(root: Path) -> Iterator[Path]:
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            if name != ".git":  # a nested worktree's or submodule's .git file
                yield Path(top) / name
        # symlinks to directories are in dirs: os.walk does not follow them, keep them as links
        for name in dirs:
            if os.path.islink(os.path.join(top, name)):
                yield Path(top) / name


def free_backup_ref(repo: pygit2.Repository, session_id: str) -> str:
    """`refs/dancodes/backup/<id>`, or `<id>-2`, `-3`… when an earlier backup holds the name."""
    name = f"{BACKUP_PREFIX}{session_id}"
    n = 1
    while name in repo.references:
        n += 1
        name = f"{BACKUP_PREFIX}{session_id}-{n}"
    return name


def branch_holder(repo: pygit2.Repository, branch: str) -> str | None:
    """The worktree name whose HEAD is on `branch`, "" for the clone itself, None if nobody's."""
    ref = f"refs/heads/{branch}"
    if not repo.head_is_detached and not repo.head_is_unborn and repo.head.name == ref:
        return ""
    for name in repo.list_worktrees():
        head = Path(repo.path) / "worktrees" / name / "HEAD"
        try:
            if head.read_text().strip() == f"ref: {ref}":
                return name
        except OSError:
            continue
    return None


def add_worktree(repo: pygit2.Repository, name: str, path: Path, branch: pygit2.Branch) -> None:
    repo.add_worktree(name, str(path), branch)
    with opened(path) as wt:
        if not (Path(wt.path) / "index").exists():
            # libgit2 checks files out as it adds; make sure no version leaves an empty tree
            wt.checkout_head(strategy=CheckoutStrategy.FORCE)  # type: ignore[no-untyped-call]


def prune_worktree(repo: pygit2.Repository, name: str) -> None:
    if name in repo.list_worktrees():
        repo.lookup_worktree(name).prune(True)


def push_refs(repo: pygit2.Repository, dest: Path, refs: Iterable[str]) -> None:
    """Copy `refs` and their history into a new bare repository at `dest`."""
    pygit2.init_repository(str(dest), bare=True).free()
    remote = repo.remotes.create_anonymous(os.fspath(dest))
    remote.push([f"+{ref}:{ref}" for ref in refs])
