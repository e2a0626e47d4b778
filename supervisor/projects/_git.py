"""The pygit2 calls behind the store, kept in one module the store imports only when it needs git.

pygit2 loads libgit2 and costs about 12 MB of RSS, so `import supervisor.projects` must not import
this module. Functions here take opened repositories or paths and raise `pygit2.GitError`; the
store turns that into the project errors, scrubbing the token.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pygit2
from pygit2.enums import (
    ConfigLevel,
    CredentialType,
    FetchPrune,
    FileMode,
    FileStatus,
    Option,
    ReferenceType,
    RepositoryOpenFlag,
)

from ..agent import acting_as_daemon
from ..agent_git import TOKEN_USER
from .info import describe_work, plural
from .progress import CloneProgress

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


class Cancelled(Exception):
    """Raised inside a transfer callback to make libgit2 abort the clone."""


class AuthRejected(Exception):
    """The remote refused the token: libgit2 would otherwise ask for credentials again forever."""


class Callbacks(pygit2.RemoteCallbacks):
    """Credentials for https with a token, progress and cancellation for clones.

    The token goes to `url`'s host alone: the URL libgit2 asks for may differ from the one the
    daemon gave (a redirect, or `url.*.insteadOf` in a clone's config, which the agent can write).
    """

    def __init__(self, url: str, token: str | None, progress: CloneProgress | None = None) -> None:
        super().__init__()
        self._host = urlsplit(url).hostname if url.startswith("https://") else None
        self._token = token
        self._progress = progress
        self._asked = False

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: CredentialType
    ) -> pygit2.UserPass:
        if not self._token or not url.startswith("https://") or urlsplit(url).hostname != self._host:
            raise pygit2.Passthrough  # libgit2 then fails with "authentication required"
        if self._asked or not allowed_types & CredentialType.USERPASS_PLAINTEXT:
            raise AuthRejected
        self._asked = True
        return pygit2.UserPass(TOKEN_USER, self._token)

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
    repo = pygit2.clone_repository(url, str(dest), callbacks=Callbacks(url, token, progress))
    repo.free()


def fetch(repo: pygit2.Repository, url: str, token: str | None) -> None:
    """Fetch origin from `url` with prune, then point origin/HEAD where the remote's HEAD points.

    origin's URL is set back to `url` first: the clone's config is the agent's to write, and what
    GC counts as "on a remote" must come from the remote the daemon trusts.
    """
    repo.remotes.set_url(ORIGIN, url)
    remote = repo.remotes[ORIGIN]
    remote.fetch(prune=FetchPrune.PRUNE, callbacks=Callbacks(url, token))
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


#: Directories git ignores that are regenerable caches, not work: a package manager or a tool rebuilds
#: each from files the repository tracks, they are often large (node_modules: hundreds of MB), and
#: backing them up would fill the volume with copies of what the network holds. Everything else git
#: ignores counts as work: `.env` secrets, `build/` outputs, local databases are on no remote and
#: may not be reproducible (a deleted `build/` was measured as lost work).
REGENERABLE = frozenset(
    {"node_modules", "__pycache__", ".venv", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
)

#: submodules inside nested repos inside submodules…: deeper than this, a backup refuses (kept, not lost)
MAX_DEPTH = 8

STASH_PREFIX = "refs/dancodes/stash/"


def regenerable(path: str) -> bool:
    """Whether `path` (relative, "/"-separated) lies in a regenerable cache directory."""
    return any(part in REGENERABLE for part in path.rstrip("/").split("/"))


@dataclass(frozen=True)
class Scan:
    """A checkout's files that no commit holds."""

    changes: dict[str, FileStatus]  # uncommitted changes and untracked files
    ignored: list[str]  # ignored files, and directories ("build/"), that are not regenerable caches
    nested: list[str]  # untracked directories holding a repository of their own ("vendor/lib/")


def scan(repo: pygit2.Repository) -> Scan:
    """Read the checkout's status without writing anything (the index is not refreshed).

    libgit2 lists an ignored directory as one entry ("build/") without descending into it, and stops
    at an untracked directory holding a repository ("vendor/lib/"): both stay cheap to list.
    """
    if repo.is_bare:
        return Scan({}, [], [])
    changes: dict[str, FileStatus] = {}
    ignored: list[str] = []
    for path, flags in repo.status(untracked_files="all", ignored=True).items():
        if flags & FileStatus.IGNORED:
            if not regenerable(path):
                ignored.append(path)
        elif flags != FileStatus.CURRENT:
            changes[path] = FileStatus(flags)
    return Scan(changes, sorted(ignored), sorted(p for p in changes if p.endswith("/")))


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


def ref_risks(repo: pygit2.Repository) -> dict[str, str]:
    """Refs that hold work on no remote: name -> what it holds, for a message.

    A remote-tracking ref is what the remote had at the last fetch; every other ref is local: a branch,
    a tag, notes, a stash (its older entries live in its reflog), our own backups. Each counts when it
    reaches a commit that no remote-tracking ref reaches; stashes and backups always count, and so does
    a ref to something that is not a commit (a tag of a tree or a blob).
    """
    risk: dict[str, str] = {}
    tips: dict[str, pygit2.Oid] = {}
    for name in repo.references:
        if name.startswith("refs/remotes/"):
            continue
        label = _ref_label(name)
        if name == "refs/stash":
            count = max(1, len(_stash_entries(repo)))
            risk[name] = f"{count} stash{'' if count == 1 else 'es'}"
        elif name.startswith(BACKUP_PREFIX):
            # one entry per backup, not per ref: a backup holds many (submodules, nested repos)
            backup = name.removeprefix(BACKUP_PREFIX).split("/", 1)[0]
            risk[f"{BACKUP_PREFIX}{backup}"] = f"backup {backup}"
        elif name.startswith("refs/dancodes/"):
            risk[name] = f"backup {name.removeprefix('refs/dancodes/')}"
        else:
            try:
                tips[name] = repo.references[name].peel(pygit2.Commit).id
            except (pygit2.GitError, ValueError, KeyError, TypeError):
                risk[name] = f"{label} (not a commit)"
    # one walk over every tip first: usually nothing is ahead, and a repo may have thousands of tags
    if unpushed(repo, tips.values()):
        for name, tip in tips.items():
            ahead = unpushed(repo, [tip])
            if ahead:
                risk[name] = f"{_ref_label(name)}: {plural(ahead, 'commit')} on no remote"
    head = head_commit(repo)
    if repo.head_is_detached and head is not None:
        ahead = unpushed(repo, [head.id])
        if ahead:
            risk["HEAD"] = f"detached HEAD: {plural(ahead, 'commit')} on no remote"
    return risk


def _ref_label(name: str) -> str:
    for prefix, kind in (("refs/heads/", "branch"), ("refs/tags/", "tag"), ("refs/notes/", "notes")):
        if name.startswith(prefix):
            return f"{kind} {name.removeprefix(prefix)}"
    return name


def _stash_entries(repo: pygit2.Repository) -> list[pygit2.Oid]:
    """Every stash, newest first: `refs/stash` names only the newest, the reflog holds them all."""
    ref = repo.references.get("refs/stash")
    if ref is None:
        return []
    entries = [entry.oid_new for entry in ref.log()]
    return entries or [ref.target]  # type: ignore[list-item]


def name_stashes(repo: pygit2.Repository) -> list[str]:
    """Give every stash its own ref, `refs/dancodes/stash/<n>` (0 the newest), so that copying refs
    copies them all: a reflog does not travel with a push or a fetch."""
    made = []
    for n, oid in enumerate(_stash_entries(repo)):
        name = f"{STASH_PREFIX}{n}"
        repo.references.create(name, oid, force=True)
        made.append(name)
    return made


def doomed_roots(repo: pygit2.Repository) -> tuple[Path, ...]:
    """What goes when `repo`'s checkout is deleted: its working tree and its own git directory (for a
    worktree, its metadata `<clone>/.git/worktrees/<id>/`, where its submodules' git dirs live).

    A repository inside the checkout whose git dir lies elsewhere (a `.git` link or file pointing out
    of it) loses no history with the checkout: it is neither counted nor copied, and never written to.
    """
    roots = [Path(repo.path).resolve()]
    if not repo.is_bare:
        roots.append(Path(repo.workdir).resolve())
    return tuple(roots)


def _deleted_with(repo: pygit2.Repository, roots: tuple[Path, ...]) -> bool:
    gitdir = Path(repo.path).resolve()
    return any(gitdir.is_relative_to(root) for root in roots)


def checkout_risks(repo: pygit2.Repository, roots: tuple[Path, ...], depth: int = 0) -> list[str]:
    """What a repository with objects of its own (a submodule) holds that no remote has."""
    found = scan(repo)
    return list(ref_risks(repo).values()) + describe_work(
        changed=len(found.changes),
        ignored=found.ignored,
        nested=[p.rstrip("/") for p in found.nested],
        submodules=submodule_risks(repo, roots, depth),
    )


def submodule_work(
    repo: pygit2.Repository, roots: tuple[Path, ...] | None = None, depth: int = 0
) -> dict[str, list[str]]:
    """Initialised submodules holding work on no remote: path -> what each holds.

    A submodule's git directory lives in its superproject's metadata (`.git/worktrees/<id>/modules/`
    for a worktree) and goes with it (`roots`: see `doomed_roots`): commits on none of the
    submodule's remote-tracking refs, its stashes, its uncommitted and ignored files would be lost.
    One that was never initialised holds only what its remote has.
    """
    if repo.is_bare:
        return {}
    if depth >= MAX_DEPTH:
        raise pygit2.GitError(f"submodules nested deeper than {MAX_DEPTH} levels")
    roots = roots if roots is not None else doomed_roots(repo)
    workdir = Path(repo.workdir)
    found: dict[str, list[str]] = {}
    for path in repo.listall_submodules():
        full = workdir / path
        if not os.path.lexists(full / ".git"):
            continue
        try:
            with opened(full) as sub:
                if not _deleted_with(sub, roots):
                    continue
                risks = checkout_risks(sub, roots, depth + 1)
        except pygit2.GitError as exc:
            risks = [f"unreadable: {' '.join(str(exc).split())}"]  # unknown is kept, never guessed empty
        if risks:
            found[path] = risks
    return found


def submodule_risks(
    repo: pygit2.Repository, roots: tuple[Path, ...] | None = None, depth: int = 0
) -> list[str]:
    """`submodule_work` as phrases: "lib (branch side: 1 commit on no remote)"."""
    return [f"{path} ({'; '.join(risks)})" for path, risks in submodule_work(repo, roots, depth).items()]


def snapshot(
    repo: pygit2.Repository, message: str, found: Scan | None = None
) -> tuple[pygit2.Oid, list[str]]:
    """A commit of the whole working tree (tracked changes, untracked files, and ignored files but
    regenerable caches) whose parent is HEAD, made without moving HEAD or the branch and without
    touching the index; and the nested repositories found (paths relative to the checkout), whose
    history the commit cannot hold.

    The tree is built in a separate in-memory index from blobs read off the disk, not with
    `add_all`: libgit2 refuses to add a nested repository (an agent's `git clone` inside the
    worktree), and a conflicted index cannot be written as a tree.
    """
    found = found if found is not None else scan(repo)
    workdir = Path(repo.workdir)
    parent = head_commit(repo)
    index = pygit2.Index()
    if parent is not None:
        index.read_tree(parent.tree)
    nested: list[Path] = []
    for path in [*found.changes, *found.ignored]:
        if path.endswith("/"):
            # an untracked directory libgit2 did not descend into (a nested repository), or an ignored one
            for file in _files_under(workdir / path, nested):
                _stage(repo, index, workdir, file.relative_to(workdir).as_posix())
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
    commit = repo.create_commit(None, signature, signature, message, tree, parents)
    return commit, [p.relative_to(workdir).as_posix() for p in nested]


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


def _files_under(root: Path, repos: list[Path]) -> Iterator[Path]:
    """Files under `root`, without `.git` nor regenerable caches, symlinks kept as links (never
    followed, so a link out of the data directory is saved as a link); the outermost directories
    holding a repository (a `.git` directory or file, not a link to one) are appended to `repos`."""
    for top, dirs, files in os.walk(root):
        here = Path(top)
        has_git = (".git" in dirs or ".git" in files) and not os.path.islink(here / ".git")
        if has_git and not any(here.is_relative_to(r) for r in repos):
            repos.append(here)
        dirs[:] = [d for d in dirs if d != ".git" and d not in REGENERABLE]
        for name in files:
            if name != ".git":  # a nested worktree's or submodule's .git file
                yield here / name
        # symlinks to directories are in dirs: os.walk does not follow them, keep them as links
        for name in dirs:
            if os.path.islink(os.path.join(top, name)):
                yield here / name


def free_backup_prefix(repo: pygit2.Repository, name: str) -> str:
    """`refs/dancodes/backup/<name>/`, or `<name>-2/`, `-3/`… when an earlier backup holds the name
    (as a prefix, or as a ref of its own: older versions kept a single `refs/dancodes/backup/<name>`)."""
    taken = [ref for ref in repo.references if ref.startswith(BACKUP_PREFIX)]
    base, n = f"{BACKUP_PREFIX}{name}", 1
    candidate = base
    while any(ref == candidate or ref.startswith(f"{candidate}/") for ref in taken):
        n += 1
        candidate = f"{base}-{n}"
    return f"{candidate}/"


def back_up_checkout(
    clone: pygit2.Repository, checkout: pygit2.Repository, prefix: str, message: str
) -> list[str]:
    """Save into `clone` what a checkout sharing its objects (a worktree, or the clone itself) holds
    that its refs do not: `<prefix>worktree`, its files as a commit on top of HEAD (HEAD itself when
    no file is at risk), and the history of its submodules and nested repos under
    `<prefix>submodules/<path>.git/` and `<prefix>nested/<path>.git/`. Returns the refs made; on a
    failure none is left behind."""
    made: list[str] = []
    roots = doomed_roots(checkout)
    try:
        found = scan(checkout)
        nested: list[str] = []
        target = None
        if found.changes or found.ignored:
            target, nested = snapshot(checkout, message, found)
        else:
            head = head_commit(checkout)
            target = head.id if head is not None else None
        if target is not None:
            clone.references.create(f"{prefix}worktree", target, force=True)
            made.append(f"{prefix}worktree")
        made += _carry_inner(clone, checkout, prefix, message, nested, roots, depth=0)
    except BaseException:
        _drop_refs(clone, prefix)
        raise
    return made


def _carry_inner(
    clone: pygit2.Repository,
    repo: pygit2.Repository,
    prefix: str,
    message: str,
    nested: list[str],
    roots: tuple[Path, ...],
    depth: int,
) -> list[str]:
    """Carry `repo`'s submodules at risk and its nested repos into `clone` under `prefix`."""
    if repo.is_bare:
        return []
    workdir = Path(repo.workdir)
    names = _RefPaths()
    made: list[str] = []
    inner = [("submodules", path) for path in submodule_work(repo, roots, depth)]
    inner += [("nested", path) for path in nested]
    for kind, path in inner:
        where = f"{prefix}{kind}/{names.add(path)}/"
        made += carry_repo(clone, workdir / path, where, message, roots, depth + 1)
    return made


def carry_repo(
    clone: pygit2.Repository,
    path: Path,
    prefix: str,
    message: str,
    roots: tuple[Path, ...],
    depth: int = 1,
) -> list[str]:
    """Copy a repository with objects of its own (a submodule, an agent's `git clone`) into `clone`
    under `prefix`: HEAD, every ref, every stash, and its files as `<prefix>refs/dancodes/worktree`
    when some are on no commit; then the same for its own submodules and nested repos. A repository
    whose git dir is not among what is deleted (`roots`) is left alone: its history stays.

    The copy is a local fetch, so only objects the clone lacks are written. The refs it needs in the
    source (the stashes, the commit of its files) are made there under refs/dancodes/: the source is
    about to be deleted with its worktree, and if the delete stops they only name work it holds.
    """
    if depth > MAX_DEPTH:
        raise pygit2.GitError(f"repositories nested deeper than {MAX_DEPTH} levels under {path}")
    with opened(path) as source:
        if not _deleted_with(source, roots):
            return []
        name_stashes(source)
        found = scan(source)
        nested: list[str] = []
        if found.changes or found.ignored:
            files, nested = snapshot(source, message, found)
            source.references.create("refs/dancodes/worktree", files, force=True)
        has_refs = any(name.startswith("refs/") for name in source.references)
        refspecs = [f"+refs/*:{prefix}refs/*"] if has_refs else []
        if not source.head_is_unborn:
            refspecs.append(f"+HEAD:{prefix}HEAD")
        if refspecs:
            fetch_local(clone, path, refspecs)
        made = sorted(n for n in clone.references if n.startswith(prefix))
        return made + _carry_inner(clone, source, prefix, message, nested, roots, depth)


def fetch_local(repo: pygit2.Repository, source: Path, refspecs: list[str]) -> None:
    """Fetch `refspecs` from the repository at `source` into `repo`, leaving FETCH_HEAD as it was:
    its time is when origin was last fetched."""
    fetch_head = Path(repo.path) / "FETCH_HEAD"
    try:
        saved: tuple[bytes, os.stat_result] | None = (fetch_head.read_bytes(), fetch_head.stat())
    except FileNotFoundError:
        saved = None
    try:
        remote = repo.remotes.create_anonymous(os.fspath(source))
        remote.fetch(refspecs, prune=FetchPrune.NO_PRUNE)
    finally:
        if saved is None:
            fetch_head.unlink(missing_ok=True)
        else:
            fetch_head.write_bytes(saved[0])
            os.utime(fetch_head, ns=(saved[1].st_atime_ns, saved[1].st_mtime_ns))


class _RefPaths:
    """Paths inside a checkout as ref name parts, each unique: `vendor/lib` -> `vendor/lib.git`.

    The `.git` suffix keeps one repo's refs from clashing with a repo nested inside it (`a.git/HEAD`
    beside `a/b.git/HEAD`); characters refs cannot hold become `_`.
    """

    def __init__(self) -> None:
        self._used: set[str] = set()

    def add(self, path: str) -> str:
        parts = []
        for part in path.strip("/").split("/"):
            safe = re.sub(r"[^A-Za-z0-9._-]", "_", part).replace("..", "__")
            if safe.startswith("."):
                safe = "_" + safe[1:]
            if safe.endswith((".", ".lock")):
                safe += "_"
            parts.append(safe or "_")
        base = name = "/".join(parts)
        n = 1
        while f"{name}.git" in self._used:
            n += 1
            name = f"{base}-{n}"
        self._used.add(f"{name}.git")
        return f"{name}.git"


def _drop_refs(repo: pygit2.Repository, prefix: str) -> None:
    for name in [n for n in repo.references if n.startswith(prefix)]:
        try:
            repo.references.delete(name)
        except (pygit2.GitError, KeyError):
            continue


class NothingToCommit(Exception):
    """The worktree has no change to commit."""


class PushRejected(Exception):
    """The remote refused the push; `reason` says why in the remote's words."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def commit_all(repo: pygit2.Repository, message: str, name: str, email: str) -> pygit2.Oid:
    """Commit every change of the checkout on its branch, as `git add -A && git commit` would:
    tracked changes and deletions, untracked files, not ignored ones. NothingToCommit if none."""
    index = repo.index
    status = repo.status(untracked_files="all", ignored=False)
    changed = {p: f for p, f in status.items() if f != FileStatus.CURRENT and not f & FileStatus.IGNORED}
    if not changed:
        raise NothingToCommit
    for path, flags in changed.items():
        if flags & FileStatus.WT_DELETED and path in index:
            index.remove(path)
    index.add_all()
    index.write()
    tree = index.write_tree()
    parent = head_commit(repo)
    signature = pygit2.Signature(name, email)
    return repo.create_commit("HEAD", signature, signature, message, tree, [parent.id] if parent else [])


class _PushCallbacks(Callbacks):
    def push_update_reference(self, refname: str, message: str | None) -> None:
        if message:
            raise PushRejected(f"{refname}: {message}")


def push_branch(repo: pygit2.Repository, url: str, token: str | None, branch: str, *, force: bool) -> None:
    """Push `branch` to the same name at `url`, then record it as origin's, as a fetch would."""
    remote = repo.remotes.create_anonymous(url)
    spec = f"{'+' if force else ''}refs/heads/{branch}:refs/heads/{branch}"
    try:
        remote.push([spec], callbacks=_PushCallbacks(url, token))
    except pygit2.GitError as exc:
        text = str(exc).replace("-", "").lower()
        # libgit2's words differ between local and smart transports
        if "nonfastforward" in text or "not present locally" in text:
            raise PushRejected("the remote branch has commits this one lacks (not a fast-forward)") from None
        raise
    tip = repo.references[f"refs/heads/{branch}"].target
    repo.references.create(f"refs/remotes/{ORIGIN}/{branch}", tip, force=True)
    track_same_name(repo, branch)


def track_same_name(repo: pygit2.Repository, branch: str) -> None:
    """Make origin's branch of the same name the upstream of `branch`, whether it exists there yet or
    not, unless it has one: the agent's bare `git push` (and `git pull` once it exists) then work."""
    config = repo.config
    if f"branch.{branch}.remote" in config:
        return
    config[f"branch.{branch}.remote"] = ORIGIN
    config[f"branch.{branch}.merge"] = f"refs/heads/{branch}"


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


def register_worktree(repo: pygit2.Repository, name: str, path: Path, branch: str) -> Path:
    """Make the new directory `path` a worktree of `repo` named `name`, its HEAD on the local
    `branch`, without writing its files (`gitcli.check_out` does); return its git directory.

    The layout is git's own (gitrepository-layout(5), what `git worktree add --no-checkout` writes):
    `<path>/.git` names `<repo>/.git/worktrees/<name>/`, which holds `gitdir` (back to `<path>/.git`),
    `commondir` and `HEAD`. That directory is filled under a temporary name and renamed into place,
    so git and libgit2 only ever see all of it: `git worktree prune` drops one without `gitdir`.
    """
    admin = Path(repo.path).resolve() / "worktrees"
    gitdir = admin / name
    temp = admin / f".adding-{name}"
    if os.path.lexists(gitdir):
        raise FileExistsError(f"worktree metadata {name} exists already")
    path.mkdir()  # not one that exists: what is removed on a failure is only what was made here
    try:
        (path / ".git").write_text(f"gitdir: {gitdir}\n")
        admin.mkdir(exist_ok=True)
        _remove(temp)  # left by a daemon killed here: this repo's lock is held, so it is no one's
        temp.mkdir()
        (temp / "commondir").write_text("../..\n")
        (temp / "HEAD").write_text(f"ref: refs/heads/{branch}\n")
        (temp / "gitdir").write_text(f"{path / '.git'}\n")
        os.rename(temp, gitdir)
    except BaseException:
        _remove(temp)
        _remove(path)
        raise
    return gitdir


def _remove(path: Path) -> None:
    if os.path.lexists(path):
        shutil.rmtree(path)


def prune_worktree(repo: pygit2.Repository, name: str) -> None:
    if name in repo.list_worktrees():
        # as the daemon: files root made by hand in the worktree's metadata (an operator's git) go too;
        # libgit2 removes the directory without following symlinks
        with acting_as_daemon():
            repo.lookup_worktree(name).prune(True)


def push_refs(repo: pygit2.Repository, dest: Path, refs: Iterable[str]) -> None:
    """Copy `refs` and their history into a new bare repository at `dest`, whose HEAD names the
    clone's branch when that is among them."""
    refs = list(refs)
    backup = pygit2.init_repository(str(dest), bare=True)
    try:
        remote = repo.remotes.create_anonymous(os.fspath(dest))
        remote.push([f"+{ref}:{ref}" for ref in refs])
        if not repo.head_is_detached and not repo.head_is_unborn and repo.head.name in refs:
            backup.set_head(repo.head.name)
    finally:
        backup.free()
